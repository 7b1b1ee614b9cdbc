/**
 * The issue's full network bench: a tree backed up on one Box is replicated to RF 3 across 4 Box processes
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
import { cpuMsOf, loopbackBytes, peakRssKiB } from './proc.ts';

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
  /** Bytes that crossed the loopback interface during replication (everything on it: protocol, gossip, status). */
  loopbackBytes: number;
  /** The snapshot's new bytes × (RF-1): the least replication has to move. */
  minimumWireBytes: number;
  /** CPU seconds (user + system) of every Box process during replication, and of the restoring Box during restore. */
  replicateCpuSeconds: number;
  restoreCpuSeconds: number;
  /** Share of both phases' wall time × cores the whole machine was busy (other work included). */
  machineBusy: number;
  /** CPU seconds of each Box process during replication (the author first), and its pid. */
  replicateCpuByBox: Array<{ name: string; pid: number | undefined; cpuSeconds: number; sysSeconds: number; peakRssBytes: number }>;
  /** Peak resident memory of the restoring Box. */
  restorePeakRssBytes: number;
  /** Pid of the Box that restored (its profile, with `profileDir`, is the restore's). */
  restorePid: number | undefined;
  /** The phases in the monotonic clock V8's CPU profiles use (microseconds), to cut profiles to a phase. */
  windows: { replicate: [number, number]; restore: [number, number] };
}

/** CLOCK_MONOTONIC in microseconds: the time base of `node --cpu-prof` sample times on Linux. */
const monoUs = () => Number(process.hrtime.bigint() / 1000n);

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

export async function measureBoxReplication(options: {
  mib: number;
  boxes?: number;
  rf?: number;
  log?: (s: string) => void;
  /** Profile every Box process (`node --cpu-prof`) into this directory: one file per process and thread, named by pid. */
  profileDir?: string;
}): Promise<BoxReplicationResult> {
  const log = options.log ?? (() => {});
  const boxes = options.boxes ?? 4;
  const rf = options.rf ?? 3;
  const base = await fs.mkdtemp(join(tmpdir(), 'reserve-net-bench-'));
  const protectedRoots = new Set<string>();
  const fleet = new Fleet(join(base, 'boxes'), {
    ...(options.profileDir !== undefined ? { env: { RESERVE_DAEMON_NODE_OPTIONS: `${process.env.RESERVE_DAEMON_NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${options.profileDir}` } } : {}),
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
    const mono1 = monoUs();
    const cpuEach = () => names.map((name) => cpuMsOf(fleet.daemon(name).child.pid).total);
    const cpu = () => cpuEach().reduce((a, b) => a + b, 0);
    const each1 = cpuEach();
    const sys1 = names.map((name) => cpuMsOf(fleet.daemon(name).child.pid).sys);
    const c1 = each1.reduce((a, b) => a + b, 0);
    const m1 = machineMs();
    const lo1 = loopbackBytes();
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
    const mono2 = monoUs();
    const each2 = cpuEach();
    const replicateCpuSeconds = (cpu() - c1) / 1000;
    const replicateCpuByBox = names.map((name, i) => {
      const pid = fleet.daemon(name).child.pid;
      return { name, pid, cpuSeconds: (each2[i] - each1[i]) / 1000, sysSeconds: (cpuMsOf(pid).sys - sys1[i]) / 1000, peakRssBytes: peakRssKiB(pid) * 1024 };
    });
    const m2 = machineMs();
    const lo2 = loopbackBytes();
    author.close();
    log(`  backup ${((t1 - t0) / 1000).toFixed(1)} s, replicated to RF ${rf} ${((t2 - t1) / 1000).toFixed(1)} s later`);

    const second = await fleet.json<{ token: string }>(['invite', '--data', fleet.dataDir(names[1])]);
    await fleet.json(['join', '--listen', LOOPBACK, second.token, '--data', fleet.dataDir('new-box'), '--capacity', '1T']);
    await fleet.startDaemon('new-box');
    const fresh = createDaemonClient(fleet.daemon('new-box').file);
    const newPid = fleet.daemon('new-box').child.pid;
    const c3 = cpuMsOf(newPid).total;
    const m3 = machineMs();
    const t3 = performance.now();
    const mono3 = monoUs();
    const r = await fresh.restore({ ref: b.root, target: join(base, 'restored') });
    const t4 = performance.now();
    const mono4 = monoUs();
    const restoreCpuSeconds = (cpuMsOf(newPid).total - c3) / 1000;
    const restorePeakRssBytes = peakRssKiB(newPid) * 1024;
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
      loopbackBytes: lo2 - lo1,
      minimumWireBytes: b.stats.bytesNew * (rf - 1),
      replicateCpuSeconds,
      restoreCpuSeconds,
      machineBusy: (m2.busy - m1.busy + m4.busy - m3.busy) / Math.max(1, m2.total - m1.total + m4.total - m3.total),
      replicateCpuByBox,
      restorePid: newPid,
      restorePeakRssBytes,
      windows: { replicate: [mono1, mono2], restore: [mono3, mono4] },
    };
  } finally {
    await fleet.stopAll();
    await fs.rm(base, { recursive: true, force: true });
  }
}

/**
 * Self time of one `--cpu-prof` profile within [from, to] (monotonic µs), by group (a package under node_modules,
 * a project file, GC, idle, a native call) and by function. Idle is left out of the shares.
 */
