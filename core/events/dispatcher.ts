/**
 * Durable event dispatch. `raise` writes the event to a local outbox in the Box's KvStore (with the source's seq
 * counter, in one atomic batch) before it resolves: from then on the event counts as raised and survives a crash.
 * Delivery then runs per sink (the shared event log, the admin UI, a webhook, the CLI), each with its own
 * acknowledged cursor in the KvStore:
 *
 * - warnings and failures are released for delivery at once; normal events wait for the next batch tick
 *   (`batchIntervalMs` after the first undelivered normal event). Releasing is by seq, so an urgent event also
 *   carries every earlier normal event with it: per-source order is never broken.
 * - a sink receives events in seq order, in batches of at most `maxBatch`. When `deliver` resolves the cursor
 *   advances (durably); when it rejects or times out, the same events are offered again after an exponential
 *   backoff. Delivery is therefore at least once; receivers dedupe (see receiver.ts).
 * - after a crash, a new dispatcher over the same KvStore reloads the outbox, the seq counter and the cursors, and
 *   re-delivers everything not acknowledged, at once.
 * - events acknowledged by every attached sink are pruned from the outbox. Events stay while no sink is attached;
 *   a sink that is wired later (the shared log once its document is ready) should be attached from the start as a
 *   DeferredSink (sinks.ts), which fails until ready so that nothing is pruned before it has them.
 *
 * One dispatcher per (KvStore, prefix); its events are its own Box's (one source).
 */
import * as dagCbor from '@ipld/dag-cbor';
import { ReserveError } from '../errors.ts';
import type { KvOp, KvStore } from '../kv.ts';
import type { BoxId } from '../net.ts';
import type { AbortOptions, Clock, Random } from '../ports.ts';
import { decodeEvent, encodeEvent, eventId, validateDraft } from './types.ts';
import type { EventDraft, EventEnvelope, EventKind } from './types.ts';

/** Where events go. `deliver` resolves once the events are safely received; rejecting means "offer them again". */
export interface Sink {
  readonly id: string;
  deliver(events: readonly EventEnvelope[], options: AbortOptions): Promise<void>;
}

export interface RaiseOptions {
  /** Extra KvStore writes applied in the same atomic batch as the event (for condition records). */
  ops?: (event: EventEnvelope) => readonly KvOp[];
}

/** The part of the dispatcher that raising code needs (the condition tracker, health, limitation watcher). */
export interface EventRaiser {
  /** The store events are written to; `RaiseOptions.ops` apply to it. */
  readonly kv: KvStore;
  raise<K extends EventKind>(draft: EventDraft<K>, options?: RaiseOptions): Promise<EventEnvelope<K>>;
}

export interface BackoffOptions {
  /** First retry delay. Default 1 s. */
  initialMs?: number;
  /** Longest delay. Default 5 min. */
  maxMs?: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
}

export interface DispatcherOptions {
  kv: KvStore;
  clock: Clock;
  /** This Box. */
  source: BoxId;
  sinks?: readonly Sink[];
  /** Key prefix in the KvStore. Default 'events/'. */
  prefix?: string;
  /** How often normal events are dispatched. Default 60 s. A function is read again while a batch waits, so the
   * interval follows a setting that changes (the shared config's events.normalFrequencyMs): a pending batch goes
   * out `interval` after its first event, with the interval in force at that time (see `batchRecheckMs`). */
  batchIntervalMs?: number | (() => number);
  /** With a function `batchIntervalMs`: a waiting batch re-reads the interval at least this often, so a shortened
   * interval takes effect within this delay. Default 60 s. */
  batchRecheckMs?: number;
  /** Most events in one `deliver` call. Default 256. */
  maxBatch?: number;
  /** A `deliver` that has not settled by then counts as failed (its signal is aborted). Default 30 s. */
  deliverTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** When given, retry delays are jittered (between half and all of the backoff delay). */
  random?: Random;
  /** Seq of the first event of a brand-new outbox. Default 1. A Box re-created under an old identity should
   * start above the highest seq the shared log holds for it, or receivers will drop its events as duplicates. */
  initialSeq?: number;
  /** Delivery failures and store problems (never thrown: delivery goes on). */
  onError?: (error: unknown, context: { sink?: string; attempt?: number }) => void;
}

