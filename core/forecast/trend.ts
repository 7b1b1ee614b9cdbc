/**
 * Trend forecasting for limitations: from a metric's recent history, when will it reach its limit?
 *
 * Two named methods, both pure and deterministic:
 *
 * - `holt-linear`: Holt's linear trend method (double exponential smoothing). A smoothed level and a smoothed
 *   slope are updated at every sample; it adapts to a step or to a change of growth rate within a few samples,
 *   at the price of being moved by noise. Samples may be irregularly spaced: the slope is kept per millisecond
 *   and the one-step forecast uses the actual gap (level + slope * dt), which for evenly spaced samples is the
 *   textbook method.
 * - `theil-sen`: the Theil-Sen estimator over a window (the last `maxPoints` samples, optionally only those in
 *   the last `windowMs`): the slope is the median of all pairwise slopes and the level the median of the
 *   de-trended values. Robust to up to ~29% outliers; after a step it is exact once the window holds only
 *   post-step samples. It also gives Sen's confidence interval for the slope, hence a range for the ETA.
 *
 * Whatever the method, growth only counts when it is statistically real: a one-sided Mann-Kendall test over the
 * same window must reject "no upward trend" at the 1% level (z > 2.326): a spurious warning costs the owner's
 * attention, a late one only a few samples. Flat-but-noisy series therefore (99% of the time) have no ETA, and
 * neither do series with fewer than six points. A series whose last sample is at or over its limit is `reached`,
 * with `eta` = the time of that sample.
 *
 * Times are milliseconds (any origin); slopes are value units per millisecond. Computations are centred on the
 * last sample's time so that epoch-sized times lose no precision.
 */

export const ForecastMethod = {
  holt: 'holt-linear',
  theilSen: 'theil-sen',
} as const;
export type ForecastMethod = (typeof ForecastMethod)[keyof typeof ForecastMethod];

export interface Point {
  t: number;
  v: number;
}

export interface HoltOptions {
  method: 'holt-linear';
  /** Level smoothing, 0 < alpha <= 1. Default 0.3. */
  alpha?: number;
  /** Trend smoothing, 0 < beta <= 1. Default 0.1 (with 0.3: a step is absorbed within ~50 samples, and white
   * noise moves the ETA by ~15%; raise them to adapt faster, lower them to smooth more). */
  beta?: number;
  /** Samples used for the significance test (the last ones). Default 256. */
  maxPoints?: number;
}

export interface TheilSenOptions {
  method: 'theil-sen';
  /** At most this many of the latest samples are fitted. Default 256 (pairwise work is quadratic). */
  maxPoints?: number;
  /** Only samples no older than this before the last one. Default: no age limit. */
  windowMs?: number;
}

export type ForecastMethodSpec = ForecastMethod | HoltOptions | TheilSenOptions;

/** How much to trust a forecast. */
export interface ForecastConfidence {
  /** Samples the fit used. */
  points: number;
  /** Time between the first and last sample used. */
  spanMs: number;
  /** Robust scale (1.4826 * median absolute deviation) of the residuals: fit residuals for Theil-Sen,
   * one-step-ahead forecast errors for Holt. 0 for a perfect fit. */
  residualScale: number;
  /** Mann-Kendall z statistic of the window (positive: rising). */
  trendZ: number;
  /** True when the upward trend is significant (one-sided, 1%). */
  significant: boolean;
  /** Theil-Sen only: Sen's ~95% confidence interval for the slope. */
  slopeRange?: [number, number];
  /** Theil-Sen only: ETA under the interval's high slope (earliest) and low slope (latest, null if not rising). */
  etaRange?: { earliest: number | null; latest: number | null };
}

export interface ForecastResult {
  /** Predicted time the limit is reached; null when there is no significant growth toward it. */
  eta: number | null;
  /** The last sample is already at or over the limit. */
  reached: boolean;
  /** Fitted growth in value units per millisecond (negative when shrinking). */
  slope: number;
  /** Fitted value at the last sample's time. */
  level: number;
  /** Time of the last sample. */
  at: number;
  method: ForecastMethod;
  confidence: ForecastConfidence;
}

