/**
 * The network adapter's wire codec (adapters/net/codec.ts) under fuzzing. For every decoder, whatever the input
 * (random bytes, valid encodings cut short, bit flips, headers announcing huge lengths, any chunking of a byte
 * stream), decoding either succeeds or throws one of the named WireFormatError classes, never anything else; and
 * it never allocates from a length a peer announced: every numeric-length Uint8Array allocation made while
 * decoding is at most the size of the input actually given.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { CID, RAW_CODE, cidOf } from '../core/blocks/cid.ts';
import {
  ERROR_FRAME_LIMIT,
  FrameDecoder,
  FrameKind,
  HEADER_BYTES,
  HELLO_BYTES,
  Limits,
  WANT_FRAME_LIMIT,
  blockFrameLimit,
  decodeBlock,
  decodeCidList,
  decodeEmpty,
  decodeError,
  decodeFrame,
  decodeGossip,
  decodeHello,
  decodeMissing,
  decodePeers,
  decodePut,
  decodeRefused,
  decodeStored,
  CID_FRAME_LIMIT,
  encodePut,
  encodeRefused,
  encodeStored,
  encodeBlock,
  encodeCidList,
  encodeError,
  encodeFrame,
  encodeGossip,
  encodeHello,
  encodeMissing,
  encodePeers,
  frameHeader,
  frameLimits,
  type Frame,
  type PeerRecord,
} from '../adapters/net/codec.ts';
import {
  FrameTooLargeError,
  MalformedFrameError,
  TruncatedFrameError,
  UnexpectedFrameError,
  UnsupportedVersionError,
  WireFormatError,
} from '../adapters/net/errors.ts';
import { propertyOptions } from './support/fc.ts';

const NAMED = new Set(['MalformedFrameError', 'FrameTooLargeError', 'UnsupportedVersionError', 'TruncatedFrameError', 'UnexpectedFrameError']);

// ---------------------------------------------------------------------------------------------------------------
// Allocation spy: while active, every `new Uint8Array(n)` with a numeric length is checked against a budget.

const RealUint8Array = globalThis.Uint8Array;
let budget = Infinity;
let worst = 0;
class SpyUint8Array extends RealUint8Array {
  static override [Symbol.hasInstance](x: unknown): boolean {
    return x instanceof RealUint8Array;
  }
  constructor(...args: unknown[]) {
    if (typeof args[0] === 'number') {
      worst = Math.max(worst, args[0]);
      if (args[0] > budget) throw new Error(`allocation of ${args[0]} bytes exceeds the input size ${budget}`);
    }
    super(...(args as []));
  }
}

const realAlloc = { alloc: Buffer.alloc, allocUnsafe: Buffer.allocUnsafe, allocUnsafeSlow: Buffer.allocUnsafeSlow };
function checked<F extends (size: number, ...rest: never[]) => Buffer>(f: F): F {
  return ((size: number, ...rest: never[]) => {
    worst = Math.max(worst, size);
    if (size > budget) throw new Error(`allocation of ${size} bytes exceeds the input size ${budget}`);
    return f.call(Buffer, size, ...rest);
  }) as F;
}

function withAllocationBudget<T>(inputBytes: number, fn: () => T): T {
  budget = inputBytes + 64;
  (globalThis as { Uint8Array: unknown }).Uint8Array = SpyUint8Array;
  Buffer.alloc = checked(realAlloc.alloc);
  Buffer.allocUnsafe = checked(realAlloc.allocUnsafe);
  Buffer.allocUnsafeSlow = checked(realAlloc.allocUnsafeSlow);
  try {
    return fn();
  } finally {
    (globalThis as { Uint8Array: unknown }).Uint8Array = RealUint8Array;
    Object.assign(Buffer, realAlloc);
    budget = Infinity;
  }
}

afterEach(() => {
  (globalThis as { Uint8Array: unknown }).Uint8Array = RealUint8Array;
  Object.assign(Buffer, realAlloc);
});

/** Runs `decode`; passes if it returns or throws a named wire error; fails on anything else. */
function decodesOrRefuses(input: Uint8Array, decode: (b: Uint8Array) => unknown): 'ok' | string {
  try {
    withAllocationBudget(input.byteLength, () => decode(input));
    return 'ok';
  } catch (err) {
    if (err instanceof WireFormatError && NAMED.has(err.name)) return err.name;
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries

const cidArb = fc.uint8Array({ minLength: 0, maxLength: 64 }).map((b) => cidOf(RAW_CODE, b));
const errorArb = fc.record({
  errorName: fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,40}$/),
  message: fc.string({ maxLength: 300 }),
});
const peerIdArb = fc.stringMatching(/^[1-9A-HJ-NP-Za-km-z]{10,60}$/);
const addrArb = fc.constantFrom('/ip4/127.0.0.1/tcp/4001', '/ip4/192.168.1.20/tcp/9000', '/ip6/::1/tcp/1234', '/dns4/box.local/tcp/4001');
const peersArb: fc.Arbitrary<PeerRecord[]> = fc.array(fc.record({ id: peerIdArb, addrs: fc.array(addrArb, { maxLength: 4 }) }), { maxLength: 6 });

