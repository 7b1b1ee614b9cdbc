/**
 * Shared-state events: every change to the reserve's shared state is one of these, signed by the Box that made
 * it and named by the hash of its bytes. The CRDT document is a grow-only set of them (see reducer.ts for what
 * they mean together).
 *
 * Wire form (canonical dag-cbor):
 *   event   = { p: bytes(payload), z: bytes(64-byte Ed25519 signature over DOMAIN || reserveId || "\n" || payload) }
 *   payload = { v: 1, k: kind, a: author BoxId, s: author's sequence number (1, 2, ...), t: [hlc wall, hlc logical],
 *               b: body }
 *   id      = CIDv1(dag-cbor, sha2-256(event)) as a base32 string
 * The reserve id is part of what is signed but not of the bytes, so an event of one reserve never verifies in
 * another. A Box's first event (s = 1) is its join.
 *
 * Decoding checks, in order, and each failure is its own error: size, the canonical wrapper, the payload's
 * dag-cbor form and exact field set, the body's schema (MalformedEventError), the signature (BadSignatureError), and for joins the
 * secret proof against the join key the event names (BadJoinProofError; generation 0's join key must hash to the
 * reserve id). What needs other events (is the author a member, is the join key the one the rotation published,
 * is the generation current) is the reducer's part; it rejects with NotAMemberError, BadJoinProofError,
 * StaleGenerationError, UnknownGenerationError, UnknownBoxError.
 */
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { z } from 'zod';
import { cidOf, DAG_CBOR_CODE } from '../blocks/cid.ts';
import { ReserveError } from '../errors.ts';
import { MalformedEventError } from '../events/types.ts';
import type { BoxId } from '../net.ts';
import { ConfigError, validateConfigChanges } from './config.ts';
import { InvalidBoxIdError, publicKeyOfBox, reserveIdFromJoinKey, verifyEd25519 } from './crypto.ts';
import type { Signer } from './crypto.ts';
import type { Hlc } from './hlc.ts';
import { envelopeSchema, MalformedSummaryError, summaryFromWire, summaryToWire } from './summary.ts';
import type { Key, LogEnvelope, Summary } from './summary.ts';

export { MalformedEventError };

export const STATE_EVENT_VERSION = 1;
/** Largest encoded event; checkpoints (which carry a state summary) may be larger. */
export const MAX_EVENT_BYTES = 64 * 1024;
export const MAX_CHECKPOINT_BYTES = 256 * 1024 * 1024;

const DOMAIN = 'reserve/state-event/v1\n';
const JOIN_DOMAIN = 'reserve/join/v1\n';
const SEAL_DOMAIN = 'reserve/sealed-secret/v1';
const utf8 = new TextEncoder();

// ------------------------------------------------------------------------------------------------ errors

/** The signature does not verify against the author's key. */
export class BadSignatureError extends ReserveError {
  static override readonly name = 'BadSignatureError';
}

/** The author is not (or no longer, or not yet known as) a member of the reserve. */
export class NotAMemberError extends ReserveError {
  static override readonly name = 'NotAMemberError';
}

/** A join's proof of the shared secret is wrong (bad signature, or a join key that is not the reserve's). */
export class BadJoinProofError extends ReserveError {
  static override readonly name = 'BadJoinProofError';
}

/** A join or rotation for a secret generation that has already been superseded (or lost a race). */
export class StaleGenerationError extends ReserveError {
  static override readonly name = 'StaleGenerationError';
}

/** A join or rotation that refers to a secret generation this replica does not know yet. */
export class UnknownGenerationError extends ReserveError {
  static override readonly name = 'UnknownGenerationError';
}

/** A Box that has never joined (as far as this replica knows): an event about one, or a user naming one. */
export class UnknownBoxError extends ReserveError {
  static override readonly name = 'UnknownBoxError';
}

/** A decommissioned Box tried to come back under the same identity. */
export class DecommissionedBoxError extends ReserveError {
  static override readonly name = 'DecommissionedBoxError';
}

// ------------------------------------------------------------------------------------------------ kinds

export const StateEventKind = {
  boxJoined: 'box-joined',
  boxUpdated: 'box-updated',
  boxLeft: 'box-left',
  boxDeclaredDead: 'box-declared-dead',
  boxDecommissioned: 'box-decommissioned',
  configChanged: 'config-changed',
  secretRotated: 'secret-rotated',
  snapshotPublished: 'snapshot-published',
  holderReport: 'holder-report',
  reserveEvent: 'reserve-event',
  checkpoint: 'checkpoint',
} as const;
export type StateEventKind = (typeof StateEventKind)[keyof typeof StateEventKind];

