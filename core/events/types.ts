/**
 * Reserve's event model: what a Box tells its owner, as typed, versioned, validated envelopes.
 *
 * An envelope is `{ id, source, seq, time, severity, kind, payload }`. `source` is the Box that raised it, `seq`
 * the source's own counter (strictly increasing per source, never reused), `id` = `${source}/${seq}` (unique, and
 * a receiver can dedupe on a per-source high-water mark), `time` comes from the injected clock. `kind` selects
 * the payload type (a discriminated union). The shared event log stores envelopes opaquely by the field names
 * id, source, time, severity, kind, payload; `seq` rides along and is also recoverable from `id`.
 *
 * Conditions (limitation imminent/encountered, keeper health, unresolved conflict, unacceptable replication,
 * network disruption) start with an event of their kind and end with a `resolved` event ("back to normal") whose
 * payload names the condition kind and links to the event that opened it. `keeper-added`/`keeper-removed` are
 * one-off facts. `events-summary` only appears in a compacted log (see retention.ts): it stands for normal events
 * that were folded away.
 *
 * Wire format: dag-cbor of `{ v: EVENT_FORMAT_VERSION, ...envelope }`. Decoding validates everything (zod) and
 * throws MalformedEventError or UnsupportedEventVersionError; any change to the schema bumps the version. Block
 * ids are CID strings (the event stays plain JSON for the admin UI and the CLI).
 */
import * as dagCbor from '@ipld/dag-cbor';
import { z } from 'zod';
import { CID } from 'multiformats/cid';
import { ReserveError } from '../errors.ts';
import type { BoxId } from '../net.ts';
import { Limitation } from '../forecast/limits.ts';
import { ForecastMethod } from '../forecast/trend.ts';

export const EVENT_FORMAT_VERSION = 1;

export const Severity = {
  normal: 'normal',
  warning: 'warning',
  failure: 'failure',
} as const;
export type Severity = (typeof Severity)[keyof typeof Severity];

/** Order of severities, for filters such as `--severity warning` (warning and worse). */
export const SEVERITY_RANK: Readonly<Record<Severity, number>> = { normal: 0, warning: 1, failure: 2 };

export const EventKind = {
  limitationImminent: 'limitation-imminent',
  limitationEncountered: 'limitation-encountered',
  keeperHealth: 'keeper-health',
  unresolvedConflict: 'unresolved-conflict',
  unacceptableReplication: 'unacceptable-replication',
  keeperAdded: 'keeper-added',
  keeperRemoved: 'keeper-removed',
  networkDisruption: 'network-disruption',
  resolved: 'resolved',
  summary: 'events-summary',
} as const;
export type EventKind = (typeof EventKind)[keyof typeof EventKind];

/** Kinds that open a condition, which a later `resolved` event closes. */
export const ConditionKind = {
  limitationImminent: EventKind.limitationImminent,
  limitationEncountered: EventKind.limitationEncountered,
  keeperHealth: EventKind.keeperHealth,
  unresolvedConflict: EventKind.unresolvedConflict,
  unacceptableReplication: EventKind.unacceptableReplication,
  networkDisruption: EventKind.networkDisruption,
} as const;
export type ConditionKind = (typeof ConditionKind)[keyof typeof ConditionKind];

export function isConditionKind(kind: string): kind is ConditionKind {
  return (Object.values(ConditionKind) as string[]).includes(kind);
}

export const HealthMetric = {
  memory: 'memory',
  cpu: 'cpu',
  diskIo: 'disk-io',
  diskCorruption: 'disk-corruption',
} as const;
export type HealthMetric = (typeof HealthMetric)[keyof typeof HealthMetric];

/** `${source}/${seq}`. */
export type EventId = string;

// ---------------------------------------------------------------------------------------------- payloads

export interface LimitationImminentPayload {
  limitation: Limitation;
  /** What the limit applies to: a keeper's BoxId for disk capacity, a directory, '' for the whole reserve. */
  subject: string;
  value: number;
  limit: number;
  /** Predicted time the limit is reached (ms). */
  eta: number;
  method: ForecastMethod;
  /** Fitted growth per millisecond. */
  slope: number;
  /** The warning window that made this imminent. */
  windowMs: number;
}

export interface LimitationEncounteredPayload {
  limitation: Limitation;
  subject: string;
  value: number;
  limit: number;
}