const ALL_KINDS = frameLimits([
  [FrameKind.Request, Limits.control],
  [FrameKind.Response, Limits.control],
  [FrameKind.Error, ERROR_FRAME_LIMIT],
  [FrameKind.Want, WANT_FRAME_LIMIT],
  [FrameKind.Block, blockFrameLimit(Limits.block)],
  [FrameKind.Missing, 1 + Limits.cidBytes],
  [FrameKind.Done, 0],
  [FrameKind.Put, blockFrameLimit(Limits.block)],
  [FrameKind.Stored, CID_FRAME_LIMIT],
  [FrameKind.Refused, CID_FRAME_LIMIT],
  [FrameKind.Gossip, Limits.gossip],
]);

interface Case {
  name: string;
  decode: (b: Uint8Array) => unknown;
  valid: fc.Arbitrary<Uint8Array>;
}

const cases: Case[] = [
  { name: 'frame', decode: (b) => decodeFrame(b, ALL_KINDS), valid: fc.tuple(fc.constantFrom(...ALL_KINDS.keys()), fc.uint8Array({ maxLength: 200 })).map(([k, p]) => encodeFrame(k, k === FrameKind.Done ? new Uint8Array(0) : p)) },
  { name: 'error', decode: decodeError, valid: errorArb.map(encodeError) },
  { name: 'cid list', decode: (b) => decodeCidList(b), valid: fc.array(cidArb, { maxLength: 20 }).map(encodeCidList) },
  { name: 'block', decode: (b) => decodeBlock(b, 4096), valid: fc.tuple(cidArb, fc.uint8Array({ maxLength: 300 })).map(([c, b]) => encodeBlock(c, b)) },
  { name: 'missing', decode: decodeMissing, valid: cidArb.map(encodeMissing) },
  { name: 'put', decode: (b) => decodePut(b, 4096), valid: fc.tuple(cidArb, fc.uint8Array({ maxLength: 300 })).map(([c, b]) => encodePut(c, b)) },
  { name: 'stored', decode: decodeStored, valid: cidArb.map(encodeStored) },
  { name: 'refused', decode: decodeRefused, valid: cidArb.map(encodeRefused) },
  { name: 'done', decode: (b) => decodeEmpty(b, 'Done'), valid: fc.constant(new Uint8Array(0)) },
  { name: 'peers', decode: decodePeers, valid: peersArb.map(encodePeers) },
  { name: 'hello', decode: decodeHello, valid: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ minLength: 24, maxLength: 24 })).map(([c, n]) => encodeHello(c, n)) },
  { name: 'gossip', decode: (b) => decodeGossip(b, 1024), valid: fc.uint8Array({ maxLength: 300 }).map((d) => encodeGossip(d, 1024)) },
  {
    name: 'frame stream',
    decode: (b) => {
      const d = new FrameDecoder(ALL_KINDS);
      // feed in small pieces, as a socket would
      for (let i = 0; i < b.byteLength; i += 7) {
        d.push(b.subarray(i, i + 7));
        while (d.next());
      }
      d.finish();
    },
    valid: fc.array(fc.tuple(fc.constantFrom(FrameKind.Request, FrameKind.Want, FrameKind.Gossip), fc.uint8Array({ maxLength: 100 })), { maxLength: 5 }).map((fs) => {
      const parts = fs.map(([k, p]) => encodeFrame(k, p));
      const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.byteLength;
      }
      return out;
    }),
  },
];

