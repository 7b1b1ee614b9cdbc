/**
 * Content-defined chunking (core/chunker/fastcdc.ts) and the two ChunkingServices that run it (the in-process one
 * and the worker-thread pool):
 *   - every chunk is within [min, max] (only the last one of a stream may be shorter), the chunks tile the input;
 *   - chunking is deterministic (also across instances), and pinned to golden boundaries so every Box agrees;
 *   - an insertion/deletion only disturbs the chunks around it: boundaries before the edit are untouched, and once
 *     a boundary after the edit coincides with a (shifted) original one, all later ones do too; on seeded samples
 *     that re-synchronisation happens within a few average chunk lengths and only a few chunks are new;
 *   - cutting a stream in arbitrary windows, carrying the tail over, gives the boundaries of the whole buffer;
 *   - WorkerChunking returns exactly what inlineChunking returns, and digest() is node:crypto's sha-256.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CHUNKER, FastCdc, validateParams, type ChunkerParams } from '../core/chunker/fastcdc.ts';
import { inlineChunking } from '../core/snapshot/inline.ts';
import { WorkerChunking } from '../adapters/workers/chunk-pool.ts';
import { propertyOptions } from './support/fc.ts';
import { prng, seededBytes } from './support/snapshot-fixtures.ts';

const SMALL: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024 };

/** Valid chunker parameters: avg a power of two in 128..4096, 64 <= min < avg < max <= 8 * avg. */
const paramsArb: fc.Arbitrary<ChunkerParams> = fc
  .integer({ min: 7, max: 12 })
  .chain((bits) => {
    const avg = 2 ** bits;
    return fc.record({
      minSize: fc.integer({ min: 64, max: avg - 1 }),
      avgSize: fc.constant(avg),
      maxSize: fc.integer({ min: avg + 1, max: avg * 8 }),
    });
  });

/** Data of a few kinds: random, constant (no content boundary ever: cuts at max), short-period patterns, mixes. */
const dataArb = (maxLength: number): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.tuple(fc.nat(), fc.nat({ max: maxLength })).map(([seed, n]) => seededBytes(seed, n)) },
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 255 }), fc.nat({ max: maxLength })).map(([b, n]) => new Uint8Array(n).fill(b)) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.nat({ max: maxLength }))
        .map(([pattern, n]) => Uint8Array.from({ length: n }, (_, i) => pattern[i % pattern.length])),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: Math.min(maxLength, 3000) }) },
  );

function chunkSizes(ends: number[]): number[] {
  return ends.map((e, i) => e - (i === 0 ? 0 : ends[i - 1]));
}

/** Boundaries of `data` cut into windows of the given lengths, carrying each window's tail into the next. */
function streamedBoundaries(cdc: FastCdc, data: Uint8Array, windows: number[]): number[] {
  const out: number[] = [];
  let tail = new Uint8Array(0);
  let consumed = 0; // bytes of `data` handed to the chunker so far
  let base = 0; // absolute offset of tail[0]
  let w = 0;
  for (;;) {
    const take = Math.min(windows.length ? windows[w++ % windows.length] : data.length, data.length - consumed);
    const buf = new Uint8Array(tail.length + take);
    buf.set(tail, 0);
    buf.set(data.subarray(consumed, consumed + take), tail.length);
    consumed += take;
    const eof = consumed === data.length;
    const ends = cdc.boundaries(buf, eof);
    for (const e of ends) out.push(base + e);
    const last = ends.length ? ends[ends.length - 1] : 0;
    tail = buf.slice(last);
    base += last;
    if (eof) {
      expect(tail.length).toBe(0);
      return out;
    }
  }
}

function applyEdit(data: Uint8Array, at: number, del: number, ins: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.length - del + ins.length);
  out.set(data.subarray(0, at), 0);
  out.set(ins, at);
  out.set(data.subarray(at + del), at + ins.length);
  return out;
}