export type KeeperHealthPayload =
  | { metric: 'memory'; keeper: BoxId; usedBytes: number; totalBytes: number; usedFraction: number; threshold: number }
  | { metric: 'cpu'; keeper: BoxId; busyFraction: number; threshold: number }
  | {
      metric: 'disk-io';
      keeper: BoxId;
      device: string;
      readBytesPerSec: number;
      writeBytesPerSec: number;
      busyFraction: number;
      threshold: number;
    }
  /** `blocks` lists at most MAX_LISTED_BLOCKS CIDs; `totalBlocks` counts all corrupt blocks known. */
  | { metric: 'disk-corruption'; keeper: BoxId; blocks: string[]; totalBlocks: number };

export interface UnresolvedConflictPayload {
  /** CID of the block in conflict. */
  block: string;
  /** Snapshots that need the block. */
  snapshots: string[];
  reason: string;
}

export interface ReplicationShortfall {
  snapshot: string;
  /** Blocks with fewer copies than the configured minimum. */
  belowMinimum: number;
  /** Blocks with fewer copies than the target (includes those below minimum). */
  belowTarget: number;
  /** Blocks with no known good copy. */
  lost: number;
  /** Files (paths in the snapshot) that need a lost block: at most 1000 listed. */
  files?: string[];
}

export interface UnacceptableReplicationPayload {
  snapshots: ReplicationShortfall[];
}

export interface KeeperAddedPayload {
  keeper: BoxId;
  name?: string;
  by?: BoxId;
}

export interface KeeperRemovedPayload {
  keeper: BoxId;
  by?: BoxId;
  reason?: string;
}

export interface NetworkDisruptionPayload {
  /** Peers this Box cannot reach. */
  peers: BoxId[];
  /** When the disruption started (ms). */
  since: number;
}

export interface ResolvedPayload {
  /** Kind of the condition that ended. */
  of: ConditionKind;
  /** The condition's key (see conditions.ts). */
  condition: string;
  /** Id of the event that opened the condition. */
  resolves: EventId;
  /** Id of the latest event raised for the condition, when it was raised again after opening. */
  latest?: EventId;
  /** When the condition started (ms). */
  since: number;
  note?: string;
}

export interface SummaryPayload {
  /** Kind of the folded events ('*' when kinds were merged to stay within the bound). */
  of: EventKind | '*';
  count: number;
  bySeverity: { normal: number; warning: number; failure: number };
  firstTime: number;
  lastTime: number;
  /** Seq range of the folded events, when they all came from one source. */
  firstSeq?: number;
  lastSeq?: number;
}

export interface PayloadByKind {
  'limitation-imminent': LimitationImminentPayload;
  'limitation-encountered': LimitationEncounteredPayload;
  'keeper-health': KeeperHealthPayload;
  'unresolved-conflict': UnresolvedConflictPayload;
  'unacceptable-replication': UnacceptableReplicationPayload;
  'keeper-added': KeeperAddedPayload;
  'keeper-removed': KeeperRemovedPayload;
  'network-disruption': NetworkDisruptionPayload;
  resolved: ResolvedPayload;
  'events-summary': SummaryPayload;
}

/** What a caller hands to `raise`: the dispatcher adds id, source, seq and time. */
export type EventDraft<K extends EventKind = EventKind> = K extends EventKind
  ? { kind: K; severity: Severity; payload: PayloadByKind[K] }
  : never;

export type EventEnvelope<K extends EventKind = EventKind> = K extends EventKind
  ? { id: EventId; source: BoxId; seq: number; time: number; severity: Severity; kind: K; payload: PayloadByKind[K] }
  : never;

/** At most this many block CIDs are listed in one event (the count is always exact). */
export const MAX_LISTED_BLOCKS = 64;

// ---------------------------------------------------------------------------------------------- errors

/** Bytes or a value that do not form a valid event envelope. */
export class MalformedEventError extends ReserveError {
  static override readonly name = 'MalformedEventError';
}

/** An envelope of a format version this build does not know. */
export class UnsupportedEventVersionError extends ReserveError {
  static override readonly name = 'UnsupportedEventVersionError';
  constructor(readonly version: unknown) {
    super(`event format version ${JSON.stringify(version)} is not supported (this build reads version ${EVENT_FORMAT_VERSION})`);
  }
}

// ---------------------------------------------------------------------------------------------- ids

/** Sources are BoxIds (libp2p peer ids); they never contain '/'. '*' is reserved for merged summaries. */
const sourceSchema = z.string().min(1).max(256).regex(/^[^/\s]+$/, 'a source must be non-empty and contain no "/" or spaces');

export function eventId(source: BoxId, seq: number): EventId {
  return `${source}/${seq}`;
}

/** The source and seq inside an event id, or undefined when `id` is not a source/seq id. */
export function parseEventId(id: string): { source: BoxId; seq: number } | undefined {
  const slash = id.lastIndexOf('/');
  if (slash <= 0 || id.indexOf('/') !== slash) return undefined;
  const seqText = id.slice(slash + 1);
  if (!/^[1-9][0-9]{0,15}$/.test(seqText)) return undefined;
  const seq = Number(seqText);
  if (!Number.isSafeInteger(seq)) return undefined;
  return { source: id.slice(0, slash), seq };
}

