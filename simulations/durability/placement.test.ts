/** Rendezvous placement for `--chunks` and the fatal-set table, checked against brute force. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyOptions } from '../../proofs/support/fc.ts';
import { erasure, replication } from './model.ts';
import { chunkSets, fatalTable, layoutFatalTable, placeChunk } from './placement.ts';

const bits = (m: number): number => {
  let c = 0;
  for (; m; m &= m - 1) c++;
  return c;
};

describe('rendezvous placement', () => {
  it('puts each chunk on exactly `width` distinct Boxes, the same way every time', () => {
    fc.assert(
      fc.property(fc.nat(1_000_000), fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 16 }), (chunk, boxes, w) => {
        const width = Math.min(w, boxes);
        const m = placeChunk(chunk, boxes, width);
        expect(bits(m)).toBe(width);
        expect(m >>> boxes).toBe(0);
        expect(placeChunk(chunk, boxes, width)).toBe(m);
      }),
      propertyOptions('durability placement: width distinct Boxes'),
    );
  });

  it('is balanced: every Box holds about width/N of the chunks', () => {
    const boxes = 5;
    const width = 3;
    const chunks = 20_000;
    const perBox = new Array<number>(boxes).fill(0);
    for (let c = 0; c < chunks; c++) {
      const m = placeChunk(c, boxes, width);
      for (let b = 0; b < boxes; b++) if (m & (1 << b)) perBox[b]++;
    }
    const expected = (chunks * width) / boxes;
    for (const n of perBox) expect(Math.abs(n - expected) / expected).toBeLessThan(0.03);
  });

  it('covers every 3-subset of 5 Boxes once there are many chunks', () => {
    expect(chunkSets(5000, 5, 3).length).toBe(10);
  });
});

describe('fatal table', () => {
  it('equals the brute-force definition (some chunk has >= lossAt of its Boxes failed)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 40 }),
        (boxes, w, l, chunks) => {
          const width = Math.min(w, boxes);
          const lossAt = Math.min(l, width);
          const sets = chunkSets(chunks, boxes, width);
          const table = fatalTable(boxes, sets, lossAt);
          for (let mask = 0; mask < 1 << boxes; mask++) {
            const brute = sets.some((s) => bits(s & mask) >= lossAt) ? 1 : 0;
            expect(table[mask]).toBe(brute);
          }
        },
      ),
      propertyOptions('durability placement: fatal table = brute force', { numRuns: 60 }),
    );
  });

  it('with many chunks is "at least n-k+1 Boxes down", for replication and erasure coding', () => {
    for (const layout of [replication(3), erasure(2, 4), erasure(3, 5)]) {
      const table = layoutFatalTable(layout, 5, 10_000);
      for (let mask = 0; mask < 32; mask++) expect(table[mask]).toBe(bits(mask) >= layout.lossAt ? 1 : 0);
    }
  });

  it('with one chunk, only failures of that chunk\'s Boxes matter', () => {
    const table = layoutFatalTable(replication(2), 6, 1);
    const set = placeChunk(0, 6, 2);
    for (let mask = 0; mask < 64; mask++) expect(table[mask]).toBe((mask & set) === set ? 1 : 0);
  });
});
