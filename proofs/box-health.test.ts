/**
 * Health and limitations wired into the Box, on a ManualClock:
 * - the dispatcher's normal-event batch interval follows a setting that changes while a batch waits;
 * - the limitation watcher follows changed warning windows;
 * - the pre-flight scan measures a source without reading it (sizes, entries, snapshot size, bytes new since the
 *   parent, hard links once, unreadable directories skipped);
 * - a real Box (alone in its reserve, a synthetic HealthSource) samples health at start and on its clock, raises
 *   keeper-health events, refuses a backup that breaks a limit before writing anything (LimitExceededError naming the
 *   limit, the value and the limit, plus a "limitation encountered" event), and batches normal events at the shared
 *   config's frequency as it changes.
 */
import { describe, expect, it } from 'vitest';
import { createYjsBackend } from '../adapters/crdt/yjs.ts';
import { MemoryBlockstore } from '../adapters/storage/memory-blockstore.ts';
import { MemoryKvStore } from '../adapters/storage/memory-kv.ts';
import { Box } from '../core/box/box.ts';
import { EventDispatcher, type Sink } from '../core/events/dispatcher.ts';
import { ConditionTracker } from '../core/events/conditions.ts';
import { ManualHealthSource } from '../core/events/health.ts';
import { ManualClock } from '../core/events/manual-clock.ts';
import type { EventEnvelope } from '../core/events/types.ts';
import { LimitExceededError } from '../core/forecast/limits.ts';
import { prescanSource } from '../core/forecast/prescan.ts';
import { DAY_MS, HOUR_MS, LimitationWatcher } from '../core/forecast/watcher.ts';
import type { Network } from '../core/net.ts';
import { PeerUnreachableError } from '../core/net.ts';
import { backup } from '../core/snapshot/backup.ts';
import { inlineChunking } from '../core/snapshot/inline.ts';
import type { SourceEntry, SourceStat, SourceTree, TreePath } from '../core/snapshot/ports.ts';
import { nameKey } from '../core/snapshot/names.ts';
import { createReserveSecret, signerFromSeed, unsealerFromSeed } from '../core/state/crypto.ts';
import { memDir, MemSourceTree, type MemNode } from '../simulations/reserve/memtree.ts';
import { SimRandom } from '../simulations/sim/rng.ts';

const settle = async (n = 5): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};
const GiB = 2 ** 30;
const enc = new TextEncoder();
const SMALL = { minSize: 256, avgSize: 1024, maxSize: 4096 };

let nextIno = 1_000;
function put(root: MemNode, path: string, data: Uint8Array | null, mtimeNs = 1_700_000_000_000_000_000n): void {
  const parts = path.split('/');
  let node = root;
  for (const part of parts.slice(0, -1)) {
    if (node.kind !== 'dir') throw new Error('not a dir');
    const key = nameKey(enc.encode(part));
    let child = node.children.get(key);
    if (!child) node.children.set(key, (child = { name: enc.encode(part), node: memDir() }));
    node = child.node;
  }
  if (node.kind !== 'dir') throw new Error('not a dir');
  const last = parts[parts.length - 1];
  node.children.set(nameKey(enc.encode(last)), { name: enc.encode(last), node: data ? { kind: 'file', data, ino: nextIno++, mode: 0o644, uid: 1, gid: 1, mtimeNs } : memDir() });
}

function bytes(n: number, seed: number): Uint8Array {
  const r = new SimRandom(seed);
  return r.bytes(n);
}

class RecordingSink implements Sink {
  readonly got: EventEnvelope[] = [];
  constructor(readonly id: string) {}
  async deliver(events: readonly EventEnvelope[]): Promise<void> {
    this.got.push(...events);
  }
}