// ---------------------------------------------------------------------------------------------- schemas

const finite = z.number();
const nonNegative = z.number().nonnegative();
const count = z.number().int().nonnegative();
const fraction = z.number().min(0).max(1);
const boxId = z.string().min(1).max(256);
const text = z.string().max(4096);
const cidString = z
  .string()
  .max(256)
  .refine((s) => {
    try {
      CID.parse(s);
      return true;
    } catch {
      return false;
    }
  }, 'not a CID');
const eventIdString = z.string().refine((s) => parseEventId(s) !== undefined, 'not an event id');
const limitationSchema = z.enum(Object.values(Limitation) as [Limitation, ...Limitation[]]);
const methodSchema = z.enum(Object.values(ForecastMethod) as [ForecastMethod, ...ForecastMethod[]]);
const conditionKindSchema = z.enum(Object.values(ConditionKind) as [ConditionKind, ...ConditionKind[]]);
const kindSchema = z.enum(Object.values(EventKind) as [EventKind, ...EventKind[]]);
const severitySchema = z.enum(['normal', 'warning', 'failure']);

const payloadSchemas = {
  'limitation-imminent': z.strictObject({
    limitation: limitationSchema,
    subject: text,
    value: finite,
    limit: finite,
    eta: finite,
    method: methodSchema,
    slope: finite,
    windowMs: nonNegative,
  }),
  'limitation-encountered': z.strictObject({ limitation: limitationSchema, subject: text, value: finite, limit: finite }),
  'keeper-health': z.discriminatedUnion('metric', [
    z.strictObject({
      metric: z.literal('memory'),
      keeper: boxId,
      usedBytes: nonNegative,
      totalBytes: nonNegative,
      usedFraction: fraction,
      threshold: fraction,
    }),
    z.strictObject({ metric: z.literal('cpu'), keeper: boxId, busyFraction: fraction, threshold: fraction }),
    z.strictObject({
      metric: z.literal('disk-io'),
      keeper: boxId,
      device: text,
      readBytesPerSec: nonNegative,
      writeBytesPerSec: nonNegative,
      busyFraction: fraction,
      threshold: fraction,
    }),
    z.strictObject({
      metric: z.literal('disk-corruption'),
      keeper: boxId,
      blocks: z.array(cidString).max(MAX_LISTED_BLOCKS),
      totalBlocks: count,
    }),
  ]),
  'unresolved-conflict': z.strictObject({ block: cidString, snapshots: z.array(text).max(10_000), reason: text }),
  'unacceptable-replication': z.strictObject({
    snapshots: z
      .array(z.strictObject({ snapshot: text, belowMinimum: count, belowTarget: count, lost: count, files: z.array(text).max(1000).optional() }))
      .max(10_000),
  }),
  'keeper-added': z.strictObject({ keeper: boxId, name: text.optional(), by: boxId.optional() }),
  'keeper-removed': z.strictObject({ keeper: boxId, by: boxId.optional(), reason: text.optional() }),
  'network-disruption': z.strictObject({ peers: z.array(boxId).max(10_000), since: finite }),
  resolved: z.strictObject({
    of: conditionKindSchema,
    condition: text,
    resolves: eventIdString,
    latest: eventIdString.optional(),
    since: finite,
    note: text.optional(),
  }),
  'events-summary': z.strictObject({
    of: z.union([kindSchema, z.literal('*')]),
    count: count.min(1),
    bySeverity: z.strictObject({ normal: count, warning: count, failure: count }),
    firstTime: finite,
    lastTime: finite,
    firstSeq: count.optional(),
    lastSeq: count.optional(),
  }),
} satisfies Record<EventKind, z.ZodType>;

const envelopeSchema = z.discriminatedUnion(
  'kind',
  (Object.keys(payloadSchemas) as EventKind[]).map((kind) =>
    z.strictObject({
      id: z.string().min(1).max(1024),
      source: z.union([sourceSchema, z.literal('*')]),
      seq: count.max(Number.MAX_SAFE_INTEGER),
      time: finite,
      severity: severitySchema,
      kind: z.literal(kind),
      payload: payloadSchemas[kind],
    }),
  ) as unknown as [z.ZodObject, ...z.ZodObject[]],
);

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}

/** Remove `undefined` members (dag-cbor cannot encode them; optional fields are simply absent). */
function stripUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripUndefined);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = stripUndefined(v);
    return out;
  }
  return value;
}

