/**
 * Forecasting on synthetic series with known answers: linear growth (exact ETA), a step (Holt adapts; Theil-Sen
 * over a window after the step is exact), noise with outliers (Theil-Sen robust), no growth (no ETA), shrinking
 * use (no ETA), already over the limit, too little data.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { forecastLimit, holtFit, mannKendallZ, normalizeHistory, select, theilSenFit } from '../core/forecast/trend.ts';
import type { Point } from '../core/forecast/trend.ts';
import { propertyOptions } from './support/fc.ts';

const H = 3_600_000;
const T0 = 1_700_000_000_000;

/** A small deterministic PRNG (LCG) for noise. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

function series(n: number, f: (h: number) => number, stepH = 1): Point[] {
  return Array.from({ length: n }, (_, i) => ({ t: T0 + i * stepH * H, v: f(i * stepH) }));
}

const hoursAfterT0 = (eta: number | null): number => ((eta as number) - T0) / H;

describe('forecastLimit', () => {
  it('linear growth: both methods find the exact ETA', () => {
    const s = series(48, (h) => 100 + 2 * h);
    for (const method of ['theil-sen', 'holt-linear'] as const) {
      const f = forecastLimit(s, 1_000, method);
      expect(f.method).toBe(method);
      expect(hoursAfterT0(f.eta)).toBeCloseTo(450, 6);
      expect(f.slope * H).toBeCloseTo(2, 9);
      expect(f.reached).toBe(false);
      expect(f.confidence.significant).toBe(true);
      expect(f.confidence.points).toBe(48);
      expect(f.confidence.spanMs).toBe(47 * H);
      expect(f.confidence.residualScale).toBeCloseTo(0, 9);
    }
    const ts = forecastLimit(s, 1_000, 'theil-sen');
    expect(ts.confidence.slopeRange?.map((x) => x * H)).toEqual([expect.closeTo(2, 9), expect.closeTo(2, 9)]);
    expect(hoursAfterT0(ts.confidence.etaRange!.earliest)).toBeCloseTo(450, 6);
    expect(hoursAfterT0(ts.confidence.etaRange!.latest)).toBeCloseTo(450, 6);
  });

  it('linear growth with irregular sampling and any slope: exact (property)', () => {
    const name = 'forecast: linear series give the exact ETA';
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 600 }), { minLength: 6, maxLength: 60 }),
        fc.double({ min: 0.01, max: 1_000, noNaN: true }),
        fc.double({ min: 0, max: 10_000, noNaN: true }),
        fc.constantFrom('theil-sen' as const, 'holt-linear' as const),
        (gapsMin, perHour, start, method) => {
          let t = T0;
          const pts: Point[] = [];
          for (const g of gapsMin) {
            t += g * 60_000;
            pts.push({ t, v: start + (perHour * (t - T0)) / H });
          }
          const limit = pts[pts.length - 1].v + perHour * 100;
          const f = forecastLimit(pts, limit, method);
          const trueEta = T0 + ((limit - start) / perHour) * H;
          expect(f.eta).not.toBeNull();
          expect(Math.abs((f.eta as number) - trueEta)).toBeLessThan(60_000 + 1e-6 * Math.abs(trueEta - T0));
        },
      ),
      propertyOptions(name),
    );
  });

  it('step change: Holt adapts to the new level; Theil-Sen is exact over a window after the step', () => {
    // +1 per hour throughout; at hour 50 usage jumps by 200. The limit 1000 is then reached at hour 700.
    const s = series(100, (h) => (h < 50 ? 100 : 300) + h);
    const holt = forecastLimit(s, 1_000, 'holt-linear');
    expect(hoursAfterT0(holt.eta)).toBeGreaterThan(700 * 0.98);
    expect(hoursAfterT0(holt.eta)).toBeLessThan(700 * 1.02);
    // Before the step, the forecast was ~hour 900; right after it Holt has not settled yet, later it has.
    expect(hoursAfterT0(forecastLimit(s.slice(0, 50), 1_000, 'holt-linear').eta)).toBeCloseTo(900, 3);
    const window = forecastLimit(s, 1_000, { method: 'theil-sen', windowMs: 40 * H });
    expect(window.confidence.points).toBe(41);
    expect(hoursAfterT0(window.eta)).toBeCloseTo(700, 6);
    const lastPoints = forecastLimit(s, 1_000, { method: 'theil-sen', maxPoints: 30 });
    expect(hoursAfterT0(lastPoints.eta)).toBeCloseTo(700, 6);
  });

  it('growth-rate change: Holt follows the new slope', () => {
    // 1 per hour for 60 hours, then 3 per hour.
    const s = series(160, (h) => (h < 60 ? 100 + h : 160 + 3 * (h - 60)));
    const f = forecastLimit(s, 2_000, 'holt-linear');
    const trueEta = 60 + (2_000 - 160) / 3;
    expect(f.slope * H).toBeCloseTo(3, 2);
    expect(Math.abs(hoursAfterT0(f.eta) - trueEta) / trueEta).toBeLessThan(0.01);
  });

  it('noise with outliers: Theil-Sen stays within a few percent', () => {
    const rnd = lcg(7);
    let outliers = 0;
    const s = series(120, (h) => {
      const spike = rnd() < 0.08 ? 600 : 0;
      if (spike) outliers++;
      return 100 + 2 * h + (rnd() - 0.5) * 40 + spike;
    });
    expect(outliers).toBeGreaterThan(3);
    const f = forecastLimit(s, 1_000, 'theil-sen');
    expect(Math.abs(hoursAfterT0(f.eta) - 450) / 450).toBeLessThan(0.05);
    expect(f.confidence.significant).toBe(true);
    const range = f.confidence.etaRange!;
    expect(range.earliest!).toBeLessThanOrEqual(f.eta!);
    expect(range.latest!).toBeGreaterThanOrEqual(f.eta!);
    expect(f.confidence.residualScale).toBeGreaterThan(5);
  });

  it('mild noise: Holt stays within 15%', () => {
    const rnd = lcg(11);
    const s = series(120, (h) => 100 + 2 * h + (rnd() - 0.5) * 10);
    const f = forecastLimit(s, 1_000, 'holt-linear');
    expect(Math.abs(hoursAfterT0(f.eta) - 450) / 450).toBeLessThan(0.15);
  });

  it('no growth: no ETA, exact or noisy', () => {
    expect(forecastLimit(series(50, () => 500), 1_000, 'theil-sen').eta).toBeNull();
    expect(forecastLimit(series(50, () => 500), 1_000, 'holt-linear').eta).toBeNull();
    const rnd = lcg(3);
    let etas = 0;
    for (let trial = 0; trial < 50; trial++) {
      const s = series(100, () => 500 + (rnd() - 0.5) * 40);
      for (const method of ['theil-sen', 'holt-linear'] as const) {
        const f = forecastLimit(s, 1_000, method);
        // Not significant, except for the test's 1% false positives, whose ETA is then months away.
        if (f.eta !== null) {
          etas++;
          expect(f.eta - f.at).toBeGreaterThan(30 * 24 * H);
        }
      }
    }
    expect(etas).toBeLessThanOrEqual(4);
  });

  it('decreasing use: no ETA, negative slope', () => {
    const s = series(30, (h) => 900 - 3 * h);
    for (const method of ['theil-sen', 'holt-linear'] as const) {
      const f = forecastLimit(s, 1_000, method);
      expect(f.eta).toBeNull();
      expect(f.slope).toBeLessThan(0);
      expect(f.confidence.trendZ).toBeLessThan(0);
    }
  });

  it('already at the limit: reached, ETA = last sample', () => {
    const s = series(10, (h) => 990 + 2 * h);
    const f = forecastLimit(s, 1_000);
    expect(f.reached).toBe(true);
    expect(f.eta).toBe(s[s.length - 1].t);
  });

  it('too little data: no ETA', () => {
    expect(forecastLimit([], 10).eta).toBeNull();
    expect(forecastLimit(series(1, () => 1), 10).eta).toBeNull();
    expect(forecastLimit(series(5, (h) => h), 10).eta).toBeNull();
    expect(forecastLimit(series(6, (h) => h), 10).eta).not.toBeNull();
  });

  it('orders samples and drops non-finite ones', () => {
    const pts = [{ t: 3, v: 3 }, { t: 1, v: 1 }, { t: 2, v: Number.NaN }, { t: Number.POSITIVE_INFINITY, v: 1 }, { t: 2, v: 2 }];
    expect(normalizeHistory(pts)).toEqual([{ t: 1, v: 1 }, { t: 2, v: 2 }, { t: 3, v: 3 }]);
  });

  it('exposes the fits and the trend test', () => {
    const pts = series(10, (h) => 5 + h);
    expect(theilSenFit(pts).slope * H).toBeCloseTo(1, 9);
    expect(theilSenFit(pts).level).toBeCloseTo(14, 9);
    expect(holtFit(pts).slope * H).toBeCloseTo(1, 9);
    expect(mannKendallZ(pts)).toBeGreaterThan(3);
    expect(mannKendallZ([...pts].reverse().map((p, i) => ({ t: i, v: p.v })))).toBeLessThan(-3);
    expect(() => holtFit(pts, 0, 0.5)).toThrow(RangeError);
  });

  it('selects order statistics like a sort would, also within a known range (property)', () => {
    const name = 'forecast: quickselect agrees with sorting';
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -20, max: 20 }), { minLength: 1, maxLength: 80 }), fc.nat(), fc.nat(), (values, r1, r2) => {
        const sorted = [...values].sort((a, b) => a - b);
        const a = Float64Array.from(values);
        const half = a.length >> 1;
        expect(select(a, half)).toBe(sorted[half]);
        const below = r1 % (half + 1);
        const above = half + (r2 % (a.length - half));
        expect(below < half ? select(a, below, 0, half - 1) : a[below]).toBe(sorted[below]);
        expect(above > half ? select(a, above, half + 1, a.length - 1) : a[above]).toBe(sorted[above]);
      }),
      propertyOptions(name),
    );
  });
});
