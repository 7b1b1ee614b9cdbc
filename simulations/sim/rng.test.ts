/** The seeded PRNG: seeds in every accepted form, reproducibility, fork independence, helper ranges. */
import { describe, expect, it } from 'vitest';
import { SimRandom, seedKey } from './rng.ts';

const draws = (r: SimRandom, n = 8): number[] => Array.from({ length: n }, () => r.u32());

describe('SimRandom', () => {
  it('is reproducible from its seed and differs between seeds', () => {
    expect(draws(new SimRandom(42))).toEqual(draws(new SimRandom(42)));
    expect(draws(new SimRandom(42))).not.toEqual(draws(new SimRandom(43)));
    expect(draws(new SimRandom('nightly'))).not.toEqual(draws(new SimRandom('nightly2')));
  });

  it('reads decimal, bigint, hex and commit-hash seeds as numbers and hashes other text', () => {
    expect(seedKey('42')).toBe(42n);
    expect(seedKey(42)).toBe(42n);
    expect(seedKey(42n)).toBe(42n);
    expect(seedKey('0x2a')).toBe(42n);
    expect(seedKey('7c68c1f0802b311b2415755c8218d08f1514acad')).toBe(BigInt('0x7c68c1f0802b311b2415755c8218d08f1514acad') & ((1n << 64n) - 1n));
    expect(seedKey('hello world')).not.toBe(seedKey('hello worle'));
    expect(draws(new SimRandom('42'))).toEqual(draws(new SimRandom(42)));
    expect(() => seedKey(-1)).toThrow(/non-negative/);
    expect(() => seedKey(1.5)).toThrow();
    expect(() => seedKey('  ')).toThrow(/empty/);
  });

  it('forks by name without consuming draws: extra draws in one subsystem do not perturb another', () => {
    const a = new SimRandom(7);
    const b = new SimRandom(7);
    draws(a.fork('net'), 1000); // the network draws a lot in run A
    draws(b.fork('net'), 3); // and little in run B
    draws(a, 17); // and the parent itself draws
    expect(draws(a.fork('disk'))).toEqual(draws(b.fork('disk')));
    expect(draws(a.fork('net'))).toEqual(draws(b.fork('net')));
    expect(draws(a.fork('net'))).not.toEqual(draws(a.fork('disk')));
    expect(draws(a.fork('box/1').fork('2'))).not.toEqual(draws(a.fork('box/1').fork('3')));
    expect(a.fork('box/1').path).toBe('7/box/1');
  });

  it('keeps helpers in range', () => {
    const r = new SimRandom(1);
    const bad: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const f = r.float();
      if (!(f >= 0 && f < 1)) bad.push(`float ${f}`);
      const k = r.int(7);
      if (!(Number.isInteger(k) && k >= 0 && k < 7)) bad.push(`int ${k}`);
      const x = r.range(-3, 3);
      if (!(x >= -3 && x <= 3)) bad.push(`range ${x}`);
      const l = r.logUniform(0.001, 0.2);
      if (!(l >= 0.001 && l <= 0.2)) bad.push(`logUniform ${l}`);
    }
    expect(bad).toEqual([]);
    expect(r.bytes(13)).toHaveLength(13);
    expect(r.sample([1, 2, 3, 4, 5], 3)).toHaveLength(3);
    expect(new Set(r.shuffle([1, 2, 3, 4, 5]))).toEqual(new Set([1, 2, 3, 4, 5]));
    expect(() => r.int(0)).toThrow();
    expect(() => r.pick([])).toThrow();
  });

  it('int(n) is close to uniform', () => {
    const r = new SimRandom('uniform');
    const counts = new Array(6).fill(0);
    const n = 60_000;
    for (let i = 0; i < n; i++) counts[r.int(6)]++;
    for (const c of counts) expect(Math.abs(c - n / 6)).toBeLessThan(400); // > 6 sigma
  });

  it('normal deviates have mean ~0 and variance ~1', () => {
    const r = new SimRandom(3);
    let sum = 0;
    let sq = 0;
    const n = 20_000;
    for (let i = 0; i < n; i++) {
      const v = r.normal();
      sum += v;
      sq += v * v;
    }
    expect(Math.abs(sum / n)).toBeLessThan(0.05);
    expect(Math.abs(sq / n - 1)).toBeLessThan(0.05);
  });
});
