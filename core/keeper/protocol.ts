/**
 * The keeper's wire messages (request/response over the Network port). Every message is dag-cbor with a version
 * field and hard size limits; anything malformed, oversized or of an unknown version is rejected with a named
 * error before it can change anything.
 *
 *   reserve/blocks/1   get {cid} -> {bytes | absent}; put {cid, bytes} -> {stored}; has {cids} -> {bits}
 *   reserve/sync/1     state-vector handshake: the ledger's own sync messages, carried as opaque bytes
 *   reserve/ping/1     liveness probe: {} -> {}
 *   reserve/join/1     admission: {r, ev: the joiner's signed box-joined event} -> {r, members}; the only protocol a
 *                      Box that holds the secret but is not a member yet may use
 *   reserve/state/1    gossip topic: ledger updates
 */
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { ReserveError } from '../errors.ts';
import { decodeBlockRequestFast, decodeBlockResponseFast, encodeBlockRequestFast, encodeBlockResponseFast } from './block-codec.ts';
import { RemoteError, type BoxId } from '../net.ts';

export const BLOCKS_PROTOCOL = 'reserve/blocks/1';
export const SYNC_PROTOCOL = 'reserve/sync/1';
export const PING_PROTOCOL = 'reserve/ping/1';
export const JOIN_PROTOCOL = 'reserve/join/1';
/** A member pushes a state update straight to another (request: an update message); the answer is the receiver's
 * state-vector message after applying it, so the sender learns what it now holds. */
export const PUSH_PROTOCOL = 'reserve/push/1';
export const STATE_TOPIC = 'reserve/state/1';

export const WIRE_VERSION = 1;
/** A block is at most 2 MiB (the chunker's max) and manifests are smaller; leave room for the envelope. */
export const MAX_BLOCK_MESSAGE = 2 * 1024 * 1024 + 4096;
/** CIDs per `has` request. */
export const MAX_HAS = 4096;

export class MalformedMessageError extends ReserveError {
  static override readonly name = 'MalformedMessageError';
}

export class MessageTooLargeError extends ReserveError {
  static override readonly name = 'MessageTooLargeError';
}

export class UnsupportedVersionError extends ReserveError {
  static override readonly name = 'UnsupportedVersionError';
}

/**
 * A peer refused a request because the requester is not a member of the reserve (it holds the secret, or it would
 * not have got past the private network, but its join is not known there). The requester sends JOIN. It is a
 * RemoteError (the Network port's contract for an answer that is a refusal).
 */
// @ts-expect-error RemoteError types its static name as a literal; this subclass keeps its own name
export class JoinRequiredError extends RemoteError {
  static override readonly name = 'JoinRequiredError';
  constructor(peer: BoxId, detail = `${peer} refused: this Box is not a member of this reserve; join with an invite token`) {
    super(peer, 'JoinRequiredError', detail);
    this.message = detail;
  }
}

/** A member refused a join: the proof does not verify, the secret generation is stale, the Box was decommissioned. */
export class JoinRefusedError extends ReserveError {
  static override readonly name = 'JoinRefusedError';
}

export type BlockRequest = { op: 'get'; cid: CID } | { op: 'put'; cid: CID; bytes: Uint8Array } | { op: 'has'; cids: CID[] };
export type BlockResponse = { op: 'get'; bytes?: Uint8Array } | { op: 'put'; stored: boolean } | { op: 'has'; bits: Uint8Array };

type Obj = Record<string, unknown>;

