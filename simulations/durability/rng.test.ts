/** The durability PRNG: the reference xoshiro128** sequence, seeding, and the variates built on it. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyOptions } from '../../proofs/support/fc.ts';
import { mix32, streamSeed, Xoshiro128 } from './rng.ts';

describe('Xoshiro128', () => {
  it('reproduces the reference xoshiro128** outputs from state {1, 2, 3, 4}', () => {
    // The first three are easy to check by hand: rotl(2 * 5, 7) * 9 = 11520; then s[1] becomes 0; then 1029.
    const g = Xoshiro128.fromState([1, 2, 3, 4]);
    expect(Array.from({ length: 6 }, () => g.u32())).toEqual([11520, 0, 5927040, 70819200, 2031721883, 1637235492]);
  });

  it('is a pure function of its seed', () => {
    fc.assert(
      fc.property(fc.nat(0xffffffff), (seed) => {
        const a = new Xoshiro128(seed);
        const b = new Xoshiro128(seed);
        for (let i = 0; i < 20; i++) expect(a.u32()).toBe(b.u32());
      }),
      propertyOptions('durability rng: pure function of the seed'),
    );
  });

  it('draws uniforms strictly inside (0, 1) with the right mean, and exponentials with mean 1/rate', () => {
    const g = new Xoshiro128(7);
    let sum = 0;
    let sumExp = 0;
    let outside = 0;
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const u = g.uniform();
      if (!(u > 0 && u < 1)) outside++;
      sum += u;
      sumExp += g.exponential(4);
    }
    expect(outside).toBe(0);
    // Standard errors: 0.29 / sqrt(n) = 6.5e-4 and 0.25 / sqrt(n) = 5.6e-4; allow 5 of them.
    expect(Math.abs(sum / n - 0.5)).toBeLessThan(5 * 6.5e-4);
    expect(Math.abs(sumExp / n - 0.25)).toBeLessThan(5 * 5.6e-4);
  });

  it('below(n) stays in range and hits every value', () => {
    const g = new Xoshiro128(3);
    const seen = new Set<number>();
    for (let i = 0; i < 1000; i++) {
      const v = g.below(7);
      expect(Number.isInteger(v) && v >= 0 && v < 7).toBe(true);
      seen.add(v);
    }
    expect(seen.size).toBe(7);
  });
});

describe('seeds', () => {
  it('mix32 is a bijection on a sample (no collisions among 100k inputs)', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 100_000; i++) seen.add(mix32(i));
    expect(seen.size).toBe(100_000);
  });

  it('streamSeed separates streams by every label', () => {
    const seeds = new Set<number>();
    for (let layout = 0; layout < 10; layout++) for (let batch = 0; batch < 100; batch++) seeds.add(streamSeed(1, layout, batch));
    expect(seeds.size).toBe(1000);
    expect(streamSeed(1, 2, 3)).toBe(streamSeed(1, 2, 3));
    expect(streamSeed(1, 2, 3)).not.toBe(streamSeed(2, 2, 3));
    expect(streamSeed(1, 2, 3)).not.toBe(streamSeed(1, 3, 2));
  });
});