describe('FastCDC chunk sizes', () => {
  it('rejects parameters outside 64 <= min < avg < max with avg a power of two', () => {
    expect(() => validateParams({ minSize: 63, avgSize: 256, maxSize: 1024 })).toThrow(RangeError);
    expect(() => validateParams({ minSize: 64, avgSize: 300, maxSize: 1024 })).toThrow(RangeError);
    expect(() => validateParams({ minSize: 256, avgSize: 256, maxSize: 1024 })).toThrow(RangeError);
    expect(() => validateParams({ minSize: 64, avgSize: 256, maxSize: 256 })).toThrow(RangeError);
    expect(() => validateParams(DEFAULT_CHUNKER)).not.toThrow();
    expect(() => validateParams(SMALL)).not.toThrow();
  });

  it('chunker: chunks tile the input and stay within [min, max]', () => {
    fc.assert(
      fc.property(paramsArb, dataArb(20_000), (params, data) => {
        const cdc = new FastCdc(params);
        const ends = cdc.boundaries(data, true);
        if (data.length === 0) {
          expect(ends).toEqual([]);
          return;
        }
        expect(ends[ends.length - 1]).toBe(data.length);
        const sizes = chunkSizes(ends);
        sizes.forEach((s, i) => {
          expect(s).toBeLessThanOrEqual(params.maxSize);
          if (i < sizes.length - 1) expect(s).toBeGreaterThanOrEqual(params.minSize);
          else expect(s).toBeGreaterThan(0);
        });
      }),
      propertyOptions('chunker: chunks tile the input and stay within [min, max]', { numRuns: 200 }),
    );
  });

  it('chunker: without eof every returned chunk is complete and the tail is shorter than max', () => {
    fc.assert(
      fc.property(paramsArb, dataArb(20_000), (params, data) => {
        const ends = new FastCdc(params).boundaries(data, false);
        for (const s of chunkSizes(ends)) {
          expect(s).toBeGreaterThanOrEqual(params.minSize);
          expect(s).toBeLessThanOrEqual(params.maxSize);
        }
        const last = ends.length ? ends[ends.length - 1] : 0;
        expect(data.length - last).toBeLessThan(params.maxSize);
      }),
      propertyOptions('chunker: without eof every returned chunk is complete and the tail is shorter than max', { numRuns: 200 }),
    );
  });

  it('data with no content boundary (a constant byte) is cut at exactly max', () => {
    const data = new Uint8Array(10 * SMALL.maxSize + 5);
    const sizes = chunkSizes(new FastCdc(SMALL).boundaries(data, true));
    expect(sizes).toEqual([...Array(10).fill(SMALL.maxSize), 5]);
  });

  it('on random data the default chunker averages between min and max (sanity of the masks)', () => {
    const data = seededBytes(7, 16 * 1024 * 1024);
    const sizes = chunkSizes(new FastCdc().boundaries(data, true));
    const mean = data.length / sizes.length;
    expect(mean).toBeGreaterThan(DEFAULT_CHUNKER.minSize);
    expect(mean).toBeLessThan(DEFAULT_CHUNKER.maxSize);
    for (const s of sizes.slice(0, -1)) {
      expect(s).toBeGreaterThanOrEqual(DEFAULT_CHUNKER.minSize);
      expect(s).toBeLessThanOrEqual(DEFAULT_CHUNKER.maxSize);
    }
  });
});

describe('FastCDC determinism', () => {
  it('chunker: same input, same boundaries, from any instance', () => {
    fc.assert(
      fc.property(paramsArb, dataArb(20_000), fc.boolean(), (params, data, eof) => {
        const a = new FastCdc(params);
        const first = a.boundaries(data, eof);
        expect(a.boundaries(data, eof)).toEqual(first);
        expect(new FastCdc({ ...params }).boundaries(data.slice(), eof)).toEqual(first);
      }),
      propertyOptions('chunker: same input, same boundaries, from any instance'),
    );
  });

  // Golden vectors: every Box must cut the same data at the same places or cross-Box dedup breaks. If the gear
  // table or the masks ever change, this fails (a format change: bump MANIFEST_VERSION, do not just re-pin).
  it('is pinned to golden boundaries (small and default parameters)', () => {
    const small = new FastCdc(SMALL).boundaries(seededBytes(42, 4096), true);
    expect(small).toEqual(GOLDEN_SMALL);
    const big = new FastCdc().boundaries(seededBytes(42, 8 * 1024 * 1024), true);
    expect(big).toEqual(GOLDEN_DEFAULT);
  });
});

