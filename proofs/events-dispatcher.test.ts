/**
 * The dispatcher, the deduping receiver, the sinks, the condition tracker and the inbox, on a MemoryKvStore and a
 * ManualClock. `settle()` lets pending promise chains run (virtual time does not move); all waiting is virtual.
 */
import { describe, expect, it } from 'vitest';
import { MemoryKvStore } from '../adapters/storage/memory-kv.ts';
import type { KvOp, KvStore } from '../core/kv.ts';
import { ConditionKindMismatchError, ConditionTracker, conditionKey, NotAConditionError } from '../core/events/conditions.ts';
import { backoffDelay, DispatcherClosedError, DuplicateSinkError, EventDispatcher, OutboxCorruptError, SinkTimeoutError } from '../core/events/dispatcher.ts';
import type { DispatcherOptions, Sink } from '../core/events/dispatcher.ts';
import { EventInbox, matchesFilter } from '../core/events/inbox.ts';
import { ManualClock } from '../core/events/manual-clock.ts';
import { DedupingReceiver } from '../core/events/receiver.ts';
import { DeferredSink, dedupingSink, sharedLogSink, SinkNotReadyError } from '../core/events/sinks.ts';
import type { SharedEventLog } from '../core/events/sinks.ts';
import { MalformedEventError } from '../core/events/types.ts';
import type { EventDraft, EventEnvelope } from '../core/events/types.ts';

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const normal = (n: number): EventDraft => ({ kind: 'keeper-added', severity: 'normal', payload: { keeper: `k${n}` } });
const warning = (peer = 'box-b'): EventDraft => ({ kind: 'network-disruption', severity: 'warning', payload: { peers: [peer], since: 0 } });

class RecordingSink implements Sink {
  calls: EventEnvelope[][] = [];
  failures = 0;
  attempts = 0;
  hang = false;
  constructor(readonly id: string) {}
  async deliver(events: readonly EventEnvelope[]): Promise<void> {
    this.attempts++;
    if (this.hang) return new Promise<void>(() => {});
    if (this.failures > 0) {
      this.failures--;
      throw new Error(`${this.id} is down`);
    }
    this.calls.push([...events]);
  }
  get seqs(): number[] {
    return this.calls.flat().map((e) => e.seq);
  }
}

/** A KvStore that delegates to `inner`, with `batch` replaced. */
function withBatch(inner: KvStore, batch: (ops: readonly KvOp[]) => Promise<void>): KvStore {
  return {
    get: (k, o) => inner.get(k, o),
    put: (k, v, o) => inner.put(k, v, o),
    delete: (k, o) => inner.delete(k, o),
    batch,
    list: (p, o) => inner.list(p, o),
    close: () => inner.close(),
  };
}

async function keys(kv: KvStore, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for await (const [k] of kv.list(prefix)) out.push(k);
  return out;
}

function setup(extra: Partial<DispatcherOptions> = {}) {
  const kv = (extra.kv as MemoryKvStore | undefined) ?? new MemoryKvStore();
  const clock = new ManualClock(1_000_000);
  const a = new RecordingSink('a');
  const b = new RecordingSink('b');
  const errors: unknown[] = [];
  const open = (over: Partial<DispatcherOptions> = {}) =>
    EventDispatcher.open({ kv, clock, source: 'box-a', sinks: [a, b], batchIntervalMs: 10_000, onError: (e) => errors.push(e), ...extra, ...over });
  return { kv, clock, a, b, errors, open };
}

