/**
 * Virtual time for the simulated world: one event queue ordered by (virtual time, insertion order), a `Clock` view
 * per Box incarnation, and the run loops (`runFor`, `runUntil`, `settle`, `step`) that drive it.
 *
 * ## How promise-driven code stays deterministic
 * Core code is written with Promises. The only things that make such code nondeterministic are *macrotask*
 * sources (real timers, real I/O, worker threads) racing with each other; the microtask queue itself is strictly
 * FIFO and a function of the program alone. In the simulated world nothing real is ever scheduled: every timer,
 * message delivery and disk completion is an event in this queue, and ports settle their promises only from
 * inside events (or synchronously, for reads). The run loop pops one event, runs its callback, then *drains*:
 * it continues only once the microtask queue is completely empty (a `process.nextTick` queued from a microtask, or
 * a `setImmediate`, see #loop). So every event's consequences (all the `await` continuations it
 * unblocks, transitively) finish at that event's virtual instant, before the next event runs, in an order fixed
 * by the program and the seed. The `setImmediate` lives here in the runner only; core never sees it.
 *
 * What this cannot make deterministic: core code that awaits a real macrotask (real `setTimeout`, file I/O,
 * `crypto.subtle`, worker threads). Such a continuation would land after an arbitrary number of events. Core must
 * take all of those through ports (the purity test enforces the obvious ones); hashing is synchronous (cid.ts).
 * A `process.nextTick` queued by simulated code from inside a microtask stays deterministic but may run in the
 * next event's turn (core has no reason to use it: it is Node-only).
 *
 * Events marked `pure` run no user code (internal bookkeeping such as a message reaching a receiver's downlink
 * queue) and skip the drain, which keeps large runs cheap.
 */
import type { Clock } from '../../core/ports.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { SimReentrancyError, SimStallError } from './errors.ts';

/** Events between turns of the real event loop while a run loop is going. */
const YIELD_EVERY = 1000;

/** 2025-01-01T00:00:00Z: virtual `Clock.now()` starts here unless a world says otherwise. */
export const DEFAULT_EPOCH_MS = 1_735_689_600_000;

interface SimEvent {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
  pure: boolean;
}

export interface ScheduleOptions {
  /** The callback runs no user code, so the loop need not drain microtasks after it. */
  pure?: boolean;
}

export interface RunUntilOptions {
  /** Give up after this much virtual time. */
  maxMs: number;
  /** Evaluate the predicate every `everyMs` of virtual time instead of after every event (for costly predicates). */
  everyMs?: number;
}

export interface RunUntilResult {
  /** The predicate became true. */
  ok: boolean;
  /** Virtual ms spent in this call. */
  elapsedMs: number;
  /** The queue ran dry before the predicate held or time ran out: nothing could ever change. */
  idle: boolean;
}

export class Scheduler {
  /** `Clock.now()` at virtual time 0. */
  readonly epochMs: number;
  #now = 0;
  #seq = 0;
  readonly #heap: SimEvent[] = [];
  #live = 0;
  #running = false;
  #failure: { error: unknown } | undefined;
  #autoRun = false;
  #pumping = false;
  /** Events run so far. */
  eventsRun = 0;

  constructor(options: { epochMs?: number } = {}) {
    this.epochMs = options.epochMs ?? DEFAULT_EPOCH_MS;
  }

  /** Virtual milliseconds since the start of the run (fractional: transfers take fractions of a ms). */
  get elapsed(): number {
    return this.#now;
  }