describe('the dispatcher follows a changing batch interval', () => {
  const normal = { kind: 'keeper-added', severity: 'normal', payload: { keeper: 'k' } } as const;

  it('a shorter interval takes effect while a batch waits (within the recheck delay)', async () => {
    const clock = new ManualClock(0);
    const sink = new RecordingSink('s');
    let interval = 60_000;
    const d = await EventDispatcher.open({ kv: new MemoryKvStore(), clock, source: 'box-a', sinks: [sink], batchIntervalMs: () => interval, batchRecheckMs: 10_000 });
    await d.raise(normal);
    await clock.advanceAsync(30_000, settle);
    expect(sink.got).toHaveLength(0);
    interval = 20_000; // due at 20 s: overdue, released at the next recheck (40 s)
    await clock.advanceAsync(9_999, settle);
    expect(sink.got).toHaveLength(0);
    await clock.advanceAsync(1, settle);
    expect(sink.got.map((e) => e.seq)).toEqual([1]);
    // The next batch uses the new interval from its first event.
    await d.raise(normal);
    await clock.advanceAsync(19_999, settle);
    expect(sink.got).toHaveLength(1);
    await clock.advanceAsync(1, settle);
    expect(sink.got).toHaveLength(2);
    await d.close();
  });

  it('a longer interval postpones a waiting batch; a constant interval never rechecks', async () => {
    const clock = new ManualClock(0);
    const sink = new RecordingSink('s');
    let interval = 10_000;
    const d = await EventDispatcher.open({ kv: new MemoryKvStore(), clock, source: 'box-a', sinks: [sink], batchIntervalMs: () => interval, batchRecheckMs: 5_000 });
    await d.raise(normal);
    interval = 100_000;
    await clock.advanceAsync(99_999, settle);
    expect(sink.got).toHaveLength(0);
    await clock.advanceAsync(1, settle);
    expect(sink.got).toHaveLength(1);
    await d.close();

    const fixedClock = new ManualClock(0);
    const fixed = await EventDispatcher.open({ kv: new MemoryKvStore(), clock: fixedClock, source: 'box-a', sinks: [new RecordingSink('t')], batchIntervalMs: 60_000 });
    await fixed.raise(normal);
    expect(fixedClock.nextDue()).toBe(60_000); // one timer for the whole wait
    await fixed.close();
  });
});

describe('the limitation watcher follows changed warning windows', () => {
  it('raises "imminent" once the window grows to include the forecast', async () => {
    const clock = new ManualClock(0);
    const d = await EventDispatcher.open({ kv: new MemoryKvStore(), clock, source: 'box-a' });
    const tracker = await ConditionTracker.open(d);
    const w = new LimitationWatcher({ tracker, clock, warningWindowMs: DAY_MS, minIntervalMs: 0 });
    // 1 GiB a day toward a limit 10 GiB away: ~10 days out.
    let raised: EventEnvelope[] = [];
    for (let day = 0; day < 8; day++) {
      const r = await w.observe({ limitation: 'disk-capacity', subject: 'box-a', value: (20 + day) * GiB, limit: 37 * GiB, time: day * DAY_MS });
      raised.push(...r.raised);
    }
    expect(raised).toEqual([]);
    w.setWindows(30 * DAY_MS, { 'disk-capacity': 14 * DAY_MS });
    expect(w.windowFor('disk-capacity')).toBe(14 * DAY_MS);
    expect(w.windowFor('snapshot-size')).toBe(30 * DAY_MS);
    raised = (await w.observe({ limitation: 'disk-capacity', subject: 'box-a', value: 28 * GiB, limit: 37 * GiB, time: 8 * DAY_MS })).raised;
    expect(raised.map((e) => e.kind)).toEqual(['limitation-imminent']);
    const eta = (raised[0].payload as { eta: number }).eta;
    expect(Math.abs(eta - 17 * DAY_MS)).toBeLessThan(HOUR_MS);
    expect((raised[0].payload as { windowMs: number }).windowMs).toBe(14 * DAY_MS);
    await d.close();
  });
});

/** A tree given as a listing: lets a test have hard links and a directory it cannot read. */
class ListingTree implements SourceTree {
  readonly description = 'listing:/';
  constructor(readonly dirs: Record<string, Array<Omit<Partial<SourceEntry>, 'name'> & { name: string; kind: SourceEntry['kind'] }>>) {}
  #key(path: TreePath): string {
    return path.map((p) => new TextDecoder().decode(p)).join('/');
  }
  async stat(path: TreePath): Promise<SourceStat> {
    if (path.length === 0) return { kind: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtimeNs: 0n, ctimeNs: 0n, dev: 1n, ino: 1n, nlink: 2 };
    throw new Error('not used');
  }
  async list(path: TreePath): Promise<SourceEntry[]> {
    const key = this.#key(path);
    if (key === 'locked') throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES', syscall: 'scandir' });
    return (this.dirs[key] ?? []).map((e, i) => ({ mode: 0o644, uid: 0, gid: 0, size: 0, mtimeNs: 1n, ctimeNs: 1n, dev: 1n, ino: BigInt(100 + i), nlink: 1, ...e, name: enc.encode(e.name) }));
  }
  async readlink(): Promise<Uint8Array> {
    throw new Error('no links');
  }
  async open(): Promise<never> {
    throw new Error('the pre-flight scan must not open files');
  }
}

