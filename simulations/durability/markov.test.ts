/**
 * The Markov solvers against closed forms and against each other: uniformization vs the dense matrix exponential
 * (scaling and squaring), the birth-death MTTDL formula vs GTH elimination, and the set chain vs the count chain
 * it lumps to.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyOptions } from '../../proofs/support/fc.ts';
import { countChain, denseLossCurve, expm, lossCurve, lossProbability, meanTimeToAbsorption, mttdlCount, poissonWeights, subsetChain } from './markov.ts';
import { failureRate, repairRate } from './model.ts';

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

/** fatal[mask] = popcount(mask) >= lossAt: the many-chunks model as a set table. */
function countTable(boxes: number, lossAt: number): Uint8Array {
  const t = new Uint8Array(1 << boxes);
  for (let m = 0; m < t.length; m++) {
    let c = 0;
    for (let b = 0; b < boxes; b++) if (m & (1 << b)) c++;
    t[m] = c >= lossAt ? 1 : 0;
  }
  return t;
}

describe('Poisson weights', () => {
  it('match the pmf for small means and sum to one', () => {
    for (const m of [0.3, 2, 17.5]) {
      const { left, w } = poissonWeights(m);
      let pmf = Math.exp(-m);
      for (let k = 0; k < left; k++) pmf *= m / (k + 1);
      let sum = 0;
      for (let i = 0; i < w.length; i++) {
        expect(rel(w[i], pmf)).toBeLessThan(1e-12);
        pmf *= m / (left + i + 1);
        sum += w[i];
      }
      expect(Math.abs(sum - 1)).toBeLessThan(1e-14);
    }
  });

  it('stay finite for means where exp(-m) underflows', () => {
    const { left, w } = poissonWeights(1e6);
    expect(left).toBeGreaterThan(0);
    const mode = Math.floor(1e6) - left;
    // The mode of Poisson(m) is about 1 / sqrt(2 pi m).
    expect(rel(w[mode], 1 / Math.sqrt(2 * Math.PI * 1e6))).toBeLessThan(1e-3);
  });
});

