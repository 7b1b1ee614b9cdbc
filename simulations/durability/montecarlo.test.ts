/**
 * The Monte Carlo kernel: determinism, the statistics plumbing, and the estimators' correctness on cases with
 * known answers (exact for RF=1; the Markov value for exponential repair; naive vs importance sampling for
 * fixed repair, where both are unbiased but share no code path in the failure biasing).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyOptions } from '../../proofs/support/fc.ts';
import { countChain, lossProbability } from './markov.ts';
import { failureRate, HOURS_PER_YEAR, repairRate } from './model.ts';
import type { BatchStats, McConfig } from './montecarlo.ts';
import { DEFAULT_BIAS, emptyStats, mergeStats, runBatch, weightedInterval, wilsonInterval, Z95 } from './montecarlo.ts';
import { streamSeed } from './rng.ts';

function config(boxes: number, lossAt: number, afr: number, hours: number, years: number, repair: 'exp' | 'fixed', estimator: 'naive' | 'is'): McConfig {
  return { boxes, lossAt, lambda: failureRate(afr), repairYears: hours / HOURS_PER_YEAR, years, repair, estimator, fatal: null, bias: DEFAULT_BIAS[repair] };
}

function run(cfg: McConfig, seed: number, trials: number, batches = 4): BatchStats {
  let s = emptyStats();
  for (let b = 0; b < batches; b++) s = mergeStats(s, runBatch(cfg, streamSeed(seed, b), trials / batches));
  return s;
}

function statsOf(values: number[]): BatchStats {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  return { trials: n, hits: values.filter((v) => v !== 0).length, mean, m2: values.reduce((a, v) => a + (v - mean) ** 2, 0), events: 0 };
}

describe('runBatch', () => {
  it('is a pure function of (configuration, seed, trials)', () => {
    for (const repair of ['exp', 'fixed'] as const) {
      for (const estimator of ['naive', 'is'] as const) {
        const cfg = config(4, 2, 0.1, 500, 10, repair, estimator);
        expect(runBatch(cfg, 42, 20_000)).toEqual(runBatch(cfg, 42, 20_000));
        expect(runBatch(cfg, 42, 20_000)).not.toEqual(runBatch(cfg, 43, 20_000));
      }
    }
  });

  it('RF=1 with importance sampling is exact: every history is forced to fail once, weight 1 - exp(-N lambda Y)', () => {
    for (const repair of ['exp', 'fixed'] as const) {
      const cfg = config(5, 1, 0.02, 48, 10, repair, 'is');
      const s = runBatch(cfg, 1, 10_000);
      const exact = -Math.expm1(-5 * failureRate(0.02) * 10);
      expect(s.hits).toBe(10_000);
      expect(Math.abs(s.mean - exact) / exact).toBeLessThan(1e-12);
      expect(s.m2).toBeLessThan(1e-20);
    }
  });

  it('naive Monte Carlo matches the Markov value where losses are common (exponential repair)', () => {
    const cfg = config(3, 2, 0.1, 2000, 10, 'exp', 'naive');
    const s = run(cfg, 11, 100_000);
    const exact = lossProbability(countChain(3, 2, failureRate(0.1), repairRate(2000)), 10);
    const iv = wilsonInterval(s.hits, s.trials);
    expect(s.hits).toBeGreaterThan(10_000);
    expect(exact).toBeGreaterThanOrEqual(iv.low);
    expect(exact).toBeLessThanOrEqual(iv.high);
  });

  it('importance sampling is unbiased on a known answer: 16 independent runs average to the Markov value', () => {
    // P(loss) ~ 6.1e-4 for 4 Boxes, RF=2, AFR 3%, 48 h repairs, 10 years.
    const cfg = config(4, 2, 0.03, 48, 10, 'exp', 'is');
    const exact = lossProbability(countChain(4, 2, failureRate(0.03), repairRate(48)), 10);
    const estimates: number[] = [];
    let covered = 0;
    let pooled = emptyStats();
    for (let r = 0; r < 16; r++) {
      const s = runBatch(cfg, streamSeed(2024, r), 25_000);
      const iv = weightedInterval(s);
      estimates.push(iv.estimate);
      if (iv.low <= exact && exact <= iv.high) covered++;
      pooled = mergeStats(pooled, s);
    }
    // The spread of the 16 estimates gives an interval for their mean that does not trust the per-run variance.
    const m = estimates.reduce((a, b) => a + b) / estimates.length;
    const sd = Math.sqrt(estimates.reduce((a, b) => a + (b - m) ** 2, 0) / (estimates.length - 1));
    expect(Math.abs(m - exact)).toBeLessThan((3 * sd) / Math.sqrt(estimates.length));
    expect(covered).toBeGreaterThanOrEqual(13); // 95% intervals: at most 3 misses in 16 (P(more) < 1%)
    const iv = weightedInterval(pooled);
    expect(exact).toBeGreaterThanOrEqual(iv.low);
    expect(exact).toBeLessThanOrEqual(iv.high);
  });

  it('fixed repair: the importance-sampling and naive estimates agree where losses are common', () => {
    const naive = run(config(3, 2, 0.1, 2000, 10, 'fixed', 'naive'), 5, 100_000);
    const is = run(config(3, 2, 0.1, 2000, 10, 'fixed', 'is'), 6, 100_000);
    const a = weightedInterval(naive);
    const b = weightedInterval(is);
    const seA = (a.high - a.estimate) / Z95;
    const seB = (b.high - b.estimate) / Z95;
    expect(Math.abs(a.estimate - b.estimate)).toBeLessThan(Z95 * Math.hypot(seA, seB));
  });

  it('counts work: events per history are between 1 and a few for a quiet reserve', () => {
    const s = runBatch(config(4, 3, 0.03, 48, 10, 'exp', 'naive'), 9, 50_000);
    expect(s.events / s.trials).toBeGreaterThan(1);
    expect(s.events / s.trials).toBeLessThan(4);
  });
});

describe('statistics', () => {
  it('mergeStats of batches equals the statistics of all values at once', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.oneof(fc.constant(0), fc.double({ min: 1e-12, max: 1, noNaN: true })), { minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 6 }), (groups) => {
        const merged = groups.map(statsOf).reduce(mergeStats, emptyStats());
        const all = statsOf(groups.flat());
        expect(merged.trials).toBe(all.trials);
        expect(merged.hits).toBe(all.hits);
        expect(Math.abs(merged.mean - all.mean)).toBeLessThanOrEqual(1e-12 * Math.max(1, all.mean));
        expect(Math.abs(merged.m2 - all.m2)).toBeLessThanOrEqual(1e-9 * Math.max(1e-12, all.m2));
      }),
      propertyOptions('durability mc: mergeStats = one pass'),
    );
  });

  it('Wilson intervals: textbook values and a non-cancelling lower bound for tiny p', () => {
    const zero = wilsonInterval(0, 100);
    expect(zero.low).toBe(0);
    expect(zero.high).toBeCloseTo(Z95 ** 2 / (100 + Z95 ** 2), 12);
    const half = wilsonInterval(50, 100);
    expect(half.low).toBeCloseTo(0.4038, 4);
    expect(half.high).toBeCloseTo(0.5962, 4);
    // 1 hit in 1e12: the lower bound is p / (1 + z^2/2 + z sqrt(1 + z^2/4)) = 0.177 p, not 0 or negative.
    const tiny = wilsonInterval(1, 1e12);
    const z = Z95;
    expect(tiny.low / 1e-12).toBeCloseTo(1 / (1 + (z * z) / 2 + z * Math.sqrt(1 + (z * z) / 4)), 9);
  });

  it('weightedInterval: mean +- 1.96 standard errors, never below zero', () => {
    const s = statsOf([0, 0, 0, 1, 3]);
    const iv = weightedInterval(s);
    const se = Math.sqrt(s.m2 / 4 / 5);
    expect(iv.estimate).toBeCloseTo(0.8, 12);
    expect(iv.high).toBeCloseTo(0.8 + Z95 * se, 12);
    expect(iv.low).toBe(Math.max(0, 0.8 - Z95 * se));
  });
});
