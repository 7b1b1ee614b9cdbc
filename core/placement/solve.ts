/**
 * The race's exact inclusion probabilities, and the corrected weights that make it follow capacity.
 *
 * Placement (place.ts) is an exponential race: for a chunk, Box i draws T_i = X_i / w_i with X_i an Exp(1)
 * variate hashed from (chunk, Box); earlier is better. Each region's earliest Box is its anchor. With R' replicas
 * and G regions: if R' >= G every anchor is chosen plus the E = R' - G earliest non-anchors; otherwise the anchors
 * of the R' regions whose anchors come first. Without regions (G = 1) this is weighted rendezvous hashing (HRW)
 * with top-R' selection, and for R' = 1 Box i wins with probability exactly w_i / sum w.
 *
 * For R' > 1, top-k selection does not follow its weights (a Box with 40% of the weight at rf 2 gets fewer than
 * 80% of the chunks, small Boxes get more than their share). So the race does not use capacities directly:
 * solveWeights finds the weights whose region-free race gives exactly the capacity-fair inclusion probabilities
 * (targets.ts), once per view. Boxes whose fair share is every chunk race with infinite weight ("always" Boxes,
 * drawn at negative times ordered by their own variate, so they come first).
 *
 * Inclusion probability of a finite Box i in region g, with q_j(t) = exp(-w_j t) the chance that Box j has not
 * "fired" by time t (0 for always Boxes) and N counts of fired Boxes (Poisson-binomial):
 *
 *   R' >= G:  pi_i = w_i / W_g  (i is g's anchor; 0 if g holds an always Box)
 *                  + int_0^inf w_i q_i(t) sum_{a=1..E} P(N_{g\i}(t) = a) P(Y_{-g}(t) <= E - a) dt
 *             where N_{g\i} counts fired Boxes of g other than i (i is then not the anchor, and a-1 of them are
 *             non-anchors ahead of it) and Y_{-g} = sum over the other regions h of max(0, N_h - 1).
 *   R' <  G:  pi_i = w_i int_0^inf Q_g(t) P(#{other regions fired by t} <= R' - 1) dt, Q_g = prod_{j in g} q_j,
 *             with regions holding an always Box counted as fired from the start (and then chosen: they hold
 *             at most R' always Boxes, and their finite Boxes are never the anchor).
 * An always Box is its region's anchor with probability 1/A_g (A_g always Boxes in the region, in random order)
 * and otherwise one of K always non-anchors competing for E extra slots: pi = 1/A_g + (1 - 1/A_g) min(1, E/K).
 *
 * Quadrature: the trapezoid rule in z = ln t. The integrands are entire functions of z that decay exponentially
 * as z -> -inf and doubly exponentially as z -> +inf, for which the trapezoid rule converges geometrically in
 * 1/h; with h = 0.2 the error is ~1e-12 (proofs/placement-model.test.ts checks it against a finer grid and the
 * model against sampled placements).
 *
 * Everything uses only reproducible arithmetic (detmath.ts) in a fixed order, so every Box derives bit-identical
 * weights from the same view.
 */
import { detExp } from './detmath.ts';

/** The structure the race and its model share. */
export interface RaceShape {
  n: number;
  regionOf: readonly number[];
  regionCount: number;
  /** Anchor replicas per chunk: min(R', G). */
  anchors: number;
  /** Extra replicas per chunk: R' - anchors (0 when R' < G). */
  extras: number;
  /** Per Box: races with infinite weight. */
  boxAlways: readonly boolean[];
}

const H = 0.2; // quadrature step in ln t
const RHO = 1.2214027581601699; // e^0.2 as a literal, so that the node sequence is identical everywhere
const T0 = 1e-12; // first node; the missed interval [0, T0] is added as T0 * f(T0)
const TAIL = 42; // stop once t * (smallest decay rate) exceeds this: e^-42 ~ 6e-19

function members(shape: RaceShape): number[][] {
  const m: number[][] = Array.from({ length: shape.regionCount }, () => []);
  for (let i = 0; i < shape.n; i++) m[shape.regionOf[i]!]!.push(i);
  return m;
}