function decodeEnvelope(bytes: Uint8Array, limit: number, what: string): Obj {
  if (bytes.byteLength > limit) throw new MessageTooLargeError(`${what} of ${bytes.byteLength} bytes exceeds the ${limit}-byte limit`);
  let value: unknown;
  try {
    value = dagCbor.decode(bytes);
  } catch (e) {
    throw new MalformedMessageError(`${what} is not valid dag-cbor: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new MalformedMessageError(`${what} is not a map`);
  }
  const o = value as Obj;
  if (o.v !== WIRE_VERSION) throw new UnsupportedVersionError(`${what} has version ${String(o.v)}; this Box speaks ${WIRE_VERSION}`);
  return o;
}

const asCid = (x: unknown, what: string): CID => {
  const c = CID.asCID(x);
  if (!c) throw new MalformedMessageError(`${what}: expected a CID`);
  return c;
};

export function encodeBlockRequest(req: BlockRequest): Uint8Array {
  return encodeBlockRequestFast(req); // the same bytes as dagCbor.encode({ v: WIRE_VERSION, ...req })
}

export function decodeBlockRequest(bytes: Uint8Array): BlockRequest {
  const fast = bytes.byteLength <= MAX_BLOCK_MESSAGE ? decodeBlockRequestFast(bytes, MAX_HAS) : undefined;
  if (fast !== undefined) return fast;
  const o = decodeEnvelope(bytes, MAX_BLOCK_MESSAGE, 'block request');
  switch (o.op) {
    case 'get':
      return { op: 'get', cid: asCid(o.cid, 'block get') };
    case 'put':
      if (!(o.bytes instanceof Uint8Array)) throw new MalformedMessageError('block put: bytes missing');
      return { op: 'put', cid: asCid(o.cid, 'block put'), bytes: o.bytes };
    case 'has':
      if (!Array.isArray(o.cids) || o.cids.length > MAX_HAS) throw new MalformedMessageError(`block has: expected at most ${MAX_HAS} CIDs`);
      return { op: 'has', cids: o.cids.map((c) => asCid(c, 'block has')) };
    default:
      throw new MalformedMessageError(`block request: unknown op ${JSON.stringify(o.op)}`);
  }
}

export function encodeBlockResponse(res: BlockResponse): Uint8Array {
  return encodeBlockResponseFast(res); // the same bytes as dagCbor.encode({ v: WIRE_VERSION, ...res })
}

export function decodeBlockResponse(bytes: Uint8Array, expect: BlockRequest['op']): BlockResponse {
  const fast = bytes.byteLength <= MAX_BLOCK_MESSAGE ? decodeBlockResponseFast(bytes, expect) : undefined;
  if (fast !== undefined) return fast;
  const o = decodeEnvelope(bytes, MAX_BLOCK_MESSAGE, 'block response');
  if (o.op !== expect) throw new MalformedMessageError(`block response: expected op ${expect}, got ${JSON.stringify(o.op)}`);
  switch (expect) {
    case 'get':
      if (o.bytes !== undefined && !(o.bytes instanceof Uint8Array)) throw new MalformedMessageError('block get response: bytes are not bytes');
      return o.bytes === undefined ? { op: 'get' } : { op: 'get', bytes: o.bytes as Uint8Array };
    case 'put':
      if (typeof o.stored !== 'boolean') throw new MalformedMessageError('block put response: stored missing');
      return { op: 'put', stored: o.stored };
    case 'has':
      if (!(o.bits instanceof Uint8Array)) throw new MalformedMessageError('block has response: bits missing');
      return { op: 'has', bits: o.bits };
  }
}

export function packBits(flags: readonly boolean[]): Uint8Array {
  const out = new Uint8Array(Math.ceil(flags.length / 8));
  flags.forEach((f, i) => {
    if (f) out[i >> 3] |= 1 << (i & 7);
  });
  return out;
}

export function unpackBits(bits: Uint8Array, n: number): boolean[] {
  if (bits.length < Math.ceil(n / 8)) throw new MalformedMessageError(`has response: ${bits.length} bytes cannot hold ${n} answers`);
  return Array.from({ length: n }, (_, i) => (bits[i >> 3] & (1 << (i & 7))) !== 0);
}

// ------------------------------------------------------------------------------------------------ join

/** A box-joined event is a few hundred bytes; the whole request stays far below the 64 KiB control limit. */
export const MAX_JOIN_MESSAGE = 32 * 1024;
/** Events one join request may carry (the joiner's newest box-joined event; a few more are tolerated). */
export const MAX_JOIN_EVENTS = 4;

export interface JoinRequest {
  reserveId: string;
  /** The joiner's own signed events, its box-joined first. */
  events: Uint8Array[];
}

export interface JoinResponse {
  reserveId: string;
  /** Active members once the join was applied (the joiner included). */
  members: number;
}

const reserveIdOf = (o: Obj, what: string): string => {
  if (typeof o.r !== 'string' || o.r.length === 0 || o.r.length > 256) throw new MalformedMessageError(`${what}: reserve id missing`);
  return o.r;
};

export function encodeJoinRequest(req: JoinRequest): Uint8Array {
  return dagCbor.encode({ v: WIRE_VERSION, op: 'join', r: req.reserveId, ev: req.events });
}

export function decodeJoinRequest(bytes: Uint8Array): JoinRequest {
  const o = decodeEnvelope(bytes, MAX_JOIN_MESSAGE, 'join request');
  if (o.op !== 'join') throw new MalformedMessageError(`join request: unknown op ${JSON.stringify(o.op)}`);
  const reserveId = reserveIdOf(o, 'join request');
  if (!Array.isArray(o.ev) || o.ev.length === 0 || o.ev.length > MAX_JOIN_EVENTS || !o.ev.every((e) => e instanceof Uint8Array && e.byteLength > 0)) {
    throw new MalformedMessageError(`join request: expected 1 to ${MAX_JOIN_EVENTS} events as bytes`);
  }
  return { reserveId, events: o.ev as Uint8Array[] };
}

export function encodeJoinResponse(res: JoinResponse): Uint8Array {
  return dagCbor.encode({ v: WIRE_VERSION, op: 'joined', r: res.reserveId, n: res.members });
}

export function decodeJoinResponse(bytes: Uint8Array): JoinResponse {
  const o = decodeEnvelope(bytes, MAX_JOIN_MESSAGE, 'join response');
  if (o.op !== 'joined') throw new MalformedMessageError(`join response: unknown op ${JSON.stringify(o.op)}`);
  const reserveId = reserveIdOf(o, 'join response');
  if (typeof o.n !== 'number' || !Number.isSafeInteger(o.n) || o.n < 0) throw new MalformedMessageError('join response: member count missing');
  return { reserveId, members: o.n };
}