describe('the pre-flight scan', () => {
  it('measures sizes and entries from metadata only; hard links count once as new bytes; unreadable dirs are skipped', async () => {
    const tree = new ListingTree({
      '': [
        { name: 'a.jpg', kind: 'file', size: 5_000 },
        { name: 'b.mov', kind: 'file', size: 90_000, ino: 7n, nlink: 2 },
        { name: 'sub', kind: 'dir' },
        { name: 'locked', kind: 'dir' },
        { name: 'fifo', kind: 'other' },
      ],
      sub: [
        { name: 'b-link.mov', kind: 'file', size: 90_000, ino: 7n, nlink: 2 },
        { name: 'c.txt', kind: 'file', size: 10 },
        { name: 'd.txt', kind: 'file', size: 20 },
      ],
    });
    const scan = await prescanSource(tree, { limits: { maxFileBytes: 50_000, maxFilesPerDirectory: 4 } });
    expect(scan.files).toBe(5);
    expect(scan.dirs).toBe(2);
    expect(scan.unreadable).toBe(1);
    expect(scan.snapshotBytes).toBe(5_000 + 90_000 + 90_000 + 30);
    expect(scan.newBytes).toBe(5_000 + 90_000 + 30);
    expect(scan.largestFile).toEqual({ path: 'b.mov', bytes: 90_000 });
    expect(scan.oversize).toEqual([
      { path: 'b.mov', bytes: 90_000 },
      { path: 'sub/b-link.mov', bytes: 90_000 },
    ]);
    expect(scan.crowded).toEqual([{ path: '.', entries: 5 }]);
    expect(scan.largestDirectory).toEqual({ path: '.', entries: 5 });
  });

  it('counts only files changed since the parent snapshot as new bytes', async () => {
    const root = memDir();
    put(root, 'photos/1.jpg', bytes(3000, 1));
    put(root, 'photos/2.jpg', bytes(4000, 2));
    put(root, 'docs/a.txt', bytes(500, 3));
    const store = new MemoryBlockstore();
    const first = await backup({ source: new MemSourceTree(root), store, chunking: inlineChunking(SMALL), chunker: SMALL, clock: new ManualClock(0), author: 'a', host: 'h' });
    const fresh = await prescanSource(new MemSourceTree(root));
    expect(fresh.newBytes).toBe(7500);
    expect((await prescanSource(new MemSourceTree(root), { parent: { store, root: first.cid } })).newBytes).toBe(0);
    put(root, 'photos/2.jpg', bytes(4100, 4), 1_800_000_000_000_000_000n);
    put(root, 'docs/new/b.txt', bytes(250, 5));
    const scan = await prescanSource(new MemSourceTree(root), { parent: { store, root: first.cid } });
    expect(scan.newBytes).toBe(4100 + 250);
    expect(scan.snapshotBytes).toBe(3000 + 4100 + 500 + 250);
  });
});

/** The only Box of its reserve: nobody to talk to. */
function soloNetwork(self: string): Network {
  const handlers = new Map<string, unknown>();
  return {
    self,
    publish() {},
    subscribe: () => () => {},
    request: async (to) => {
      throw new PeerUnreachableError(to);
    },
    handle: (protocol, handler) => void handlers.set(protocol, handler),
    peers: () => [],
  };
}

