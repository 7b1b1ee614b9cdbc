/**
 * The block protocol's direct codec (core/keeper/block-codec.ts) against dag-cbor: byte-identical encodings, equal
 * decodings, and any other valid dag-cbor encoding of a message still understood (through the general decoder).
 */
import * as dagCbor from '@ipld/dag-cbor';
import fc from 'fast-check';
import { CID } from 'multiformats/cid';
import { describe, expect, it } from 'vitest';
import { cidOf, DAG_CBOR_CODE, RAW_CODE } from '../core/blocks/cid.ts';
import {
  MAX_HAS,
  MalformedMessageError,
  UnsupportedVersionError,
  decodeBlockRequest,
  decodeBlockResponse,
  encodeBlockRequest,
  encodeBlockResponse,
  type BlockRequest,
  type BlockResponse,
} from '../core/keeper/protocol.ts';
import { propertyOptions } from './support/fc.ts';

const cidArb = fc.tuple(fc.constantFrom(RAW_CODE, DAG_CBOR_CODE), fc.uint8Array({ maxLength: 64 })).map(([codec, bytes]) => cidOf(codec, bytes));
/** Lengths around every CBOR length-encoding boundary. */
const sizeArb = fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constantFrom(23, 24, 255, 256, 65_535, 65_536, 70_000));
const bytesArb = sizeArb.chain((n) => fc.uint8Array({ minLength: n, maxLength: n }));

const requestArb: fc.Arbitrary<BlockRequest> = fc.oneof(
  cidArb.map((cid) => ({ op: 'get' as const, cid })),
  fc.tuple(cidArb, bytesArb).map(([cid, bytes]) => ({ op: 'put' as const, cid, bytes })),
  fc.array(cidArb, { maxLength: 40 }).map((cids) => ({ op: 'has' as const, cids })),
);
const responseArb: fc.Arbitrary<BlockResponse> = fc.oneof(
  fc.constant({ op: 'get' as const }),
  bytesArb.map((bytes) => ({ op: 'get' as const, bytes })),
  fc.boolean().map((stored) => ({ op: 'put' as const, stored })),
  fc.uint8Array({ maxLength: 600 }).map((bits) => ({ op: 'has' as const, bits })),
);

/** Plain values for comparison (CIDs as strings, bytes as arrays). */
function plain(v: unknown): unknown {
  const cid = CID.asCID(v);
  if (cid) return `cid:${cid.toString()}`;
  if (v instanceof Uint8Array) return [...v];
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

describe('block protocol codec', () => {
  it('requests encode exactly as dag-cbor and decode to what was sent', () => {
    fc.assert(
      fc.property(requestArb, (req) => {
        const bytes = encodeBlockRequest(req);
        expect([...bytes]).toEqual([...dagCbor.encode({ v: 1, ...req })]);
        expect(plain(decodeBlockRequest(bytes))).toEqual(plain(req));
      }),
      propertyOptions('block codec requests', { numRuns: 200 }),
    );
  });

  it('responses encode exactly as dag-cbor and decode to what was sent', () => {
    fc.assert(
      fc.property(responseArb, (res) => {
        const bytes = encodeBlockResponse(res);
        expect([...bytes]).toEqual([...dagCbor.encode({ v: 1, ...res })]);
        expect(plain(decodeBlockResponse(bytes, res.op))).toEqual(plain(res));
      }),
      propertyOptions('block codec responses', { numRuns: 200 }),
    );
  });

  it('other valid encodings still decode (non-minimal lengths, extra keys are refused as before)', () => {
    const cid = cidOf(RAW_CODE, new Uint8Array([1, 2, 3]));
    const canonical = encodeBlockRequest({ op: 'put', cid, bytes: new Uint8Array([9, 9]) });
    // The byte string's length written in two bytes instead of one: valid CBOR, not this codec's layout.
    const at = canonical.length - 3;
    expect(canonical[at]).toBe(0x42);
    const longForm = new Uint8Array([...canonical.subarray(0, at), 0x58, 0x02, 9, 9]);
    expect(() => decodeBlockRequest(longForm)).toThrow(MalformedMessageError); // dag-cbor is strict about it
    // A response for another op, a wrong version, a truncated message: the general decoder's named errors.
    expect(() => decodeBlockResponse(encodeBlockResponse({ op: 'put', stored: true }), 'get')).toThrow(MalformedMessageError);
    expect(() => decodeBlockRequest(dagCbor.encode({ v: 2, op: 'get', cid }))).toThrow(UnsupportedVersionError);
    expect(() => decodeBlockRequest(canonical.subarray(0, canonical.length - 1))).toThrow(MalformedMessageError);
    expect(() => decodeBlockRequest(new Uint8Array([...canonical, 0]))).toThrow(MalformedMessageError);
    const many = Array.from({ length: MAX_HAS + 1 }, () => cid);
    expect(() => decodeBlockRequest(encodeBlockRequest({ op: 'has', cids: many }))).toThrow(MalformedMessageError);
  });

  it('decoded CIDs own their bytes; block bytes are views into the message', () => {
    const cid = cidOf(RAW_CODE, new Uint8Array([4, 5, 6]));
    const msg = encodeBlockRequest({ op: 'put', cid, bytes: new Uint8Array(1000) });
    const req = decodeBlockRequest(msg);
    if (req.op !== 'put') throw new Error('expected a put');
    expect(req.cid.bytes.buffer.byteLength).toBe(req.cid.bytes.byteLength);
    expect(req.bytes.buffer).toBe(msg.buffer);
  });
});
