/**
 * `npm run bench:holdings`: what the holdings summary costs and what comparing two Boxes with it costs.
 *
 *  - Build: time (wall and CPU) and memory to index N blocks (default 1,000,000) one add at a time; memory as the
 *    growth of V8 heap plus array buffers after a forced GC (run with --expose-gc, as the npm script does), and as
 *    the index's own count of allocated bytes. Serialised size, serialise and restore times.
 *  - Compare: two indexes of N blocks with d differences (half only on each side; d = 0, 1, 10, 100, 1000,
 *    10000): round trips, messages, bytes each way and in total, against sending the full list (N x 36-byte CIDs),
 *    and the CPU time of the walk (both sides, in process). Each row is checked: the walk must find exactly the d
 *    planted differences.
 *  - A filtered comparison (1/16 of the partitions) and incremental add/delete rates.
 *
 * Timed here, never in unit tests. Options: --blocks N, --json (print the figures as JSON at the end).
 * Digests come from a fixed-seed generator, so every run indexes the same blocks.
 */
import { splitmixWords } from '../sim/rng.ts';
import { pathToFileURL } from 'node:url';
import type { CID } from 'multiformats/cid';
import { cidFromSha256, RAW_CODE } from '../../core/blocks/cid.ts';
import { answer, HoldingsIndex, PartitionFilter, reconcile } from '../../core/holdings/index.ts';
import type { ReconcileResult } from '../../core/holdings/index.ts';

const CID_BYTES = 36;
const BLOCK_SIZE = 262_144;


/** The i-th block of stream `seed` as a CID (made on demand: the bench never holds N CID objects). */
function digests(seed: number, n: number): Uint8Array {
  const next = splitmixWords(seed);
  const out = new Uint8Array(n * 32);
  const view = new DataView(out.buffer);
  for (let i = 0; i < n * 8; i++) view.setUint32(i * 4, next());
  return out;
}

function cidAt(all: Uint8Array, i: number): CID {
  return cidFromSha256(RAW_CODE, all.subarray(i * 32, i * 32 + 32));
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

function memory(): { heap: number; buffers: number } {
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, buffers: m.arrayBuffers };
}

interface Timed<T> {
  value: T;
  wallMs: number;
  cpuMs: number;
}

function timed<T>(f: () => T): Timed<T> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = f();
  const c = process.cpuUsage(c0);
  return { value, wallMs: performance.now() - t0, cpuMs: (c.user + c.system) / 1000 };
}

async function timedAsync<T>(f: () => Promise<T>): Promise<Timed<T>> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await f();
  const c = process.cpuUsage(c0);
  return { value, wallMs: performance.now() - t0, cpuMs: (c.user + c.system) / 1000 };
}

const mb = (b: number): string => (b / 1e6).toFixed(1);
const kb = (b: number): string => (b / 1e3).toFixed(1);

export interface CompareRow {
  differences: number;
  rounds: number;
  requests: number;
  bytesSent: number;
  bytesReceived: number;
  bytesTotal: number;
  fullListBytes: number;
  /** fullListBytes / bytesTotal */
  saving: number;
  cpuMs: number;
  found: number;
}

export interface HoldingsFigures {
  blocks: number;
  build: { wallMs: number; cpuMs: number; cidCreationCpuMs: number; heapBytes: number; arrayBufferBytes: number; indexAllocatedBytes: number };
  serialise: { bytes: number; wallMs: number; restoreWallMs: number; restoreCpuMs: number };
  compare: CompareRow[];
  filtered: CompareRow & { partitions: number };
  incremental: { addsPerSecond: number; deletesPerSecond: number };
  loadAverage: number[];
}

function row(d: number, r: ReconcileResult, cpuMs: number, blocks: number): CompareRow {
  const total = r.stats.bytesSent + r.stats.bytesReceived;
  return {
    differences: d,
    rounds: r.stats.rounds,
    requests: r.stats.requests,
    bytesSent: r.stats.bytesSent,
    bytesReceived: r.stats.bytesReceived,
    bytesTotal: total,
    fullListBytes: blocks * CID_BYTES,
    saving: (blocks * CID_BYTES) / Math.max(1, total),
    cpuMs,
    found: r.onlyLocal.length + r.onlyRemote.length,
  };
}