describe('wire codec fuzz: every decoder returns or throws a named error, within its input size', () => {
  for (const c of cases) {
    it(`${c.name}: random bytes`, () => {
      const name = `net codec: ${c.name} random bytes`;
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
          decodesOrRefuses(bytes, c.decode);
        }),
        propertyOptions(name, { numRuns: 300 }),
      );
    });

    it(`${c.name}: valid encodings decode; every truncation and bit flip is refused by name or still decodes`, () => {
      const name = `net codec: ${c.name} truncations and bit flips`;
      fc.assert(
        fc.property(c.valid, fc.nat(), fc.nat(), (bytes, cutSeed, flipSeed) => {
          expect(decodesOrRefuses(bytes, c.decode)).toBe('ok');
          if (bytes.byteLength > 0) {
            const cut = cutSeed % bytes.byteLength; // strictly shorter
            decodesOrRefuses(bytes.slice(0, cut), c.decode);
            const flipped = bytes.slice();
            const bit = flipSeed % (bytes.byteLength * 8);
            flipped[bit >> 3] ^= 1 << (bit & 7);
            decodesOrRefuses(flipped, c.decode);
          }
          const extended = new Uint8Array(bytes.byteLength + 1);
          extended.set(bytes);
          decodesOrRefuses(extended, c.decode);
        }),
        propertyOptions(name, { numRuns: 200 }),
      );
    });
  }

  it('frames cut anywhere are TruncatedFrameError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(), (payload, cutSeed) => {
        const bytes = encodeFrame(FrameKind.Request, payload);
        const cut = 1 + (cutSeed % (bytes.byteLength - 1)); // a non-empty strict prefix (nothing at all is a clean end)
        expect(decodesOrRefuses(bytes.slice(0, cut), (b) => decodeFrame(b, ALL_KINDS))).toBe('TruncatedFrameError');
        const d = new FrameDecoder(ALL_KINDS);
        d.push(bytes.slice(0, cut));
        expect(d.next()).toBeUndefined();
        expect(() => d.finish()).toThrow(TruncatedFrameError);
      }),
      propertyOptions('net codec: frames cut anywhere are truncated', { numRuns: 200 }),
    );
  });

  it('oversize lengths are refused from the header alone, before any payload arrives or is allocated', () => {
    fc.assert(
      fc.property(fc.constantFrom(...ALL_KINDS.keys()), fc.integer({ min: 1, max: 0xffffffff - (1 << 23) }), (kind, extra) => {
        const limit = ALL_KINDS.get(kind)!;
        const length = Math.min(0xffffffff, limit + extra);
        const header = frameHeader(kind, length);
        const d = new FrameDecoder(ALL_KINDS);
        d.push(header);
        let thrown: unknown;
        withAllocationBudget(header.byteLength, () => {
          try {
            d.next();
          } catch (err) {
            thrown = err;
          }
        });
        expect(thrown).toBeInstanceOf(FrameTooLargeError);
        // the decoder stays failed and keeps nothing
        expect(d.buffered).toBe(0);
        expect(() => d.next()).toThrow(FrameTooLargeError);
        expect(decodesOrRefuses(header, (b) => decodeFrame(b, ALL_KINDS))).toBe('FrameTooLargeError');
      }),
      propertyOptions('net codec: oversize lengths refused from the header', { numRuns: 200 }),
    );
  });

  it('a within-limit length waits for bytes that arrive and holds only what arrived', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: Limits.control }), fc.integer({ min: 0, max: 4000 }), (length, sent) => {
        const got = Math.min(sent, length - 1);
        const d = new FrameDecoder(ALL_KINDS);
        withAllocationBudget(HEADER_BYTES + got, () => {
          d.push(frameHeader(FrameKind.Request, length));
          d.push(new RealUint8Array(got));
          expect(d.next()).toBeUndefined();
        });
        expect(d.buffered).toBe(HEADER_BYTES + got);
      }),
      propertyOptions('net codec: pending frames hold only received bytes', { numRuns: 200 }),
    );
  });

  it('large frames assembled from many chunks allocate exactly their (received) size', () => {
    fc.assert(
      fc.property(fc.integer({ min: 4096, max: 200_000 }), fc.integer({ min: 1000, max: 70_000 }), (size, chunk) => {
        const bytes = encodeFrame(FrameKind.Block, new RealUint8Array(size).fill(7));
        const d = new FrameDecoder(ALL_KINDS);
        let got: Frame | undefined;
        for (let i = 0; i < bytes.byteLength; i += chunk) {
          const piece = bytes.slice(i, i + chunk);
          withAllocationBudget(i + piece.byteLength, () => {
            d.push(piece);
            got = d.next() ?? got;
          });
        }
        expect(got?.payload.byteLength).toBe(size);
        expect(got?.payload.every((b) => b === 7)).toBe(true);
        expect(Buffer.isBuffer(got!.payload)).toBe(false); // a plain Uint8Array, not a Node Buffer
      }),
      propertyOptions('net codec: large frames allocate their received size', { numRuns: 30 }),
    );
  });

  it('a frame stream split at any points decodes to the same frames', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(FrameKind.Request, FrameKind.Block, FrameKind.Done), fc.uint8Array({ maxLength: 200 })), { minLength: 1, maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (frames, cutSeeds) => {
          const limits = frameLimits([
            [FrameKind.Request, 1000],
            [FrameKind.Block, 1000],
            [FrameKind.Done, 1000],
          ]);
          const parts = frames.map(([k, p]) => encodeFrame(k, p));
          const all = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
          let o = 0;
          for (const p of parts) {
            all.set(p, o);
            o += p.byteLength;
          }
          const cuts = [...new Set(cutSeeds.map((s) => s % (all.byteLength + 1)))].sort((a, b) => a - b);
          const d = new FrameDecoder(limits);
          const out: Frame[] = [];
          let prev = 0;
          for (const cut of [...cuts, all.byteLength]) {
            d.push([all.slice(prev, cut)]); // an iterable of chunks, like a Uint8ArrayList
            prev = cut;
            for (let f = d.next(); f; f = d.next()) out.push({ kind: f.kind, payload: f.payload.slice() });
          }
          d.finish();
          expect(out.map((f) => f.kind)).toEqual(frames.map(([k]) => k));
          expect(out.map((f) => Array.from(f.payload))).toEqual(frames.map(([, p]) => Array.from(p)));
        },
      ),
      propertyOptions('net codec: any chunking decodes the same frames', { numRuns: 200 }),
    );
  });
});

