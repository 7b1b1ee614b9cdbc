/**
 * The flood demo (`npm start`): the RFC's use case lived through on one machine with real processes and real
 * disks. Four Boxes form a reserve on 127.0.0.1; the home Box backs up a sample tree; the reserve protects it at
 * RF 3; a flood kills the home Box and its disk is gone; a factory-new Box joins with an invite token from a
 * surviving Box and restores everything, byte-identical; the survivors declare the home Box dead and bring every
 * block back to RF 3, now using the new Box. Each step prints what happened and how long it took; the end prints
 * the events the owner saw and a verdict.
 */
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeEvent } from '../../core/events/describe.ts';
import type { EventEnvelope } from '../../core/events/types.ts';
import type { DaemonApi, ReserveStatus } from '../daemon/api.ts';
import { createDaemonClient } from '../daemon/client.ts';
import { compareTrees } from '../fs/compare.ts';
import { makeSampleTree } from '../fs/sample-tree.ts';
import { Fleet } from './fleet.ts';

export interface FloodDemoOptions {
  /** Size of the sample tree (default 64 MiB). */
  sizeMiB?: number;
  /** Boxes before the flood (default 4). */
  boxes?: number;
  rf?: number;
  /** How long a Box may be unreachable before it is declared dead and its blocks re-replicated (default 15 s). */
  repairGrace?: string;
  /** Wait at most this long for RF to be back at target after the flood (default 120 s; 0 skips the wait). */
  repairWaitMs?: number;
  /** Keep the temporary directory. */
  keep?: boolean;
  log?: (line: string) => void;
  /** Called between steps, for tests that want to interfere (crash a member mid-transfer, ...). */
  hooks?: {
    afterBackup?: (fleet: Fleet) => Promise<void>;
    /** Runs alongside the new Box's restore. */
    duringRestore?: (fleet: Fleet) => Promise<void>;
    /** Runs at the end, while every surviving daemon still runs. */
    atEnd?: (fleet: Fleet) => Promise<void>;
  };
}

export interface FloodDemoResult {
  ok: boolean;
  dir: string;
  snapshot: string;
  files: number;
  bytes: number;
  differences: string[];
  steps: Array<{ step: string; seconds: number }>;
  /** Seconds from the backup's end until every block had RF copies. */
  protectedAfter: number;
  /** Seconds from the flood until every block was back at RF (null when not reached within repairWaitMs). */
  repairedAfter: number | null;
  events: EventEnvelope[];
}

/** Every Box listens on loopback only. */
const LOOPBACK = '/ip4/127.0.0.1/tcp/0';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;

/** Poll `api.status()` until `done` holds; returns the last status, or null at the deadline. */
async function waitFor(api: DaemonApi, done: (s: ReserveStatus) => boolean, timeoutMs: number): Promise<ReserveStatus | null> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      const s = await api.status();
      if (done(s)) return s;
    } catch {
      // the daemon is busy or restarting: ask again
    }
    if (performance.now() > deadline) return null;
    await sleep(500);
  }
}

const allAtTarget = (s: ReserveStatus) => s.snapshots.length > 0 && s.snapshots.every((p) => p.protection.atTarget === p.chunks && p.chunks > 0);