export interface SinkStatus {
  id: string;
  /** Highest seq the sink acknowledged. */
  cursor: number;
  /** Events in the outbox it has not acknowledged. */
  pending: number;
  /** Consecutive failed attempts (0 when healthy). */
  attempt: number;
  lastError?: string;
}

export interface DispatcherStatus {
  source: BoxId;
  /** Seq of the latest raised event (0 when none yet). */
  lastSeq: number;
  /** Events in the outbox (not yet acknowledged by every sink). */
  outbox: number;
  sinks: SinkStatus[];
}

export class DispatcherClosedError extends ReserveError {
  static override readonly name = 'DispatcherClosedError';
  constructor() {
    super('the event dispatcher is closed');
  }
}

export class SinkTimeoutError extends ReserveError {
  static override readonly name = 'SinkTimeoutError';
  constructor(
    readonly sink: string,
    readonly timeoutMs: number,
  ) {
    super(`sink ${sink} did not acknowledge within ${timeoutMs} ms`);
  }
}

export class DuplicateSinkError extends ReserveError {
  static override readonly name = 'DuplicateSinkError';
  constructor(readonly sink: string) {
    super(`a sink with id ${JSON.stringify(sink)} is already attached`);
  }
}

/** A stored record of the outbox (a counter, a cursor or an event) could not be read; it was skipped. */
export class OutboxCorruptError extends ReserveError {
  static override readonly name = 'OutboxCorruptError';
}

/** The retry delay after `attempt` consecutive failures (attempt >= 1). */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random?: Random): number {
  const initial = options.initialMs ?? 1_000;
  const max = options.maxMs ?? 300_000;
  const factor = options.factor ?? 2;
  const base = Math.min(max, initial * Math.pow(factor, Math.max(0, attempt - 1)));
  if (!random) return base;
  return base / 2 + (random.u32() / 0x1_0000_0000) * (base / 2);
}

interface SinkState {
  sink: Sink;
  cursor: number;
  attempt: number;
  pumping: boolean;
  idle: Promise<void>;
  cancelRetry?: () => void;
  lastError?: string;
}

const SEQ_DIGITS = 16;

function encodeNumber(n: number): Uint8Array {
  return dagCbor.encode(n);
}

function decodeSeq(bytes: Uint8Array): number {
  const n = dagCbor.decode(bytes);
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new OutboxCorruptError(`not a seq: ${String(n)}`);
  return n;
}

export class EventDispatcher implements EventRaiser {
  readonly kv: KvStore;
  readonly source: BoxId;
  readonly #clock: Clock;
  readonly #prefix: string;
  readonly #batchInterval: () => number;
  /** 0 when the interval is a constant (the batch timer then fires once). */
  readonly #batchRecheckMs: number;
  readonly #maxBatch: number;
  readonly #deliverTimeoutMs: number;
  readonly #backoff: BackoffOptions;
  readonly #random?: Random;
  readonly #onError: (error: unknown, context: { sink?: string; attempt?: number }) => void;
  /** Unacknowledged-by-all events, ascending seq. */
  readonly #outbox: EventEnvelope[] = [];
  readonly #sinks = new Map<string, SinkState>();
  /** Stored cursors, including those of sinks not attached now. */
  readonly #cursors = new Map<string, number>();
  #seq = 0;
  /** Events with seq <= released may be delivered. */
  #released = 0;
  #cancelBatch?: () => void;
  /** When the first normal event of the waiting batch was scheduled. */
  #batchSince = 0;
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(options: DispatcherOptions) {
    this.kv = options.kv;
    this.source = options.source;
    this.#clock = options.clock;
    this.#prefix = options.prefix ?? 'events/';
    const interval = options.batchIntervalMs ?? 60_000;
    this.#batchInterval = typeof interval === 'function' ? interval : () => interval;
    this.#batchRecheckMs = typeof interval === 'function' ? Math.max(1, options.batchRecheckMs ?? 60_000) : 0;
    this.#maxBatch = Math.max(1, options.maxBatch ?? 256);
    this.#deliverTimeoutMs = options.deliverTimeoutMs ?? 30_000;
    this.#backoff = options.backoff ?? {};
    this.#random = options.random;
    this.#onError = options.onError ?? (() => {});
  }

