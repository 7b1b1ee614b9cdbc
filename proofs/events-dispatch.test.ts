/**
 * Property: durable dispatch loses nothing and duplicates nothing at a receiver.
 *
 * Two Boxes (sources) raise events through their own dispatcher and KvStore, delivering to three shared receivers
 * (standing for the shared log, the admin UI and a webhook). fast-check drives a random script of raises, virtual
 * time, crashes (the dispatcher is dropped, with its timers, and a new one is opened over the same KvStore; some
 * crashes strike in the middle of a store operation, which may or may not have been applied), clean shutdowns,
 * restarts and sink
 * misbehaviour (rejecting before or after receiving, hanging, answering late). At the end the sinks heal, downed
 * Boxes restart and time runs until the outboxes drain. Then, for every receiver:
 *
 * - every event whose `raise` resolved was received, with exactly the content `raise` returned;
 * - nothing was received that was not raised (events whose `raise` was cut short by a crash may or may not arrive);
 * - after deduplication by id (DedupingReceiver) each event was accepted exactly once;
 * - first arrivals per source are in seq order (checked on the raw delivery stream, independently of the dedupe);
 * - the outboxes are empty (acknowledged-by-all events pruned).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryKvStore } from '../adapters/storage/memory-kv.ts';
import type { KvOp, KvStore } from '../core/kv.ts';
import { EventDispatcher } from '../core/events/dispatcher.ts';
import type { Sink } from '../core/events/dispatcher.ts';
import { ManualClock } from '../core/events/manual-clock.ts';
import type { ClockScope } from '../core/events/manual-clock.ts';
import { DedupingReceiver } from '../core/events/receiver.ts';
import type { EventEnvelope, Severity } from '../core/events/types.ts';
import { propertyOptions } from './support/fc.ts';

/** Lets pending promise chains run; virtual time does not move. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

class CrashedError extends Error {
  override name = 'CrashedError';
}

/** A view of a durable store that dies with its process: after the crash every operation throws. A crash can be
 * armed to strike inside the n-th next operation, which is then applied or not (atomically) before throwing. */
class CrashableKv implements KvStore {
  alive = true;
  #countdown: number | undefined;
  #applies = false;
  constructor(
    readonly inner: KvStore,
    readonly onCrash: () => void,
  ) {}

  arm(afterOps: number, applies: boolean): void {
    this.#countdown = afterOps;
    this.#applies = applies;
  }

  crash(): void {
    if (!this.alive) return;
    this.alive = false;
    this.onCrash();
  }

  async #op<T>(apply: () => Promise<T>): Promise<T> {
    if (!this.alive) throw new CrashedError('process is gone');
    if (this.#countdown !== undefined && --this.#countdown <= 0) {
      this.#countdown = undefined;
      if (this.#applies) await apply();
      this.crash();
      throw new CrashedError('crashed during a store operation');
    }
    return apply();
  }

  get(key: string): Promise<Uint8Array | undefined> {
    return this.#op(() => this.inner.get(key));
  }
  put(key: string, value: Uint8Array): Promise<void> {
    return this.#op(() => this.inner.put(key, value));
  }
  delete(key: string): Promise<void> {
    return this.#op(() => this.inner.delete(key));
  }
  batch(ops: readonly KvOp[]): Promise<void> {
    return this.#op(() => this.inner.batch(ops));
  }
  async *list(prefix: string): AsyncIterable<[string, Uint8Array]> {
    const entries: Array<[string, Uint8Array]> = [];
    await this.#op(async () => {
      for await (const e of this.inner.list(prefix)) entries.push(e);
    });
    yield* entries;
  }
  async close(): Promise<void> {}
}

type Mode = { t: 'ok' } | { t: 'fail' } | { t: 'ackLost' } | { t: 'hang' } | { t: 'late'; ms: number };

/** One receiving end, shared by both sources: raw arrivals, plus the deduplicated accepted stream. */
class Receiver {
  readonly raw: EventEnvelope[] = [];
  readonly accepted: EventEnvelope[] = [];
  readonly dedupe = new DedupingReceiver();
  modes: Mode[] = [{ t: 'ok' }];
  #n = 0;
  constructor(
    readonly id: string,
    readonly clock: ManualClock,
  ) {}

