/**
 * `npm run bench:state`: the shared state at scale, Yjs against Automerge, with online compaction.
 *
 *   npm run bench:state                         50 Boxes, 10,000 snapshots, 1,000,000 events
 *   npm run bench:state -- --events 200000      a quicker run
 *   npm run bench:state -- --help               every option
 *
 * The scenario: a reserve of `--boxes` Boxes lives through `--events` signed shared-state events (joins, then
 * snapshots spread evenly, holder reports, event-log records with 1% warnings, a few config changes and address
 * updates), one every ~30 s of simulated time. They are signed once, up front, on worker threads, and written to
 * a temporary file. Then, per backend, in a fresh child process (so memory figures are its own):
 *
 * - Box A receives every event in batches of `--batch` (gossip) and, standing in for the epoch's designated
 *   proposer, proposes a checkpoint whenever `--checkpoint-every` events are uncompacted: "ingest" is decoding,
 *   adding to the CRDT document and reducing; "checkpoint" is proposing, signing and moving to the new epoch.
 * - Box B merges from A with a state-vector handshake every `--sync-every` batches ("merge": A's diff + B's
 *   apply, including moving epochs).
 * - At the end, a new Box C joins with an empty state and pulls A's whole document ("new Box"), verifying every
 *   signature itself; A, B and C must agree on the state.
 * - "re-fold" is a full reduce of A's current epoch from its checkpoint summary (what a restart or an
 *   out-of-order membership event costs).
 * - Growth check: the first `--growth` events without compaction, to show what the document would become.
 *
 * Backend-independent figures come first: signing, signature verification (sampled), and a plain reduce of all
 * events with no CRDT and no compaction. Signatures are verified once per Box in real life; in the per-backend
 * runs A and B share one cache of verified ids so that the table compares the CRDTs, not Ed25519 (the verification
 * row says what each Box pays on top). If a backend runs out of its time budget (`--budget-s`), it stops where it
 * is and the table says how far it got.
 *
 * Not a test: the figures depend on the machine and on whatever else runs on it.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createAutomergeBackend } from '../../adapters/crdt/automerge.ts';
import { createYjsBackend } from '../../adapters/crdt/yjs.ts';
import { cidOf, RAW_CODE } from '../../core/blocks/cid.ts';
import type { CrdtBackendFactory } from '../../core/state/crdt.ts';
import { createReserveSecret, joinKeySigner, signerFromSeed, unsealerFromSeed } from '../../core/state/crypto.ts';
import type { Signer } from '../../core/state/crypto.ts';
import { createEvent, decodeEvent, joinProofInput } from '../../core/state/events.ts';
import type { BodyByKind, StateEvent, StateEventKind } from '../../core/state/events.ts';
import { ReserveLedger } from '../../core/state/ledger.ts';
import { reduce, StateReducer } from '../../core/state/reducer.ts';
import type { ReserveState } from '../../core/state/reducer.ts';
import { SimRandom } from '../sim/rng.ts';

const MiB = 1024 * 1024;
const T0 = 1_735_689_600_000;
const STEP_MS = 31_557; // ~1M events per year

interface Options {
  boxes: number;
  snapshots: number;
  events: number;
  batch: number;
  checkpointEvery: number;
  syncEvery: number;
  growth: number;
  budgetS: number;
  backends: string[];
  seed: number;
  threads: number;
  json?: string;
  /** Keep the signed events in this file and reuse them when the scenario options match. */
  keep?: string;
}

