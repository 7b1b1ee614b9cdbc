/**
 * Continuous-time Markov chains of a reserve with exponential repair, solved without ever subtracting tiny
 * probabilities from one.
 *
 * - `countChain`: the state is the number of failed Boxes i = 0..L-1, plus an absorbing "data lost" state L
 *   (L = n-k+1, i.e. RF for replication). Up-rates (N-i) lambda, down-rates i mu.
 * - `subsetChain`: the state is the set of failed Boxes (a bit mask), absorbing on the masks a chunk-aware
 *   placement says are fatal (`--chunks`). Exact for finite chunk counts; 2^N states (the sweep uses it up to
 *   N = 8).
 *
 * P(loss within t) is the mass absorbed by time t, computed by uniformization: with Lambda >= every exit rate,
 * P(t) = sum_k Poisson(k; Lambda t) a_k, where a_k is the mass absorbed after k steps of the uniformized jump
 * chain. a_k is accumulated from the (non-negative) flows into the absorbing state, and the Poisson weights are
 * built from the mode outwards and normalised (no exp(-Lambda t) underflow), so every term is non-negative and
 * values like 1e-30 keep full relative precision. For chains where Lambda t is huge, `denseLossCurve` uses a
 * matrix exponential by scaling and squaring of the (non-negative) uniformized matrix instead; it is also the
 * independent method the tests compare against.
 *
 * MTTDL (mean time to data loss from "all up") has a closed form for the birth-death count chain, summed from
 * positive terms; `meanTimeToAbsorption` solves any chain by GTH-style elimination (diagonals recomputed as sums
 * of rates, never by subtraction).
 */
import { MarkovTooLargeError } from './model.ts';

/** A CTMC with transient states 0..states-1 and one absorbing state, index `states`; it starts in state 0. */
export interface Chain {
  states: number;
  from: Int32Array;
  to: Int32Array;
  rate: Float64Array;
  /** Total exit rate of each transient state. */
  exit: Float64Array;
}

function buildChain(states: number, edges: Array<[number, number, number]>): Chain {
  const live = edges.filter((e) => e[2] > 0);
  const chain: Chain = {
    states,
    from: Int32Array.from(live, (e) => e[0]),
    to: Int32Array.from(live, (e) => e[1]),
    rate: Float64Array.from(live, (e) => e[2]),
    exit: new Float64Array(states),
  };
  for (const [f, , r] of live) chain.exit[f] += r;
  return chain;
}

/** Birth-death chain over the number of failed Boxes; `lossAt` failed at once is absorbing. */
export function countChain(boxes: number, lossAt: number, lambda: number, mu: number): Chain {
  const edges: Array<[number, number, number]> = [];
  for (let i = 0; i < lossAt; i++) {
    edges.push([i, i + 1, (boxes - i) * lambda]); // i + 1 === lossAt is the absorbing state
    if (i > 0) edges.push([i, i - 1, i * mu]);
  }
  return buildChain(lossAt, edges);
}

/** Chain over sets of failed Boxes; `fatal[mask]` (upward closed) marks the absorbing sets. */
export function subsetChain(boxes: number, fatal: Uint8Array, lambda: number, mu: number): Chain {
  const size = 1 << boxes;
  const index = new Int32Array(size).fill(-1);
  let states = 0;
  for (let mask = 0; mask < size; mask++) if (!fatal[mask]) index[mask] = states++;
  const edges: Array<[number, number, number]> = [];
  for (let mask = 0; mask < size; mask++) {
    if (fatal[mask]) continue;
    for (let b = 0; b < boxes; b++) {
      const bit = 1 << b;
      if (mask & bit) edges.push([index[mask], index[mask & ~bit], mu]);
      else edges.push([index[mask], fatal[mask | bit] ? states : index[mask | bit], lambda]);
    }
  }
  return buildChain(states, edges);
}

/**
 * Poisson(k; m) weights for k in [left, left + w.length), normalised to sum to one, with terms below
 * `cut` times the mode's weight dropped on both sides.
 */
