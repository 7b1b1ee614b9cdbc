/**
 * Ready-made sinks for the dispatcher:
 *
 * - `dedupingSink`: wraps a handler so that it sees each event exactly once (per process lifetime of its
 *   DedupingReceiver), in per-source order, even though the dispatcher delivers at least once. Events are marked
 *   received only after the handler succeeds, so a failing handler makes the dispatcher retry without losing any.
 * - `sharedLogSink`: the plug for the reserve's shared event log (a CRDT document owned by core/state). The log
 *   only needs an idempotent `append` keyed by event id; every Box then receives the events by CRDT sync,
 *   including Boxes that were down when they were raised.
 * - `DeferredSink`: a sink attached from the start whose target is wired later (the shared log once its document
 *   is open, a webhook once configured). Until then it fails, so the dispatcher keeps the events and retries.
 */
import { ReserveError } from '../errors.ts';
import type { AbortOptions } from '../ports.ts';
import type { Sink } from './dispatcher.ts';
import { DedupingReceiver } from './receiver.ts';
import type { EventEnvelope } from './types.ts';

export type EventHandler = (events: readonly EventEnvelope[], options: AbortOptions) => Promise<void>;

/** A sink that calls `handler` with only the events it has not seen, one delivery at a time. */
export function dedupingSink(id: string, handler: EventHandler, receiver: DedupingReceiver = new DedupingReceiver()): Sink & { readonly receiver: DedupingReceiver } {
  let tail: Promise<unknown> = Promise.resolve();
  return {
    id,
    receiver,
    deliver(events, options) {
      // Serialized: a retry overlapping a timed-out earlier attempt must not hand the same events over twice.
      const run = tail.then(async () => {
        const fresh = receiver.fresh(events);
        if (fresh.length > 0) await handler(fresh, options);
        receiver.commit(fresh);
      });
      tail = run.catch(() => {});
      return run;
    },
  };
}

/** What the shared event log offers: append envelopes, idempotently by id (a CRDT map or set keyed by id). */
export interface SharedEventLog {
  append(events: readonly EventEnvelope[], options?: AbortOptions): Promise<void>;
}

export const SHARED_LOG_SINK_ID = 'shared-log';

export function sharedLogSink(log: SharedEventLog, id: string = SHARED_LOG_SINK_ID): Sink {
  return { id, deliver: (events, options) => log.append(events, options) };
}

/** A deferred sink was asked to deliver before its target was wired. */
export class SinkNotReadyError extends ReserveError {
  static override readonly name = 'SinkNotReadyError';
  constructor(readonly sink: string) {
    super(`sink ${sink} is not connected yet`);
  }
}

export class DeferredSink implements Sink {
  #target?: Sink;
  constructor(readonly id: string) {}

  /** Wire the real target (its own id is ignored: cursors stay under this sink's id). */
  connect(target: Sink): void {
    this.#target = target;
  }

  disconnect(): void {
    this.#target = undefined;
  }

  get connected(): boolean {
    return this.#target !== undefined;
  }

  async deliver(events: readonly EventEnvelope[], options: AbortOptions): Promise<void> {
    if (!this.#target) throw new SinkNotReadyError(this.id);
    await this.#target.deliver(events, options);
  }
}