const HELP = `usage: npm run bench:state -- [options]
  --boxes N             Boxes in the reserve (default 50)
  --snapshots N         snapshots published over the run (default 10000)
  --events N            shared-state events in total (default 1000000)
  --batch N             events per gossip batch received by Box A (default 1000)
  --checkpoint-every N  uncompacted events that trigger a checkpoint (default 10000)
  --sync-every N        Box B syncs with A every N batches (default 2)
  --growth N            events for the no-compaction growth check (default 100000; 0 = skip)
  --budget-s S          wall-time budget per backend run, seconds (default 300)
  --backends LIST       comma-separated subset of yjs,automerge (default both)
  --seed N              scenario seed (default 1)
  --threads N           worker threads for signing (default: cores)
  --json FILE           also write the results as JSON
  --keep FILE           keep the signed events in FILE (plus FILE.ids, FILE.json) and reuse them next time
                        when the scenario (boxes, snapshots, events, seed) is the same`;

function parseOptions(argv: string[]): Options {
  const o: Options = {
    boxes: 50,
    snapshots: 10_000,
    events: 1_000_000,
    batch: 1000,
    checkpointEvery: 10_000,
    syncEvery: 2,
    growth: 100_000,
    budgetS: 300,
    backends: ['yjs', 'automerge'],
    seed: 1,
    threads: Math.max(1, cpus().length),
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const num = (): number => {
      const v = Number(next());
      if (!Number.isFinite(v) || v < 0) throw new Error(`${a} needs a non-negative number`);
      return Math.floor(v);
    };
    switch (a) {
      case '--boxes': o.boxes = Math.max(1, num()); break;
      case '--snapshots': o.snapshots = num(); break;
      case '--events': o.events = num(); break;
      case '--batch': o.batch = Math.max(1, num()); break;
      case '--checkpoint-every': o.checkpointEvery = Math.max(1, num()); break;
      case '--sync-every': o.syncEvery = Math.max(1, num()); break;
      case '--growth': o.growth = num(); break;
      case '--budget-s': o.budgetS = num(); break;
      case '--backends': o.backends = next().split(',').filter((b) => b !== ''); break;
      case '--seed': o.seed = num(); break;
      case '--threads': o.threads = Math.max(1, num()); break;
      case '--json': o.json = next(); break;
      case '--keep': o.keep = next(); break;
      case '--help':
      case '-h':
        console.log(HELP);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n${HELP}`);
    }
  }
  for (const b of o.backends) if (b !== 'yjs' && b !== 'automerge') throw new Error(`unknown backend ${b}`);
  o.events = Math.max(o.events, o.boxes + o.snapshots);
  return o;
}

// ------------------------------------------------------------------------------------------------ scenario

interface World {
  reserveId: string;
  secret: Uint8Array;
  signers: Signer[];
  xpubs: Uint8Array[];
}

function makeWorld(o: Pick<Options, 'boxes' | 'seed'>): World {
  const random = new SimRandom(o.seed);
  const { secret, reserveId } = createReserveSecret(random.fork('secret'));
  const signers: Signer[] = [];
  const xpubs: Uint8Array[] = [];
  for (let i = 0; i < o.boxes; i++) {
    signers.push(signerFromSeed(random.fork(`box/${i}/ed25519`).bytes(32)));
    xpubs.push(unsealerFromSeed(random.fork(`box/${i}/x25519`).bytes(32)).publicKey);
  }
  return { reserveId, secret, signers, xpubs };
}

function mix(i: number): number {
  let h = Math.imul(i ^ 0x9e3779b9, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Which Box signs event i (the first `boxes` events are the joins, in order). */
function boxOf(i: number, o: Pick<Options, 'boxes'>): number {
  return i < o.boxes ? i : mix(i) % o.boxes;
}

type Planned = { kind: StateEventKind; body: (ctx: { box: number; i: number; lastSnapshot: Map<number, number> }) => unknown };

function snapshotEvery(o: Options): number {
  return o.snapshots === 0 ? Number.MAX_SAFE_INTEGER : Math.max(1, Math.floor((o.events - o.boxes) / o.snapshots));
}

function plan(i: number, o: Options, world: World): Planned {
  if (i < o.boxes) {
    return {
      kind: 'box-joined',
      body: ({ box }) => {
        const jk = joinKeySigner(world.secret, 0);
        return {
          generation: 0,
          joinKey: jk.publicKey,
          proof: jk.sign(joinProofInput(world.reserveId, world.signers[box].id, 0, world.xpubs[box])),
          xpub: world.xpubs[box],
          capacity: 4_000_000_000_000 + box * 1_000_000_000,
          region: `site-${box % 5}`,
          addresses: [`/ip4/10.0.${box >> 8}.${box & 255}/tcp/4001`],
        } satisfies BodyByKind['box-joined'];
      },
    };
  }
  const j = i - o.boxes;
  if (j % snapshotEvery(o) === 0 && j / snapshotEvery(o) < o.snapshots) {
    return {
      kind: 'snapshot-published',
      body: ({ box, i: n, lastSnapshot }) => {
        const prev = lastSnapshot.get(box);
        lastSnapshot.set(box, n);
        return {
          root: cidOf(RAW_CODE, new TextEncoder().encode(`snapshot ${n}`)),
          parent: prev === undefined ? null : cidOf(RAW_CODE, new TextEncoder().encode(`snapshot ${prev}`)),
          time: T0 + n * STEP_MS,
          size: 1_000_000_000 + (mix(n) % 100_000_000_000),
          files: 10_000 + (mix(n + 1) % 500_000),
          chunks: 100_000 + (mix(n + 2) % 5_000_000),
        } satisfies BodyByKind['snapshot-published'];
      },
    };
  }
  if (i % 50_000 === 7) {
    return { kind: 'config-changed', body: ({ i: n }) => ({ set: [['events.warningWindowMs', 86_400_000 * (1 + (n % 14))], ['replication.target', 3 + (n % 2)]] }) };
  }
  if (i % 20_000 === 11) {
    return { kind: 'box-updated', body: ({ box, i: n }) => ({ capacity: 4_000_000_000_000 + n, region: `site-${box % 5}`, addresses: [`/ip4/10.1.${box >> 8}.${box & 255}/tcp/${4001 + (n % 100)}`] }) };
  }
  const r = mix(i * 7 + 3);
  if (r % 3 === 0) {
    return { kind: 'holder-report', body: ({ i: n }) => ({ count: 50_000 + (n % 100_000), bytes: 1e12 + n * 1000, root: cidOf(RAW_CODE, new TextEncoder().encode(`holdings ${n}`)).multihash.digest }) };
  }
  return {
    kind: 'reserve-event',
    body: ({ box, i: n }) => {
      const source = world.signers[box].id;
      const roll = r % 100;
      const severity = roll === 0 ? 'warning' : 'normal';
      const kind = roll === 0 ? 'limitation-imminent' : roll === 1 ? 'resolved' : 'keeper-health';
      return {
        event: { id: `${source}/${n}`, source, seq: n, time: T0 + n * STEP_MS, severity, kind, payload: { metric: 'cpu', keeper: source, busyFraction: (r % 1000) / 1000, threshold: 0.9 } },
      } satisfies BodyByKind['reserve-event'];
    },
  };
}

/** Sign every event of the Boxes `mine` (worker side). */
function generateSome(o: Options, mine: ReadonlySet<number>): { index: Uint32Array; data: Uint8Array; lengths: Uint32Array; ids: string[] } {
  const world = makeWorld(o);
  const ctx = { reserveId: world.reserveId, verified: new Set<string>() };
  const seqs = new Map<number, number>();
  const lastSnapshot = new Map<number, number>();
  const index: number[] = [];
  const chunks: Uint8Array[] = [];
  const ids: string[] = [];
  let total = 0;
  for (let i = 0; i < o.events; i++) {
    const box = boxOf(i, o);
    if (!mine.has(box)) continue;
    const p = plan(i, o, world);
    const seq = (seqs.get(box) ?? 0) + 1;
    seqs.set(box, seq);
    const ev = createEvent(world.signers[box], ctx, { seq, at: { wall: T0 + i * STEP_MS, logical: 0 } }, p.kind, p.body({ box, i, lastSnapshot }) as never);
    ctx.verified.clear();
    index.push(i);
    chunks.push(ev.bytes);
    ids.push(ev.id);
    total += ev.bytes.byteLength;
  }
  const data = new Uint8Array(total);
  const lengths = new Uint32Array(chunks.length);
  let off = 0;
  chunks.forEach((c, k) => {
    data.set(c, off);
    off += c.byteLength;
    lengths[k] = c.byteLength;
  });
  return { index: Uint32Array.from(index), data, lengths, ids };
}

function startWorker(data: unknown): Worker {
  const require = createRequire(import.meta.url);
  const tsxApi = pathToFileURL(require.resolve('tsx/esm/api').replace(/index\.cjs$/, 'index.mjs')).href;
  const entry = new URL(import.meta.url).href;
  const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData: data });
}

/** Sign all events on worker threads and write them, in order, to `file` (and their ids to `file.ids`). */
async function generate(o: Options, file: string): Promise<{ seconds: number; bytes: number }> {
  const t = performance.now();
  const threads = Math.max(1, Math.min(o.threads, o.boxes));
  const parts = await Promise.all(
    Array.from({ length: threads }, (_, w) => {
      const mine = Array.from({ length: o.boxes }, (_, b) => b).filter((b) => b % threads === w);
      return new Promise<ReturnType<typeof generateSome>>((resolve, reject) => {
        const worker = startWorker({ role: 'generate', options: o, mine });
        worker.once('message', (m: ReturnType<typeof generateSome>) => {
          resolve(m);
          void worker.terminate();
        });
        worker.once('error', reject);
      });
    }),
  );
  // Merge by event index.
  const where = new Array<[number, number, number]>(o.events);
  for (let p = 0; p < parts.length; p++) {
    let off = 0;
    for (let k = 0; k < parts[p].index.length; k++) {
      where[parts[p].index[k]] = [p, off, parts[p].lengths[k]];
      off += parts[p].lengths[k];
    }
  }
  let total = 0;
  for (const w of where) total += 4 + w[2];
  const out = Buffer.alloc(total);
  const ids: string[] = new Array(o.events);
  let pos = 0;
  const idPos = parts.map(() => 0);
  for (let i = 0; i < o.events; i++) {
    const [p, off, len] = where[i];
    out.writeUInt32LE(len, pos);
    out.set(parts[p].data.subarray(off, off + len), pos + 4);
    pos += 4 + len;
    ids[i] = parts[p].ids[idPos[p]++];
  }
  writeFileSync(file, out);
  writeFileSync(`${file}.ids`, ids.join('\n'));
  return { seconds: (performance.now() - t) / 1000, bytes: total - 4 * o.events };
}

/** Views of the events in a file written by `generate` (no copies). */
function loadEvents(file: string): { events: Uint8Array[]; ids: string[] } {
  const buf = readFileSync(file);
  const events: Uint8Array[] = [];
  for (let pos = 0; pos < buf.byteLength; ) {
    const len = buf.readUInt32LE(pos);
    events.push(new Uint8Array(buf.buffer, buf.byteOffset + pos + 4, len));
    pos += 4 + len;
  }
  return { events, ids: readFileSync(`${file}.ids`, 'utf8').split('\n') };
}

// ------------------------------------------------------------------------------------------------ child runs

interface BackendResult {
  backend: string;
  events: number;
  outOf: number;
  stoppedByBudget: boolean;
  /** Wall time of the main run (everything else is CPU time). */
  wallS: number;
  ingestS: number;
  checkpointS: number;
  checkpoints: number;
  checkpointBytes: number;
  mergeS: number;
  merges: number;
  mergeBytes: number;
  maxDocEntries: number;
  maxDocBytes: number;
  finalDocBytes: number;
  newBoxBytes: number;
  newBoxMs: number;
  refoldMs: number;
  refoldEvents: number;
  peakHeapMiB: number;
  peakRssGrowthMiB: number;
  agree: boolean;
  growth?: { events: number; docBytes: number; usPerEvent: number; heapMiB: number };
}

interface ReduceResult {
  events: number;
  decodeS: number;
  reduceS: number;
  heapMiB: number;
  verifyUs: number;
  verifySample: number;
}

function fingerprint(s: ReserveState): string {
  return JSON.stringify({
    members: [...s.members.values()].map((m) => [m.id, m.status, m.capacity, m.region, m.generation, m.lastSeen]),
    config: s.config,
    catalog: s.catalog.size,
    heads: [...s.heads.entries()].map(([a, h]) => [a, h.root]),
    holders: [...s.holders.values()].map((h) => [h.box, h.count, h.bytes]),
    totals: s.log.totals.map((t) => [t.author, t.kind, t.count]),
    important: s.log.entries.length,
    rejected: s.rejected.size,
  });
}

/** CPU seconds (user + system) of this process: unlike wall time, hardly moved by other load on the machine. */
function cpu(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function memory(): { heap: number; rss: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed / MiB, rss: m.rss / MiB };
}

function runBackend(o: Options, file: string, name: string): BackendResult {
  const factory: CrdtBackendFactory = name === 'yjs' ? createYjsBackend : createAutomergeBackend;
  const { events, ids } = loadEvents(file);
  const world = makeWorld(o);
  const verified = new Set(ids);
  let now = T0;
  const clock = { now: () => now, setTimer: () => () => undefined };
  const random = new SimRandom(o.seed).fork(`bench/${name}`);
  const mk = (box: number, shared: boolean) =>
    new ReserveLedger({ reserveId: world.reserveId, signer: world.signers[box], clock, random: random.fork(`box/${box}`), backend: factory, checkpointEvery: o.checkpointEvery, verified: shared ? verified : undefined });
  const a = mk(0, true);
  const b = mk(1, true);
  const base = memory();
  let peakHeap = base.heap;
  let peakRss = base.rss;
  const sample = () => {
    const m = memory();
    peakHeap = Math.max(peakHeap, m.heap);
    peakRss = Math.max(peakRss, m.rss);
  };
  const r: BackendResult = {
    backend: name,
    events: 0,
    outOf: events.length,
    stoppedByBudget: false,
    wallS: 0,
    ingestS: 0,
    checkpointS: 0,
    checkpoints: 0,
    checkpointBytes: 0,
    mergeS: 0,
    merges: 0,
    mergeBytes: 0,
    maxDocEntries: 0,
    maxDocBytes: 0,
    finalDocBytes: 0,
    newBoxBytes: 0,
    newBoxMs: 0,
    refoldMs: 0,
    refoldEvents: 0,
    peakHeapMiB: 0,
    peakRssGrowthMiB: 0,
    agree: false,
  };
  let refoldMismatch = false;
  const start = performance.now();
  const batches = Math.ceil(events.length / o.batch);
  for (let k = 0; k < batches; k++) {
    const batch = events.slice(k * o.batch, (k + 1) * o.batch);
    now = T0 + Math.min(events.length, (k + 1) * o.batch) * STEP_MS;
    let t = cpu();
    a.receiveMany(batch);
    r.ingestS += cpu() - t;
    r.events += batch.length;
    r.maxDocEntries = Math.max(r.maxDocEntries, a.stats().documentEntries);
    if (a.stats().uncompacted >= o.checkpointEvery) {
      if (r.checkpoints % 5 === 0) r.maxDocBytes = Math.max(r.maxDocBytes, a.stats({ measure: true }).documentBytes ?? 0);
      if (r.checkpoints % 10 === 0) {
        // A full epoch: what a restart, or a membership event arriving out of order, costs to re-fold.
        t = cpu();
        const refold = reduce(world.reserveId, a.uncompacted(), a.baseSummary());
        r.refoldMs = (cpu() - t) * 1000;
        r.refoldEvents = a.uncompacted().length;
        if (fingerprint(refold) !== fingerprint(a.state())) refoldMismatch = true;
      }
      t = cpu();
      const cp = a.maybeCheckpoint({ force: true });
      r.checkpointS += cpu() - t;
      if (cp !== undefined) {
        r.checkpoints++;
        r.checkpointBytes = cp.bytes.byteLength;
      }
    }
    if ((k + 1) % o.syncEvery === 0 || k === batches - 1) {
      t = cpu();
      const diff = a.diff(b.stateVector());
      b.applyUpdate(diff);
      r.mergeS += cpu() - t;
      r.merges++;
      r.mergeBytes += diff.byteLength;
    }
    if (k % 25 === 0) sample();
    if ((performance.now() - start) / 1000 > o.budgetS && k < batches - 1) {
      r.stoppedByBudget = true;
      const diff = a.diff(b.stateVector());
      b.applyUpdate(diff);
      break;
    }
  }
  r.wallS = (performance.now() - start) / 1000;
  sample();
  r.peakHeapMiB = peakHeap;
  r.peakRssGrowthMiB = peakRss - base.rss;
  r.finalDocBytes = a.stats({ measure: true }).documentBytes ?? 0;
  r.maxDocBytes = Math.max(r.maxDocBytes, r.finalDocBytes);
  // A new Box: empty state, verifies every signature itself.
  const c = mk(2, false);
  let t = cpu();
  const full = a.diff(c.stateVector());
  c.applyUpdate(full);
  r.newBoxMs = (cpu() - t) * 1000;
  r.newBoxBytes = full.byteLength;
  const refold = reduce(world.reserveId, a.uncompacted(), a.baseSummary());
  r.agree = !refoldMismatch && fingerprint(a.state()) === fingerprint(b.state()) && fingerprint(a.state()) === fingerprint(c.state()) && fingerprint(refold) === fingerprint(a.state());
  if (!r.agree) console.error(`${name}: replicas disagree!\nA ${fingerprint(a.state()).slice(0, 300)}\nB ${fingerprint(b.state()).slice(0, 300)}\nC ${fingerprint(c.state()).slice(0, 300)}`);
  // Growth without compaction.
  if (o.growth > 0) {
    const g = new ReserveLedger({ reserveId: world.reserveId, signer: world.signers[3 % o.boxes], clock, random: random.fork('growth'), backend: factory, checkpointEvery: Number.MAX_SAFE_INTEGER, verified });
    const n = Math.min(o.growth, events.length);
    const before = memory().heap;
    t = cpu();
    for (let k = 0; k < n; k += o.batch) g.receiveMany(events.slice(k, Math.min(n, k + o.batch)));
    const seconds = cpu() - t;
    r.growth = { events: n, docBytes: g.stats({ measure: true }).documentBytes ?? 0, usPerEvent: (seconds * 1e6) / n, heapMiB: memory().heap - before };
  }
  return r;
}

function runReduce(o: Options, file: string): ReduceResult {
  const { events, ids } = loadEvents(file);
  const world = makeWorld(o);
  // Signature verification, sampled (every Box pays it once per event it receives).
  const sample = Math.min(events.length, 20_000);
  const picks = Array.from({ length: sample }, (_, i) => events[Math.floor((i * events.length) / sample)]);
  const verified = new Set(ids);
  const ctx = { reserveId: world.reserveId, verified };
  let t = cpu();
  for (const e of picks) decodeEvent(e, { reserveId: world.reserveId });
  const withSignature = cpu() - t;
  t = cpu();
  for (const e of picks) decodeEvent(e, ctx);
  const verifyUs = ((withSignature - (cpu() - t)) * 1e6) / sample;
  const before = memory().heap;
  t = cpu();
  const decoded: StateEvent[] = events.map((e) => decodeEvent(e, ctx));
  const decodeS = cpu() - t;
  t = cpu();
  const r = new StateReducer(world.reserveId);
  r.addAll(decoded);
  r.state();
  const reduceS = cpu() - t;
  return { events: events.length, decodeS, reduceS, heapMiB: memory().heap - before, verifyUs: verifyUs, verifySample: sample };
}

function child(args: string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--max-old-space-size=8192', '--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`child ${args.join(' ')} exited with ${code}`));
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line));
      } catch (err) {
        reject(err);
      }
    });
  });
}

// ------------------------------------------------------------------------------------------------ report

const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const mib = (bytes: number) => `${fmt(bytes / MiB, 1)} MiB`;
const kib = (bytes: number) => `${fmt(bytes / 1024, 1)} KiB`;

function table(o: Options, gen: { seconds: number; bytes: number; reused?: boolean }, red: ReduceResult, results: BackendResult[]): string {
  const rows: Array<[string, ...string[]]> = [];
  const col = (f: (r: BackendResult) => string) => results.map(f);
  rows.push(['events merged', ...col((r) => (r.stoppedByBudget ? `${fmt(r.events)} of ${fmt(r.outOf)} (budget ${o.budgetS} s)` : fmt(r.events)))]);
  rows.push(['ingest, Box A (decode+CRDT+reduce)', ...col((r) => `${fmt(r.ingestS, 1)} s, ${fmt((r.ingestS * 1e6) / r.events, 1)} us/event`)]);
  rows.push(['merge, Box B (sv/diff every ' + o.syncEvery + ' batches)', ...col((r) => `${fmt(r.mergeS, 1)} s, ${fmt((r.mergeS * 1e6) / r.events, 1)} us/event`)]);
  rows.push(['  bytes exchanged', ...col((r) => `${mib(r.mergeBytes)} in ${fmt(r.merges)} syncs`)]);
  rows.push(['checkpoints (propose + new epoch)', ...col((r) => `${fmt(r.checkpoints)}, ${fmt((r.checkpointS * 1000) / Math.max(1, r.checkpoints), 0)} ms each`)]);
  rows.push(['  checkpoint event size (last)', ...col((r) => kib(r.checkpointBytes))]);
  rows.push(['document, largest (entries / bytes)', ...col((r) => `${fmt(r.maxDocEntries)} / ${mib(r.maxDocBytes)}`)]);
  rows.push(['document at the end', ...col((r) => mib(r.finalDocBytes))]);
  rows.push(['new Box: full sync (bytes / time)', ...col((r) => `${mib(r.newBoxBytes)} / ${fmt(r.newBoxMs, 0)} ms`)]);
  rows.push(['re-fold a full epoch (reduce from summary)', ...col((r) => `${fmt(r.refoldMs, 0)} ms (${fmt(r.refoldEvents)} events)`)]);
  rows.push(['peak heap / RSS growth', ...col((r) => `${fmt(r.peakHeapMiB, 0)} / ${fmt(r.peakRssGrowthMiB, 0)} MiB`)]);
  rows.push(['A, B, new Box and re-fold agree', ...col((r) => (r.agree ? 'yes' : 'NO'))]);
  rows.push(['wall time of the run', ...col((r) => `${fmt(r.wallS, 0)} s`)]);
  rows.push([
    'no compaction: first N events',
    ...col((r) => (r.growth === undefined ? '-' : `${fmt(r.growth.events)}: ${mib(r.growth.docBytes)}, ${fmt(r.growth.usPerEvent, 1)} us/event`)),
  ]);
  rows.push([
    '  extrapolated to all events',
    ...col((r) => (r.growth === undefined ? '-' : `~${mib((r.growth.docBytes / r.growth.events) * r.outOf)}, heap ~${fmt((r.growth.heapMiB / r.growth.events) * r.outOf, 0)} MiB`)),
  ]);
  const header: [string, ...string[]] = ['', ...results.map((r) => r.backend)];
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]) => row.map((c, i) => (c ?? '').padEnd(widths[i])).join(' | ');
  const out = [
    `Reserve shared state: ${fmt(o.boxes)} Boxes, ${fmt(o.snapshots)} snapshots, ${fmt(o.events)} events; checkpoint every ${fmt(o.checkpointEvery)}, batches of ${fmt(o.batch)} (seed ${o.seed})`,
    `machine: ${cpus().length} cores, load ${loadavg().map((l) => l.toFixed(1)).join(' ')}; times are CPU seconds of the process (user+system) unless marked wall`,
    '',
    `signing (${o.threads} threads, wall)       ${fmt(gen.seconds, 1)} s${gen.reused === true ? ' (when the kept events were made)' : ''}; events ${mib(gen.bytes)} (${fmt(gen.bytes / o.events, 0)} B/event)`,
    `signature verification           ${fmt(red.verifyUs, 1)} us/event (sampled on ${fmt(red.verifySample)}) = ~${fmt((red.verifyUs * o.events) / 1e6, 0)} s per Box for all events, on top of the figures below`,
    `decode ${fmt(red.events)} events (checked)     ${fmt(red.decodeS, 1)} s`,
    `reduce ${fmt(red.events)} events, no CRDT, no compaction   ${fmt(red.reduceS, 1)} s (${fmt((red.reduceS * 1e6) / red.events, 1)} us/event), heap +${fmt(red.heapMiB, 0)} MiB`,
    '',
    line(header),
    widths.map((w) => '-'.repeat(w)).join('-|-'),
    ...rows.map(line),
  ];
  return out.join('\n');
}

// ------------------------------------------------------------------------------------------------ entry

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    const [, what, file, json] = argv;
    const o = JSON.parse(json) as Options;
    const result = what === 'reduce' ? runReduce(o, file) : runBackend(o, file, what);
    process.stdout.write(`\n${JSON.stringify(result)}\n`);
    return;
  }
  const o = parseOptions(argv);
  const dir = mkdtempSync(join(tmpdir(), 'reserve-state-bench-'));
  const file = o.keep ?? join(dir, 'events.bin');
  const scenario = JSON.stringify({ boxes: o.boxes, snapshots: o.snapshots, events: o.events, seed: o.seed, format: 1 });
  try {
    let gen: { seconds: number; bytes: number; reused?: boolean };
    if (o.keep !== undefined && existsSync(`${file}.json`) && JSON.parse(readFileSync(`${file}.json`, 'utf8')).scenario === scenario) {
      gen = { ...JSON.parse(readFileSync(`${file}.json`, 'utf8')).generation, reused: true };
      console.error(`reusing the signed events in ${file}`);
    } else {
      console.error(`signing ${fmt(o.events)} events of ${o.boxes} Boxes on ${o.threads} threads...`);
      gen = await generate(o, file);
      if (o.keep !== undefined) writeFileSync(`${file}.json`, JSON.stringify({ scenario, generation: gen }));
    }
    console.error(`  ${fmt(gen.seconds, 1)} s. decoding and reducing them all (no CRDT)...`);
    const red = (await child(['--child', 'reduce', file, JSON.stringify(o)])) as ReduceResult;
    const results: BackendResult[] = [];
    for (const b of o.backends) {
      console.error(`  ${b}...`);
      results.push((await child(['--child', b, file, JSON.stringify(o)])) as BackendResult);
    }
    const text = table(o, gen, red, results);
    console.log(text);
    if (o.json !== undefined) writeFileSync(o.json, JSON.stringify({ options: o, generation: gen, reduce: red, backends: results }, null, 2));
    if (results.some((r) => !r.agree)) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === 'generate') {
  const d = workerData as { options: Options; mine: number[] };
  const out = generateSome(d.options, new Set(d.mine));
  parentPort?.postMessage(out, [out.index.buffer as ArrayBuffer, out.data.buffer as ArrayBuffer, out.lengths.buffer as ArrayBuffer]);
} else if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  });
}
