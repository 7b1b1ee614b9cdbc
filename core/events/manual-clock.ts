/**
 * A hand-driven Clock for tests and small simulations: time moves only when told to, timers fire in (time, order
 * of setting) order. `scope()` hands out a view whose timers can all be dropped at once, which is how a test
 * simulates a process dying with timers pending.
 */
import type { Clock } from '../ports.ts';

interface Timer {
  due: number;
  order: number;
  fn: () => void;
}

export interface ClockScope {
  readonly clock: Clock;
  /** Cancel every timer set through this scope; later ones are ignored. */
  drop(): void;
}

export class ManualClock implements Clock {
  #now: number;
  #order = 0;
  readonly #timers = new Set<Timer>();

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): () => void {
    const t: Timer = { due: this.#now + Math.max(0, ms), order: this.#order++, fn };
    this.#timers.add(t);
    return () => {
      this.#timers.delete(t);
    };
  }

  /** Timers not yet fired. */
  get pending(): number {
    return this.#timers.size;
  }

  /** When the next timer fires, if any. */
  nextDue(): number | undefined {
    return this.#next()?.due;
  }

  #next(): Timer | undefined {
    let best: Timer | undefined;
    for (const t of this.#timers) if (!best || t.due < best.due || (t.due === best.due && t.order < best.order)) best = t;
    return best;
  }

  /** Move time forward by `ms`, firing due timers in order (synchronously). */
  advance(ms: number): void {
    const target = this.#now + Math.max(0, ms);
    for (let t = this.#next(); t && t.due <= target; t = this.#next()) {
      this.#timers.delete(t);
      this.#now = Math.max(this.#now, t.due);
      t.fn();
    }
    this.#now = target;
  }

  /** Like advance, awaiting `settle()` after every timer (and at the end) so async work triggered runs at the
   * right virtual time. */
  async advanceAsync(ms: number, settle: () => Promise<void>): Promise<void> {
    const target = this.#now + Math.max(0, ms);
    await settle();
    for (let t = this.#next(); t && t.due <= target; t = this.#next()) {
      this.#timers.delete(t);
      this.#now = Math.max(this.#now, t.due);
      t.fn();
      await settle();
    }
    this.#now = target;
    await settle();
  }

  scope(): ClockScope {
    const cancels = new Set<() => void>();
    let dropped = false;
    const clock: Clock = {
      now: () => this.#now,
      setTimer: (ms, fn) => {
        if (dropped) return () => {};
        let cancel: () => void;
        const wrapped = (): void => {
          cancels.delete(cancel);
          fn();
        };
        const inner = this.setTimer(ms, wrapped);
        cancel = (): void => {
          cancels.delete(cancel);
          inner();
        };
        cancels.add(cancel);
        return cancel;
      },
    };
    return {
      clock,
      drop: () => {
        dropped = true;
        for (const c of [...cancels]) c();
      },
    };
  }
}