export async function runFloodDemo(options: FloodDemoOptions = {}): Promise<FloodDemoResult> {
  const log = options.log ?? (() => {});
  const n = options.boxes ?? 4;
  const rf = options.rf ?? 3;
  const sizeMiB = options.sizeMiB ?? 64;
  const base = await fs.mkdtemp(join(tmpdir(), 'reserve-flood-'));
  const fleet = new Fleet(join(base, 'boxes'));
  const steps: FloodDemoResult['steps'] = [];
  let t0 = performance.now();
  const step = (name: string, detail: string) => {
    const seconds = (performance.now() - t0) / 1000;
    steps.push({ step: name, seconds });
    log(`   ${detail} (${seconds.toFixed(1)} s)`);
    t0 = performance.now();
  };
  const names = Array.from({ length: n }, (_, i) => (i === 0 ? 'home' : `box-${i + 1}`));
  const boxNames = new Map<string, string>();
  const sample = join(base, 'sample');
  const restored = join(base, 'restored');
  // Ctrl-C or a kill must not leave Box processes behind.
  const interrupted = (signal: NodeJS.Signals) => {
    log(`\n${signal}: stopping every Box process...`);
    void fleet.stopAll().finally(async () => {
      if (!options.keep) await fs.rm(base, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    log(`Reserve flood demo: ${n} Boxes as separate processes on 127.0.0.1, data under ${base}\n`);

    log(`1. The home Box founds a reserve (RF ${rf}, a Box unreachable for ${options.repairGrace ?? '15s'} is declared dead)`);
    t0 = performance.now();
    const founded = await fleet.json<{ reserveId: string; box: string }>(['init', '--listen', LOOPBACK, '--data', fleet.dataDir('home'), '--rf', String(rf), '--min-rf', String(Math.min(2, rf)), '--repair-grace', options.repairGrace ?? '15s', '--capacity', '10G', '--region', 'home']);
    boxNames.set(founded.box, 'home');
    await fleet.startDaemon('home');
    step('found', `reserve ${founded.reserveId}, home Box ${founded.box}`);

    log(`2. ${n - 1} more Boxes join with an invite token from the home Box`);
    const invite = await fleet.json<{ token: string }>(['invite', '--data', fleet.dataDir('home')]);
    for (const name of names.slice(1)) {
      const j = await fleet.json<{ box: string }>(['join', '--listen', LOOPBACK, invite.token, '--data', fleet.dataDir(name), '--capacity', '10G', '--region', name]);
      boxNames.set(j.box, name);
      await fleet.startDaemon(name);
      log(`   ${name}: ${j.box}`);
    }
    step('join', `${n} Boxes in the reserve`);

    log(`3. Making a sample tree of about ${sizeMiB} MiB on the home Box and backing it up`);
    const made = await makeSampleTree(sample, { sizeMiB });
    const backup = await fleet.json<{ root: string; stats: { bytesNew: number; chunks: number }; seconds: number }>(['backup', sample, '--data', fleet.dataDir('home')], { timeoutMs: 600_000 });
    step('backup', `snapshot ${backup.root}: ${made.files} files, ${mb(made.bytes)}, ${backup.stats.chunks} chunks`);
    await options.hooks?.afterBackup?.(fleet);

    log(`4. The reserve copies every block to ${rf} Boxes`);
    const home = createDaemonClient(fleet.daemon('home').file);
    const survivor = () => createDaemonClient(fleet.daemon(names[1]).file);
    const protectedStatus = await waitFor(home, allAtTarget, 300_000);
    if (!protectedStatus) throw new Error(`the snapshot did not reach RF ${rf} within 300 s`);
    const protectedAfter = (performance.now() - t0) / 1000;
    step('protect', `every block on ${rf} Boxes: ${protectedStatus.snapshots[0].protection.atTarget} of ${protectedStatus.snapshots[0].chunks} at target`);
    home.close();

    log('5. Flood: the home Box dies (killed) and its disk is gone');
    await fleet.kill('home', 'SIGKILL');
    await fs.rm(fleet.dataDir('home'), { recursive: true, force: true });
    step('flood', 'home Box killed, its data dir deleted (the demo keeps the original tree aside, only to compare)');

    log('6. A factory-new Box joins with an invite token from a surviving Box and restores the latest snapshot');
    const invite2 = await fleet.json<{ token: string }>(['invite', '--data', fleet.dataDir(names[1])]);
    const fresh = await fleet.json<{ box: string }>(['join', '--listen', LOOPBACK, invite2.token, '--data', fleet.dataDir('new-box'), '--capacity', '10G', '--region', 'new']);
    boxNames.set(fresh.box, 'new-box');
    await fleet.startDaemon('new-box');
    const [r] = await Promise.all([
      fleet.json<{ stats: { files: number; bytes: number }; seconds: number }>(['restore', 'latest', restored, '--data', fleet.dataDir('new-box')], { timeoutMs: 600_000 }),
      options.hooks?.duringRestore?.(fleet),
    ]);
    step('restore', `new Box ${fresh.box} restored ${r.stats.files} files, ${mb(r.stats.bytes)} (${(r.stats.bytes / 1e6 / Math.max(r.seconds, 1e-3)).toFixed(0)} MB/s)`);

    log('7. Comparing the restore with the original, byte for byte, with modes, times and links');
    const differences = await compareTrees(sample, restored);
    step('compare', differences.length === 0 ? 'identical' : `${differences.length} differences:\n${differences.slice(0, 10).map((d) => `     ${d}`).join('\n')}`);

    let repairedAfter: number | null = null;
    const waitMs = options.repairWaitMs ?? 120_000;
    if (waitMs > 0) {
      log(`8. The survivors declare the home Box dead and bring every block back to ${rf} copies`);
      const api = survivor();
      const repaired = await waitFor(api, (s) => allAtTarget(s) && s.boxes.some((b) => b.status === 'dead'), waitMs);
      api.close();
      repairedAfter = repaired ? (performance.now() - t0) / 1000 : null;
      step('repair', repaired ? `back at RF ${rf} on ${repaired.boxes.filter((b) => b.status === 'active').length} Boxes` : `not back at RF ${rf} within ${waitMs / 1000} s`);
    }

    const api = survivor();
    const events = await api.events({});
    api.close();
    log(`\nEvents the owner saw (${events.length}):`);
    for (const e of events) log(`   ${new Date(e.time).toISOString().slice(11, 19)} ${e.severity.padEnd(7)} ${e.kind.padEnd(26)} ${(boxNames.get(e.source) ?? e.source.slice(-8)).padEnd(8)} ${describeEvent(e, { name: (id) => boxNames.get(id) })}`);

    await options.hooks?.atEnd?.(fleet);
    const ok = differences.length === 0 && r.stats.files === made.files;
    log(`\nVerdict: ${ok ? 'PASS: every byte came back from the other Boxes onto a factory-new Box' : 'FAIL'}${repairedAfter === null && waitMs > 0 ? ' (repair to full RF did not finish in time)' : ''}`);
    return { ok, dir: base, snapshot: backup.root, files: made.files, bytes: made.bytes, differences, steps, protectedAfter, repairedAfter, events };
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await fleet.stopAll();
    if (options.keep) log(`(kept ${base})`);
    else await fs.rm(base, { recursive: true, force: true });
  }
}