/** Convolve two truncated distributions (length L each) into `out` (length L). */
function conv(a: Float64Array, b: Float64Array, out: Float64Array, L: number): void {
  for (let k = 0; k < L; k++) {
    let s = 0;
    for (let j = 0; j <= k; j++) s += a[j]! * b[k - j]!;
    out[k] = s;
  }
}

/** Add one Bernoulli(p) to a truncated count distribution (length L), from `src` into `out`. */
function addBernoulli(src: Float64Array, p: number, out: Float64Array, L: number): void {
  const q = 1 - p;
  for (let k = L - 1; k >= 1; k--) out[k] = src[k]! * q + src[k - 1]! * p;
  out[0] = src[0]! * q;
}

/** The race's exact inclusion probability per Box for weights `w` (Infinity for always Boxes). */
export function inclusionProbabilities(shape: RaceShape, w: readonly number[], step: number = H): number[] {
  return inclusionWithSlopes(shape, w, step).pi;
}

/**
 * Inclusion probabilities and, per finite Box, the slope d pi_i / d ln w_i (the Jacobian's diagonal; the other
 * entries are <= 0 and each row sums to 0, because scaling every weight changes nothing).
 */
export function inclusionWithSlopes(
  shape: RaceShape,
  w: readonly number[],
  step: number = H,
): { pi: number[]; slope: number[] } {
  const { n, regionOf, regionCount: G, anchors: A, extras: E } = shape;
  const mem = members(shape);
  const pi: number[] = new Array(n).fill(0);
  const slope: number[] = new Array(n).fill(0);
  const W: number[] = new Array(G).fill(0); // finite weight per region
  const alwaysIn: number[] = new Array(G).fill(0); // always Boxes per region
  for (let i = 0; i < n; i++) {
    if (shape.boxAlways[i]) alwaysIn[regionOf[i]!]++;
    else W[regionOf[i]!] += w[i]!;
  }
  const rho = step === H ? RHO : detExp(step);

  if (A === G) {
    let K = 0; // always Boxes that are not their region's anchor
    for (let g = 0; g < G; g++) if (alwaysIn[g]! > 1) K += alwaysIn[g]! - 1;
    for (let i = 0; i < n; i++) {
      const g = regionOf[i]!;
      if (shape.boxAlways[i]) {
        const a = 1 / alwaysIn[g]!;
        pi[i] = a + (1 - a) * (K === 0 ? 1 : Math.min(1, E / K));
      } else if (alwaysIn[g] === 0) {
        const a = w[i]! / W[g]!;
        pi[i] = a;
        slope[i] = a * (1 - a);
      }
    }
    if (E === 0) return { pi, slope };
    // Non-anchor terms by quadrature.
    let minRate = Infinity;
    for (let i = 0; i < n; i++) if (!shape.boxAlways[i] && w[i]! < minRate) minRate = w[i]!;
    if (minRate === Infinity) return { pi, slope };
    const L = E + 1; // counts 0..E
    const q = new Float64Array(n);
    // Per region: prefix distributions over its members (index k = first k members), suffix likewise.
    const pre = mem.map((m) => Array.from({ length: m.length + 1 }, () => new Float64Array(L)));
    const suf = mem.map((m) => Array.from({ length: m.length + 1 }, () => new Float64Array(L)));
    // Per region: distribution of non-anchors X_g = max(0, N_g - 1), counts 0..E-1; prefix/suffix over regions.
    const LX = E;
    const X = Array.from({ length: G }, () => new Float64Array(LX));
    const xPre = Array.from({ length: G + 1 }, () => new Float64Array(LX));
    const xSuf = Array.from({ length: G + 1 }, () => new Float64Array(LX));
    const yOther = new Float64Array(LX);
    const cumY = new Float64Array(LX);
    const loo = new Float64Array(L);
    const acc = new Float64Array(n);
    const accSlope = new Float64Array(n);
    let first = true;
    for (let t = T0; ; t *= rho) {
      for (let i = 0; i < n; i++) q[i] = shape.boxAlways[i] ? 0 : detExp(-w[i]! * t);
      for (let g = 0; g < G; g++) {
        const m = mem[g]!;
        const P = pre[g]!;
        const S = suf[g]!;
        P[0]!.fill(0);
        P[0]![0] = 1;
        for (let k = 0; k < m.length; k++) addBernoulli(P[k]!, 1 - q[m[k]!]!, P[k + 1]!, L);
        S[m.length]!.fill(0);
        S[m.length]![0] = 1;
        for (let k = m.length - 1; k >= 0; k--) addBernoulli(S[k + 1]!, 1 - q[m[k]!]!, S[k]!, L);
        const N = P[m.length]!;
        const Xg = X[g]!;
        Xg[0] = N[0]! + N[1]!;
        for (let a = 1; a < LX; a++) Xg[a] = N[a + 1]!;
      }
      xPre[0]!.fill(0);
      xPre[0]![0] = 1;
      for (let g = 0; g < G; g++) conv(xPre[g]!, X[g]!, xPre[g + 1]!, LX);
      xSuf[G]!.fill(0);
      xSuf[G]![0] = 1;
      for (let g = G - 1; g >= 0; g--) conv(xSuf[g + 1]!, X[g]!, xSuf[g]!, LX);
      const dz = (first ? T0 : 0) + step * t; // trapezoid weight in t (plus the [0, T0] sliver once)
      for (let g = 0; g < G; g++) {
        conv(xPre[g]!, xSuf[g + 1]!, yOther, LX);
        let c = 0;
        for (let b = 0; b < LX; b++) {
          c += yOther[b]!;
          cumY[b] = c;
        }
        const m = mem[g]!;
        for (let k = 0; k < m.length; k++) {
          const i = m[k]!;
          if (shape.boxAlways[i]) continue;
          conv(pre[g]![k]!, suf[g]![k + 1]!, loo, L);
          let s = 0;
          for (let a = 1; a <= E; a++) s += loo[a]! * cumY[E - a]!;
          const wi = w[i]!;
          const f = wi * q[i]! * s;
          acc[i] += dz * f;
          accSlope[i] += dz * f * (1 - wi * t);
        }
      }
      first = false;
      if (t * minRate > TAIL) break;
    }
    for (let i = 0; i < n; i++) {
      pi[i] += acc[i]!;
      slope[i] += accSlope[i]!;
    }
    return { pi, slope };
  }

  // A < G: the A regions whose anchors come first; regions holding an always Box come first of all.
  let hot = 0;
  for (let g = 0; g < G; g++) if (alwaysIn[g]! > 0) hot++;
  for (let i = 0; i < n; i++) if (shape.boxAlways[i]) pi[i] = 1 / alwaysIn[regionOf[i]!]!;
  const slots = A - hot; // left for the other regions
  let minRate = Infinity;
  for (let g = 0; g < G; g++) if (alwaysIn[g] === 0 && W[g]! < minRate) minRate = W[g]!;
  if (slots <= 0 || minRate === Infinity) return { pi, slope };
  const L = slots; // counts 0..slots-1 of other fired regions
  const Q = new Float64Array(G);
  const rPre = Array.from({ length: G + 1 }, () => new Float64Array(L));
  const rSuf = Array.from({ length: G + 1 }, () => new Float64Array(L));
  const accR = new Float64Array(G); // integral of Q_g(t) F_g(t) dt per region
  const accRt = new Float64Array(G); // integral of t Q_g(t) F_g(t) dt per region
  let first = true;
  for (let t = T0; ; t *= rho) {
    // Hot regions are already counted in `slots`; they do not enter the count of other fired regions.
    for (let g = 0; g < G; g++) Q[g] = alwaysIn[g]! > 0 ? 1 : detExp(-W[g]! * t);
    rPre[0]!.fill(0);
    rPre[0]![0] = 1;
    for (let g = 0; g < G; g++) addBernoulli(rPre[g]!, 1 - Q[g]!, rPre[g + 1]!, L);
    rSuf[G]!.fill(0);
    rSuf[G]![0] = 1;
    for (let g = G - 1; g >= 0; g--) addBernoulli(rSuf[g + 1]!, 1 - Q[g]!, rSuf[g]!, L);
    const dz = (first ? T0 : 0) + step * t;
    for (let g = 0; g < G; g++) {
      if (alwaysIn[g]! > 0) continue;
      let F = 0;
      const a = rPre[g]!;
      const b = rSuf[g + 1]!;
      for (let k = 0; k < L; k++) for (let j = 0; j <= k; j++) F += a[j]! * b[k - j]!;
      const f = Q[g]! * F;
      accR[g] += dz * f;
      accRt[g] += dz * t * f;
    }
    first = false;
    if (t * minRate > TAIL) break;
  }
  for (let i = 0; i < n; i++) {
    const g = regionOf[i]!;
    if (alwaysIn[g]! > 0) continue;
    const wi = w[i]!;
    pi[i] = wi * accR[g]!;
    slope[i] = pi[i]! - wi * wi * accRt[g]!;
  }
  return { pi, slope };
}

