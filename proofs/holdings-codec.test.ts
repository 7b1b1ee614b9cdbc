/**
 * The holdings wire format (core/holdings/codec.ts): requests and responses round-trip; responses are canonical;
 * the decoders (and `answer`, which a peer's bytes reach first) turn any malformed, mutated, oversized or
 * wrong-version input into a named error and never crash with anything else.
 */
import { splitmixWords } from '../simulations/sim/rng.ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cidFromSha256, RAW_CODE } from '../core/blocks/cid.ts';
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  filterWireBytes,
  MAX_MESSAGE_BYTES,
} from '../core/holdings/codec.ts';
import type { HoldingsRequest, HoldingsResponse, NodeRef, RequestItem } from '../core/holdings/codec.ts';
import {
  answer,
  HoldingsIndex,
  HoldingsMessageTooLargeError,
  MalformedHoldingsMessageError,
  PartitionFilter,
  reconcile,
  UnsupportedHoldingsVersionError,
} from '../core/holdings/index.ts';
import type { HoldingsGeometry } from '../core/holdings/index.ts';
import { propertyOptions } from './support/fc.ts';

const WIRE_ERRORS = ['MalformedHoldingsMessageError', 'HoldingsMessageTooLargeError', 'UnsupportedHoldingsVersionError'];

/** Run `f`; it may return, or throw one of `allowed` (by name). Anything else fails the property. */
function onlyNamed(f: () => unknown, allowed = WIRE_ERRORS): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof Error) || !allowed.includes(e.name)) throw new Error(`unexpected failure: ${String(e)}`, { cause: e });
  }
}


const GEOMETRIES: HoldingsGeometry[] = [
  { partitionBits: 4, levelBits: 2 },
  { partitionBits: 6, levelBits: 3 },
  { partitionBits: 8, levelBits: 8 },
  { partitionBits: 16, levelBits: 4 },
];

function compareKeys(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < 36; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** `n` random entry keys (digest then codec u32 LE) with partitions drawn from `partitions`, sorted, distinct. */
function randomKeys(next: () => number, n: number, partitionBits: number, partitions: number[]): { keys: Uint8Array; count: number } {
  const list: Uint8Array[] = [];
  if (partitions.length > 0)
    for (let i = 0; i < n; i++) {
      const k = new Uint8Array(36);
      for (let j = 0; j < 32; j++) k[j] = next() & 0xff;
      const p = partitions[next() % partitions.length]!;
      const top = (p << (24 - partitionBits)) | ((k[0]! << 16) | (k[1]! << 8) | k[2]!) & ((1 << (24 - partitionBits)) - 1);
      k[0] = top >>> 16;
      k[1] = (top >>> 8) & 0xff;
      k[2] = top & 0xff;
      const codec = next() % 3 === 0 ? next() : next() & 0x7f;
      new DataView(k.buffer).setUint32(32, codec >>> 0, true);
      list.push(k);
    }
  list.sort(compareKeys);
  const distinct = list.filter((k, i) => i === 0 || compareKeys(list[i - 1]!, k) !== 0);
  const keys = new Uint8Array(distinct.length * 36);
  distinct.forEach((k, i) => keys.set(k, i * 36));
  return { keys, count: distinct.length };
}

/** A structurally valid request, built from a seed. */
function randomRequest(seed: number, geometry: HoldingsGeometry, nExpand: number, nItems: number, maxEntries: number): HoldingsRequest {
  const next = splitmixWords(seed);
  const { partitionBits: pb, levelBits: lb } = geometry;
  const depth = pb / lb;
  const partitions = 2 ** pb;
  const kind = next() % 3;
  const filter =
    kind === 0
      ? PartitionFilter.all(partitions)
      : kind === 1
        ? PartitionFilter.ranges(partitions, [[next() % partitions, partitions], [0, next() % partitions]])
        : PartitionFilter.where(partitions, () => (next() & 3) === 0);
  const expandSet = new Map<string, NodeRef>();
  for (let i = 0; i < nExpand; i++) {
    const level = next() % depth;
    const index = next() % 2 ** (level * lb);
    expandSet.set(`${level}/${index}`, { level, index });
  }
  const expand = [...expandSet.values()].sort((a, b) => a.level - b.level || a.index - b.index);
  const spans: Array<NodeRef & { start: number; end: number }> = [];
  for (let i = 0; i < nItems; i++) {
    const level = next() % (depth + 1);
    const index = next() % 2 ** (level * lb);
    const width = 2 ** ((depth - level) * lb);
    spans.push({ level, index, start: index * width, end: (index + 1) * width });
  }
  spans.sort((a, b) => a.start - b.start);
  const items: RequestItem[] = [];
  let end = 0;
  for (const s of spans) {
    if (s.start < end) continue;
    end = s.end;
    const inside: number[] = [];
    for (let p = s.start; p < s.end && inside.length < 64; p++) if (filter.includes(p)) inside.push(p);
    const { keys, count } = randomKeys(next, next() % (maxEntries + 1), pb, inside);
    items.push({ level: s.level, index: s.index, keys, count });
  }
  return { geometry, filter, expand, items };
}

function randomResponse(seed: number, levelBits: number, nodes: number, nItems: number): HoldingsResponse {
  const next = splitmixWords(seed);
  const fanout = 2 ** levelBits;
  const counts: number[] = [];
  const hashes = new Uint8Array(nodes * fanout * 16);
  for (let i = 0; i < nodes * fanout; i++) {
    const c = next() % 4 === 0 ? 0 : next() % 5 === 0 ? next() : next() % 300;
    counts.push(c);
    if (c > 0) for (let j = 0; j < 16; j++) hashes[i * 16 + j] = next() & 0xff;
  }
  const items = [];
  for (let i = 0; i < nItems; i++) {
    const listed = next() % 40;
    const missing = new Uint8Array(Math.ceil(listed / 8));
    for (let j = 0; j < listed; j++) if (next() & 1) missing[j >>> 3]! |= 1 << (j & 7);
    const { keys, count } = randomKeys(next, next() % 6, 16, [next() % 65_536]);
    items.push({ listed, missing, extra: keys, extraCount: count });
  }
  return { levelBits, counts, hashes, items };
}

/** Requests and responses of a real comparison, to mutate. */
async function realExchange(): Promise<{ requests: Uint8Array[]; responses: Uint8Array[]; index: HoldingsIndex }> {
  const next = splitmixWords(42);
  const make = (n: number) =>
    Array.from({ length: n }, () => {
      const d = new Uint8Array(32);
      for (let j = 0; j < 32; j++) d[j] = next() & 0xff;
      return cidFromSha256(RAW_CODE, d);
    });
  const shared = make(400);
  const geometry = { partitionBits: 8, levelBits: 2 };
  const a = HoldingsIndex.from([...shared, ...make(6)].map((c) => [c, 1] as const), geometry);
  const b = HoldingsIndex.from([...shared, ...make(6)].map((c) => [c, 1] as const), geometry);
  const requests: Uint8Array[] = [];
  const responses: Uint8Array[] = [];
  await reconcile(a, async (req) => {
    requests.push(req);
    const res = answer(b, req);
    responses.push(res);
    return res;
  }, { filter: PartitionFilter.ranges(a.partitions, [[0, 200]]) });
  return { requests, responses, index: b };
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 4 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 4 }) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(bytes: Uint8Array, ms: Mutation[]): Uint8Array {
  let b = Uint8Array.from(bytes);
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    if (m.kind === 'flip' && b.length > 0) b[at]! ^= m.xor;
    else if (m.kind === 'cut') b = b.slice(0, at);
    else if (m.kind === 'insert') b = Uint8Array.from([...b.subarray(0, at), ...m.bytes, ...b.subarray(at)]);
    else if (m.kind === 'delete') b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + m.n)]);
  }
  return b;
}