export interface BoxJoinedBody {
  /** Secret generation the proof is made with. */
  generation: number;
  /** Public half of that generation's join key. */
  joinKey: Uint8Array;
  /** Join-key signature over (reserve id, author, generation, xpub). */
  proof: Uint8Array;
  /** X25519 public key future secrets are sealed to. */
  xpub: Uint8Array;
  capacity: number;
  region?: string;
  addresses: string[];
}

export interface BoxUpdatedBody {
  capacity: number;
  region?: string;
  addresses: string[];
}

export interface BoxLeftBody {
  reason?: string;
}

export interface BoxRemovedBody {
  box: BoxId;
  reason?: string;
}

export interface ConfigChangedBody {
  /** [dotted field path, value or null (= default)], paths unique and sorted. */
  set: Array<[string, unknown]>;
}

export interface SecretRotatedBody {
  generation: number;
  joinKey: Uint8Array;
  /** [recipient, sealed secret], sorted by recipient. */
  sealed: Array<[BoxId, Uint8Array]>;
  reason?: string;
}

export interface SnapshotPublishedBody {
  root: CID;
  parent: CID | null;
  time: number;
  size: number;
  files: number;
  chunks: number;
}

export interface HolderReportBody {
  count: number;
  bytes: number;
  root: Uint8Array;
}

export interface ReserveEventBody {
  event: LogEnvelope;
}

export interface CheckpointBody {
  summary: Summary;
}

export interface BodyByKind {
  'box-joined': BoxJoinedBody;
  'box-updated': BoxUpdatedBody;
  'box-left': BoxLeftBody;
  'box-declared-dead': BoxRemovedBody;
  'box-decommissioned': BoxRemovedBody;
  'config-changed': ConfigChangedBody;
  'secret-rotated': SecretRotatedBody;
  'snapshot-published': SnapshotPublishedBody;
  'holder-report': HolderReportBody;
  'reserve-event': ReserveEventBody;
  checkpoint: CheckpointBody;
}

/** A decoded, signature-checked event. */
export interface StateEventOf<K extends StateEventKind> {
  readonly id: string;
  readonly bytes: Uint8Array;
  readonly kind: K;
  readonly author: BoxId;
  readonly seq: number;
  readonly at: Hlc;
  readonly body: BodyByKind[K];
  readonly signature: Uint8Array;
}
export type StateEvent = { [K in StateEventKind]: StateEventOf<K> }[StateEventKind];

/** Membership events are folded in key order; every other kind is order-free (see reducer.ts). */
export const MEMBERSHIP_KINDS: ReadonlySet<StateEventKind> = new Set<StateEventKind>([
  'box-joined',
  'box-left',
  'box-declared-dead',
  'box-decommissioned',
  'secret-rotated',
]);

export function keyOf(e: StateEvent): Key {
  return { wall: e.at.wall, logical: e.at.logical, id: e.id };
}

/** What every event is checked against. */
export interface EventContext {
  readonly reserveId: string;
  /**
   * Ids whose signature was already checked (by this Box). An id is the hash of the exact bytes, so skipping
   * the check for a known id is sound; the set is the caller's (e.g. the ledger's, bounded to its epoch).
   */
  readonly verified?: Set<string>;
}

// ------------------------------------------------------------------------------------------------ schemas

const uint = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
const bytesOf = (n: number) => z.instanceof(Uint8Array).refine((b) => b.byteLength === n, `must be ${n} bytes`);
const cidValue = z.custom<CID>((v) => CID.asCID(v) !== null, 'must be a CID');
const boxIdSchema = z.string().min(1).max(256);
const reason = z.string().max(1024).optional();
const region = z.string().min(1).max(64).regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, 'must be a short name').optional();
const addresses = z.array(z.string().min(1).max(512)).max(64);