export interface SolvedWeights {
  /** Race weight per Box (Infinity for always Boxes). */
  weights: number[];
  /** Largest |pi_i / t_i - 1| of the model at the returned weights. */
  residual: number;
  iterations: number;
}

const TOLERANCE = 1e-10;
const MAX_ITERATIONS = 200;
const MAX_STEP = 3; // largest change of ln w per iteration

/** Step of ln w for the forward differences of the full Jacobian (its columns are accurate to about this). */
const JACOBIAN_STEP = 1e-6;

/**
 * Weights whose region-free top-`replicas` race has inclusion probabilities equal to `targets` (each in (0, 1],
 * summing to `replicas`; targets of exactly 1 give always Boxes).
 *
 * Damped Newton-Jacobi on u = ln w: u_i += beta * (t_i - pi_i) / (d pi_i / d u_i), renormalised after each step
 * (only ratios of weights matter). The Jacobian is an M-matrix with zero row sums, for which Jacobi steps on its
 * exact diagonal mostly converge; beta halves whenever a step would not reduce the largest relative error and grows
 * back after a successful one. Equal capacities converge in zero steps (the start point is exact by symmetry).
 *
 * Jacobi steps can stall where the diagonal says little about the whole: a Box with a share near 1 next to one
 * thousands of times smaller stopped them at a relative error of 3e-4, no step of any length reducing it (found by
 * proofs/placement-model.test.ts under another seed). Then the solver takes full Newton steps instead: the whole
 * Jacobian by forward differences (one model evaluation per free Box), solved with one free Box held fixed. A
 * Newton step shrinks every error at once, so a short enough one always reduces the largest.
 */