async function soloBox(health: ManualHealthSource) {
  const clock = new ManualClock(1_800_000_000_000);
  const random = new SimRandom('box-health');
  const { secret, reserveId } = createReserveSecret(random);
  const seed = random.bytes(32);
  const signer = signerFromSeed(seed);
  const events: EventEnvelope[] = [];
  const blocks = new MemoryBlockstore();
  const box = new Box({
    reserveId,
    secrets: new Map([[0, secret]]),
    signer,
    unsealer: unsealerFromSeed(seed.map((b) => b ^ 0x5a)),
    clock,
    random,
    network: soloNetwork(signer.id),
    blocks,
    kv: new MemoryKvStore(),
    backend: createYjsBackend,
    chunking: inlineChunking(SMALL),
    chunker: SMALL,
    capacity: 1 << 30,
    health,
    timing: { healthMs: 60_000 },
    onEvent: (e) => events.push(e),
  });
  await box.start();
  await settle();
  return { box, clock, events, blocks };
}

describe('a Box with a health source', () => {
  it('samples at start and on its clock, raises keeper-health, and forecasts its disk against the shared window', async () => {
    const health = new ManualHealthSource({
      memory: { totalBytes: 8 * GiB, availableBytes: 6 * GiB },
      cpu: { busyFraction: 0.1 },
      disk: { path: '/data', totalBytes: 100 * GiB, availableBytes: 60 * GiB },
    });
    const { box, clock, events } = await soloBox(health);
    const start = clock.now();
    expect(box.latestHealth()).toEqual({ at: start, sample: await health.sample() });
    health.update({ memory: { totalBytes: 8 * GiB, availableBytes: 0.2 * GiB } });
    await clock.advanceAsync(3 * 60_000, settle);
    expect(box.latestHealth()?.at).toBe(start + 3 * 60_000);
    const memory = events.filter((e) => e.kind === 'keeper-health');
    expect(memory.map((e) => e.severity)).toEqual(['failure']);
    expect(memory[0].payload).toMatchObject({ metric: 'memory', keeper: box.id, usedFraction: 0.975 });
    expect(box.events.conditions.list().map((c) => c.key)).toEqual([`keeper-health/memory/${box.id}`]);
    // The disk fills 1 GiB an hour: 59 h to go, within the default 7-day window.
    for (let h = 1; h <= 8; h++) {
      health.update({ memory: { totalBytes: 8 * GiB, availableBytes: 6 * GiB }, disk: { path: '/data', totalBytes: 100 * GiB, availableBytes: (60 - h) * GiB } });
      await clock.advanceAsync(HOUR_MS, settle);
    }
    const imminent = events.filter((e) => e.kind === 'limitation-imminent');
    expect(imminent).toHaveLength(1);
    expect(imminent[0].payload).toMatchObject({ limitation: 'disk-capacity', subject: box.id, limit: 100 * GiB });
    expect(events.some((e) => e.kind === 'resolved' && (e.payload as { of: string }).of === 'keeper-health')).toBe(true);
    await box.stop();
  });

  it('refuses a backup that breaks a limit before writing anything, naming the limit, the value and the limit', async () => {
    const health = new ManualHealthSource({ disk: { path: '/data', totalBytes: 10 * GiB, availableBytes: 9 * GiB } });
    const { box, events, blocks } = await soloBox(health);
    box.ledger.publish('config-changed', { set: [['limits.maxFileBytes', 4096], ['limits.maxFilesPerDirectory', 3]] });
    const root = memDir();
    put(root, 'big.mov', bytes(5000, 1));
    put(root, 'small.txt', bytes(100, 2));
    const before = [...(await collect(blocks.keys()))].length;
    const err = (await box.backup(new MemSourceTree(root)).catch((e: unknown) => e)) as LimitExceededError;
    expect(err).toBeInstanceOf(LimitExceededError);
    expect(err.name).toBe('LimitExceededError');
    expect(err.message).toContain('big.mov is 4.9 KiB, over the 4.0 KiB file size limit');
    expect(err.violations).toEqual([expect.objectContaining({ limitation: 'file-size', subject: 'big.mov', value: 5000, limit: 4096 })]);
    expect([...(await collect(blocks.keys()))].length).toBe(before);
    expect(box.snapshots()).toEqual([]);
    const encountered = events.filter((e) => e.kind === 'limitation-encountered');
    expect(encountered.map((e) => [e.severity, e.payload])).toEqual([['failure', { limitation: 'file-size', subject: 'big.mov', value: 5000, limit: 4096 }]]);

    // This Box's free disk is checked against the bytes the backup may add.
    box.ledger.publish('config-changed', { set: [['limits.keeperReserveBytes', 9 * GiB - 3000], ['limits.maxFileBytes', 1 << 30]] });
    const disk = (await box.backup(new MemSourceTree(root)).catch((e: unknown) => e)) as LimitExceededError;
    expect(disk.violations).toEqual([expect.objectContaining({ limitation: 'disk-capacity', subject: box.id, value: 5100, limit: 3000 })]);
    expect(disk.message).toMatch(/keeper .* would need 5.0 KiB but has 2.9 KiB to spare/);

    // Within every limit it goes through, and the next backup of the same tree needs no new room.
    box.ledger.publish('config-changed', { set: [['limits.keeperReserveBytes', 0]] });
    const ok = await box.backup(new MemSourceTree(root), { protect: 'none' });
    expect(ok.stats.files).toBe(2);
    box.ledger.publish('config-changed', { set: [['limits.keeperReserveBytes', 9 * GiB - 10]] });
    expect((await box.backup(new MemSourceTree(root), { protect: 'none' })).stats.filesUnchanged).toBe(2);
    // Too many entries in one directory.
    put(root, 'x', bytes(10, 3));
    put(root, 'y', bytes(10, 4));
    box.ledger.publish('config-changed', { set: [['limits.keeperReserveBytes', 0]] });
    const crowded = (await box.backup(new MemSourceTree(root)).catch((e: unknown) => e)) as LimitExceededError;
    expect(crowded.violations.map((v) => [v.limitation, v.subject, v.value, v.limit])).toEqual([['files-per-directory', '.', 4, 3]]);
    await box.stop();
  });

  it('batches normal events at the shared config\'s frequency, following a change', async () => {
    const { box, clock } = await soloBox(new ManualHealthSource({}));
    const d = box.events.dispatcher;
    await d.flush();
    box.ledger.publish('config-changed', { set: [['events.normalFrequencyMs', 600_000]] });
    const inbox = box.events.inbox;
    const count = () => inbox.list().length;
    const before = count();
    await box.events.raiser.raise({ kind: 'keeper-added', severity: 'normal', payload: { keeper: 'someone' } });
    await clock.advanceAsync(599_000, settle);
    expect(count()).toBe(before);
    await clock.advanceAsync(1_000, settle);
    expect(count()).toBe(before + 1);
    // Lowered while a batch waits: it goes out within a minute of the new due time.
    await box.events.raiser.raise({ kind: 'keeper-added', severity: 'normal', payload: { keeper: 'someone-else' } });
    await clock.advanceAsync(60_000, settle);
    box.ledger.publish('config-changed', { set: [['events.normalFrequencyMs', 30_000]] });
    await clock.advanceAsync(60_000, settle);
    expect(count()).toBe(before + 2);
    await box.stop();
  });
});