const bodySchemas = {
  'box-joined': z.strictObject({
    generation: uint,
    joinKey: bytesOf(32),
    proof: bytesOf(64),
    xpub: bytesOf(32),
    capacity: uint,
    region,
    addresses,
  }),
  'box-updated': z.strictObject({ capacity: uint, region, addresses }),
  'box-left': z.strictObject({ reason }),
  'box-declared-dead': z.strictObject({ box: boxIdSchema, reason }),
  'box-decommissioned': z.strictObject({ box: boxIdSchema, reason }),
  'config-changed': z.strictObject({ set: z.array(z.tuple([z.string().min(1).max(256), z.unknown()])).min(1).max(64) }),
  'secret-rotated': z.strictObject({
    generation: uint.min(1),
    joinKey: bytesOf(32),
    sealed: z.array(z.tuple([boxIdSchema, z.instanceof(Uint8Array).refine((b) => b.byteLength <= 256, 'too long')])).max(1024),
    reason,
  }),
  'snapshot-published': z.strictObject({ root: cidValue, parent: z.union([cidValue, z.null()]), time: uint, size: uint, files: uint, chunks: uint }),
  'holder-report': z.strictObject({ count: uint, bytes: uint, root: z.instanceof(Uint8Array).refine((b) => b.byteLength >= 1 && b.byteLength <= 64, 'must be 1-64 bytes') }),
  'reserve-event': z.strictObject({ event: envelopeSchema }),
  checkpoint: z.strictObject({ summary: z.unknown() }),
} satisfies Record<StateEventKind, z.ZodType>;

const KINDS = new Set<string>(Object.values(StateEventKind));

function describe(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}

function stripUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(stripUndefined);
  if (value instanceof Uint8Array || CID.asCID(value) !== null) return value;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = stripUndefined(v);
    return out;
  }
  return value;
}

/** Kind-specific rules beyond the schema; returns the body in its in-memory form. */
function checkBody(kind: StateEventKind, raw: unknown, author: BoxId, seq: number, ctx: EventContext): unknown {
  const parsed = bodySchemas[kind].safeParse(raw);
  if (!parsed.success) throw new MalformedEventError(`invalid ${kind} event: ${describe(parsed.error)}`);
  const body = parsed.data as Record<string, unknown>;
  if (seq === 1 && kind !== 'box-joined') throw new MalformedEventError(`a Box's first event (seq 1) must be its join, not ${kind}`);
  switch (kind) {
    case 'box-declared-dead':
    case 'box-decommissioned':
      checkBoxId(body.box as string, 'box');
      break;
    case 'config-changed': {
      const set = body.set as Array<[string, unknown]>;
      for (let i = 1; i < set.length; i++) if (!(set[i - 1][0] < set[i][0])) throw new MalformedEventError('config-changed paths must be unique and sorted');
      try {
        validateConfigChanges(set);
      } catch (err) {
        if (err instanceof ConfigError) throw new MalformedEventError(`invalid config-changed event: ${err.message}`, { cause: err });
        throw err;
      }
      break;
    }
    case 'secret-rotated': {
      const sealed = body.sealed as Array<[string, Uint8Array]>;
      for (let i = 0; i < sealed.length; i++) {
        checkBoxId(sealed[i][0], `sealed.${i}`);
        if (i > 0 && !(sealed[i - 1][0] < sealed[i][0])) throw new MalformedEventError('secret-rotated recipients must be unique and sorted');
      }
      break;
    }
    case 'box-joined': {
      const b = body as unknown as BoxJoinedBody;
      if (b.generation === 0 && reserveIdFromJoinKey(b.joinKey) !== ctx.reserveId) {
        throw new BadJoinProofError(`join key of generation 0 is not the one reserve ${ctx.reserveId} was founded with`);
      }
      if (!verifyEd25519(b.joinKey, joinProofInput(ctx.reserveId, author, b.generation, b.xpub), b.proof)) {
        throw new BadJoinProofError(`join of ${author} does not prove the secret of generation ${b.generation}`);
      }
      break;
    }
    case 'checkpoint': {
      try {
        return { summary: summaryFromWire(body.summary) };
      } catch (err) {
        if (err instanceof MalformedSummaryError) throw new MalformedEventError(err.message, { cause: err });
        throw err;
      }
    }
    default:
      break;
  }
  return body;
}

function checkBoxId(id: string, field: string): void {
  try {
    publicKeyOfBox(id);
  } catch (err) {
    if (err instanceof InvalidBoxIdError) throw new MalformedEventError(`${field}: ${err.message}`, { cause: err });
    throw err;
  }
}

// ------------------------------------------------------------------------------------------------ encode