export function solveWeights(targets: readonly number[], replicas: number): SolvedWeights {
  const n = targets.length;
  const always = targets.map((t) => t >= 1);
  const shape: RaceShape = {
    n,
    regionOf: new Array(n).fill(0),
    regionCount: 1,
    anchors: Math.min(1, replicas),
    extras: Math.max(0, replicas - 1),
    boxAlways: always,
  };
  let w = targets.map((t) => (t >= 1 ? Infinity : t));
  let freeTarget = 0;
  let free = 0;
  for (let i = 0; i < n; i++)
    if (!always[i] && targets[i]! > 0) {
      free++;
      freeTarget += targets[i]!;
    }
  if (replicas === 0 || free === 0) return { weights: w, residual: 0, iterations: 0 };
  const residualOf = (pi: readonly number[]): number => {
    let r = 0;
    for (let i = 0; i < n; i++) {
      if (always[i]) continue;
      const e = Math.abs(pi[i]! / targets[i]! - 1);
      if (e > r) r = e;
    }
    return r;
  };
  let model = inclusionWithSlopes(shape, w);
  let residual = residualOf(model.pi);
  let iterations = 0;
  let beta = 1;
  /** Full Newton steps (once Jacobi steps stalled), and the current point's Newton direction in ln w. */
  let newton = false;
  let direction: number[] | null = null;
  while (residual > TOLERANCE && iterations < MAX_ITERATIONS) {
    iterations++;
    if (newton && direction === null) direction = newtonDirection(shape, w, model.pi, targets);
    const next = w.slice();
    let sum = 0;
    for (let i = 0; i < n; i++) {
      if (always[i]) continue;
      const s = model.slope[i]!;
      let du = direction !== null ? beta * direction[i]! : s > 0 ? (beta * (targets[i]! - model.pi[i]!)) / s : 0;
      if (du > MAX_STEP) du = MAX_STEP;
      else if (du < -MAX_STEP) du = -MAX_STEP;
      next[i] = w[i]! * detExp(du);
      sum += next[i]!;
    }
    const scale = freeTarget / sum;
    for (let i = 0; i < n; i++) if (!always[i]) next[i] = next[i]! * scale;
    const trial = inclusionWithSlopes(shape, next);
    const r = residualOf(trial.pi);
    if (r < residual) {
      w = next;
      model = trial;
      residual = r;
      direction = null;
      beta = beta * 2 > 1 ? 1 : beta * 2;
    } else {
      beta /= 2;
      if (beta < 1e-6) {
        if (newton) break;
        newton = true;
        beta = 1;
      }
    }
  }
  return { weights: w, residual, iterations };
}

