/**
 * The manifest's fast DAG-CBOR path (core/snapshot/fast-cbor.ts) against @ipld/dag-cbor: for random manifest-shaped
 * values (directory entries with every field, large and negative integers, bigints, CIDs, null, nested lists and
 * maps) the fast encoder produces exactly the generic encoder's bytes, and the fast decoder exactly its value; for
 * random damage to valid encodings the fast decoder either declines (null) or agrees with the generic decoder,
 * and declines whenever the generic decoder rejects the bytes. Real directory nodes round-trip too.
 */
import * as dagCbor from '@ipld/dag-cbor';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CID } from 'multiformats/cid';
import { DAG_CBOR_CODE, RAW_CODE, cidOf } from '../core/blocks/cid.ts';
import { decodeFast, encodeFast } from '../core/snapshot/fast-cbor.ts';
import { propertyOptions } from './support/fc.ts';

const cidArb = fc.tuple(fc.uint8Array({ minLength: 0, maxLength: 40 }), fc.boolean()).map(([b, raw]) => cidOf(raw ? RAW_CODE : DAG_CBOR_CODE, b));
const intArb = fc.oneof(
  fc.integer({ min: -30, max: 30 }),
  fc.constantFrom(23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER, -24, -25, -256, -257, -(2 ** 32), -(2 ** 32) - 1, Number.MIN_SAFE_INTEGER),
  fc.maxSafeInteger(),
);
const bigArb = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: -(1n << 64n), max: -1n }), fc.constantFrom(2n ** 53n, 2n ** 64n - 1n, -(2n ** 64n)));
const asciiArb = fc.string({ unit: fc.integer({ min: 0, max: 127 }).map((c) => String.fromCharCode(c)), maxLength: 30 });
const timeArb = fc.tuple(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), fc.integer({ min: 0, max: 999_999_999 }));

const entryArb = fc.record(
  {
    n: fc.uint8Array({ minLength: 1, maxLength: 300 }),
    k: fc.constantFrom('f', 'd', 'l'),
    m: fc.integer({ min: 0, max: 0o7777 }),
    u: fc.nat(),
    g: fc.nat(),
    t: timeArb,
    s: fc.maxSafeNat(),
    c: fc.array(cidArb, { maxLength: 5 }),
    z: fc.array(fc.nat(), { maxLength: 5 }),
    cl: cidArb,
    d: cidArb,
    y: fc.uint8Array({ maxLength: 100 }),
    h: asciiArb,
    x: fc.tuple(fc.oneof(fc.maxSafeNat(), fc.bigInt({ min: 2n ** 53n, max: 2n ** 64n - 1n })), fc.integer(), fc.nat()),
  },
  { requiredKeys: ['n', 'k', 'm', 'u', 'g', 't'] },
);

/** Any value the fast path may meet, including ones it must decline (floats, booleans, non-ASCII text). */
const valueArb: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    intArb,
    bigArb,
    asciiArb,
    fc.string({ maxLength: 10 }),
    fc.uint8Array({ maxLength: 50 }),
    cidArb,
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 6 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

const nodeArb = fc.oneof(
  fc.record({ v: fc.constant(1), e: fc.array(entryArb, { maxLength: 12 }) }),
  fc.record({ v: fc.constant(1), p: fc.array(cidArb, { maxLength: 4 }) }),
  fc.record({ v: fc.constant(1), c: fc.array(cidArb, { maxLength: 6 }), z: fc.array(fc.nat(), { maxLength: 6 }) }),
);

function generic(bytes: Uint8Array): { value: unknown } | { error: unknown } {
  try {
    return { value: dagCbor.decode(bytes) };
  } catch (error) {
    return { error };
  }
}

describe('fast DAG-CBOR', () => {
  const ENC = 'fast-cbor: encodes manifest values exactly as @ipld/dag-cbor, or declines';
  it(ENC, () => {
    fc.assert(
      fc.property(fc.oneof(nodeArb, valueArb), (v) => {
        const fast = encodeFast(v);
        let reference: Uint8Array | null = null;
        try {
          reference = dagCbor.encode(v);
        } catch {
          reference = null;
        }
        if (fast === null) return; // declined: the generic codec takes it (and may reject it)
        expect(reference).not.toBeNull();
        expect(Buffer.from(fast).equals(Buffer.from(reference!))).toBe(true);
      }),
      propertyOptions(ENC, { numRuns: 400 }),
    );
  });

  it('covers every manifest node (never declines one)', () => {
    fc.assert(
      fc.property(nodeArb, (node) => {
        expect(encodeFast(node)).not.toBeNull();
        expect(decodeFast(dagCbor.encode(node))).not.toBeNull();
      }),
      propertyOptions('fast-cbor: covers manifest nodes', { numRuns: 200 }),
    );
  });

  const DEC = 'fast-cbor: decodes as @ipld/dag-cbor, and declines what it rejects (also on damaged input)';
  it(DEC, () => {
    const damaged = fc.tuple(fc.oneof(nodeArb, valueArb), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.nat()).map(([v, flips, cut]) => {
      let bytes: Uint8Array;
      try {
        bytes = dagCbor.encode(v);
      } catch {
        bytes = new Uint8Array([0xf5]);
      }
      const out = bytes.slice();
      for (const [at, b] of flips) if (out.length) out[at % out.length] = b;
      return cut % 4 === 0 && out.length > 1 ? out.subarray(0, cut % out.length) : out;
    });
    fc.assert(
      fc.property(damaged, (bytes) => {
        const fast = decodeFast(bytes);
        const ref = generic(bytes);
        if (fast === null) return;
        expect('value' in ref, 'the fast path accepted bytes the generic decoder rejects').toBe(true);
        expect(fast.value).toEqual((ref as { value: unknown }).value);
      }),
      propertyOptions(DEC, { numRuns: 1000 }),
    );
  });

  it('round-trips a directory node with the shapes the backup writes', () => {
    const cid = CID.parse('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy');
    const node = {
      v: 1,
      e: [
        { n: new TextEncoder().encode('a.jpg'), k: 'f', m: 0o644, u: 1000, g: 1000, t: [1_700_000_000, 123_456_789], s: 5, c: [cid], z: [5], x: [2 ** 40, 1_700_000_001, 5] },
        { n: new TextEncoder().encode('big'), k: 'f', m: 0o600, u: 0, g: 0, t: [-5, 0], s: 9, cl: cid, h: '2049:77', x: [2n ** 60n, -1, 0] },
        { n: new TextEncoder().encode('dir'), k: 'd', m: 0o755, u: 0, g: 0, t: [0, 0], d: cid },
        { n: new TextEncoder().encode('link'), k: 'l', m: 0o777, u: 0, g: 0, t: [1, 2], y: new TextEncoder().encode('../a.jpg') },
      ],
    };
    const bytes = encodeFast(node)!;
    expect(Buffer.from(bytes).equals(Buffer.from(dagCbor.encode(node)))).toBe(true);
    expect(decodeFast(bytes)!.value).toEqual(dagCbor.decode(bytes));
  });
});
