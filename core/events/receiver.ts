/**
 * Receiving side of at-least-once delivery: drop what was already received. Because a source numbers its events
 * with a strictly increasing seq and delivers them in seq order, one number per source is enough to remember:
 * the highest seq accepted (the high-water mark). An event at or below it is a duplicate. Memory is bounded: at
 * most `maxSources` marks are kept, least recently used evicted (a Reserve has a handful of Boxes).
 *
 * Receivers that must remember across restarts persist `marks()` together with what they did with the events
 * (atomically, in their own store) and pass them back as `initial`.
 *
 * Summaries (retention.ts) carry no per-source seq; they are passed through unfiltered.
 */
import type { BoxId } from '../net.ts';
import type { EventEnvelope } from './types.ts';

export interface DedupingReceiverOptions {
  /** Most sources remembered. Default 1024. */
  maxSources?: number;
  /** Marks saved earlier by `marks()`. */
  initial?: Iterable<readonly [BoxId, number]>;
}

export class DedupingReceiver {
  readonly #maxSources: number;
  /** Insertion order = least recently used first. */
  readonly #marks = new Map<BoxId, number>();

  constructor(options: DedupingReceiverOptions = {}) {
    this.#maxSources = Math.max(1, options.maxSources ?? 1024);
    for (const [source, seq] of options.initial ?? []) this.#set(source, seq);
  }

  /** Highest seq accepted from `source` (0 when none). */
  highWater(source: BoxId): number {
    return this.#marks.get(source) ?? 0;
  }

  isNew(event: EventEnvelope): boolean {
    return event.kind === 'events-summary' || event.seq > this.highWater(event.source);
  }

  /** The events of `events` not received before (nor earlier in `events`), in their order. Marks nothing. */
  fresh(events: readonly EventEnvelope[]): EventEnvelope[] {
    const local = new Map<BoxId, number>();
    const out: EventEnvelope[] = [];
    for (const e of events) {
      if (e.kind === 'events-summary') {
        out.push(e);
        continue;
      }
      const mark = local.get(e.source) ?? this.highWater(e.source);
      if (e.seq > mark) {
        out.push(e);
        local.set(e.source, e.seq);
      }
    }
    return out;
  }

  /** Record `events` as received. */
  commit(events: readonly EventEnvelope[]): void {
    for (const e of events) {
      if (e.kind === 'events-summary') continue;
      if (e.seq > this.highWater(e.source)) this.#set(e.source, e.seq);
      else this.#touch(e.source);
    }
  }

  /** `fresh` and `commit` in one step, for receivers whose handling cannot fail. */
  accept(events: readonly EventEnvelope[]): EventEnvelope[] {
    const out = this.fresh(events);
    this.commit(out);
    return out;
  }

  /** The marks, for persistence. */
  marks(): Array<[BoxId, number]> {
    return [...this.#marks.entries()];
  }

  #touch(source: BoxId): void {
    const v = this.#marks.get(source);
    if (v === undefined) return;
    this.#marks.delete(source);
    this.#marks.set(source, v);
  }

  #set(source: BoxId, seq: number): void {
    this.#marks.delete(source);
    this.#marks.set(source, seq);
    while (this.#marks.size > this.#maxSources) {
      const oldest = this.#marks.keys().next().value as BoxId;
      this.#marks.delete(oldest);
    }
  }
}