/** What is signed to prove a join: the join key's signature over this. */
export function joinProofInput(reserveId: string, box: BoxId, generation: number, xpub: Uint8Array): Uint8Array {
  return concat(utf8.encode(JOIN_DOMAIN), dagCbor.encode([reserveId, box, generation, xpub]));
}

/** Associated data binding a sealed secret to its reserve, generation and recipient. */
export function sealContext(reserveId: string, generation: number, recipient: BoxId): Uint8Array {
  return dagCbor.encode([SEAL_DOMAIN, reserveId, generation, recipient]);
}

function signingInput(reserveId: string, payload: Uint8Array): Uint8Array {
  return concat(utf8.encode(`${DOMAIN}${reserveId}\n`), payload);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a, 0);
  out.set(b, a.byteLength);
  return out;
}

function bodyToWire(kind: StateEventKind, body: unknown): unknown {
  if (kind === 'checkpoint') return { summary: summaryToWire((body as CheckpointBody).summary) };
  return stripUndefined(body);
}

export interface EventDraft<K extends StateEventKind = StateEventKind> {
  kind: K;
  body: BodyByKind[K];
}

/**
 * Sign and encode an event. The body is checked exactly as a receiver would check it (MalformedEventError,
 * BadJoinProofError), so a Box never publishes what others will refuse.
 */
export function createEvent<K extends StateEventKind>(
  signer: Signer,
  ctx: EventContext,
  header: { seq: number; at: Hlc },
  kind: K,
  body: BodyByKind[K],
): StateEventOf<K> {
  if (!KINDS.has(kind)) throw new MalformedEventError(`unknown event kind ${JSON.stringify(kind)}`);
  if (!Number.isSafeInteger(header.seq) || header.seq < 1) throw new MalformedEventError('seq starts at 1');
  const b = bodyToWire(kind, body);
  const payload = dagCbor.encode({ v: STATE_EVENT_VERSION, k: kind, a: signer.id, s: header.seq, t: [header.at.wall, header.at.logical], b });
  const signature = signer.sign(signingInput(ctx.reserveId, payload));
  const bytes = dagCbor.encode({ p: payload, z: signature });
  if (bytes.byteLength > (kind === 'checkpoint' ? MAX_CHECKPOINT_BYTES : MAX_EVENT_BYTES)) throw new MalformedEventError(`${kind} event of ${bytes.byteLength} bytes is too large`);
  const id = eventIdOf(bytes);
  if (kind === 'checkpoint') {
    // The summary was built by this Box's own reducer; decoding it back would only cost time.
    return { id, bytes, kind, author: signer.id, seq: header.seq, at: { wall: header.at.wall, logical: header.at.logical }, body, signature } as unknown as StateEventOf<K>;
  }
  const verified = ctx.verified ?? new Set<string>();
  verified.add(id);
  return decodeEvent(bytes, { reserveId: ctx.reserveId, verified }) as StateEventOf<K>;
}

/** The content address of an event's bytes. */
export function eventIdOf(bytes: Uint8Array): string {
  return cidOf(DAG_CBOR_CODE, bytes).toString();
}

// ------------------------------------------------------------------------------------------------ decode

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) && CID.asCID(v) === null;
}

function exactKeys(o: Record<string, unknown>, keys: readonly string[]): boolean {
  const have = Object.keys(o);
  return have.length === keys.length && keys.every((k) => Object.hasOwn(o, k));
}

/**
 * The outer wrapper `{p: bytes, z: bytes(64)}` in its one canonical dag-cbor form, parsed by hand: map of two,
 * key "p", a byte string with a minimal length header, key "z", a 64-byte string, nothing after. Exactness
 * matters: the id is the hash of these bytes, so any other encoding of the same content would be a second id for
 * the same signed event. (The payload inside is covered by the signature as it is; it cannot be altered.)
 */