describe('EventDispatcher', () => {
  it('writes the event to the outbox before raise resolves', async () => {
    const inner = new MemoryKvStore();
    const seen: KvOp[][] = [];
    const kv = withBatch(inner, async (ops) => {
      seen.push([...ops]);
      await inner.batch(ops);
    });
    const { clock, a } = setup();
    const d = await EventDispatcher.open({ kv, clock, source: 'box-a', sinks: [a] });
    const e = await d.raise(normal(1));
    expect(e).toMatchObject({ id: 'box-a/1', source: 'box-a', seq: 1, time: 1_000_000, kind: 'keeper-added' });
    expect(seen[0].map((op) => op.key)).toEqual(['events/outbox/0000000000000001', 'events/seq']);
    expect(await keys(inner, 'events/outbox/')).toEqual(['events/outbox/0000000000000001']);
  });

  it('rejects raise when the outbox write fails, and delivers nothing for it', async () => {
    const inner = new MemoryKvStore();
    let failing = true;
    const kv = withBatch(inner, async (ops) => {
      if (failing) throw new Error('disk full');
      await inner.batch(ops);
    });
    const { clock, a } = setup();
    const d = await EventDispatcher.open({ kv, clock, source: 'box-a', sinks: [a] });
    await expect(d.raise(warning())).rejects.toThrow('disk full');
    failing = false;
    const e = await d.raise(warning());
    await settle();
    // The failed seq is never reused: receivers tolerate the gap.
    expect(e.seq).toBe(2);
    expect(a.seqs).toEqual([2]);
  });

  it('rejects malformed drafts with a named error', async () => {
    const { open } = setup();
    const d = await open();
    await expect(d.raise({ kind: 'keeper-added', severity: 'normal', payload: {} } as unknown as EventDraft)).rejects.toBeInstanceOf(MalformedEventError);
  });

  it('dispatches warnings and failures at once, normal events at the batch interval', async () => {
    const { clock, a, b, open } = setup();
    const d = await open();
    await d.raise(normal(1));
    await d.raise(normal(2));
    await settle();
    expect(a.seqs).toEqual([]);
    await clock.advanceAsync(9_999, settle);
    expect(a.seqs).toEqual([]);
    await clock.advanceAsync(1, settle);
    expect(a.calls).toHaveLength(1);
    expect(a.seqs).toEqual([1, 2]);
    expect(b.seqs).toEqual([1, 2]);

    await d.raise(normal(3));
    await d.raise(warning());
    await settle();
    // The warning carries the earlier normal event with it: per-source order holds.
    expect(a.seqs).toEqual([1, 2, 3, 4]);
    await clock.advanceAsync(20_000, settle);
    expect(a.seqs).toEqual([1, 2, 3, 4]);
  });

  it('retries a failing sink with exponential backoff without holding up the others', async () => {
    const { clock, a, b, open } = setup({ backoff: { initialMs: 1_000, maxMs: 4_000 } });
    a.failures = 4;
    const d = await open();
    await d.raise(warning());
    await settle();
    expect(b.seqs).toEqual([1]);
    expect(a.attempts).toBe(1);
    const attemptsAt: number[] = [];
    for (let t = 0; t < 12_000; t += 500) {
      const before = a.attempts;
      await clock.advanceAsync(500, settle);
      if (a.attempts > before) attemptsAt.push(t + 500);
    }
    // Delays 1 s, 2 s, 4 s, then capped at 4 s.
    expect(attemptsAt).toEqual([1_000, 3_000, 7_000, 11_000]);
    expect(a.seqs).toEqual([1]);
    expect(d.status().sinks.find((s) => s.id === 'a')).toMatchObject({ cursor: 1, pending: 0, attempt: 0 });
  });

  it('jitters backoff between half and all of the delay when given randomness', () => {
    let x = 0;
    const random = { u32: () => (x = (x + 0x9e3779b9) >>> 0), bytes: (n: number) => new Uint8Array(n) };
    for (let attempt = 1; attempt < 12; attempt++) {
      const base = backoffDelay(attempt, { initialMs: 100, maxMs: 10_000 });
      const d = backoffDelay(attempt, { initialMs: 100, maxMs: 10_000 }, random);
      expect(d).toBeGreaterThanOrEqual(base / 2);
      expect(d).toBeLessThanOrEqual(base);
    }
  });

  it('times out a sink that never answers, and offers the events again', async () => {
    const { clock, a, errors, open } = setup({ deliverTimeoutMs: 5_000, backoff: { initialMs: 1_000 } });
    a.hang = true;
    const d = await open();
    await d.raise(warning());
    await settle();
    await clock.advanceAsync(5_000, settle);
    expect(errors.some((e) => e instanceof SinkTimeoutError)).toBe(true);
    a.hang = false;
    await clock.advanceAsync(1_000, settle);
    expect(a.seqs).toEqual([1]);
  });

  it('delivers in batches of at most maxBatch, in seq order', async () => {
    const { a, open } = setup({ maxBatch: 3 });
    const d = await open();
    for (let i = 0; i < 7; i++) await d.raise(normal(i));
    await d.flush();
    expect(a.calls.map((c) => c.length)).toEqual([3, 3, 1]);
    expect(a.seqs).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('re-delivers after a crash what was not acknowledged, and nothing that was', async () => {
    const { kv, clock, a, b, open } = setup();
    const scope1 = clock.scope();
    const d1 = await open({ clock: scope1.clock });
    await d1.raise(warning());
    await settle();
    b.failures = 1_000;
    await d1.raise(normal(2));
    await d1.raise(normal(3));
    // Crash: the process dies with normal events batched and b failing.
    scope1.drop();
    b.failures = 0;
    const d2 = await open({ clock: clock.scope().clock });
    await settle();
    expect(a.seqs).toEqual([1, 2, 3]);
    expect(b.seqs).toEqual([1, 2, 3]);
    const next = await d2.raise(warning());
    expect(next.seq).toBe(4);
    await settle();
    expect(await keys(kv, 'events/outbox/')).toEqual([]);
    void d1;
  });

  it('keeps the seq counter after the outbox has been pruned', async () => {
    const { kv, open } = setup();
    const d1 = await open();
    await d1.raise(warning());
    await d1.raise(warning());
    await d1.flush();
    expect(await keys(kv, 'events/outbox/')).toEqual([]);
    await d1.close();
    const d2 = await open();
    expect((await d2.raise(warning())).id).toBe('box-a/3');
  });

  it('starts a brand-new outbox at initialSeq', async () => {
    const { open } = setup();
    const d = await open({ initialSeq: 5_000 });
    expect((await d.raise(warning())).seq).toBe(5_000);
  });

  it('prunes only what every attached sink acknowledged', async () => {
    const { kv, a, b, open } = setup();
    b.failures = 1_000;
    const d = await open();
    await d.raise(warning());
    await d.raise(warning());
    await settle();
    expect(a.seqs).toEqual([1, 2]);
    expect(await keys(kv, 'events/outbox/')).toHaveLength(2);
    expect(d.status()).toMatchObject({ lastSeq: 2, outbox: 2 });
    b.failures = 0;
    await d.flush();
    expect(b.seqs).toEqual([1, 2]);
    expect(await keys(kv, 'events/outbox/')).toEqual([]);
    expect(await keys(kv, 'events/cursor/')).toEqual(['events/cursor/a', 'events/cursor/b']);
  });

  it('keeps events for a deferred sink until it is connected', async () => {
    const { clock, kv } = setup();
    const log = new DeferredSink('shared-log');
    const a = new RecordingSink('a');
    const d = await EventDispatcher.open({ kv, clock, source: 'box-a', sinks: [a, log], backoff: { initialMs: 1_000, maxMs: 1_000 } });
    await d.raise(warning());
    await d.raise(warning());
    await settle();
    expect(d.status().sinks.find((s) => s.id === 'shared-log')?.lastError).toContain('SinkNotReadyError');
    expect(await keys(kv, 'events/outbox/')).toHaveLength(2);
    const stored: EventEnvelope[] = [];
    const shared: SharedEventLog = { append: async (events) => void stored.push(...events) };
    log.connect(sharedLogSink(shared));
    expect(log.connected).toBe(true);
    await clock.advanceAsync(1_000, settle);
    expect(stored.map((e) => e.id)).toEqual(['box-a/1', 'box-a/2']);
    expect(await keys(kv, 'events/outbox/')).toEqual([]);
    log.disconnect();
    await expect(log.deliver([], {})).rejects.toBeInstanceOf(SinkNotReadyError);
  });

  it('attaches and detaches sinks at run time', async () => {
    const { open } = setup();
    const d = await open();
    await d.raise(warning());
    await settle();
    const c = new RecordingSink('c');
    d.addSink(c);
    await settle();
    expect(c.seqs).toEqual([]); // pruned already: a and b had acknowledged it
    await d.raise(warning());
    await settle();
    expect(c.seqs).toEqual([2]);
    expect(() => d.addSink(new RecordingSink('c'))).toThrow(DuplicateSinkError);
    d.removeSink('c');
    await d.raise(warning());
    await settle();
    expect(c.seqs).toEqual([2]);
  });

  it('delivers everything at once on flush, and refuses to raise after close', async () => {
    const { a, open } = setup();
    const d = await open();
    await d.raise(normal(1));
    const status = await d.flush();
    expect(a.seqs).toEqual([1]);
    expect(status.sinks.every((s) => s.pending === 0)).toBe(true);
    await d.close();
    await expect(d.raise(warning())).rejects.toBeInstanceOf(DispatcherClosedError);
  });

  it('survives unreadable outbox records, reporting them', async () => {
    const { kv, a, errors, open } = setup();
    await kv.put('events/outbox/0000000000000001', new Uint8Array([0xff]));
    await kv.put('events/seq', new Uint8Array([0xff]));
    await kv.put('events/cursor/a', new Uint8Array([0xff]));
    const d = await open();
    expect(errors.filter((e) => e instanceof OutboxCorruptError)).toHaveLength(3);
    expect(await keys(kv, 'events/outbox/')).toEqual([]);
    await d.raise(warning());
    await settle();
    expect(a.seqs).toEqual([1]);
  });
});

describe('DedupingReceiver', () => {
  const ev = (source: string, seq: number): EventEnvelope => ({ id: `${source}/${seq}`, source, seq, time: seq, severity: 'normal', kind: 'keeper-added', payload: { keeper: 'k' } });

  it('accepts each event once per source, by high-water mark', () => {
    const r = new DedupingReceiver();
    expect(r.accept([ev('a', 1), ev('a', 2), ev('b', 1)]).map((e) => e.id)).toEqual(['a/1', 'a/2', 'b/1']);
    expect(r.accept([ev('a', 1), ev('a', 2), ev('a', 3), ev('a', 3), ev('b', 1)]).map((e) => e.id)).toEqual(['a/3']);
    expect(r.highWater('a')).toBe(3);
    expect(r.highWater('zzz')).toBe(0);
    // Gaps (a failed raise) are fine.
    expect(r.accept([ev('a', 7)]).map((e) => e.id)).toEqual(['a/7']);
  });

  it('marks only on commit, and remembers at most maxSources', () => {
    const r = new DedupingReceiver({ maxSources: 2 });
    const batch = [ev('a', 1)];
    expect(r.fresh(batch)).toHaveLength(1);
    expect(r.fresh(batch)).toHaveLength(1);
    r.commit(batch);
    expect(r.fresh(batch)).toHaveLength(0);
    r.accept([ev('b', 1)]);
    r.accept([ev('c', 1)]);
    expect(r.marks().map(([s]) => s)).toEqual(['b', 'c']);
    const restored = new DedupingReceiver({ initial: r.marks() });
    expect(restored.fresh([ev('c', 1), ev('c', 2)]).map((e) => e.id)).toEqual(['c/2']);
  });

  it('lets a deduping sink retry a failed handler without losing or repeating events', async () => {
    const got: string[] = [];
    let fail = true;
    const sink = dedupingSink('s', async (events) => {
      if (fail) throw new Error('handler down');
      got.push(...events.map((e) => e.id));
    });
    await expect(sink.deliver([ev('a', 1), ev('a', 2)], {})).rejects.toThrow('handler down');
    fail = false;
    await sink.deliver([ev('a', 1), ev('a', 2)], {});
    await sink.deliver([ev('a', 2), ev('a', 3)], {});
    expect(got).toEqual(['a/1', 'a/2', 'a/3']);
    expect(sink.receiver.highWater('a')).toBe(3);
  });
});

describe('ConditionTracker', () => {
  async function tracker() {
    const kv = new MemoryKvStore();
    const clock = new ManualClock(50);
    const sink = new RecordingSink('s');
    const d = await EventDispatcher.open({ kv, clock, source: 'box-a', sinks: [sink] });
    return { kv, clock, sink, d, t: await ConditionTracker.open(d) };
  }
  const disruption = (peers: string[]): EventDraft<'network-disruption'> => ({ kind: 'network-disruption', severity: 'warning', payload: { peers, since: 50 } });

  it('raises a condition once when it starts and once when it ends', async () => {
    const { t, d, sink } = await tracker();
    const key = conditionKey('network-disruption', 'box-b');
    const opened = await t.begin(key, disruption(['box-b']));
    expect(opened?.id).toBe('box-a/1');
    for (let i = 0; i < 5; i++) expect(await t.set(key, disruption(['box-b']))).toBeUndefined();
    expect(t.active(key)).toMatchObject({ kind: 'network-disruption', first: 'box-a/1', latest: 'box-a/1', since: 50, severity: 'warning' });
    const resolved = await t.end(key, 'reachable');
    expect(resolved?.payload).toEqual({ of: 'network-disruption', condition: key, resolves: 'box-a/1', since: 50, note: 'reachable' });
    expect(await t.end(key)).toBeUndefined();
    expect(await t.set(key, null)).toBeUndefined();
    await d.flush();
    expect(sink.calls.flat().map((e) => e.kind)).toEqual(['network-disruption', 'resolved']);
  });

  it('links a resolution to the latest re-raise too', async () => {
    const { t } = await tracker();
    const key = conditionKey('network-disruption', 'all');
    await t.begin(key, disruption(['box-b']));
    await t.reraise(key, disruption(['box-b', 'box-c']));
    expect(t.active(key)?.payload).toEqual({ peers: ['box-b', 'box-c'], since: 50 });
    const r = await t.end(key);
    expect(r?.payload).toMatchObject({ resolves: 'box-a/1', latest: 'box-a/2' });
  });

  it('remembers open conditions across a restart (written with the event, atomically)', async () => {
    const { kv, clock, t } = await tracker();
    const key = conditionKey('network-disruption', 'box-b');
    await t.begin(key, disruption(['box-b']));
    expect(await keys(kv, 'events/conditions/')).toEqual([`events/conditions/${encodeURIComponent(key)}`]);
    const d2 = await EventDispatcher.open({ kv, clock, source: 'box-a' });
    const t2 = await ConditionTracker.open(d2);
    expect(t2.list().map((c) => c.key)).toEqual([key]);
    expect(await t2.begin(key, disruption(['box-b']))).toBeUndefined();
    expect((await t2.end(key))?.payload.resolves).toBe('box-a/1');
    expect(await keys(kv, 'events/conditions/')).toEqual([]);
  });

  it('refuses non-condition kinds and kind mismatches', async () => {
    const { t } = await tracker();
    await expect(t.begin('x', normal(1) as never)).rejects.toBeInstanceOf(NotAConditionError);
    await t.begin('x', disruption([]));
    await expect(t.reraise('x', { kind: 'unresolved-conflict', severity: 'warning', payload: { block: 'bafkqaaa', snapshots: [], reason: 'r' } })).rejects.toBeInstanceOf(ConditionKindMismatchError);
  });
});

describe('EventInbox', () => {
  const ev = (seq: number, severity: EventEnvelope['severity'], time = seq): EventEnvelope =>
    severity === 'normal'
      ? { id: `a/${seq}`, source: 'a', seq, time, severity, kind: 'keeper-added', payload: { keeper: 'k' } }
      : { id: `a/${seq}`, source: 'a', seq, time, severity, kind: 'network-disruption', payload: { peers: ['b'], since: 0 } };

  it('keeps deduplicated events, filters them, and pushes new ones to subscribers', async () => {
    const inbox = new EventInbox();
    const followed: string[] = [];
    const stop = inbox.subscribe((events) => followed.push(...events.map((e) => e.id)), { minSeverity: 'warning' });
    await inbox.deliver([ev(1, 'normal'), ev(2, 'warning')]);
    await inbox.deliver([ev(2, 'warning'), ev(3, 'failure')]);
    expect(inbox.list().map((e) => e.id)).toEqual(['a/1', 'a/2', 'a/3']);
    expect(inbox.list({ minSeverity: 'failure' }).map((e) => e.id)).toEqual(['a/3']);
    expect(inbox.list({ since: 2, kinds: ['network-disruption'] }).map((e) => e.id)).toEqual(['a/2', 'a/3']);
    expect(followed).toEqual(['a/2', 'a/3']);
    stop();
    await inbox.deliver([ev(4, 'failure')]);
    expect(followed).toEqual(['a/2', 'a/3']);
    expect(matchesFilter(ev(5, 'normal'), { source: 'b' })).toBe(false);
  });

  it('stays within its bound by compaction', async () => {
    const inbox = new EventInbox({ bound: 20 });
    for (let i = 1; i <= 100; i++) await inbox.deliver([ev(i, i % 10 === 0 ? 'warning' : 'normal')]);
    const kept = inbox.list();
    expect(kept.length).toBeLessThanOrEqual(20);
    expect(kept.filter((e) => e.severity === 'warning')).toHaveLength(10);
    expect(kept.reduce((n, e) => n + (e.kind === 'events-summary' ? e.payload.count : 1), 0)).toBe(100);
  });
});
