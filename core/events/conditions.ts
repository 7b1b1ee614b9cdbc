/**
 * Condition tracking: a condition (a keeper short of memory, a limitation about to be hit, a peer unreachable)
 * raises one event when it starts and one `resolved` event when it ends, however many times it is observed in
 * between, so a persisting problem never becomes an event storm. The owner of the condition may raise it again
 * deliberately (`reraise`: the forecast moved materially, a health condition got worse, more blocks turned out
 * corrupt); the resolution then links to the opening event and to the latest one.
 *
 * Active conditions are durable: each is a record in the dispatcher's KvStore, written in the same atomic batch as
 * the event that opens, re-raises or resolves it. After a crash the tracker knows exactly which conditions are
 * open, so it neither repeats a start nor forgets a resolution.
 *
 * Keys are chosen by the caller; `conditionKey(kind, ...parts)` makes conventional ones
 * ('keeper-health/memory/<box>'). Calls are serialized.
 */
import * as dagCbor from '@ipld/dag-cbor';
import { ReserveError } from '../errors.ts';
import type { EventRaiser } from './dispatcher.ts';
import { isConditionKind, Severity } from './types.ts';
import type { ConditionKind, EventDraft, EventEnvelope, EventId, PayloadByKind } from './types.ts';

export interface ActiveCondition<K extends ConditionKind = ConditionKind> {
  key: string;
  kind: K;
  /** Event that opened the condition. */
  first: EventId;
  /** Latest event raised for it (= first unless re-raised). */
  latest: EventId;
  /** Time of the opening event. */
  since: number;
  /** Severity of the latest event. */
  severity: Severity;
  /** Payload of the latest event. */
  payload: PayloadByKind[K];
}

export type ConditionDraft = EventDraft<ConditionKind>;

/** A condition was opened under one kind and addressed under another. */
export class ConditionKindMismatchError extends ReserveError {
  static override readonly name = 'ConditionKindMismatchError';
  constructor(
    readonly key: string,
    readonly active: ConditionKind,
    readonly given: string,
  ) {
    super(`condition ${JSON.stringify(key)} is a ${active} condition, not ${given}`);
  }
}

/** Only condition kinds can be tracked. */
export class NotAConditionError extends ReserveError {
  static override readonly name = 'NotAConditionError';
  constructor(readonly kind: string) {
    super(`events of kind ${kind} do not open conditions`);
  }
}

export function conditionKey(kind: ConditionKind, ...parts: string[]): string {
  return [kind, ...parts].join('/');
}

export interface ConditionTrackerOptions {
  /** Prefix of the condition records in the raiser's KvStore. Default 'events/conditions/'. */
  prefix?: string;
  /** Unreadable records (dropped: the condition is raised again when next observed). */
  onError?: (error: unknown) => void;
}

function isRecord(v: unknown): v is Omit<ActiveCondition, 'key'> {
  if (v === null || typeof v !== 'object') return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r.kind === 'string' &&
    isConditionKind(r.kind) &&
    typeof r.first === 'string' &&
    typeof r.latest === 'string' &&
    typeof r.since === 'number' &&
    typeof r.severity === 'string' &&
    (Object.values(Severity) as string[]).includes(r.severity) &&
    r.payload !== null &&
    typeof r.payload === 'object'
  );
}

export class ConditionTracker {
  readonly #raiser: EventRaiser;
  readonly #prefix: string;
  readonly #active = new Map<string, ActiveCondition>();
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(raiser: EventRaiser, prefix: string) {
    this.#raiser = raiser;
    this.#prefix = prefix;
  }