function splitEvent(bytes: Uint8Array): { payload: Uint8Array; signature: Uint8Array } {
  const bad = (): never => {
    throw new MalformedEventError('an event is canonical dag-cbor {p: payload bytes, z: 64-byte signature}');
  };
  if (bytes.byteLength < 3 + 1 + 4 + 64 || bytes[0] !== 0xa2 || bytes[1] !== 0x61 || bytes[2] !== 0x70) bad();
  let i = 3;
  const head = bytes[i++];
  let len: number;
  if (head >= 0x40 && head <= 0x57) len = head - 0x40;
  else if (head === 0x58) {
    len = bytes[i++];
    if (len < 24) bad();
  } else if (head === 0x59) {
    len = (bytes[i] << 8) | bytes[i + 1];
    i += 2;
    if (len < 256) bad();
  } else if (head === 0x5a) {
    len = ((bytes[i] << 24) >>> 0) + (bytes[i + 1] << 16) + (bytes[i + 2] << 8) + bytes[i + 3];
    i += 4;
    if (len < 65536) bad();
  } else return bad();
  const payload = bytes.subarray(i, i + len);
  i += len;
  if (payload.byteLength !== len || bytes.byteLength !== i + 4 + 64) bad();
  if (bytes[i] !== 0x61 || bytes[i + 1] !== 0x7a || bytes[i + 2] !== 0x58 || bytes[i + 3] !== 0x40) bad();
  return { payload, signature: bytes.subarray(i + 4) };
}

/**
 * The author, sequence number and kind of an event's bytes, without checking anything else (no signature, no
 * body). Only for deciding to *skip* bytes (an event already compacted); never for accepting them.
 */
export function peekEvent(bytes: Uint8Array): { author: BoxId; seq: number; kind: string } | undefined {
  try {
    const inner = dagCbor.decode(splitEvent(bytes).payload) as { a?: unknown; s?: unknown; k?: unknown };
    if (typeof inner?.a !== 'string' || typeof inner.s !== 'number' || typeof inner.k !== 'string') return undefined;
    return { author: inner.a, seq: inner.s, kind: inner.k };
  } catch {
    return undefined;
  }
}

/**
 * Decode and check an event's bytes (see the module comment for the order of checks). Changes nothing; throws
 * MalformedEventError, BadSignatureError or BadJoinProofError.
 */
export function decodeEvent(bytes: Uint8Array, ctx: EventContext): StateEvent {
  if (!(bytes instanceof Uint8Array)) throw new MalformedEventError('an event is bytes');
  if (bytes.byteLength > MAX_CHECKPOINT_BYTES) throw new MalformedEventError(`event of ${bytes.byteLength} bytes exceeds ${MAX_CHECKPOINT_BYTES}`);
  const { payload, signature } = splitEvent(bytes);
  let inner: unknown;
  try {
    inner = dagCbor.decode(payload);
  } catch (cause) {
    throw new MalformedEventError('event payload is not valid dag-cbor', { cause });
  }
  if (!isPlainObject(inner) || !exactKeys(inner, ['v', 'k', 'a', 's', 't', 'b'])) throw new MalformedEventError('an event payload has exactly the fields v, k, a, s, t, b');
  if (inner.v !== STATE_EVENT_VERSION) throw new MalformedEventError(`event version ${JSON.stringify(inner.v)} is not supported (this build reads ${STATE_EVENT_VERSION})`);
  const kind = inner.k;
  if (typeof kind !== 'string' || !KINDS.has(kind)) throw new MalformedEventError(`unknown event kind ${JSON.stringify(kind)}`);
  if (kind !== 'checkpoint' && bytes.byteLength > MAX_EVENT_BYTES) throw new MalformedEventError(`${kind} event of ${bytes.byteLength} bytes exceeds ${MAX_EVENT_BYTES}`);
  const author = inner.a;
  if (typeof author !== 'string' || author.length > 256) throw new MalformedEventError('author must be a Box id');
  const seq = inner.s;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) throw new MalformedEventError('seq must be an integer >= 1');
  const t = inner.t;
  if (!Array.isArray(t) || t.length !== 2 || !t.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0)) {
    throw new MalformedEventError('t must be [wall ms, logical counter]');
  }
  let publicKey: Uint8Array;
  try {
    publicKey = publicKeyOfBox(author);
  } catch (err) {
    if (err instanceof InvalidBoxIdError) throw new MalformedEventError(`author: ${err.message}`, { cause: err });
    throw err;
  }
  const id = eventIdOf(bytes);
  if (ctx.verified?.has(id) !== true) {
    if (!verifyEd25519(publicKey, signingInput(ctx.reserveId, payload), signature)) {
      throw new BadSignatureError(`event ${id} is not signed by its author ${author}`);
    }
  }
  const body = checkBody(kind as StateEventKind, inner.b, author, seq, ctx);
  ctx.verified?.add(id);
  return { id, bytes, kind: kind as StateEventKind, author, seq, at: { wall: t[0], logical: t[1] }, body, signature } as StateEvent;
}