  /** `Clock.now()`: whole milliseconds since the Unix epoch, like Date.now(). */
  now(): number {
    return this.epochMs + Math.floor(this.#now);
  }

  /** Live (not cancelled) events waiting. */
  get pending(): number {
    return this.#live;
  }

  /** True while a run loop is executing (an event or its microtasks are running). */
  get running(): boolean {
    return this.#running;
  }

  /** The first failure recorded (an event callback threw, or `panic` was called); runs rethrow it. */
  get failure(): unknown {
    return this.#failure?.error;
  }

  /** Run `fn` at virtual time `time` (clamped to now); ties run in the order they were scheduled. */
  at(time: number, fn: () => void, options: ScheduleOptions = {}): () => void {
    if (Number.isNaN(time)) throw new InvalidInputError('cannot schedule an event at NaN');
    const ev: SimEvent = { at: Math.max(time, this.#now), seq: this.#seq++, fn, cancelled: false, pure: options.pure === true };
    this.#push(ev);
    this.#live++;
    if (this.#autoRun && !this.#pumping) this.#startPump();
    return () => {
      if (!ev.cancelled) {
        ev.cancelled = true;
        this.#live--;
      }
    };
  }

  /** Run `fn` after `ms` virtual milliseconds (negative or NaN delays count as 0). */
  after(ms: number, fn: () => void, options: ScheduleOptions = {}): () => void {
    return this.at(this.#now + (ms > 0 ? ms : 0), fn, options);
  }

  /** Virtual time of the next live event, if any. */
  nextAt(): number | undefined {
    this.#dropCancelled();
    return this.#heap[0]?.at;
  }

  /** Record a failure that must end the run (the first one wins); the running loop rethrows it. */
  fail(error: unknown): void {
    this.#failure ??= { error };
  }

  /**
   * Free-running mode for plain tests of a single component (say, a SimDisk under a storage acceptance suite):
   * whenever events are queued and no loop is running, a background loop runs them all, advancing virtual time.
   * Never use it with periodic timers (it would spin forever) or together with runFor/runUntil.
   */
  autoRun(on: boolean): void {
    this.#autoRun = on;
    if (on && this.#live > 0 && !this.#pumping) this.#startPump();
  }

  /** Advance virtual time by `ms`, running every event due up to and including the target instant. */
  async runFor(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new InvalidInputError(`runFor needs a non-negative duration, got ${ms}`);
    const target = this.#now + ms;
    await this.#loop(target, undefined);
    if (this.#now < target) this.#now = target;
  }

  /** Run one event (and its consequences). Returns false when the queue is empty. */
  async step(): Promise<boolean> {
    const next = this.nextAt();
    if (next === undefined) return false;
    await this.#loop(next, undefined, 1);
    return true;
  }

  /** Run until `predicate` holds, at most `maxMs` of virtual time. */
  async runUntil(predicate: () => boolean, options: RunUntilOptions): Promise<RunUntilResult> {
    const start = this.#now;
    const deadline = start + options.maxMs;
    const every = options.everyMs;
    if (every !== undefined && !(every > 0)) throw new InvalidInputError(`everyMs must be positive, got ${every}`);
    if (every === undefined) {
      const ok = await this.#loop(deadline, predicate);
      const idle = !ok && this.#live === 0;
      if (!ok && !idle && this.#now < deadline) this.#now = deadline;
      return { ok, elapsedMs: this.#now - start, idle };
    }
    for (;;) {
      await this.#loop(this.#now, undefined);
      if (predicate()) return { ok: true, elapsedMs: this.#now - start, idle: false };
      if (this.#now >= deadline) return { ok: false, elapsedMs: this.#now - start, idle: false };
      if (this.#live === 0) return { ok: false, elapsedMs: this.#now - start, idle: true };
      await this.runFor(Math.min(every, deadline - this.#now));
    }
  }

  /**
   * Run the world until `promise` settles and return its outcome (rethrowing its rejection). Throws SimStallError
   * when it is still pending after `maxMs` of virtual time or when nothing is left that could settle it.
   */
  async settle<T>(promise: Promise<T>, options: { maxMs?: number; what?: string } = {}): Promise<T> {
    let done = false;
    const observed = promise.then(
      (value) => {
        done = true;
        return value;
      },
      (error: unknown) => {
        done = true;
        throw error;
      },
    );
    observed.catch(() => undefined); // the rejection is rethrown below, not left unhandled meanwhile
    const maxMs = options.maxMs ?? 3_600_000;
    const result = await this.runUntil(() => done, { maxMs });
    if (!result.ok) throw new SimStallError(options.what ?? 'the awaited operation', result.elapsedMs, result.idle);
    return observed;
  }

  /**
   * Run events due up to `deadline` until `stop` holds (checked first, and after each non-pure event).
   *
   * The drain between events: after a non-pure event the loop queues a microtask that queues a `process.nextTick`
   * continuation. Node runs the nextTick queue only once V8's microtask checkpoint has emptied the microtask queue,
   * including every microtask queued while draining; so the continuation starts exactly when everything the event
   * set off has finished. This trampoline costs a fraction of a `setImmediate` turn. Every `YIELD_EVERY` events
   * the loop continues through `setImmediate` instead, which also drains and lets the real event loop breathe
   * (test-runner timers, IPC); neither choice affects what the simulation computes.
   */
  #loop(deadline: number, stop: (() => boolean) | undefined, maxEvents = Infinity): Promise<boolean> {
    if (this.#running) return Promise.reject(new SimReentrancyError());
    this.#running = true;
    return new Promise<boolean>((resolve, reject) => {
      let ran = 0;
      let sinceYield = 0;
      const done = (error: { error: unknown } | undefined, value: boolean): void => {
        this.#running = false;
        if (error !== undefined) reject(error.error);
        else resolve(value);
      };
      const next = (): void => {
        try {
          if (this.#failure !== undefined) return done(this.#failure, false);
          if (stop?.() === true) return done(undefined, true);
          for (;;) {
            this.#dropCancelled();
            const ev = this.#heap[0];
            if (ev === undefined || ev.at > deadline || ran >= maxEvents) return done(undefined, false);
            this.#pop();
            this.#live--;
            ev.cancelled = true;
            if (ev.at > this.#now) this.#now = ev.at;
            this.eventsRun++;
            ran++;
            try {
              ev.fn();
            } catch (error) {
              this.fail(error);
            }
            if (!ev.pure) {
              // Drain this event's microtasks, then go on.
              if (++sinceYield >= YIELD_EVERY) {
                sinceYield = 0;
                setImmediate(next);
              } else {
                queueMicrotask(() => process.nextTick(next));
              }
              return;
            }
            if (this.#failure !== undefined) return done(this.#failure, false);
          }
        } catch (error) {
          done({ error }, false);
        }
      };
      setImmediate(next);
    });
  }

  #startPump(): void {
    this.#pumping = true;
    setImmediate(() => {
      const pump = async (): Promise<void> => {
        try {
          while (this.#autoRun && this.#live > 0 && !this.#running) await this.#loop(Infinity, undefined);
        } catch (error) {
          this.fail(error);
        } finally {
          this.#pumping = false;
        }
      };
      void pump();
    });
  }

  #dropCancelled(): void {
    while (this.#heap.length > 0 && this.#heap[0].cancelled) this.#pop();
  }

  #push(ev: SimEvent): void {
    const h = this.#heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(ev, h[parent])) break;
      h[i] = h[parent];
      i = parent;
    }
    h[i] = ev;
  }

  #pop(): SimEvent | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      let i = 0;
      const n = h.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && before(h[r], h[l]) ? r : l;
        if (!before(h[c], last)) break;
        h[i] = h[c];
        i = c;
      }
      h[i] = last;
    }
    return top;
  }
}

function before(a: SimEvent, b: SimEvent): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * One incarnation of a Box process. Everything the incarnation scheduled (timers, pending requests, disk
 * completions) is tied to it; `kill()` cancels what can be cancelled and makes every port refuse to settle a
 * promise or call back into the dead incarnation's code ever again, as a real crash would.
 */
export class Life {
  #alive = true;
  readonly #cancels = new Set<{ cancel: () => void }>();

  constructor(readonly name: string) {}

  get alive(): boolean {
    return this.#alive;
  }

  track(entry: { cancel: () => void }): void {
    if (this.#alive) this.#cancels.add(entry);
  }

  untrack(entry: { cancel: () => void }): void {
    this.#cancels.delete(entry);
  }

  kill(): void {
    if (!this.#alive) return;
    this.#alive = false;
    for (const entry of this.#cancels) entry.cancel();
    this.#cancels.clear();
  }
}

function noop(): void {}

/** A promise that never settles (what a dead process's pending operations become). */
export function never<T>(): Promise<T> {
  return new Promise<T>(() => undefined);
}

/** The `Clock` port for one incarnation: virtual time, timers that die with the incarnation. */
export class SimClock implements Clock {
  constructor(
    readonly scheduler: Scheduler,
    readonly life: Life,
  ) {}

  now(): number {
    return this.scheduler.now();
  }

  setTimer(ms: number, fn: () => void): () => void {
    const life = this.life;
    if (!life.alive) return () => undefined;
    const entry = { cancel: noop };
    const cancelEvent = this.scheduler.after(ms, () => {
      life.untrack(entry);
      if (life.alive) fn();
    });
    entry.cancel = cancelEvent;
    life.track(entry);
    return () => {
      cancelEvent();
      life.untrack(entry);
    };
  }
}