describe('wire codec: round trips and specific refusals', () => {
  it('round-trips every message', () => {
    fc.assert(
      fc.property(errorArb, fc.array(cidArb, { maxLength: 10 }), cidArb, fc.uint8Array({ maxLength: 100 }), peersArb, (e, cids, cid, bytes, peers) => {
        expect(decodeError(encodeError(e))).toEqual(e);
        expect(decodeCidList(encodeCidList(cids)).map(String)).toEqual(cids.map(String));
        const b = decodeBlock(encodeBlock(cid, bytes));
        expect(b.cid.equals(cid)).toBe(true);
        expect(Array.from(b.bytes)).toEqual(Array.from(bytes));
        expect(decodeMissing(encodeMissing(cid)).equals(cid)).toBe(true);
        const put = decodePut(encodePut(cid, bytes));
        expect(put.cid.equals(cid)).toBe(true);
        expect(Array.from(put.bytes)).toEqual(Array.from(bytes));
        expect(decodeStored(encodeStored(cid)).equals(cid)).toBe(true);
        expect(decodeRefused(encodeRefused(cid)).equals(cid)).toBe(true);
        expect(decodePeers(encodePeers(peers))).toEqual(peers);
        expect(Array.from(decodeGossip(encodeGossip(bytes)))).toEqual(Array.from(bytes));
      }),
      propertyOptions('net codec: round trips', { numRuns: 100 }),
    );
  });

  it('refuses each failure with its own name', () => {
    const limits = frameLimits([[FrameKind.Request, 10]]);
    const req = encodeFrame(FrameKind.Request, new Uint8Array(3));
    const badVersion = req.slice();
    badVersion[0] = 2;
    expect(() => decodeFrame(badVersion, limits)).toThrow(UnsupportedVersionError);
    const unknownKind = req.slice();
    unknownKind[1] = 0x7f;
    expect(() => decodeFrame(unknownKind, limits)).toThrow(MalformedFrameError);
    expect(() => decodeFrame(encodeFrame(FrameKind.Response, new Uint8Array(1)), limits)).toThrow(UnexpectedFrameError);
    expect(() => decodeFrame(encodeFrame(FrameKind.Request, new Uint8Array(11)), limits)).toThrow(FrameTooLargeError);
    expect(() => decodeFrame(req.subarray(0, 5), limits)).toThrow(TruncatedFrameError);
    // a CIDv0 or a non-sha256 CID is not a Reserve block id
    const v0 = CID.parse('QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n');
    expect(() => decodeCidList(encodeCidList([v0]))).toThrow(MalformedFrameError);
    // a count the bytes cannot hold is refused before looping
    expect(() => decodeCidList(Uint8Array.of(0x04, 0x01))).toThrow(FrameTooLargeError);
    expect(() => decodeCidList(Uint8Array.of(0x00, 0x05, 1))).toThrow(TruncatedFrameError);
    expect(() => decodeHello(new Uint8Array(HELLO_BYTES))).toThrow(MalformedFrameError);
    expect(() => decodeError(Uint8Array.of(3, 0x31, 0x32, 0x33, 0, 0))).toThrow(MalformedFrameError);
    // a pushed block larger than the receiver's limit is refused from its length, a Stored with trailing bytes too
    const cid = cidOf(RAW_CODE, new Uint8Array([1]));
    expect(() => decodePut(encodePut(cid, new Uint8Array(101)), 100)).toThrow(FrameTooLargeError);
    expect(() => decodeStored(encodePut(cid, new Uint8Array(1)))).toThrow(MalformedFrameError);
  });

  it('the allocation spy itself catches an allocation from an announced length', () => {
    const header = frameHeader(FrameKind.Request, 1 << 20);
    expect(() => withAllocationBudget(header.byteLength, () => new Uint8Array(new DataView(header.buffer).getUint32(2)))).toThrow(/exceeds the input size/);
    expect(worst).toBeGreaterThan(0);
  });
});