  #receive(events: readonly EventEnvelope[]): void {
    this.raw.push(...events);
    this.accepted.push(...this.dedupe.accept(events));
  }

  /** The sink a dispatcher uses to reach this receiver. */
  sink(): Sink {
    return {
      id: this.id,
      deliver: (events) => {
        const mode = this.modes[this.#n++ % this.modes.length];
        switch (mode.t) {
          case 'ok':
            this.#receive(events);
            return Promise.resolve();
          case 'fail':
            return Promise.reject(new Error(`${this.id} refused`));
          case 'ackLost':
            this.#receive(events);
            return Promise.reject(new Error(`${this.id} answer lost`));
          case 'hang':
            return new Promise<void>(() => {});
          case 'late':
            // Network latency: the events land later (on the global clock: it outlives a crash of the sender).
            return new Promise<void>((resolve) => {
              this.clock.setTimer(mode.ms, () => {
                this.#receive(events);
                resolve();
              });
            });
        }
      },
    };
  }
}

interface Box {
  source: string;
  store: MemoryKvStore;
  kv?: CrashableKv;
  scope?: ClockScope;
  dispatcher?: EventDispatcher;
  /** Envelopes whose raise resolved. */
  confirmed: Map<string, EventEnvelope>;
  /** Keepers (unique payloads) of raises that were attempted. */
  attempted: Set<string>;
  pending: Set<Promise<unknown>>;
}

type Action =
  | { t: 'raise'; src: number; severity: Severity }
  | { t: 'advance'; ms: number }
  | { t: 'crash'; src: number }
  | { t: 'restart'; src: number }
  | { t: 'shutdown'; src: number }
  | { t: 'arm'; src: number; afterOps: number; applies: boolean }
  | { t: 'modes'; sink: number; modes: Mode[] };

const src = fc.integer({ min: 0, max: 1 });
const mode: fc.Arbitrary<Mode> = fc.oneof(
  { weight: 4, arbitrary: fc.constant<Mode>({ t: 'ok' }) },
  { weight: 2, arbitrary: fc.constant<Mode>({ t: 'fail' }) },
  { weight: 2, arbitrary: fc.constant<Mode>({ t: 'ackLost' }) },
  { weight: 1, arbitrary: fc.constant<Mode>({ t: 'hang' }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 12_000 }).map((ms): Mode => ({ t: 'late', ms })) },
);
const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ t: fc.constant('raise' as const), src, severity: fc.constantFrom<Severity>('normal', 'normal', 'warning', 'failure') }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 25_000 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('crash' as const), src }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('restart' as const), src }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('shutdown' as const), src }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('arm' as const), src, afterOps: fc.integer({ min: 1, max: 12 }), applies: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('modes' as const), sink: fc.integer({ min: 0, max: 2 }), modes: fc.array(mode, { minLength: 1, maxLength: 6 }) }) },
);

