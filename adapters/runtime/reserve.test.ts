/**
 * Three Box runtimes in one process on 127.0.0.1, on real data dirs: found a reserve, invite, join twice, back up on
 * one Box, replicated to RF 3, restored byte-identical on another; a second process on a data dir is refused by
 * its LOCK; a token with a wrong secret is refused clearly.
 */
import * as fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { compareTrees } from '../fs/compare.ts';
import { makeSampleTree } from '../fs/sample-tree.ts';
import { activeMembers } from '../../core/state/reducer.ts';
import { BoxDaemonApi } from './daemon-api.ts';
import { decodeInvite, encodeInvite } from './token.ts';
import { createInvite, initReserve, joinReserve } from './reserve.ts';
import { BoxRuntime, createBox } from './runtime.ts';
import { BoxExistsError, DataDirLockedError, JoinFailedError } from './errors.ts';
import { LISTEN, runtimeTestbed, until } from './test-support.ts';

const TIMING = { tickMs: 1000, syncMs: 2000, requestTimeoutMs: 5000 };
const { dir, chunking, runtimes } = runtimeTestbed('reserve-runtime-');

describe('a reserve of three Box runtimes', () => {
  it('init, invite, join, back up on one Box, replicate to RF 3, restore byte-identical on another', async () => {
    const dirs = ['a', 'b', 'c'].map((n) => dir(n));
    const t0 = performance.now();
    const founded = await initReserve(dirs[0], { listen: LISTEN, capacity: 10e9, region: 'home', rf: 3, minRf: 2, repairGraceMs: 60_000, chunking });
    expect(founded.box).toMatch(/^12D3/);
    await expect(initReserve(dirs[0], { listen: LISTEN, chunking })).rejects.toBeInstanceOf(BoxExistsError);

    const a = await createBox({ dataDir: dirs[0], timing: TIMING, chunking });
    runtimes.push(a);
    expect(a.box.state().config.replication).toEqual({ target: 3, minimum: 2 });
    expect(a.box.state().config.repair.graceMs).toBe(60_000);
    // one process per data dir
    await expect(BoxRuntime.open({ dataDir: dirs[0] })).rejects.toBeInstanceOf(DataDirLockedError);

    // no daemon.json here: the invite uses reserve.json's listen address, whose port 0 became the bound port
    const invite = await createInvite(dirs[0]);
    expect(invite.bootstrap).toEqual(a.addresses().filter((x) => x.startsWith('/ip4/127.0.0.1/')));
    expect(decodeInvite(invite.token).reserveId).toBe(founded.reserveId);

    const jb = await joinReserve(dirs[1], invite.token, { listen: LISTEN, capacity: 10e9, region: 'b', chunking, timing: TIMING });
    expect(jb).toMatchObject({ reserveId: founded.reserveId, members: 2 });
    await expect(joinReserve(dirs[1], invite.token, { listen: LISTEN, chunking })).rejects.toBeInstanceOf(BoxExistsError);
    const b = await createBox({ dataDir: dirs[1], timing: TIMING, chunking });
    runtimes.push(b);
    const jc = await joinReserve(dirs[2], invite.token, { listen: LISTEN, capacity: 10e9, region: 'c', chunking, timing: TIMING });
    expect(jc.members).toBe(3);
    const c = await createBox({ dataDir: dirs[2], timing: TIMING, chunking });
    runtimes.push(c);
    await until('every Box to see three members', () => ([a, b, c].every((r) => activeMembers(r.box.state()).length === 3) ? true : undefined));
    const formed = performance.now() - t0;

    const sample = dir('sample');
    const made = await makeSampleTree(sample, { sizeMiB: 6, seed: 5 });
    const apiA = new BoxDaemonApi(a);
    const progress: number[] = [];
    const t1 = performance.now();
    const backup = await apiA.backup({ path: sample }, (p) => progress.push(p.done));
    expect(backup.stats.files).toBeGreaterThan(made.files / 2);
    expect(progress.length).toBeGreaterThan(0);

    const status = await until(
      'RF 3 for every chunk',
      async () => {
        const s = await apiA.status();
        const p = s.snapshots[0]?.protection;
        // and every member's own report (reserve/report/1, re-measured at most every 10 s) shows what it holds
        return p && p.chunks > 0 && p.atTarget === p.chunks && s.boxes.every((b) => (b.used ?? 0) > 0) ? s : undefined;
      },
      40_000,
    );
    const replicated = performance.now() - t1;
    expect(status.snapshots[0].protection.protected).toBe(true);
    expect(status.boxes.map((x) => x.id).sort()).toEqual([a.id, b.id, c.id].sort());
    expect(status.boxes.every((x) => x.reachable && x.status === 'active')).toBe(true);
    expect(status.boxes.find((x) => x.self)!.used).toBeGreaterThan(0);
    // at RF 3 on 3 Boxes each holds every block, and says so
    for (const b of status.boxes) expect(b.used, b.id).toBeGreaterThan(0);

    const target = dir('restored');
    const apiC = new BoxDaemonApi(c);
    const r = await apiC.restore({ ref: 'latest', target });
    expect(r.root).toBe(backup.root);
    expect(await compareTrees(sample, target)).toEqual([]);
    const events = await apiC.events({});
    expect(events.some((e) => e.kind === 'keeper-added')).toBe(true);
    console.log(`reserve of 3 formed in ${(formed / 1000).toFixed(1)} s; ${(made.bytes / 1e6).toFixed(1)} MB backed up and at RF 3 in ${(replicated / 1000).toFixed(1)} s`);
  });

  it('a token whose secret is not the reserve\'s is refused clearly, and leaves no Box behind', async () => {
    const a = runtimes[0];
    const good = decodeInvite((await createInvite(a.dataDir)).token);
    const wrongSecret = new Uint8Array(32).fill(7);
    // generation 1 skips the founder-key check a generation-0 token gets; the PSK differs, so the Box refuses it
    const forged = encodeInvite({ ...good, generation: 1, secret: wrongSecret });
    const intruder = dir('intruder');
    const t = performance.now();
    const err = await joinReserve(intruder, forged, { listen: LISTEN, chunking, dialTimeoutMs: 3000 }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(JoinFailedError);
    expect((err as Error).message).toMatch(/refused the invite's secret/);
    expect(performance.now() - t).toBeLessThan(20_000);
    await expect(fs.readdir(intruder)).rejects.toThrow(); // removed again
  });
});