describe('FastCDC re-synchronises after an edit', () => {
  const editArb = fc
    .tuple(fc.nat(), fc.integer({ min: 2_000, max: 24_000 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.nat({ max: 600 }), fc.nat({ max: 600 }), fc.nat())
    .map(([seed, size, where, del, insLen, insSeed]) => {
      const data = seededBytes(seed, size);
      const at = Math.min(size, Math.floor(where * size));
      const d = Math.min(del, size - at);
      return { data, at, del: d, ins: seededBytes(insSeed ^ 0x5eed, insLen) };
    })
    .filter((e) => e.del > 0 || e.ins.length > 0);

  it('chunker: boundaries before an edit are untouched, and once re-synchronised they stay so', () => {
    fc.assert(
      fc.property(fc.constantFrom(SMALL, { minSize: 128, avgSize: 512, maxSize: 2048 }), editArb, (params, { data, at, del, ins }) => {
        const cdc = new FastCdc(params);
        const edited = applyEdit(data, at, del, ins);
        const before = cdc.boundaries(data, true);
        const after = cdc.boundaries(edited, true);
        // A content boundary at or before the edit was decided from bytes before the edit only. (The end of the
        // data is a boundary only because the data ends there: an edit at or reaching the end moves it.)
        const decidedBefore = (b: number) => b <= at && b < data.length && b < edited.length;
        expect(after.filter(decidedBefore)).toEqual(before.filter(decidedBefore));
        // After the edit, the first boundary common to both (shifted) is where they meet again; from there on the
        // chunker sees identical bytes from an identical start, so every later boundary is a shifted original.
        const shift = ins.length - del;
        const editEnd = at + ins.length;
        const shifted = new Set(before.map((b) => b + shift));
        const meet = after.find((b) => b >= editEnd && shifted.has(b));
        expect(meet).toBeDefined(); // at the latest the end of the data
        expect(after.filter((b) => b >= meet!)).toEqual(before.map((b) => b + shift).filter((b) => b >= meet!));
      }),
      propertyOptions('chunker: boundaries before an edit are untouched, and once re-synchronised they stay so', { numRuns: 200 }),
    );
  });

  /**
   * How fast they meet again. This is statistical for any CDC with a minimum chunk size (the chunk start decides
   * which bytes are skipped), so it is measured on a fixed seeded sample rather than claimed for every input:
   * measured here, the median edit disturbs 2 chunks (64/256/1024), 1 chunk (defaults). A chunker that did not
   * re-synchronise (fixed-size chunks, or a hash carried across chunks) would rewrite everything after the edit.
   */
  function resyncSample(params: ChunkerParams, samples: number, seed: number, lengthAvg: number, editWithinAvg: number) {
    const gaps: number[] = [];
    const fresh: number[] = [];
    let neverMet = 0;
    for (let t = 0; t < samples; t++) {
      const r = prng(seed + t);
      const size = params.avgSize * lengthAvg + (r() % (params.avgSize * lengthAvg));
      const data = seededBytes(seed * 31 + t, size);
      const at = r() % (params.avgSize * editWithinAvg); // leaves >= lengthAvg - editWithinAvg average chunks after it
      const del = r() % 300;
      const ins = seededBytes(seed * 17 + t, r() % 300);
      const edited = applyEdit(data, at, del, ins);
      const before = new FastCdc(params).boundaries(data, true);
      const after = new FastCdc(params).boundaries(edited, true);
      const shift = ins.length - del;
      const editEnd = at + ins.length;
      const shifted = new Set(before.map((b) => b + shift));
      const meet = after.find((b) => b >= editEnd && shifted.has(b))!;
      if (meet === edited.length) neverMet++;
      gaps.push((meet - editEnd) / params.avgSize);
      // Chunks of the edited data that are not chunks of the original: those between the last common boundary
      // before the edit and the meeting point.
      const lastBefore = Math.max(0, ...after.filter((b) => b <= at));
      fresh.push(after.filter((b) => b > lastBefore && b <= meet).length);
    }
    const q = (xs: number[], f: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * f))];
    return { neverMet, gapP50: q(gaps, 0.5), gapP95: q(gaps, 0.95), freshP50: q(fresh, 0.5), freshP95: q(fresh, 0.95), freshMax: Math.max(...fresh) };
  }

  it('meets again within a few average chunks (64/256/1024, 400 seeded edits)', () => {
    const s = resyncSample(SMALL, 400, 1, 60, 30);
    expect(s.neverMet).toBe(0);
    expect(s.gapP50).toBeLessThan(3);
    expect(s.gapP95).toBeLessThan(12);
    expect(s.freshP50).toBeLessThanOrEqual(3);
    expect(s.freshP95).toBeLessThanOrEqual(10);
    expect(s.freshMax).toBeLessThan(30);
  });

  it('meets again within a few average chunks (default 256K/1M/2M, 4 seeded edits of 8-16 MiB files)', () => {
    // Boundaries only, no hashing: ~0.2 s per file.
    const s = resyncSample(DEFAULT_CHUNKER, 4, 2, 8, 3);
    expect(s.neverMet).toBe(0);
    expect(s.gapP95).toBeLessThan(4);
    expect(s.freshMax).toBeLessThanOrEqual(4);
  });
});