interface Fit {
  slope: number;
  level: number;
  residualScale: number;
  slopeRange?: [number, number];
}

const DEFAULT_MAX_POINTS = 256;
const Z_ONE_SIDED_99 = 2.326;
const Z_TWO_SIDED_95 = 1.96;

function median(sorted: readonly number[]): number {
  const n = sorted.length;
  if (n === 0) return 0;
  const mid = n >> 1;
  return n % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function sortedCopy(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

function robustScale(residuals: readonly number[]): number {
  if (residuals.length === 0) return 0;
  return 1.4826 * median(sortedCopy(residuals.map(Math.abs)));
}

/** Clean, time-ordered samples (non-finite ones dropped; stable for equal times). */
export function normalizeHistory(history: readonly Point[]): Point[] {
  return history
    .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v))
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.t - b.p.t || a.i - b.i)
    .map(({ p }) => ({ t: p.t, v: p.v }));
}

function windowOf(points: readonly Point[], maxPoints: number, windowMs?: number): Point[] {
  let w = points.slice(Math.max(0, points.length - Math.max(2, maxPoints)));
  if (windowMs !== undefined && w.length > 0) {
    const from = w[w.length - 1].t - windowMs;
    w = w.filter((p) => p.t >= from);
  }
  return w;
}

/** Mann-Kendall trend statistic z (no tie correction, which only makes it more conservative). */
export function mannKendallZ(points: readonly Point[]): number {
  const n = points.length;
  if (n < 3) return 0;
  let s = 0;
  for (let i = 0; i < n - 1; i++) {
    for (let j = i + 1; j < n; j++) s += Math.sign(points[j].v - points[i].v);
  }
  const variance = (n * (n - 1) * (2 * n + 5)) / 18;
  if (s > 0) return (s - 1) / Math.sqrt(variance);
  if (s < 0) return (s + 1) / Math.sqrt(variance);
  return 0;
}

/**
 * The k-th smallest element of `a` (0-based), by Hoare's quickselect with a median-of-three pivot. Reorders `a`
 * so that a[k] holds it, smaller-or-equal elements are before and larger-or-equal after; the search can be limited
 * to [from, to] when that is already known to hold it.
 */