export function poissonWeights(m: number, cut = 1e-100): { left: number; w: Float64Array } {
  if (m === 0) return { left: 0, w: Float64Array.of(1) };
  const mode = Math.floor(m);
  const lower: number[] = [];
  let v = 1;
  for (let k = mode; k > 0; k--) {
    v *= k / m;
    if (v < cut) break;
    lower.push(v);
  }
  const upper: number[] = [];
  v = 1;
  for (let k = mode + 1; ; k++) {
    v *= m / k;
    if (v < cut) break;
    upper.push(v);
  }
  const left = mode - lower.length;
  const w = new Float64Array(lower.length + 1 + upper.length);
  for (let i = 0; i < lower.length; i++) w[lower.length - 1 - i] = lower[i];
  w[lower.length] = 1;
  for (let i = 0; i < upper.length; i++) w[lower.length + 1 + i] = upper[i];
  // Sum from the smallest terms up for accuracy.
  const sorted = Float64Array.from(w).sort();
  let sum = 0;
  for (const x of sorted) sum += x;
  for (let i = 0; i < w.length; i++) w[i] /= sum;
  return { left, w };
}

/** Uniformization work (steps x transitions) and steps above which the dense method is used instead. */
const UNIFORMIZATION_BUDGET = 4e8;
const UNIFORMIZATION_STEPS = 5e6;

/**
 * P(absorbed by t) for each t in `times` (years), by uniformization; the absorbed mass a_k is computed once up
 * to the largest t. Falls back to the dense matrix exponential when the step count would be excessive.
 */
export function lossCurve(chain: Chain, times: readonly number[]): number[] {
  const S = chain.states;
  let lam = 0;
  for (let s = 0; s < S; s++) lam = Math.max(lam, chain.exit[s]);
  if (lam === 0) return times.map(() => 0);
  const tMax = Math.max(0, ...times);
  const wMax = poissonWeights(lam * tMax);
  const K = wMax.left + wMax.w.length; // steps needed
  if (K > UNIFORMIZATION_STEPS || K * Math.max(chain.rate.length, 1) > UNIFORMIZATION_BUDGET) return denseLossCurve(chain, times);
  const a = new Float64Array(K + 1);
  let v = new Float64Array(S);
  let next = new Float64Array(S);
  v[0] = 1;
  let absorbed = 0;
  const { from, to, rate, exit } = chain;
  const stay = new Float64Array(S);
  for (let s = 0; s < S; s++) stay[s] = (lam - exit[s]) / lam;
  const p = Float64Array.from(rate, (r) => r / lam);
  for (let k = 1; k <= K; k++) {
    for (let s = 0; s < S; s++) next[s] = v[s] * stay[s];
    let flow = 0;
    for (let e = 0; e < from.length; e++) {
      const m = v[from[e]] * p[e];
      if (to[e] === S) flow += m;
      else next[to[e]] += m;
    }
    absorbed += flow;
    a[k] = absorbed;
    const tmp = v;
    v = next;
    next = tmp;
  }
  return times.map((t) => {
    if (t <= 0) return 0;
    const { left, w } = poissonWeights(lam * t);
    let sum = 0;
    for (let i = 0; i < w.length; i++) sum += w[i] * a[Math.min(left + i, K)];
    return sum;
  });
}

/** P(absorbed by t) for one t. */
export function lossProbability(chain: Chain, t: number): number {
  return lossCurve(chain, [t])[0];
}

/** Dense (S+1)x(S+1) row-major matrix helpers; the last row/column is the absorbing state. */
function matmul(A: Float64Array<ArrayBuffer>, B: Float64Array<ArrayBuffer>, n: number): Float64Array<ArrayBuffer> {
  const C = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const aik = A[i * n + k];
      if (aik === 0) continue;
      for (let j = 0; j < n; j++) C[i * n + j] += aik * B[k * n + j];
    }
  }
  return C;
}

/**
 * exp(Q t) of the chain, as a dense matrix, by scaling and squaring: exp(Q tau) for tau = t / 2^s with
 * Lambda tau <= 1/2 is a short uniformization series of non-negative matrices, then squared s times.
 * Every operation adds products of non-negative numbers, so tiny entries keep their relative precision.
 */