export function profileWindow(file: string, from: number, to: number, topN = 20): { busyMs: number; idleMs: number; groups: Array<[string, number]>; top: Array<[string, number]> } {
  interface Node {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; startTime: number; samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((n) => [n.id, n] as const));
  const groups = new Map<string, number>();
  const fns = new Map<string, number>();
  let t = p.startTime;
  let busy = 0;
  let idle = 0;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i];
    const dt = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1] : 0;
    if (t < from || t > to || dt <= 0) continue;
    const f = byId.get(p.samples[i])?.callFrame;
    if (!f) continue;
    if (f.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    busy += dt;
    const url = f.url;
    const nm = url.lastIndexOf('/node_modules/');
    let group: string;
    if (!url) group = f.functionName.startsWith('(') ? f.functionName : `native ${f.functionName}`;
    else if (nm >= 0) {
      const rest = url.slice(nm + 14).split('/');
      group = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    } else if (url.startsWith('node:')) group = url.replace(/^node:internal\//, 'node:').split('/').slice(0, 2).join('/');
    else {
      const m = /\/(core|adapters|simulations|bin)\/.*$/.exec(url);
      group = m ? m[0].slice(1) : url;
    }
    groups.set(group, (groups.get(group) ?? 0) + dt);
    const fn = `${f.functionName || '(anonymous)'} ${group}:${f.lineNumber + 1}`;
    fns.set(fn, (fns.get(fn) ?? 0) + dt);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / 1000] as [string, number]);
  return { busyMs: busy / 1000, idleMs: idle / 1000, groups: sorted(groups).slice(0, topN), top: sorted(fns).slice(0, topN) };
}

function printWindow(title: string, files: string[], from: number, to: number): void {
  for (const file of files) {
    const w = profileWindow(file, from, to);
    if (w.busyMs < 50) continue;
    console.log(`${title} ${file.replace(/^.*\/CPU\.\d+\.\d+\./, '')}: ${(w.busyMs / 1000).toFixed(2)} s busy, ${(w.idleMs / 1000).toFixed(2)} s idle`);
    console.log(`  by group: ${w.groups.map(([k, ms]) => `${k} ${((ms / w.busyMs) * 100).toFixed(1)}%`).join(', ')}`);
    for (const [k, ms] of w.top) console.log(`    ${((ms / w.busyMs) * 100).toFixed(1).padStart(5)}%  ${k}`);
  }
}

// `node --import tsx simulations/bench/box-replication.ts [--mib 256] [--profile DIR]`: this section alone (no raw
// TCP reference), with each Box's CPU time; with --profile every daemon runs under --cpu-prof and the profiles are
// summarised per Box (the author's includes its backup; the new Box's is the restore).
if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const mib = Number(arg('mib') ?? 256);
  const profileDir = arg('profile');
  if (profileDir) await fs.mkdir(profileDir, { recursive: true });
  const r = await measureBoxReplication({ mib, ...(profileDir ? { profileDir } : {}), log: (s) => console.log(s) });
  const perMib = (s: number) => ((s * 1000) / r.mib).toFixed(1);
  console.log(
    `replicate ${r.replicateSeconds.toFixed(1)} s (${r.wireMibPerSec.toFixed(0)} MiB/s on the wire), CPU ${r.replicateCpuSeconds.toFixed(1)} s = ${perMib(r.replicateCpuSeconds)} ms/MiB of data; ` +
      `restore ${r.restoreSeconds.toFixed(1)} s (${r.restoreMibPerSec.toFixed(0)} MiB/s), CPU ${r.restoreCpuSeconds.toFixed(1)} s = ${perMib(r.restoreCpuSeconds)} ms/MiB; machine ${(r.machineBusy * 100).toFixed(0)}% busy`,
  );
  console.log(`  loopback carried ${(r.loopbackBytes / MIB).toFixed(0)} MiB during replication, ${(r.loopbackBytes / r.minimumWireBytes).toFixed(2)}x the ${(r.minimumWireBytes / MIB).toFixed(0)} MiB replication has to move`);
  for (const b of r.replicateCpuByBox) {
    console.log(`  ${b.name} (pid ${b.pid}): ${b.cpuSeconds.toFixed(2)} s CPU in replication (${b.sysSeconds.toFixed(2)} s of it in the kernel), ${perMib(b.cpuSeconds)} ms/MiB; peak RSS ${(b.peakRssBytes / MIB).toFixed(0)} MiB`);
  }
  console.log(`  restoring Box: pid ${r.restorePid}, peak RSS ${(r.restorePeakRssBytes / MIB).toFixed(0)} MiB`);
  if (profileDir) {
    const { readdirSync } = await import('node:fs');
    await fs.writeFile(join(profileDir, 'phases.json'), JSON.stringify({ windows: r.windows, boxes: r.replicateCpuByBox, restorePid: r.restorePid }));
    const files = readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
    const of = (pid: number | undefined) => files.filter((f) => f.includes(`.${pid}.`)).map((f) => join(profileDir, f));
    for (const b of r.replicateCpuByBox) printWindow(`replication, ${b.name}`, of(b.pid), ...r.windows.replicate);
    printWindow('restore, new-box', of(r.restorePid), ...r.windows.restore);
  }
}
