/**
 * The full network bench: a tree backed up on one Box is replicated to RF 3 across 4 Box processes
 * (`reserve daemon`, real disks under a temp dir, 127.0.0.1), then restored onto a factory-new Box. Reported as
 * MiB/s of data protected (snapshot bytes / time until every block has RF copies), MiB/s on the wire (each new
 * byte leaves the author RF-1 times, or is forwarded), and restore MiB/s, for net-bench.ts to set against raw TCP
 * measured in the same run.
 *
 * The end of replication is found without loading the Boxes: the author's daemon says `protected` when its push
 * is done (watched on its output), and only then is `status` asked (it counts every chunk's copies on every Box:
 * at 1 GiB of small files that is ~15k CIDs per Box per call), then once a second until every chunk is at RF; a
 * status call every 5 s covers replication that ends without the push (pulls). Each Box's CPU time (user +
 * system, from /proc) is reported per phase, so the figures hold on a busy machine.
 */
import { readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReserveStatus } from '../../adapters/daemon/api.ts';
import { createDaemonClient } from '../../adapters/daemon/client.ts';
import { Fleet } from '../../adapters/demo/fleet.ts';
import { makeSampleTree } from '../../adapters/fs/sample-tree.ts';

const MIB = 1 << 20;
/** Every Box listens on loopback only. */
const LOOPBACK = '/ip4/127.0.0.1/tcp/0';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface BoxReplicationResult {
  mib: number;
  boxes: number;
  rf: number;
  backupSeconds: number;
  /** From the end of the backup until every block had RF copies. */
  replicateSeconds: number;
  /** Snapshot MiB / replicateSeconds. */
  protectedMibPerSec: number;
  /** New MiB × (RF-1) / replicateSeconds: what crossed 127.0.0.1. */
  wireMibPerSec: number;
  restoreSeconds: number;
  restoreMibPerSec: number;
  /** CPU seconds (user + system) of every Box process during replication, and of the restoring Box during restore. */
  replicateCpuSeconds: number;
  restoreCpuSeconds: number;
  /** Share of both phases' wall time × cores the whole machine was busy (other work included). */
  machineBusy: number;
}

/** CPU milliseconds (user + system) a process has used, from /proc (0 when it is gone or not Linux). */
function cpuMsOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // clock ticks of 10 ms
  } catch {
    return 0;
  }
}

/** Busy and total CPU milliseconds of the whole machine so far. */
function machineMs(): { busy: number; total: number } {
  try {
    const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0) * 10;
    return { busy: total - (v[3] + v[4]) * 10, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}

export async function measureBoxReplication(options: { mib: number; boxes?: number; rf?: number; log?: (s: string) => void }): Promise<BoxReplicationResult> {
  const log = options.log ?? (() => {});
  const boxes = options.boxes ?? 4;
  const rf = options.rf ?? 3;
  const base = await fs.mkdtemp(join(tmpdir(), 'reserve-net-bench-'));
  const protectedRoots = new Set<string>();
  const fleet = new Fleet(join(base, 'boxes'), {
    onLine: (_name, line) => {
      const m = /"type":"protected","root":"([^"]+)"/.exec(line);
      if (m) protectedRoots.add(m[1]);
    },
  });
  try {
    const names = Array.from({ length: boxes }, (_, i) => `box-${i + 1}`);
    await fleet.json(['init', '--listen', LOOPBACK, '--data', fleet.dataDir(names[0]), '--rf', String(rf), '--min-rf', String(Math.min(2, rf)), '--capacity', '1T']);
    await fleet.startDaemon(names[0]);
    const { token } = await fleet.json<{ token: string }>(['invite', '--data', fleet.dataDir(names[0])]);
    for (const name of names.slice(1)) {
      await fleet.json(['join', '--listen', LOOPBACK, token, '--data', fleet.dataDir(name), '--capacity', '1T']);
      await fleet.startDaemon(name);
    }
    log(`  ${boxes} Box processes up; making a ${options.mib} MiB tree`);
    const tree = join(base, 'tree');
    const made = await makeSampleTree(tree, { sizeMiB: options.mib, seed: 7 });
    const author = createDaemonClient(fleet.daemon(names[0]).file);
    const t0 = performance.now();
    const b = await author.backup({ path: tree });
    const t1 = performance.now();
    const cpu = () => names.reduce((n, name) => n + cpuMsOf(fleet.daemon(name).child.pid), 0);
    const c1 = cpu();
    const m1 = machineMs();
    let last: ReserveStatus | undefined;
    let lastAsked = 0;
    for (;;) {
      const now = performance.now();
      // ask once the push is done (then every second), or every 5 s in case pulls finish the job
      if (now - lastAsked >= (protectedRoots.has(b.root) ? 1000 : 5000)) {
        lastAsked = now;
        last = await author.status();
        const s = last.snapshots.find((x) => x.root === b.root);
        if (s && s.protection.atTarget === s.chunks) break;
        if (performance.now() - t1 > 1_800_000) throw new Error(`not at RF ${rf} after 30 min: ${JSON.stringify(s?.protection)}`);
      }
      await sleep(50);
    }
    const t2 = performance.now();
    const replicateCpuSeconds = (cpu() - c1) / 1000;
    const m2 = machineMs();
    author.close();
    log(`  backup ${((t1 - t0) / 1000).toFixed(1)} s, replicated to RF ${rf} ${((t2 - t1) / 1000).toFixed(1)} s later`);

    const second = await fleet.json<{ token: string }>(['invite', '--data', fleet.dataDir(names[1])]);
    await fleet.json(['join', '--listen', LOOPBACK, second.token, '--data', fleet.dataDir('new-box'), '--capacity', '1T']);
    await fleet.startDaemon('new-box');
    const fresh = createDaemonClient(fleet.daemon('new-box').file);
    const newPid = fleet.daemon('new-box').child.pid;
    const c3 = cpuMsOf(newPid);
    const m3 = machineMs();
    const t3 = performance.now();
    const r = await fresh.restore({ ref: b.root, target: join(base, 'restored') });
    const t4 = performance.now();
    const restoreCpuSeconds = (cpuMsOf(newPid) - c3) / 1000;
    const m4 = machineMs();
    fresh.close();
    if (r.stats.bytes !== made.bytes) throw new Error(`restored ${r.stats.bytes} bytes, expected ${made.bytes}`);
    const mib = made.bytes / MIB;
    const replicateSeconds = (t2 - t1) / 1000;
    return {
      mib,
      boxes,
      rf,
      backupSeconds: (t1 - t0) / 1000,
      replicateSeconds,
      protectedMibPerSec: mib / replicateSeconds,
      wireMibPerSec: ((b.stats.bytesNew / MIB) * (rf - 1)) / replicateSeconds,
      restoreSeconds: (t4 - t3) / 1000,
      restoreMibPerSec: mib / ((t4 - t3) / 1000),
      replicateCpuSeconds,
      restoreCpuSeconds,
      machineBusy: (m2.busy - m1.busy + m4.busy - m3.busy) / Math.max(1, m2.total - m1.total + m4.total - m3.total),
    };
  } finally {
    await fleet.stopAll();
    await fs.rm(base, { recursive: true, force: true });
  }
}
