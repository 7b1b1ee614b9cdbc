/**
 * A DaemonApi held in memory: a ReserveStatus you set, and events kept in a real EventInbox (core/events: the same
 * de-duplication, filters, retention and subscriptions a Box's inbox has). The HTTP tests, the admin page test and
 * `npm run ui:shot` serve it; the running Box's DaemonApi lives in adapters/runtime.
 *
 * Open conditions are derived from the events the way a reader of the log sees them: a condition event is open
 * until a `resolved` event names it (as the one that opened the condition or as its latest re-raise).
 */
import { ReserveError } from '../../core/errors.ts';
import { EventInbox } from '../../core/events/inbox.ts';
import { compareEvents, isConditionKind, validateEvent } from '../../core/events/types.ts';
import type { EventDraft, EventEnvelope } from '../../core/events/types.ts';
import type {
  BackupReport,
  BackupRequest,
  DaemonApi,
  EventQuery,
  LeaveReport,
  LeaveRequest,
  ProgressReport,
  RemoveReport,
  RemoveRequest,
  ReserveStatus,
  RestoreReport,
  RestoreRequest,
} from './api.ts';

/** This DaemonApi was built without the operation asked for. */
export class OperationUnavailableError extends ReserveError {
  static override readonly name = 'OperationUnavailableError';
}

export type Operation<Req, Rep> = (request: Req, onProgress: (p: ProgressReport) => void, signal: AbortSignal) => Promise<Rep>;

export interface MemoryDaemonOptions {
  /** Everything but `open` and `time` (derived from the events and the clock). */
  status: Omit<ReserveStatus, 'open' | 'time'>;
  events?: readonly EventEnvelope[];
  now?: () => number;
  backup?: Operation<BackupRequest, BackupReport>;
  restore?: Operation<RestoreRequest, RestoreReport>;
  leave?: Operation<LeaveRequest, LeaveReport>;
  remove?: (request: RemoveRequest) => Promise<RemoveReport>;
  /** Events kept (compaction beyond, as on a Box). Default 10 000. */
  bound?: number;
}

/** Open conditions among `events` (newest first). */
export function openConditions(events: readonly EventEnvelope[]): EventEnvelope[] {
  const ended = new Set<string>();
  for (const e of events) {
    if (e.kind === 'resolved') {
      ended.add(e.payload.resolves);
      if (e.payload.latest !== undefined) ended.add(e.payload.latest);
    }
  }
  return events.filter((e) => isConditionKind(e.kind) && !ended.has(e.id)).sort((a, b) => compareEvents(b, a));
}

export class MemoryDaemon implements DaemonApi {
  readonly inbox: EventInbox;
  #status: Omit<ReserveStatus, 'open' | 'time'>;
  readonly #now: () => number;
  readonly #backup?: Operation<BackupRequest, BackupReport>;
  readonly #restore?: Operation<RestoreRequest, RestoreReport>;
  readonly #leave?: Operation<LeaveRequest, LeaveReport>;
  readonly #remove?: (request: RemoveRequest) => Promise<RemoveReport>;

  constructor(options: MemoryDaemonOptions) {
    this.#status = structuredClone(options.status);
    this.#now = options.now ?? (() => Date.now());
    this.#backup = options.backup;
    this.#restore = options.restore;
    this.#leave = options.leave;
    this.#remove = options.remove;
    this.inbox = new EventInbox({ id: 'daemon', bound: options.bound });
    if (options.events) this.publish(options.events);
  }

  /** Replace the status (Boxes, snapshots, replication). */
  setStatus(status: Omit<ReserveStatus, 'open' | 'time'>): void {
    this.#status = structuredClone(status);
  }

  /** Take events in (validated; duplicates dropped); subscribers see the new ones. Returns the new ones. */
  publish(events: readonly EventEnvelope[]): EventEnvelope[] {
    return this.inbox.receive(events.map((e) => validateEvent(e)));
  }

  async status(): Promise<ReserveStatus> {
    return { ...structuredClone(this.#status), time: this.#now(), open: openConditions(this.inbox.list()) };
  }

  async events(query: EventQuery = {}): Promise<EventEnvelope[]> {
    const { limit, ...filter } = query;
    const all = this.inbox.list(filter);
    return limit !== undefined && all.length > limit ? all.slice(all.length - limit) : all;
  }

  follow(query: EventQuery & { after?: string }, listener: (events: readonly EventEnvelope[]) => void): () => void {
    const { limit: _limit, after, ...filter } = query;
    let live = true;
    const unsubscribe = this.inbox.subscribe((events) => {
      if (live) listener(events);
    }, filter);
    if (after !== undefined) {
      const kept = this.inbox.list(filter);
      const at = kept.findIndex((e) => e.id === after);
      const missed = at >= 0 ? kept.slice(at + 1) : kept;
      if (missed.length > 0) {
        queueMicrotask(() => {
          if (live) listener(missed);
        });
      }
    }
    return () => {
      live = false;
      unsubscribe();
    };
  }

  async backup(request: BackupRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal): Promise<BackupReport> {
    if (!this.#backup) throw new OperationUnavailableError('this daemon cannot back up');
    return this.#backup(request, onProgress ?? (() => {}), signal ?? new AbortController().signal);
  }

  async restore(request: RestoreRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal): Promise<RestoreReport> {
    if (!this.#restore) throw new OperationUnavailableError('this daemon cannot restore');
    return this.#restore(request, onProgress ?? (() => {}), signal ?? new AbortController().signal);
  }

  async leave(request: LeaveRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal): Promise<LeaveReport> {
    if (!this.#leave) throw new OperationUnavailableError('this daemon cannot leave');
    return this.#leave(request, onProgress ?? (() => {}), signal ?? new AbortController().signal);
  }

  async remove(request: RemoveRequest): Promise<RemoveReport> {
    if (!this.#remove) throw new OperationUnavailableError('this daemon cannot remove a Box');
    return this.#remove(request);
  }
}

/** Makes valid envelopes for several sources (each with its own seq counter), as their Boxes would raise them. */
export class EventMaker {
  readonly #seqs = new Map<string, number>();

  make<K extends EventDraft['kind']>(source: string, time: number, draft: EventDraft<K>): EventEnvelope<K> {
    const seq = (this.#seqs.get(source) ?? 0) + 1;
    this.#seqs.set(source, seq);
    return validateEvent({ id: `${source}/${seq}`, source, seq, time, ...draft }) as EventEnvelope<K>;
  }
}