async function runScript(script: Action[], maxBatch: number): Promise<{ boxes: Box[]; receivers: Receiver[] }> {
  const clock = new ManualClock(1_700_000_000_000);
  const receivers = ['shared-log', 'admin-ui', 'webhook'].map((id) => new Receiver(id, clock));
  const boxes: Box[] = ['box-a', 'box-b'].map((source) => ({ source, store: new MemoryKvStore(), confirmed: new Map(), attempted: new Set(), pending: new Set() }));
  let counter = 0;

  const crash = (box: Box): void => {
    box.kv?.crash();
  };
  const start = async (box: Box): Promise<void> => {
    if (box.dispatcher) return;
    const scope = clock.scope();
    const kv: CrashableKv = new CrashableKv(box.store, () => {
      // The process dies: its timers die with it, and it is down until restarted.
      scope.drop();
      if (box.kv === kv) {
        box.dispatcher = undefined;
        box.kv = undefined;
        box.scope = undefined;
      }
    });
    box.kv = kv;
    box.scope = scope;
    try {
      const d = await EventDispatcher.open({
        kv,
        clock: scope.clock,
        source: box.source,
        sinks: receivers.map((r) => r.sink()),
        batchIntervalMs: 10_000,
        deliverTimeoutMs: 5_000,
        maxBatch,
        backoff: { initialMs: 500, maxMs: 8_000 },
      });
      if (box.kv === kv) box.dispatcher = d;
    } catch {
      // Crashed while opening: still down.
    }
  };
  const raise = (box: Box, severity: Severity): void => {
    const d = box.dispatcher;
    if (!d) return;
    const keeper = `${box.source}-k${counter++}`;
    box.attempted.add(keeper);
    const p = d.raise({ kind: 'keeper-added', severity: severity, payload: { keeper } } as never).then(
      (e) => void box.confirmed.set(e.id, e as EventEnvelope),
      () => {},
    );
    box.pending.add(p);
    void p.finally(() => box.pending.delete(p));
  };

  for (const box of boxes) await start(box);
  for (const a of script) {
    switch (a.t) {
      case 'raise':
        raise(boxes[a.src], a.severity);
        break;
      case 'advance':
        await clock.advanceAsync(a.ms, settle);
        break;
      case 'crash':
        crash(boxes[a.src]);
        break;
      case 'restart':
        await start(boxes[a.src]);
        break;
      case 'shutdown': {
        // A clean stop: close (in-flight work settles; hung deliveries are bounded by the timeout, so time runs
        // meanwhile), then the Box is down until restarted. A crash armed to strike inside close takes the process
        // down instead: its timers die with it, so nothing settles close, and the Box is down just the same.
        const box = boxes[a.src];
        const d = box.dispatcher;
        if (!d) break;
        const kv = box.kv;
        const crashed = (): boolean => box.kv !== kv;
        const closing = d.close().then(
          () => true,
          (e: unknown) => {
            if (crashed()) return true;
            throw e;
          },
        );
        while (!crashed() && !(await Promise.race([closing, settle().then(() => false)]))) await clock.advanceAsync(1_000, settle);
        box.dispatcher = undefined;
        box.kv = undefined;
        box.scope?.drop();
        box.scope = undefined;
        if (kv) kv.alive = false;
        break;
      }
      case 'arm':
        boxes[a.src].kv?.arm(a.afterOps, a.applies);
        break;
      case 'modes':
        receivers[a.sink].modes = a.modes;
        break;
    }
    await settle();
  }

  // Heal: sinks behave, armed crashes are disarmed, downed Boxes come back, time runs until the outboxes drain.
  for (const r of receivers) r.modes = [{ t: 'ok' }];
  for (const box of boxes) box.kv?.arm(Number.POSITIVE_INFINITY, false);
  for (let round = 0; round < 200; round++) {
    for (const box of boxes) await start(box);
    await Promise.all(boxes.flatMap((b) => [...b.pending]));
    const drained = boxes.every((b) => {
      const s = b.dispatcher?.status();
      return s !== undefined && s.outbox === 0 && s.sinks.every((x) => x.pending === 0);
    });
    if (drained && clock.pending === 0) break;
    await clock.advanceAsync(10_000, settle);
  }
  return { boxes, receivers };
}

async function outboxKeys(kv: KvStore): Promise<string[]> {
  const out: string[] = [];
  for await (const [k] of kv.list('events/outbox/')) out.push(k);
  return out;
}

/** What the property asserts of a finished run (see the file's header). */
async function checkDelivery({ boxes, receivers }: { boxes: Box[]; receivers: Receiver[] }): Promise<void> {
  for (const box of boxes) {
    expect(box.dispatcher, `${box.source} is up at the end`).toBeDefined();
    expect(await outboxKeys(box.store), `${box.source} outbox drained`).toEqual([]);
  }
  for (const r of receivers) {
    const ids = r.accepted.map((e) => e.id);
    expect(new Set(ids).size, `${r.id}: accepted once each`).toBe(ids.length);
    for (const box of boxes) {
      const mine = r.accepted.filter((e) => e.source === box.source);
      // Every confirmed event arrived, intact.
      for (const [id, e] of box.confirmed) {
        const got = mine.find((x) => x.id === id);
        expect(got, `${r.id} got ${id}`).toEqual(e);
      }
      // Nothing that was not raised.
      for (const e of mine) {
        expect(e.kind).toBe('keeper-added');
        expect(box.attempted.has((e.payload as { keeper: string }).keeper), `${e.id} was raised`).toBe(true);
      }
      // First arrivals on the raw stream are in seq order.
      const seen = new Set<string>();
      let last = 0;
      for (const e of r.raw) {
        if (e.source !== box.source || seen.has(e.id)) continue;
        seen.add(e.id);
        expect(e.seq, `${r.id}: ${e.id} first arrived after seq ${last}`).toBeGreaterThan(last);
        last = e.seq;
      }
      expect(seen.size).toBe(mine.length);
    }
  }
}

