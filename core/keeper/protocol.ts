/**
 * The keeper's wire messages (request/response over the Network port). Every message is dag-cbor with a version
 * field and hard size limits; anything malformed, oversized or of an unknown version is rejected with a named
 * error before it can change anything.
 *
 *   reserve/blocks/1   get {cid} -> {bytes | absent}; put {cid, bytes} -> {stored}; has {cids} -> {bits}
 *   reserve/sync/1     state-vector handshake: the ledger's own sync messages, carried as opaque bytes
 *   reserve/ping/1     liveness probe: {} -> {}
 *   reserve/state/1    gossip topic: ledger updates
 */
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { ReserveError } from '../errors.ts';

export const BLOCKS_PROTOCOL = 'reserve/blocks/1';
export const SYNC_PROTOCOL = 'reserve/sync/1';
export const PING_PROTOCOL = 'reserve/ping/1';
export const JOIN_PROTOCOL = 'reserve/join/1';
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
  return dagCbor.encode({ v: WIRE_VERSION, ...req });
}

export function decodeBlockRequest(bytes: Uint8Array): BlockRequest {
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
  return dagCbor.encode({ v: WIRE_VERSION, ...res });
}

export function decodeBlockResponse(bytes: Uint8Array, expect: BlockRequest['op']): BlockResponse {
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