  static async open(raiser: EventRaiser, options: ConditionTrackerOptions = {}): Promise<ConditionTracker> {
    const t = new ConditionTracker(raiser, options.prefix ?? 'events/conditions/');
    for await (const [k, value] of raiser.kv.list(t.#prefix)) {
      const key = decodeURIComponent(k.slice(t.#prefix.length));
      let record: unknown;
      try {
        record = dagCbor.decode(value);
      } catch {
        record = undefined;
      }
      if (isRecord(record)) t.#active.set(key, { ...record, key });
      else {
        options.onError?.(new ReserveError(`condition record ${k} is unreadable; dropped`));
        await raiser.kv.delete(k);
      }
    }
    return t;
  }

  #recordKey(key: string): string {
    return `${this.#prefix}${encodeURIComponent(key)}`;
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => {});
    return run;
  }

  active(key: string): ActiveCondition | undefined {
    return this.#active.get(key);
  }

  /** Every open condition. */
  list(): ActiveCondition[] {
    return [...this.#active.values()];
  }

  async #raiseFor(key: string, draft: ConditionDraft, previous: ActiveCondition | undefined): Promise<EventEnvelope> {
    let record: ActiveCondition | undefined;
    const event = await this.#raiser.raise(draft, {
      ops: (e) => {
        record = {
          key,
          kind: draft.kind,
          first: previous?.first ?? e.id,
          latest: e.id,
          since: previous?.since ?? e.time,
          severity: e.severity,
          payload: e.payload as ActiveCondition['payload'],
        };
        const { key: _omit, ...stored } = record;
        return [{ type: 'put', key: this.#recordKey(key), value: dagCbor.encode(stored) }];
      },
    });
    if (record) this.#active.set(key, record);
    return event;
  }

  #check(key: string, draft: ConditionDraft): ActiveCondition | undefined {
    if (!isConditionKind(draft.kind)) throw new NotAConditionError(draft.kind);
    const current = this.#active.get(key);
    if (current && current.kind !== draft.kind) throw new ConditionKindMismatchError(key, current.kind, draft.kind);
    return current;
  }

  /** Open the condition: raises `draft` unless the condition is already open (then returns undefined). */
  begin(key: string, draft: ConditionDraft): Promise<EventEnvelope | undefined> {
    return this.#serial(async () => {
      if (this.#check(key, draft)) return undefined;
      return this.#raiseFor(key, draft, undefined);
    });
  }

  /** Raise `draft` for the condition now, opening it if needed; it stays open with this as its latest event. */
  reraise(key: string, draft: ConditionDraft): Promise<EventEnvelope> {
    return this.#serial(async () => this.#raiseFor(key, draft, this.#check(key, draft)));
  }

  /**
   * Record new details of an open condition without raising anything (its latest payload becomes `payload`, as
   * seen by `active()` and after a restart). Returns false when the condition is not open.
   */
  amend<K extends ConditionKind>(key: string, kind: K, payload: PayloadByKind[K]): Promise<boolean> {
    return this.#serial(async () => {
      const current = this.#active.get(key);
      if (!current) return false;
      if (current.kind !== kind) throw new ConditionKindMismatchError(key, current.kind, kind);
      const record: ActiveCondition = { ...current, payload };
      const { key: _omit, ...stored } = record;
      await this.#raiser.kv.put(this.#recordKey(key), dagCbor.encode(stored));
      this.#active.set(key, record);
      return true;
    });
  }

  /** Close the condition with a `resolved` event linked to its events; undefined when it was not open. */
  end(key: string, note?: string): Promise<EventEnvelope<'resolved'> | undefined> {
    return this.#serial(async () => {
      const current = this.#active.get(key);
      if (!current) return undefined;
      const event = await this.#raiser.raise(
        {
          kind: 'resolved',
          severity: 'normal',
          payload: {
            of: current.kind,
            condition: key,
            resolves: current.first,
            ...(current.latest !== current.first ? { latest: current.latest } : {}),
            since: current.since,
            ...(note !== undefined ? { note } : {}),
          },
        },
        { ops: () => [{ type: 'delete', key: this.#recordKey(key) }] },
      );
      this.#active.delete(key);
      return event;
    });
  }

  /** `begin(key, draft)` when `draft` is given, `end(key)` when it is null/undefined. */
  set(key: string, draft: ConditionDraft | null | undefined): Promise<EventEnvelope | undefined> {
    return draft ? this.begin(key, draft) : this.end(key);
  }
}