export function expm(chain: Chain, t: number): Float64Array<ArrayBuffer> {
  const S = chain.states;
  const n = S + 1;
  if (n > 400) throw new MarkovTooLargeError(`the chain has ${S} states, too many for the dense matrix exponential`);
  let lam = 0;
  for (let s = 0; s < S; s++) lam = Math.max(lam, chain.exit[s]);
  const I = new Float64Array(n * n);
  for (let i = 0; i < n; i++) I[i * n + i] = 1;
  if (lam === 0 || t <= 0) return I;
  const P = new Float64Array(n * n);
  for (let s = 0; s < S; s++) P[s * n + s] = (lam - chain.exit[s]) / lam;
  P[S * n + S] = 1;
  for (let e = 0; e < chain.from.length; e++) P[chain.from[e] * n + chain.to[e]] += chain.rate[e] / lam;
  let squarings = 0;
  let tau = t;
  while (lam * tau > 0.5) {
    tau /= 2;
    squarings++;
  }
  // sum_k e^{-m} m^k / k! P^k, with m = lam tau <= 1/2: 40 terms leave a tail below 1e-60 relative.
  const m = lam * tau;
  let term = I;
  let weight = Math.exp(-m);
  let E = new Float64Array(n * n);
  for (let k = 0; k <= S + 40; k++) {
    for (let i = 0; i < n * n; i++) E[i] += weight * term[i];
    term = matmul(term, P, n);
    weight *= m / (k + 1);
  }
  for (let q = 0; q < squarings; q++) E = matmul(E, E, n);
  return E;
}

/** P(absorbed by t) for each t, from the dense matrix exponential (stepping between sorted times). */
export function denseLossCurve(chain: Chain, times: readonly number[]): number[] {
  const n = chain.states + 1;
  const order = times.map((t, i) => [t, i] as const).sort((x, y) => x[0] - y[0]);
  const out = new Array<number>(times.length).fill(0);
  let v = new Float64Array(n);
  v[0] = 1;
  let now = 0;
  const cache = new Map<number, Float64Array>();
  for (const [t, i] of order) {
    if (t > now) {
      const dt = t - now;
      const key = Number(dt.toPrecision(12));
      let M = cache.get(key);
      if (!M) {
        M = expm(chain, dt);
        cache.set(key, M);
      }
      const w = new Float64Array(n);
      for (let r = 0; r < n; r++) {
        const vr = v[r];
        if (vr === 0) continue;
        for (let c = 0; c < n; c++) w[c] += vr * M[r * n + c];
      }
      v = w;
      now = t;
    }
    out[i] = v[n - 1];
  }
  return out;
}

/** Mean time to data loss of the count chain: sum over i < L of the expected time to go from i to i+1. */
export function mttdlCount(boxes: number, lossAt: number, lambda: number, mu: number): number {
  let total = 0;
  let tau = 0;
  for (let i = 0; i < lossAt; i++) {
    // tau_i = (1 + d_i tau_{i-1}) / b_i, with b_i = (N-i) lambda and d_i = i mu.
    tau = (1 + i * mu * tau) / ((boxes - i) * lambda);
    total += tau;
  }
  return total;
}

/** Expected time to absorption from state 0, for any chain, by GTH-style elimination (dense, O(S^3)). */
export function meanTimeToAbsorption(chain: Chain): number {
  const S = chain.states;
  if (S > 1100) throw new MarkovTooLargeError(`the chain has ${S} states, too many for the MTTDL solver`);
  const q = new Float64Array(S * S);
  const a = new Float64Array(S);
  const b = new Float64Array(S).fill(1);
  for (let e = 0; e < chain.from.length; e++) {
    const f = chain.from[e];
    const t = chain.to[e];
    if (t === S) a[f] += chain.rate[e];
    else if (t !== f) q[f * S + t] += chain.rate[e];
  }
  const d = new Float64Array(S);
  for (let k = S - 1; k >= 0; k--) {
    // Exit rate of k in the chain censored to states <= k: a sum of non-negative rates.
    let dk = a[k];
    for (let j = 0; j < k; j++) dk += q[k * S + j];
    d[k] = dk;
    if (dk === 0) return Infinity;
    for (let i = 0; i < k; i++) {
      const qik = q[i * S + k];
      if (qik === 0) continue;
      const f = qik / dk;
      for (let j = 0; j < k; j++) if (j !== i) q[i * S + j] += f * q[k * S + j];
      a[i] += f * a[k];
      b[i] += f * b[k];
    }
  }
  const m = new Float64Array(S);
  for (let k = 0; k < S; k++) {
    let sum = b[k];
    for (let j = 0; j < k; j++) sum += q[k * S + j] * m[j];
    m[k] = sum / d[k];
  }
  return m[0];
}