export function select(a: Float64Array, k: number, from = 0, to = a.length - 1): number {
  let lo = from;
  let hi = to;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    // Median of three as the pivot.
    const x = a[lo];
    const y = a[mid];
    const z = a[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/** Theil-Sen fit of `points` (already windowed, time-ordered), centred on the last sample. */
export function theilSenFit(points: readonly Point[]): Fit {
  const n = points.length;
  if (n === 0) return { slope: 0, level: 0, residualScale: 0 };
  const t0 = points[n - 1].t;
  const all = new Float64Array((n * (n - 1)) / 2);
  let m = 0;
  for (let i = 0; i < n - 1; i++) {
    for (let j = i + 1; j < n; j++) {
      const dt = points[j].t - points[i].t;
      if (dt !== 0) all[m++] = (points[j].v - points[i].v) / dt;
    }
  }
  // Order statistics by selection (linear time) rather than sorting the n(n-1)/2 slopes.
  const slopes = all.subarray(0, m);
  const half = m >> 1;
  let slope = 0;
  if (m > 0) {
    const upper = select(slopes, half);
    slope = m % 2 === 1 ? upper : (select(slopes, half - 1, 0, half - 1) + upper) / 2;
  }
  const level = median(sortedCopy(points.map((p) => p.v - slope * (p.t - t0))));
  const residualScale = robustScale(points.map((p) => p.v - (level + slope * (p.t - t0))));
  let slopeRange: [number, number] | undefined;
  if (m > 0) {
    // Sen (1968): the interval's ranks are (N -/+ C) / 2 with C = z * sqrt(Var(S)).
    const c = Z_TWO_SIDED_95 * Math.sqrt((n * (n - 1) * (2 * n + 5)) / 18);
    const last = m - 1;
    const lo = Math.min(last, Math.max(0, Math.floor((m - c) / 2)));
    const hi = Math.min(last, Math.max(0, Math.ceil((m + c) / 2)));
    // After selecting the median, ranks below it lie in [0, half) and ranks above in (half, m).
    const low = lo < half ? select(slopes, lo, 0, half - 1) : slopes[lo];
    const high = hi > half ? select(slopes, hi, half + 1, last) : slopes[hi];
    slopeRange = [low, high];
  }
  return { slope, level, residualScale, ...(slopeRange ? { slopeRange } : {}) };
}

/** Holt's linear trend over all `points` (time-ordered), with per-millisecond slope for irregular spacing. */
export function holtFit(points: readonly Point[], alpha = 0.3, beta = 0.1): Fit {
  const n = points.length;
  if (n === 0) return { slope: 0, level: 0, residualScale: 0 };
  if (!(alpha > 0 && alpha <= 1) || !(beta > 0 && beta <= 1)) throw new RangeError('Holt smoothing factors must be in (0, 1]');
  let level = points[0].v;
  let trend = 0;
  // Initial slope: the first gap with a positive duration.
  for (let i = 1; i < n; i++) {
    const dt = points[i].t - points[0].t;
    if (dt > 0) {
      trend = (points[i].v - points[0].v) / dt;
      break;
    }
  }
  const errors: number[] = [];
  for (let i = 1; i < n; i++) {
    const dt = points[i].t - points[i - 1].t;
    const predicted = level + trend * dt;
    errors.push(points[i].v - predicted);
    const next = alpha * points[i].v + (1 - alpha) * predicted;
    if (dt > 0) trend = (beta * (next - level)) / dt + (1 - beta) * trend;
    level = next;
  }
  // The first error is zero by construction of the initial slope; leave it out of the scale.
  return { slope: trend, level, residualScale: robustScale(errors.slice(1)) };
}

function resolveSpec(method: ForecastMethodSpec): HoltOptions | TheilSenOptions {
  if (typeof method === 'string') return { method } as HoltOptions | TheilSenOptions;
  return method;
}

function etaFor(level: number, slope: number, at: number, limit: number): number | null {
  if (!(slope > 0)) return null;
  // A fitted level already over the limit (while the last sample is not) means "now".
  const eta = at + Math.max(0, limit - level) / slope;
  return Number.isFinite(eta) && Math.abs(eta) <= Number.MAX_SAFE_INTEGER ? eta : null;
}

/**
 * When will the metric whose samples are `history` reach `limit`? See the module comment for the methods and for
 * when `eta` is null. The limit is an upper bound: growth toward it is what matters.
 */
export function forecastLimit(history: readonly Point[], limit: number, method: ForecastMethodSpec = ForecastMethod.theilSen): ForecastResult {
  const spec = resolveSpec(method);
  const all = normalizeHistory(history);
  const maxPoints = spec.maxPoints ?? DEFAULT_MAX_POINTS;
  const window = windowOf(all, maxPoints, spec.method === 'theil-sen' ? spec.windowMs : undefined);
  const fit = spec.method === 'holt-linear' ? holtFit(all, spec.alpha, spec.beta) : theilSenFit(window);
  const at = all.length > 0 ? all[all.length - 1].t : 0;
  const lastValue = all.length > 0 ? all[all.length - 1].v : 0;
  const trendZ = mannKendallZ(window);
  const significant = window.length >= 4 && trendZ > Z_ONE_SIDED_99 && fit.slope > 0;
  const reached = all.length > 0 && lastValue >= limit;
  const confidence: ForecastConfidence = {
    points: spec.method === 'holt-linear' ? all.length : window.length,
    spanMs: window.length > 0 ? window[window.length - 1].t - window[0].t : 0,
    residualScale: fit.residualScale,
    trendZ,
    significant,
  };
  if (fit.slopeRange) {
    confidence.slopeRange = fit.slopeRange;
    confidence.etaRange = {
      earliest: reached ? at : etaFor(fit.level, fit.slopeRange[1], at, limit),
      latest: reached ? at : etaFor(fit.level, fit.slopeRange[0], at, limit),
    };
  }
  const eta = reached ? at : significant ? etaFor(fit.level, fit.slope, at, limit) : null;
  return { eta, reached, slope: fit.slope, level: fit.level, at, method: spec.method, confidence };
}