/**
 * The Newton step in u = ln w at weights `w` (probabilities `pi`): J du = t - pi over the free Boxes (finite, with a
 * target above 0), J by forward differences. J has zero row sums (scaling every weight changes nothing), so the
 * last free Box is held fixed and the others solved for by Gaussian elimination with partial pivoting, in a fixed
 * order (bit-identical on every Box). Zero for the Boxes not solved for.
 */
function newtonDirection(shape: RaceShape, w: readonly number[], pi: readonly number[], targets: readonly number[]): number[] {
  const n = shape.n;
  const free: number[] = [];
  for (let i = 0; i < n; i++) if (!shape.boxAlways[i] && targets[i]! > 0) free.push(i);
  const direction: number[] = new Array(n).fill(0);
  const m = free.length - 1;
  if (m < 1) return direction;
  // a[r][c]: row r, column c of the reduced system (free Boxes 0..m-1), the right-hand side in column m.
  const a: number[][] = Array.from({ length: m }, (_, r) => {
    const row: number[] = new Array(m + 1).fill(0);
    row[m] = targets[free[r]!]! - pi[free[r]!]!;
    return row;
  });
  for (let c = 0; c < m; c++) {
    const moved = w.slice();
    moved[free[c]!] = w[free[c]!]! * detExp(JACOBIAN_STEP);
    const p = inclusionWithSlopes(shape, moved).pi;
    for (let r = 0; r < m; r++) a[r]![c] = (p[free[r]!]! - pi[free[r]!]!) / JACOBIAN_STEP;
  }
  for (let c = 0; c < m; c++) {
    let pivot = c;
    for (let r = c + 1; r < m; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[pivot]![c]!)) pivot = r;
    if (a[pivot]![c] === 0) return direction; // singular: no Newton step (the caller's line search then gives up)
    if (pivot !== c) [a[c], a[pivot]] = [a[pivot]!, a[c]!];
    const rowC = a[c]!;
    for (let r = c + 1; r < m; r++) {
      const row = a[r]!;
      const f = row[c]! / rowC[c]!;
      if (f === 0) continue;
      for (let k = c; k <= m; k++) row[k] = row[k]! - f * rowC[k]!;
    }
  }
  for (let c = m - 1; c >= 0; c--) {
    const row = a[c]!;
    let v = row[m]!;
    for (let k = c + 1; k < m; k++) v -= row[k]! * direction[free[k]!]!;
    direction[free[c]!] = v / row[c]!;
  }
  return direction;
}