describe('holdings codec: round trips', () => {
  it('a request decodes to what was encoded', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.constantFrom(...GEOMETRIES),
        fc.nat(40),
        fc.nat(12),
        fc.nat(20),
        (seed, geometry, nExpand, nItems, maxEntries) => {
          const req = randomRequest(seed, geometry, nExpand, nItems, maxEntries);
          const back = decodeRequest(encodeRequest(req));
          expect(back.geometry).toEqual(req.geometry);
          expect(back.filter.equals(req.filter)).toBe(true);
          expect(back.expand).toEqual(req.expand);
          expect(back.items).toEqual(req.items);
        },
      ),
      propertyOptions('holdings codec: request round trip', { numRuns: 200 }),
    );
  });

  it('a response decodes to what was encoded, and its encoding is canonical', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 8 }), fc.nat(6), fc.nat(6), (seed, levelBits, nodes, nItems) => {
        const res = randomResponse(seed, levelBits, nodes, nItems);
        const bytes = encodeResponse(res);
        const back = decodeResponse(bytes);
        expect(back.levelBits).toBe(levelBits);
        expect(back.counts.join()).toBe(res.counts.join());
        expect(Buffer.from(back.hashes).equals(Buffer.from(res.hashes))).toBe(true);
        expect(back.items).toEqual(res.items);
        expect(Buffer.from(encodeResponse(back)).equals(Buffer.from(bytes))).toBe(true);
      }),
      propertyOptions('holdings codec: response round trip', { numRuns: 200 }),
    );
  });

  it('sends a filter as ranges or as a bitmap, whichever is shorter', () => {
    const parts = 65_536;
    const contiguous = PartitionFilter.ranges(parts, [[100, 9000]]);
    expect(filterWireBytes(contiguous)).toBeLessThan(8);
    const scattered = PartitionFilter.where(parts, (p) => p % 3 === 0);
    expect(filterWireBytes(scattered)).toBe(1 + parts / 8);
    for (const filter of [contiguous, scattered, PartitionFilter.all(parts), PartitionFilter.of(parts, [])]) {
      const req: HoldingsRequest = { geometry: { partitionBits: 16, levelBits: 4 }, filter, expand: [{ level: 0, index: 0 }], items: [] };
      expect(decodeRequest(encodeRequest(req)).filter.equals(filter)).toBe(true);
    }
  });
});