/** The run that found the shutdown hang (see the regression test below). */
const CRASH_IN_CLOSE: Action[] = [
  { t: 'raise', src: 0, severity: 'warning' },
  { t: 'modes', sink: 1, modes: [{ t: 'late', ms: 2930 }, { t: 'ackLost' }, { t: 'ok' }, { t: 'fail' }] },
  { t: 'modes', sink: 0, modes: [{ t: 'ok' }, { t: 'ok' }, { t: 'ackLost' }, { t: 'hang' }, { t: 'late', ms: 8212 }, { t: 'ok' }] },
  { t: 'raise', src: 0, severity: 'warning' },
  { t: 'crash', src: 0 },
  { t: 'restart', src: 0 },
  { t: 'arm', src: 0, afterOps: 4, applies: false },
  { t: 'modes', sink: 2, modes: [{ t: 'hang' }] },
  { t: 'raise', src: 0, severity: 'failure' },
  { t: 'raise', src: 1, severity: 'warning' },
  { t: 'modes', sink: 1, modes: [{ t: 'late', ms: 4641 }, { t: 'late', ms: 1599 }, { t: 'fail' }, { t: 'ok' }] },
  { t: 'raise', src: 0, severity: 'normal' },
  { t: 'raise', src: 1, severity: 'warning' },
  { t: 'advance', ms: 15847 },
  { t: 'restart', src: 0 },
  { t: 'advance', ms: 22753 },
  { t: 'arm', src: 0, afterOps: 5, applies: true },
  { t: 'advance', ms: 18465 },
  { t: 'raise', src: 0, severity: 'normal' },
  { t: 'raise', src: 0, severity: 'failure' },
  { t: 'raise', src: 0, severity: 'warning' },
  { t: 'raise', src: 0, severity: 'warning' },
  { t: 'shutdown', src: 0 },
];

describe('durable dispatch under crashes, sink failures and restarts', () => {
  it('delivers every raised event to every sink, exactly once after dedupe, in per-source order', async () => {
    const name = 'events: no raised event is lost or duplicated at a receiver';
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 10, maxLength: 80, size: 'large' }), fc.integer({ min: 1, max: 8 }), async (script, maxBatch) =>
        checkDelivery(await runScript(script, maxBatch)),
      ),
      propertyOptions(name, { numRuns: 150 }),
    );
  });

  // Found by the property above under RESERVE_SEED=424242 with 4x its runs (shrunk by hand: the run never ended, so
  // fast-check could not shrink it). A crash armed inside a clean shutdown struck while close waited on a hung
  // sink: the crash dropped the timers that bound the wait, and the harness waited for close forever (to 4 GB).
  it('regression: a crash striking inside a clean shutdown leaves the Box down and loses nothing', async () => {
    checkDelivery(await runScript(CRASH_IN_CLOSE, 7));
  });

  it('actually exercises crashes, re-delivery and deduplication (sanity of the harness)', async () => {
    const script: Action[] = [
      { t: 'modes', sink: 0, modes: [{ t: 'ackLost' }, { t: 'ok' }] },
      { t: 'raise', src: 0, severity: 'warning' },
      { t: 'raise', src: 0, severity: 'normal' },
      { t: 'arm', src: 0, afterOps: 2, applies: true },
      { t: 'raise', src: 0, severity: 'failure' },
      { t: 'raise', src: 0, severity: 'failure' },
      { t: 'advance', ms: 20_000 },
      { t: 'restart', src: 0 },
      { t: 'raise', src: 0, severity: 'warning' },
    ];
    const { boxes, receivers } = await runScript(script, 4);
    const log = receivers[0];
    expect(log.raw.length).toBeGreaterThan(log.accepted.length);
    expect(boxes[0].confirmed.size).toBeGreaterThanOrEqual(2);
    for (const id of boxes[0].confirmed.keys()) expect(log.accepted.map((e) => e.id)).toContain(id);
  });
});