  /** Load the outbox, counter and cursors from `options.kv`, attach the sinks and re-deliver what is pending. */
  static async open(options: DispatcherOptions): Promise<EventDispatcher> {
    const d = new EventDispatcher(options);
    await d.#load(options.initialSeq ?? 1);
    for (const sink of options.sinks ?? []) d.#attach(sink);
    await d.#prune();
    return d;
  }

  #outboxKey(seq: number): string {
    return `${this.#prefix}outbox/${String(seq).padStart(SEQ_DIGITS, '0')}`;
  }

  #cursorKey(sinkId: string): string {
    return `${this.#prefix}cursor/${encodeURIComponent(sinkId)}`;
  }

  get #seqKey(): string {
    return `${this.#prefix}seq`;
  }

  async #load(initialSeq: number): Promise<void> {
    let counter = Math.max(0, Math.floor(initialSeq) - 1);
    const stored = await this.kv.get(this.#seqKey);
    if (stored !== undefined) {
      try {
        counter = Math.max(counter, decodeSeq(stored));
      } catch (error) {
        this.#onError(new OutboxCorruptError('the event seq counter is unreadable; continuing after the outbox', { cause: error }), {});
      }
    }
    const broken: string[] = [];
    for await (const [key, value] of this.kv.list(`${this.#prefix}outbox/`)) {
      try {
        const e = decodeEvent(value);
        if (e.source !== this.source || key !== this.#outboxKey(e.seq)) throw new OutboxCorruptError(`outbox entry ${key} holds event ${e.id}`);
        this.#outbox.push(e);
      } catch (error) {
        broken.push(key);
        this.#onError(new OutboxCorruptError(`outbox entry ${key} is unreadable and was dropped`, { cause: error }), {});
      }
    }
    if (broken.length > 0) await this.kv.batch(broken.map((key) => ({ type: 'delete' as const, key })));
    this.#outbox.sort((a, b) => a.seq - b.seq);
    const lastInOutbox = this.#outbox.length > 0 ? this.#outbox[this.#outbox.length - 1].seq : 0;
    this.#seq = Math.max(counter, lastInOutbox);
    for await (const [key, value] of this.kv.list(`${this.#prefix}cursor/`)) {
      const id = decodeURIComponent(key.slice(`${this.#prefix}cursor/`.length));
      try {
        this.#cursors.set(id, decodeSeq(value));
      } catch (error) {
        this.#onError(new OutboxCorruptError(`the cursor of sink ${id} is unreadable; it starts over`, { cause: error }), { sink: id });
      }
    }
    // Whatever was raised before a restart is due now.
    this.#released = this.#seq;
  }

  /**
   * Raise an event: it is durable in the outbox when this resolves. Warnings and failures are dispatched at once,
   * normal events at the next batch tick. Throws MalformedEventError for an invalid draft, DispatcherClosedError
   * after close, and the store's error when the write fails (the event is then not raised).
   */
  raise<K extends EventKind>(draft: EventDraft<K>, options: RaiseOptions = {}): Promise<EventEnvelope<K>> {
    if (this.#closed) return Promise.reject(new DispatcherClosedError());
    let clean: EventDraft<K>;
    try {
      clean = validateDraft(draft);
    } catch (error) {
      return Promise.reject(error);
    }
    // Raises are serialized: seq order = outbox order = delivery order, even when the store is slow.
    const run = this.#tail.then(async () => {
      if (this.#closed) throw new DispatcherClosedError();
      const seq = this.#seq + 1;
      const event = {
        id: eventId(this.source, seq),
        source: this.source,
        seq,
        time: this.#clock.now(),
        severity: clean.severity,
        kind: clean.kind,
        payload: clean.payload,
      } as EventEnvelope<K>;
      const ops: KvOp[] = [
        { type: 'put', key: this.#outboxKey(seq), value: encodeEvent(event) },
        { type: 'put', key: this.#seqKey, value: encodeNumber(seq) },
        ...(options.ops?.(event) ?? []),
      ];
      // A seq is never reused, even when the write fails (it may have landed).
      this.#seq = seq;
      await this.kv.batch(ops);
      this.#outbox.push(event);
      this.#schedule(event);
      return event;
    });
    this.#tail = run.catch(() => {});
    return run;
  }

  #schedule(event: EventEnvelope): void {
    if (this.#closed) return;
    if (event.severity !== 'normal') {
      this.#releaseAll();
      this.#kickAll();
    } else if (this.#cancelBatch === undefined) {
      this.#batchSince = this.#clock.now();
      this.#armBatch();
    }
  }

  /** The current batch interval (a bad value from a setting counts as the 1 s minimum). */
  #interval(): number {
    let ms: number;
    try {
      ms = this.#batchInterval();
    } catch (error) {
      this.#onError(error, {});
      ms = 1_000;
    }
    return Number.isFinite(ms) ? Math.max(0, ms) : 1_000;
  }

  /** Wait for the batch's due time (re-reading the interval every `batchRecheckMs` when it may change). */
  #armBatch(): void {
    const remaining = this.#batchSince + this.#interval() - this.#clock.now();
    if (remaining <= 0 && this.#batchRecheckMs > 0) {
      this.#cancelBatch = undefined;
      this.#releaseAll();
      this.#kickAll();
      return;
    }
    const wait = this.#batchRecheckMs > 0 ? Math.min(remaining, this.#batchRecheckMs) : Math.max(0, remaining);
    this.#cancelBatch = this.#clock.setTimer(wait, () => {
      this.#cancelBatch = undefined;
      if (this.#closed) return;
      if (this.#batchRecheckMs === 0) {
        this.#releaseAll();
        this.#kickAll();
      } else this.#armBatch();
    });
  }

  #releaseAll(): void {
    this.#released = this.#seq;
    if (this.#cancelBatch) {
      this.#cancelBatch();
      this.#cancelBatch = undefined;
    }
  }

  #kickAll(): void {
    for (const st of this.#sinks.values()) this.#kick(st);
  }

  #attach(sink: Sink): SinkState {
    if (this.#sinks.has(sink.id)) throw new DuplicateSinkError(sink.id);
    const st: SinkState = { sink, cursor: this.#cursors.get(sink.id) ?? 0, attempt: 0, pumping: false, idle: Promise.resolve() };
    this.#sinks.set(sink.id, st);
    this.#kick(st);
    return st;
  }

  /** Attach a sink; it receives every event still in the outbox that it has not acknowledged before. */
  addSink(sink: Sink): void {
    if (this.#closed) throw new DispatcherClosedError();
    this.#attach(sink);
  }

  /** Detach a sink. Its cursor is kept, but events it has not acknowledged may now be pruned. */
  removeSink(id: string): void {
    const st = this.#sinks.get(id);
    if (!st) return;
    st.cancelRetry?.();
    st.cancelRetry = undefined;
    this.#sinks.delete(id);
  }

  #kick(st: SinkState): void {
    if (this.#closed || st.pumping || st.cancelRetry !== undefined) return;
    st.pumping = true;
    st.idle = this.#pump(st);
  }

  /** Events after `cursor` that are released, at most maxBatch. */
  #batchFor(cursor: number): EventEnvelope[] {
    let lo = 0;
    let hi = this.#outbox.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#outbox[mid].seq <= cursor) lo = mid + 1;
      else hi = mid;
    }
    const out: EventEnvelope[] = [];
    for (let i = lo; i < this.#outbox.length && out.length < this.#maxBatch; i++) {
      if (this.#outbox[i].seq > this.#released) break;
      out.push(this.#outbox[i]);
    }
    return out;
  }

  async #pump(st: SinkState): Promise<void> {
    try {
      for (;;) {
        const batch = this.#batchFor(st.cursor);
        // `pumping` is cleared synchronously with the decision to stop, so a raise that lands right after
        // always finds the sink idle and kicks it again.
        if (batch.length === 0 || this.#closed || this.#sinks.get(st.sink.id) !== st) {
          st.pumping = false;
          return;
        }
        const last = batch[batch.length - 1].seq;
        try {
          await this.#deliver(st.sink, batch);
          await this.kv.put(this.#cursorKey(st.sink.id), encodeNumber(last));
        } catch (error) {
          st.attempt++;
          st.lastError = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
          this.#onError(error, { sink: st.sink.id, attempt: st.attempt });
          st.pumping = false;
          if (!this.#closed && this.#sinks.get(st.sink.id) === st) {
            st.cancelRetry = this.#clock.setTimer(backoffDelay(st.attempt, this.#backoff, this.#random), () => {
              st.cancelRetry = undefined;
              this.#kick(st);
            });
          }
          return;
        }
        st.cursor = Math.max(st.cursor, last);
        this.#cursors.set(st.sink.id, st.cursor);
        st.attempt = 0;
        st.lastError = undefined;
        await this.#prune();
      }
    } catch (error) {
      // Not expected (every store/sink call above is guarded); never leave the sink stuck.
      st.pumping = false;
      this.#onError(error, { sink: st.sink.id });
    }
  }

  async #deliver(sink: Sink, batch: readonly EventEnvelope[]): Promise<void> {
    const controller = new AbortController();
    let cancelTimer: (() => void) | undefined;
    const timeout = new Promise<never>((_, reject) => {
      cancelTimer = this.#clock.setTimer(this.#deliverTimeoutMs, () => {
        controller.abort();
        reject(new SinkTimeoutError(sink.id, this.#deliverTimeoutMs));
      });
    });
    const delivery = Promise.resolve().then(() => sink.deliver(batch.slice(), { signal: controller.signal }));
    delivery.catch(() => {});
    try {
      await Promise.race([delivery, timeout]);
    } finally {
      cancelTimer?.();
    }
  }

  /** Drop events every attached sink acknowledged. */
  async #prune(): Promise<void> {
    if (this.#sinks.size === 0) return;
    let min = Infinity;
    for (const st of this.#sinks.values()) min = Math.min(min, st.cursor);
    let n = 0;
    while (n < this.#outbox.length && this.#outbox[n].seq <= min) n++;
    if (n === 0) return;
    const gone = this.#outbox.splice(0, n);
    try {
      await this.kv.batch(gone.map((e) => ({ type: 'delete' as const, key: this.#outboxKey(e.seq) })));
    } catch (error) {
      // Harmless: the entries are reloaded after a restart, found acknowledged, and pruned again.
      this.#onError(error, {});
    }
  }

  /**
   * Release everything now (normal events too), give every sink one immediate attempt (ignoring backoff), and wait
   * until each sink has caught up or failed. For shutdown and for tests.
   */
  async flush(): Promise<DispatcherStatus> {
    await this.#tail;
    if (this.#closed) return this.status();
    this.#releaseAll();
    for (const st of this.#sinks.values()) {
      if (st.cancelRetry) {
        st.cancelRetry();
        st.cancelRetry = undefined;
      }
      this.#kick(st);
    }
    await Promise.all([...this.#sinks.values()].map((st) => st.idle));
    return this.status();
  }

  status(): DispatcherStatus {
    return {
      source: this.source,
      lastSeq: this.#seq,
      outbox: this.#outbox.length,
      sinks: [...this.#sinks.values()].map((st) => ({
        id: st.sink.id,
        cursor: st.cursor,
        pending: this.#outbox.filter((e) => e.seq > st.cursor).length,
        attempt: st.attempt,
        ...(st.lastError !== undefined ? { lastError: st.lastError } : {}),
      })),
    };
  }

  /** Stop timers and deliveries (in-flight ones settle first). Does not close the KvStore. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelBatch?.();
    this.#cancelBatch = undefined;
    for (const st of this.#sinks.values()) {
      st.cancelRetry?.();
      st.cancelRetry = undefined;
    }
    await this.#tail;
    await Promise.all([...this.#sinks.values()].map((st) => st.idle));
  }
}