describe('count chain', () => {
  it('RF=1 gives 1 - exp(-N lambda Y) (any failure loses data)', () => {
    for (const [N, afr, H, Y] of [
      [4, 0.03, 48, 10],
      [1, 0.5, 1, 1],
      [16, 1e-6, 1000, 0.5],
    ]) {
      const lambda = failureRate(afr);
      const exact = -Math.expm1(-N * lambda * Y);
      expect(rel(lossProbability(countChain(N, 1, lambda, repairRate(H)), Y), exact)).toBeLessThan(1e-12);
      expect(rel(mttdlCount(N, 1, lambda, repairRate(H)), 1 / (N * lambda))).toBeLessThan(1e-14);
    }
  });

  it('two Boxes, RF=2: matches the eigenvalue closed form and MTTDL = (3 lambda + mu) / (2 lambda^2)', () => {
    const lambda = 0.2;
    const mu = 3;
    // Transient generator [[-2l, 2l], [mu, -(l + mu)]]: survival = c1 e^{r1 t} + c2 e^{r2 t}.
    const tr = -(3 * lambda + mu);
    const det = 2 * lambda * lambda;
    const disc = Math.sqrt(tr * tr - 4 * det);
    const r1 = (tr + disc) / 2;
    const r2 = (tr - disc) / 2;
    // S(0) = 1, S'(0) = -(rate out of the transient set from state 0) = 0.
    const c1 = -r2 / (r1 - r2);
    const c2 = r1 / (r1 - r2);
    const chain = countChain(2, 2, lambda, mu);
    for (const t of [0.5, 2, 10, 40]) {
      const exact = 1 - (c1 * Math.exp(r1 * t) + c2 * Math.exp(r2 * t));
      expect(rel(lossProbability(chain, t), exact)).toBeLessThan(1e-10);
    }
    expect(rel(mttdlCount(2, 2, lambda, mu), (3 * lambda + mu) / (2 * lambda * lambda))).toBeLessThan(1e-14);
  });

  it('when Lambda t is huge (4e8 uniformization steps) it switches to the dense method and still matches', () => {
    const lambda = 0.2;
    const mu = 1e7; // repairs in about 3 seconds
    const tr = -(3 * lambda + mu);
    const det = 2 * lambda * lambda;
    const disc = Math.sqrt(tr * tr - 4 * det);
    // The slow eigenvalue computed without cancellation: r1 = 2 det / (tr - disc).
    const r1 = (2 * det) / (tr - disc);
    const r2 = (tr - disc) / 2;
    const c1 = -r2 / (r1 - r2);
    const c2 = r1 / (r1 - r2);
    const t = 40;
    // 1 - c1 e^{r1 t} - c2 e^{r2 t} with c1 + c2 = 1, written without 1 - (1 - tiny).
    const exact = -c1 * Math.expm1(r1 * t) - c2 * Math.expm1(r2 * t);
    const p = lossProbability(countChain(2, 2, lambda, mu), t);
    expect(exact).toBeGreaterThan(1e-7);
    expect(exact).toBeLessThan(1e-6);
    expect(rel(p, exact)).toBeLessThan(1e-6);
  });

  it('without repair, losing all N Boxes by t is p^N: computed to full precision at 1e-50', () => {
    // With mu = 0 the Boxes are independent Exp(lambda) clocks and p = 1 - exp(-lambda t) is each one's chance.
    const N = 8;
    const L = 8;
    const lambda = 1e-6;
    const t = 0.5;
    const p = -Math.expm1(-lambda * t);
    const exact = p ** N; // all eight failed
    const chain = countChain(N, L, lambda, 0);
    expect(exact).toBeLessThan(1e-50);
    expect(rel(lossProbability(chain, t), exact)).toBeLessThan(1e-9);
    expect(rel(denseLossCurve(chain, [t])[0], exact)).toBeLessThan(1e-9);
  });

  it('uniformization agrees with the dense matrix exponential (an independent method), down to tiny values', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10 }),
        fc.integer({ min: 1, max: 10 }),
        fc.double({ min: 1e-4, max: 0.5, noNaN: true }),
        fc.double({ min: 1, max: 3000, noNaN: true }),
        fc.double({ min: 0.1, max: 20, noNaN: true }),
        (N, l, afr, H, Y) => {
          const L = Math.min(l, N);
          const chain = countChain(N, L, failureRate(afr), repairRate(H));
          const times = [Y / 3, Y];
          const u = lossCurve(chain, times);
          const d = denseLossCurve(chain, times);
          for (let i = 0; i < times.length; i++) {
            expect(u[i]).toBeGreaterThanOrEqual(0);
            expect(u[i]).toBeLessThanOrEqual(1 + 1e-12);
            if (d[i] > 1e-290) expect(rel(u[i], d[i])).toBeLessThan(1e-7);
          }
          expect(u[1]).toBeGreaterThanOrEqual(u[0]);
        },
      ),
      propertyOptions('durability markov: uniformization = dense expm', { numRuns: 60 }),
    );
  });

  it('expm rows are probability distributions', () => {
    const chain = countChain(5, 3, 0.1, 50);
    const E = expm(chain, 7);
    const n = chain.states + 1;
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let c = 0; c < n; c++) s += E[r * n + c];
      expect(Math.abs(s - 1)).toBeLessThan(1e-12);
    }
  });

  it('the MTTDL closed form equals GTH elimination on the same chain', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 16 }),
        fc.integer({ min: 1, max: 16 }),
        fc.double({ min: 1e-5, max: 0.9, noNaN: true }),
        fc.double({ min: 0.1, max: 5000, noNaN: true }),
        (N, l, afr, H) => {
          const L = Math.min(l, N);
          const lambda = failureRate(afr);
          const mu = repairRate(H);
          const closed = mttdlCount(N, L, lambda, mu);
          expect(rel(meanTimeToAbsorption(countChain(N, L, lambda, mu)), closed)).toBeLessThan(1e-9);
        },
      ),
      propertyOptions('durability markov: MTTDL closed form = GTH', { numRuns: 80 }),
    );
  });
});

describe('set chain', () => {
  it('with the many-chunks table it lumps to the count chain (loss curve and MTTDL)', () => {
    for (const [N, L] of [
      [3, 2],
      [5, 3],
      [6, 6],
    ]) {
      const lambda = failureRate(0.04);
      const mu = repairRate(72);
      const sets = subsetChain(N, countTable(N, L), lambda, mu);
      const count = countChain(N, L, lambda, mu);
      const times = [1, 5, 10];
      const a = lossCurve(sets, times);
      const b = lossCurve(count, times);
      for (let i = 0; i < times.length; i++) expect(rel(a[i], b[i])).toBeLessThan(1e-9);
      expect(rel(meanTimeToAbsorption(sets), mttdlCount(N, L, lambda, mu))).toBeLessThan(1e-9);
    }
  });
});