describe('holdings codec: hostile input', () => {
  it('arbitrary bytes only ever produce a decoded message or a named error', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 400 }),
        fc.constantFrom([], [1, 0x51, 16, 4], [1, 0x51, 4, 2], [1, 0x41, 4], [1, 0x41, 1], [1, 0x51, 8, 8, 1]),
        (tail, head) => {
          const bytes = Uint8Array.from([...head, ...tail]);
          onlyNamed(() => decodeRequest(bytes));
          onlyNamed(() => decodeResponse(bytes));
          onlyNamed(() => {
            const res = decodeResponse(bytes);
            expect(encodeResponse(res)).toEqual(bytes); // whatever decodes is in canonical form
          });
        },
      ),
      propertyOptions('holdings codec: fuzz arbitrary bytes', { numRuns: 3000 }),
    );
  });

  it('mutated real messages only ever produce a decoded message or a named error, in the decoders and in answer', async () => {
    const { requests, responses, index } = await realExchange();
    expect(requests.length).toBeGreaterThan(2);
    fc.assert(
      fc.property(fc.nat(), fc.array(mutation, { minLength: 1, maxLength: 3 }), (which, ms) => {
        const req = mutate(requests[which % requests.length]!, ms);
        const res = mutate(responses[which % responses.length]!, ms);
        onlyNamed(() => decodeRequest(req));
        onlyNamed(() => decodeResponse(res));
        onlyNamed(() => decodeResponse(answer(index, req)), [...WIRE_ERRORS, 'HoldingsGeometryMismatchError']);
      }),
      propertyOptions('holdings codec: fuzz mutated messages', { numRuns: 2000 }),
    );
  });

  it('refuses oversized input before parsing, and unknown versions by name', () => {
    const big = new Uint8Array(MAX_MESSAGE_BYTES + 1);
    expect(() => decodeRequest(big)).toThrow(HoldingsMessageTooLargeError);
    expect(() => decodeResponse(big)).toThrow(HoldingsMessageTooLargeError);
    const req = encodeRequest({
      geometry: { partitionBits: 16, levelBits: 4 },
      filter: PartitionFilter.all(65_536),
      expand: [{ level: 0, index: 0 }],
      items: [],
    });
    expect(() => decodeRequest(req, req.length - 1)).toThrow(HoldingsMessageTooLargeError);
    expect(() => answer(new HoldingsIndex(), req, { maxMessageBytes: 4 })).toThrow(HoldingsMessageTooLargeError);
    const v2 = Uint8Array.from(req);
    v2[0] = 2;
    expect(() => decodeRequest(v2)).toThrow(UnsupportedHoldingsVersionError);
    expect(() => decodeResponse(Uint8Array.from([2, 0x41]))).toThrow(UnsupportedHoldingsVersionError);
  });

  it('refuses non-minimal varints, unordered nodes, overlapping items and entries outside their item', () => {
    const head = [1, 0x51, 4, 2, 0];
    const bad: Array<[string, number[]]> = [
      ['non-minimal varint', [...head, 0x81, 0x00, 0, 0, 0]],
      ['expand not ascending', [...head, 2, 1, 1, 1, 0, 0]],
      ['expand at the bucket level', [...head, 1, 2, 0, 0]],
      ['node index out of range', [...head, 1, 1, 4, 0]],
      ['items overlapping', [...head, 0, 2, 1, 0, 0, 2, 1, 0]],
      ['trailing bytes', [...head, 0, 0, 7]],
      ['request tag on a response', [1, 0x41, 2, 0, 0]],
    ];
    for (const [what, bytes] of bad) expect(() => decodeRequest(Uint8Array.from(bytes)), what).toThrow(MalformedHoldingsMessageError);
    // an entry of partition 15 listed under node (level 1, index 0), which spans partitions 0-3
    const key = new Uint8Array(32).fill(0xff);
    expect(() => decodeRequest(Uint8Array.from([...head, 0, 1, 1, 0, 1, ...key, 0x55]))).toThrow(MalformedHoldingsMessageError);
    // entries out of order
    const lo = new Uint8Array(32).fill(0x01);
    const hi = new Uint8Array(32).fill(0x02);
    expect(() => decodeRequest(Uint8Array.from([...head, 0, 1, 0, 0, 2, ...hi, 0x55, ...lo, 0x55]))).toThrow(MalformedHoldingsMessageError);
    expect(decodeRequest(Uint8Array.from([...head, 0, 1, 0, 0, 2, ...lo, 0x55, ...hi, 0x55])).items[0]!.count).toBe(2);
    // a response bitmap with bits past its length
    expect(() => decodeResponse(Uint8Array.from([1, 0x41, 2, 0, 1, 3, 0x08, 0]))).toThrow(MalformedHoldingsMessageError);
    expect(decodeResponse(Uint8Array.from([1, 0x41, 2, 0, 1, 3, 0x04, 0])).items[0]!.listed).toBe(3);
  });
});