export async function run(blocks: number, log: (line: string) => void = (l) => process.stdout.write(l + '\n')): Promise<HoldingsFigures> {
  const { loadavg } = await import('node:os');
  const base = digests(0xb10c, blocks);
  const extra = digests(0xe47a, 10_000);
  log(`holdings bench: ${blocks.toLocaleString('en')} blocks, default geometry (16 partition bits, fanout 16, depth 4)`);
  if ((globalThis as { gc?: unknown }).gc === undefined) log('  (no --expose-gc: memory figures include garbage)');

  // --- build ---
  const before = memory();
  const built = timed(() => {
    const index = new HoldingsIndex();
    for (let i = 0; i < blocks; i++) index.add(cidAt(base, i), BLOCK_SIZE);
    return index;
  });
  const local = built.value;
  const after = memory();
  const cidsOnly = timed(() => {
    let n = 0;
    for (let i = 0; i < blocks; i++) n += cidAt(base, i).bytes.length;
    return n;
  });
  const build = {
    wallMs: built.wallMs,
    cpuMs: built.cpuMs,
    cidCreationCpuMs: cidsOnly.cpuMs,
    heapBytes: after.heap - before.heap,
    arrayBufferBytes: after.buffers - before.buffers,
    indexAllocatedBytes: local.allocatedBytes,
  };
  log(
    `build: ${build.wallMs.toFixed(0)} ms wall, ${build.cpuMs.toFixed(0)} ms CPU (of which ~${build.cidCreationCpuMs.toFixed(0)} ms ` +
      `making the CID objects); memory +${mb(build.heapBytes)} MB heap ` +
      `+${mb(build.arrayBufferBytes)} MB array buffers = ${mb(build.heapBytes + build.arrayBufferBytes)} MB ` +
      `(index's own count: ${mb(build.indexAllocatedBytes)} MB)`,
  );

  // --- persistence ---
  const ser = timed(() => local.serialise());
  const res = timed(() => HoldingsIndex.restore(ser.value));
  const serialise = { bytes: ser.value.length, wallMs: ser.wallMs, restoreWallMs: res.wallMs, restoreCpuMs: res.cpuMs };
  log(
    `serialise: ${mb(serialise.bytes)} MB (${(serialise.bytes / blocks).toFixed(1)} B/block) in ${serialise.wallMs.toFixed(0)} ms; ` +
      `restore ${serialise.restoreWallMs.toFixed(0)} ms wall, ${serialise.restoreCpuMs.toFixed(0)} ms CPU`,
  );
  const remote = res.value;

  // --- compare ---
  const compare: CompareRow[] = [];
  log('');
  log(`compare two Boxes of ${blocks.toLocaleString('en')} blocks; full list = ${mb(blocks * CID_BYTES)} MB`);
  log('differences | rounds | msgs | sent kB | received kB | total kB | vs full list | CPU ms | found');
  for (const d of [0, 1, 10, 100, 1000, 10_000]) {
    // plant d differences: ceil(d/2) blocks only on the remote, floor(d/2) only on the local Box
    const onlyRemote = Math.ceil(d / 2);
    const onlyLocal = d - onlyRemote;
    for (let i = 0; i < onlyRemote; i++) remote.add(cidAt(extra, i), BLOCK_SIZE);
    for (let i = 0; i < onlyLocal; i++) remote.delete(cidAt(base, i));
    const t = await timedAsync(() => reconcile(local, async (req) => answer(remote, req)));
    const r = row(d, t.value, t.cpuMs, blocks);
    if (r.found !== d || t.value.onlyRemote.length !== onlyRemote) throw new Error(`compare with ${d} differences found ${r.found}`);
    compare.push(r);
    log(
      `${String(d).padStart(11)} | ${String(r.rounds).padStart(6)} | ${String(r.requests).padStart(4)} | ${kb(r.bytesSent).padStart(7)} | ` +
        `${kb(r.bytesReceived).padStart(11)} | ${kb(r.bytesTotal).padStart(8)} | ${r.saving.toFixed(0).padStart(10)}x | ` +
        `${r.cpuMs.toFixed(0).padStart(6)} | ${r.found}`,
    );
    for (let i = 0; i < onlyRemote; i++) remote.delete(cidAt(extra, i));
    for (let i = 0; i < onlyLocal; i++) remote.add(cidAt(base, i), BLOCK_SIZE);
  }

  // --- filtered compare: one sixteenth of the partitions, 10 differences inside it ---
  const filter = PartitionFilter.ranges(local.partitions, [[0, local.partitions / 16]]);
  const planted: CID[] = [];
  for (let i = 0; planted.length < 10; i++) {
    const c = cidAt(base, i);
    if (filter.includes(local.partitionOf(c))) planted.push(c);
  }
  for (const c of planted) remote.delete(c);
  const ft = await timedAsync(() => reconcile(local, async (req) => answer(remote, req), { filter }));
  for (const c of planted) remote.add(c, BLOCK_SIZE);
  const filtered = { ...row(10, ft.value, ft.cpuMs, blocks), partitions: filter.size };
  if (filtered.found !== 10) throw new Error(`filtered compare found ${filtered.found}`);
  log(
    `filtered (${filter.size} of ${local.partitions} partitions), 10 differences: ${filtered.rounds} rounds, ` +
      `${kb(filtered.bytesTotal)} kB, ${filtered.cpuMs.toFixed(0)} ms CPU`,
  );

  // --- incremental updates on the built index ---
  const n = 10_000;
  const cids = Array.from({ length: n }, (_, i) => cidAt(extra, i));
  const adds = timed(() => {
    for (const c of cids) local.add(c, BLOCK_SIZE);
  });
  const dels = timed(() => {
    for (const c of cids) local.delete(c);
  });
  const incremental = { addsPerSecond: (n / adds.cpuMs) * 1000, deletesPerSecond: (n / dels.cpuMs) * 1000 };
  log(
    `incremental on ${blocks.toLocaleString('en')} blocks: ${Math.round(incremental.addsPerSecond).toLocaleString('en')} adds/s, ` +
      `${Math.round(incremental.deletesPerSecond).toLocaleString('en')} deletes/s (CPU time)`,
  );
  const loadAverage = loadavg();
  log(`load average during the run: ${loadAverage.map((l) => l.toFixed(1)).join(' ')} (on ${(await import('node:os')).cpus().length} cores)`);
  return { blocks, build, serialise, compare, filtered, incremental, loadAverage };
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const blocks = Number(option(args, '--blocks') ?? 1_000_000);
  if (!Number.isInteger(blocks) || blocks < 20_000) throw new Error('--blocks must be a whole number >= 20000');
  const figures = await run(blocks);
  if (args.includes('--json')) process.stdout.write(JSON.stringify(figures, null, 2) + '\n');
}