describe('FastCDC over a stream of windows', () => {
  it('chunker: windows with the tail carried over give the boundaries of the whole buffer', () => {
    fc.assert(
      fc.property(
        paramsArb,
        dataArb(20_000),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 5000 })), { minLength: 1, maxLength: 12 }),
        (params, data, windows) => {
          const cdc = new FastCdc(params);
          expect(streamedBoundaries(cdc, data, windows)).toEqual(cdc.boundaries(data, true));
        },
      ),
      propertyOptions('chunker: windows with the tail carried over give the boundaries of the whole buffer', { numRuns: 200 }),
    );
  });

  it('one-byte windows give the same boundaries as the whole buffer', () => {
    const cdc = new FastCdc(SMALL);
    const data = seededBytes(3, 6000);
    expect(streamedBoundaries(cdc, data, [1])).toEqual(cdc.boundaries(data, true));
  });

  it('default parameters: windows of a few MiB over a 12 MiB stream match the whole buffer', () => {
    const cdc = new FastCdc();
    const data = seededBytes(9, 12 * 1024 * 1024 + 12345);
    expect(streamedBoundaries(cdc, data, [5 * 1024 * 1024, 3 * 1024 * 1024 + 7])).toEqual(cdc.boundaries(data, true));
  });
});

describe('the WebAssembly gear loop', () => {
  it('runs here (Node has WebAssembly), so the golden boundaries below pin it', () => {
    expect(new FastCdc().wasm).toBe(true);
    expect(new FastCdc(DEFAULT_CHUNKER, { wasm: false }).wasm).toBe(false);
  });

  it('chunker: WebAssembly and JS gear loops give the same boundaries, whole and cut by cut', () => {
    fc.assert(
      fc.property(paramsArb, dataArb(20_000), fc.boolean(), fc.nat({ max: 19_999 }), (params, data, eof, at) => {
        const wasm = new FastCdc(params);
        const js = new FastCdc(params, { wasm: false });
        expect(wasm.boundaries(data, eof)).toEqual(js.boundaries(data, eof));
        const start = Math.min(at, data.length);
        expect(wasm.cut(data, start, data.length, eof)).toBe(js.cut(data, start, data.length, eof));
      }),
      propertyOptions('chunker: WebAssembly and JS gear loops give the same boundaries, whole and cut by cut', { numRuns: 200 }),
    );
  });

  it('chunker: a buffer larger than the scanner segment, and one changed between calls, cut as in JS', () => {
    const big = seededBytes(7, 21 * 1024 * 1024 + 5);
    const wasm = new FastCdc();
    const js = new FastCdc(DEFAULT_CHUNKER, { wasm: false });
    const want = js.boundaries(big, true);
    expect(wasm.boundaries(big, true)).toEqual(want);
    // The same array edited in place: nothing of the previous call's copy may be reused.
    big.fill(0, 0, 4 * 1024 * 1024);
    expect(wasm.boundaries(big, false)).toEqual(js.boundaries(big, false));
    expect(wasm.cut(big, 0, big.length, true)).toBe(2 * 1024 * 1024); // zeros: no boundary, cut at max
  });
});