/** Check a draft's kind, severity and payload; returns a clean copy. Throws MalformedEventError. */
export function validateDraft<K extends EventKind>(draft: EventDraft<K>): EventDraft<K> {
  const kind = kindSchema.safeParse((draft as { kind?: unknown })?.kind);
  if (!kind.success) throw new MalformedEventError(`unknown event kind ${JSON.stringify((draft as { kind?: unknown })?.kind)}`);
  const severity = severitySchema.safeParse(draft.severity);
  if (!severity.success) throw new MalformedEventError(`unknown severity ${JSON.stringify(draft.severity)}`);
  if ((kind.data === 'resolved' || kind.data === 'events-summary') && severity.data !== 'normal') {
    throw new MalformedEventError(`${kind.data} events have severity normal`);
  }
  const payload = payloadSchemas[kind.data].safeParse(stripUndefined(draft.payload));
  if (!payload.success) throw new MalformedEventError(`invalid ${kind.data} payload: ${describeIssues(payload.error)}`);
  return { kind: kind.data, severity: severity.data, payload: payload.data } as EventDraft<K>;
}

/**
 * Validate an envelope (from the wire, the log or a caller) and return a clean copy. Besides the schema: the id
 * must be `${source}/${seq}` (summaries: any id, seq 0), resolutions and summaries have severity normal.
 */
export function validateEvent(value: unknown): EventEnvelope {
  const parsed = envelopeSchema.safeParse(stripUndefined(value));
  if (!parsed.success) throw new MalformedEventError(`invalid event: ${describeIssues(parsed.error)}`);
  const e = parsed.data as unknown as EventEnvelope;
  if (e.kind === 'events-summary') {
    if (e.severity !== 'normal') throw new MalformedEventError('summary events have severity normal');
  } else {
    if (e.source === '*') throw new MalformedEventError('only summaries may have source "*"');
    if (e.seq < 1) throw new MalformedEventError('seq starts at 1');
    if (e.id !== eventId(e.source, e.seq)) throw new MalformedEventError(`event id ${JSON.stringify(e.id)} is not ${JSON.stringify(eventId(e.source, e.seq))}`);
    if (e.kind === 'resolved' && e.severity !== 'normal') throw new MalformedEventError('resolutions have severity normal');
  }
  return e;
}

/** The shape the shared event log stores (seq is implied by the id). */
export interface StoredEvent {
  id: EventId;
  source: BoxId;
  time: number;
  severity: Severity;
  kind: EventKind;
  payload: unknown;
}

export function toStoredEvent(e: EventEnvelope): StoredEvent {
  return { id: e.id, source: e.source, time: e.time, severity: e.severity, kind: e.kind, payload: e.payload };
}

/** Back from the stored shape: seq is recovered from the id (0 for summaries), then everything is validated. */
export function fromStoredEvent(value: unknown): EventEnvelope {
  if (value === null || typeof value !== 'object') throw new MalformedEventError('a stored event must be an object');
  const s = value as Record<string, unknown>;
  const parsed = typeof s.id === 'string' ? parseEventId(s.id) : undefined;
  const seq = s.kind === EventKind.summary ? 0 : parsed?.seq;
  if (seq === undefined) throw new MalformedEventError(`stored event id ${JSON.stringify(s.id)} is not source/seq`);
  const { seq: _ignored, ...rest } = s;
  return validateEvent({ ...rest, seq });
}

/** Versioned dag-cbor bytes of a (validated) envelope. */
export function encodeEvent(event: EventEnvelope): Uint8Array {
  const clean = validateEvent(event);
  return dagCbor.encode({ v: EVENT_FORMAT_VERSION, ...clean });
}

/** Parse and validate bytes made by `encodeEvent`. Throws MalformedEventError / UnsupportedEventVersionError. */
export function decodeEvent(bytes: Uint8Array): EventEnvelope {
  let value: unknown;
  try {
    value = dagCbor.decode(bytes);
  } catch (cause) {
    throw new MalformedEventError('event bytes are not valid dag-cbor', { cause });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new MalformedEventError('an event must be a map');
  const { v, ...rest } = value as Record<string, unknown>;
  if (v !== EVENT_FORMAT_VERSION) throw new UnsupportedEventVersionError(v);
  return validateEvent(rest);
}

/** Canonical order: time, then source, then seq, then id. Total, so sorting is deterministic; within one source it
 * is seq order whenever the source's clock did not go backwards. */
export function compareEvents(a: EventEnvelope, b: EventEnvelope): number {
  if (a.time !== b.time) return a.time - b.time;
  if (a.source !== b.source) return a.source < b.source ? -1 : 1;
  if (a.seq !== b.seq) return a.seq - b.seq;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}