describe('network disruption on a Box', () => {
  it('is raised only when a peer stays unreachable past the disruption grace, and resolved when it is back', async () => {
    const { box, clock, events } = await soloBox(new ManualHealthSource({}));
    const disruptions = () => events.filter((e) => e.kind === 'network-disruption');
    const resolved = () => events.filter((e) => e.kind === 'resolved');
    // default grace: half the repair grace (1 h), at most 5 min
    box.events.notice({ type: 'peer-unreachable', box: 'peer-x', since: clock.now() });
    await clock.advanceAsync(4 * 60_000, settle);
    box.events.notice({ type: 'peer-reachable', box: 'peer-x' });
    await clock.advanceAsync(10 * 60_000, settle);
    expect(disruptions()).toEqual([]); // a reboot is not news
    expect(resolved()).toEqual([]);
    const since = clock.now();
    box.events.notice({ type: 'peer-unreachable', box: 'peer-x', since });
    await clock.advanceAsync(5 * 60_000 + 1, settle);
    expect(disruptions().map((e) => [e.severity, (e.payload as { peers: string[]; since: number }).peers, (e.payload as { since: number }).since])).toEqual([['warning', ['peer-x'], since]]);
    box.events.notice({ type: 'peer-reachable', box: 'peer-x' });
    await clock.advanceAsync(1000, settle);
    expect(resolved().map((e) => (e.payload as { of: string }).of)).toEqual(['network-disruption']);
    await box.stop();
  });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
