/**
 * A Box's local view of events, for the `reserve events` CLI and the admin UI's live feed: a sink that keeps the
 * events it receives (deduplicated, bounded by retention.ts compaction), answers filtered queries, and pushes new
 * events to subscribers (`--follow`, Server-Sent Events). The daemon attaches one to the dispatcher and/or feeds it
 * from the shared log. In memory only: the shared log is the durable record.
 */
import type { BoxId } from '../net.ts';
import type { AbortOptions } from '../ports.ts';
import type { Sink } from './dispatcher.ts';
import { DedupingReceiver } from './receiver.ts';
import { compactEvents } from './retention.ts';
import { compareEvents, SEVERITY_RANK } from './types.ts';
import type { EventEnvelope, EventKind, Severity } from './types.ts';

export interface EventFilter {
  /** This severity and worse (`--severity warning`: warnings and failures). */
  minSeverity?: Severity;
  kinds?: readonly EventKind[];
  source?: BoxId;
  /** Events at or after this time. */
  since?: number;
}

export function matchesFilter(e: EventEnvelope, f: EventFilter = {}): boolean {
  if (f.minSeverity !== undefined && SEVERITY_RANK[e.severity] < SEVERITY_RANK[f.minSeverity]) return false;
  if (f.kinds !== undefined && !f.kinds.includes(e.kind)) return false;
  if (f.source !== undefined && e.source !== f.source) return false;
  if (f.since !== undefined && e.time < f.since) return false;
  return true;
}

export interface EventInboxOptions {
  id?: string;
  /** Most entries kept (compaction runs past it, down to 90%). Default 10 000. */
  bound?: number;
  receiver?: DedupingReceiver;
}

export type InboxListener = (events: readonly EventEnvelope[]) => void;

export class EventInbox implements Sink {
  readonly id: string;
  readonly #bound: number;
  readonly #receiver: DedupingReceiver;
  #events: EventEnvelope[] = [];
  readonly #listeners = new Set<{ fn: InboxListener; filter: EventFilter }>();

  constructor(options: EventInboxOptions = {}) {
    this.id = options.id ?? 'inbox';
    this.#bound = Math.max(1, options.bound ?? 10_000);
    this.#receiver = options.receiver ?? new DedupingReceiver();
  }

  async deliver(events: readonly EventEnvelope[], _options?: AbortOptions): Promise<void> {
    this.receive(events);
  }

  /** Take `events` in (duplicates dropped); returns the new ones. */
  receive(events: readonly EventEnvelope[]): EventEnvelope[] {
    const fresh = this.#receiver.accept(events);
    if (fresh.length === 0) return fresh;
    this.#events.push(...fresh);
    if (this.#events.length > this.#bound) this.#events = compactEvents(this.#events, Math.max(1, Math.floor(this.#bound * 0.9)));
    for (const l of this.#listeners) {
      const mine = fresh.filter((e) => matchesFilter(e, l.filter));
      if (mine.length === 0) continue;
      try {
        l.fn(mine);
      } catch {
        // A broken subscriber must not break delivery.
      }
    }
    return fresh;
  }

  /** Kept events matching `filter`, oldest first. */
  list(filter: EventFilter = {}): EventEnvelope[] {
    return this.#events.filter((e) => matchesFilter(e, filter)).sort(compareEvents);
  }

  /** Call `fn` with each batch of new events matching `filter`; returns the unsubscribe function. */
  subscribe(fn: InboxListener, filter: EventFilter = {}): () => void {
    const entry = { fn, filter };
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }
}