describe('WorkerChunking agrees with inlineChunking', () => {
  let small: WorkerChunking;
  let dflt: WorkerChunking;
  beforeAll(() => {
    small = new WorkerChunking({ threads: 2, params: SMALL });
    dflt = new WorkerChunking({ threads: 2 });
  });
  afterAll(async () => {
    await small?.close();
    await dflt?.close();
  });

  const sha = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());

  it('chunker: worker chunk() returns the ends, digests and bytes inline chunk() does (small parameters)', async () => {
    const inline = inlineChunking(SMALL);
    await fc.assert(
      fc.asyncProperty(dataArb(30_000), fc.boolean(), fc.nat({ max: 100 }), fc.boolean(), async (data, eof, pad, owned) => {
        // A buffer the window owns outright is transferred to the worker; a view into a larger buffer (offset and
        // trailing bytes) is copied. Both must come back whole.
        let input: Uint8Array;
        if (owned) input = data.slice();
        else {
          const host = new Uint8Array(pad + data.length + 3);
          host.set(data, pad);
          input = host.subarray(pad, pad + data.length);
        }
        const want = await inline.chunk(data.slice(), eof);
        const got = await small.chunk(input, eof);
        expect(got.ends).toEqual(want.ends);
        expect(got.digests.map((d) => Buffer.from(d).toString('hex'))).toEqual(want.digests.map((d) => Buffer.from(d).toString('hex')));
        expect(Buffer.from(got.data).equals(Buffer.from(data))).toBe(true);
        let prev = 0;
        want.ends.forEach((end, i) => {
          expect(Buffer.from(want.digests[i]).equals(Buffer.from(sha(data.subarray(prev, end))))).toBe(true);
          prev = end;
        });
      }),
      propertyOptions('chunker: worker chunk() returns the ends, digests and bytes inline chunk() does (small parameters)', { numRuns: 40 }),
    );
  });

  it('default parameters: a 9 MiB window, and many concurrent windows, match inline', async () => {
    const inline = inlineChunking();
    const big = seededBytes(11, 9 * 1024 * 1024 + 99);
    const want = await inline.chunk(big, true);
    const got = await dflt.chunk(big.slice(), true);
    expect(got.data.byteLength).toBe(big.byteLength);
    expect(Buffer.from(got.data).equals(Buffer.from(big))).toBe(true);
    expect(got.ends).toEqual(want.ends);
    expect(got.digests.map((d) => Buffer.from(d).toString('hex'))).toEqual(want.digests.map((d) => Buffer.from(d).toString('hex')));
    // Concurrent calls spread over both workers must each get their own answer back.
    const inputs = Array.from({ length: 8 }, (_, i) => seededBytes(100 + i, 600_000 + i * 150_000));
    const answers = await Promise.all(inputs.map((d, i) => dflt.chunk(d.slice(), i % 2 === 0)));
    for (let i = 0; i < inputs.length; i++) {
      expect(Buffer.from(answers[i].data).equals(Buffer.from(inputs[i]))).toBe(true);
      const w = await inline.chunk(inputs[i], i % 2 === 0);
      expect(answers[i].ends).toEqual(w.ends);
      expect(answers[i].digests.map((d) => Buffer.from(d).toString('hex'))).toEqual(w.digests.map((d) => Buffer.from(d).toString('hex')));
    }
  });

  it('a window in shared memory is chunked in place: same answer as inline, same memory back', async () => {
    const inline = inlineChunking();
    const bytes = seededBytes(23, 5 * 1024 * 1024 + 17);
    const shared = new Uint8Array(new SharedArrayBuffer(bytes.length + 100), 50, bytes.length);
    shared.set(bytes);
    for (const eof of [true, false]) {
      const want = await inline.chunk(bytes, eof);
      const got = await dflt.chunk(shared, eof, true);
      expect(got.data).toBe(shared);
      expect(got.ends).toEqual(want.ends);
      expect(got.digests.map((d) => Buffer.from(d).toString('hex'))).toEqual(want.digests.map((d) => Buffer.from(d).toString('hex')));
    }
  });

  it('chunker: worker digest() is node:crypto sha-256 of each block, in order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.uint8Array({ maxLength: 5000 }), fc.nat({ max: 16 })), { maxLength: 20 }), async (specs) => {
        // Blocks that are views into a shared buffer, as restore hands them over.
        const blocks = specs.map(([b, pad]) => {
          const host = new Uint8Array(pad + b.length + pad);
          host.set(b, pad);
          return host.subarray(pad, pad + b.length);
        });
        const got = await small.digest(blocks);
        expect(got.length).toBe(blocks.length);
        got.forEach((d, i) => expect(Buffer.from(d).toString('hex')).toBe(createHash('sha256').update(specs[i][0]).digest('hex')));
        const inline = await inlineChunking(SMALL).digest(blocks);
        expect(got.map((d) => Buffer.from(d).toString('hex'))).toEqual(inline.map((d) => Buffer.from(d).toString('hex')));
      }),
      propertyOptions('chunker: worker digest() is node:crypto sha-256 of each block, in order', { numRuns: 60 }),
    );
    expect(Buffer.from((await small.digest([new Uint8Array(0)]))[0]).toString('hex')).toBe(createHash('sha256').digest('hex'));
    expect(await small.digest([])).toEqual([]);
  });
});

// Pinned from this implementation on seededBytes(42, n) (mulberry32 in support/snapshot-fixtures.ts; keep it fixed).
const GOLDEN_SMALL = [286, 364, 638, 911, 1264, 1540, 1706, 1924, 2189, 2460, 2728, 3019, 3285, 3407, 3640, 3903, 4096];
const GOLDEN_DEFAULT = [1102532, 2175297, 3629387, 4847041, 6018951, 7537595, 8388608];
