/**
 * The durability model behind `reserve sim durability`: what is simulated, in which units, and which layouts.
 *
 * Assumptions (the Markov chain and the Monte Carlo share them, except where the repair time says otherwise):
 * - A reserve has N Boxes. Each Box fails independently and permanently (disk gone, Box bricked or stolen) at a
 *   constant rate lambda derived from its annual failure rate P: P = 1 - exp(-lambda * 1 year), so
 *   lambda = -ln(1 - P) per year. Failures are a Poisson process per working Box: no infant mortality, no
 *   wear-out, no correlated failures (fire, flood, one bad firmware update), which would all make things worse.
 * - A failed Box is replaced and its data re-replicated after a repair time. Each failed Box is repaired on its
 *   own (repairs run in parallel, no shared repair crew). The Markov-compatible choice is an exponential repair
 *   time with mean H hours (rate mu = 1/H); the Monte Carlo also runs a fixed (deterministic) repair time of
 *   exactly H hours, which is closer to a real re-replication and is shown beside it.
 * - While repairing, the replacement takes over the failed Box's place in the placement (same share of chunks).
 * - Data is many chunks placed by balanced rendezvous hashing over all N Boxes. A replicated chunk (RF = R) is
 *   lost when all R of its Boxes are down at once; an erasure-coded chunk k-of-n (n fragments on n distinct
 *   Boxes, any k of them rebuild it; Tahoe-LAFS style) is lost when more than n-k of its Boxes are down at once.
 *   Replication RF = R is the layout 1-of-R. With many chunks (chunks >> C(N, n)) every set of n-k+1 Boxes holds
 *   the fragments of some chunk, so "data is lost" is exactly "at least n-k+1 Boxes are down at once", which is
 *   what the count-based Markov chain models. With `--chunks C` the Monte Carlo instead places C chunks and
 *   declares a loss only when the failed set really covers a chunk (see placement.ts); the Markov chain then
 *   runs over sets of failed Boxes (exact, for N <= 10).
 * - Time is measured in years of 365 days (8760 hours). Reserves start with every Box up.
 */
import { ReserveError } from '../../core/errors.ts';

/** A parameter of the durability model is out of range (one clear line for the CLI). */
export class DurabilityInputError extends ReserveError {
  static override readonly name = 'DurabilityInputError';
}

/** The Markov solver was asked for a chain too large to solve in reasonable time. */
export class MarkovTooLargeError extends ReserveError {
  static override readonly name = 'MarkovTooLargeError';
}

export const HOURS_PER_YEAR = 8760;
/** Upper bounds that keep one run to seconds and the bit masks within 32 bits. */
export const MAX_BOXES = 16;
export const MAX_YEARS = 1000;

/** How chunks are stored: replication RF = n (k = 1) or erasure coding k-of-n. */
export interface Layout {
  kind: 'replication' | 'erasure';
  /** Fragments needed to rebuild a chunk (1 for replication). */
  k: number;
  /** Fragments (or replicas) stored, each on a distinct Box. */
  n: number;
  /** "RF=3" or "2-of-4". */
  label: string;
  /** Boxes that may be down at once without losing anything: n - k. */
  tolerance: number;
  /** Number of Boxes down at once that loses a chunk: n - k + 1. */
  lossAt: number;
  /** Bytes stored per byte of data: n / k. */
  overhead: number;
}

export function replication(rf: number): Layout {
  return { kind: 'replication', k: 1, n: rf, label: `RF=${rf}`, tolerance: rf - 1, lossAt: rf, overhead: rf };
}

export function erasure(k: number, n: number): Layout {
  return { kind: 'erasure', k, n, label: `${k}-of-${n}`, tolerance: n - k, lossAt: n - k + 1, overhead: n / k };
}

/** Parse "rf3", "RF=3", "3" (replication) or "2-of-4", "2of4" (erasure coding). */
export function parseLayout(text: string, boxes: number): Layout {
  const t = text.trim().toLowerCase();
  const rf = /^(?:rf=?)?(\d+)$/.exec(t);
  const ec = /^(\d+)-?of-?(\d+)$/.exec(t);
  let layout: Layout;
  if (rf) layout = replication(Number(rf[1]));
  else if (ec) {
    const k = Number(ec[1]);
    const n = Number(ec[2]);
    if (k < 1 || k >= n) throw new DurabilityInputError(`layout ${text}: an erasure code k-of-n needs 1 <= k < n`);
    layout = k === 1 ? replication(n) : erasure(k, n);
  } else throw new DurabilityInputError(`layout ${JSON.stringify(text)}: expected RF=R (e.g. rf3) or k-of-n (e.g. 2-of-4)`);
  if (layout.n < 1) throw new DurabilityInputError(`layout ${text}: needs at least one replica`);
  if (layout.n > boxes) throw new DurabilityInputError(`layout ${layout.label} needs ${layout.n} Boxes but there are only ${boxes}`);
  return layout;
}

/**
 * The sweep: every replication factor 1..N, then erasure-coded layouts that fit on N Boxes, for each tolerance
 * 1..3 the widest stripe (n = N, least overhead) and the narrowest (k = 2). In the many-chunks model a layout's
 * loss probability depends only on its tolerance, so these show what erasure coding saves in storage.
 */
export function defaultLayouts(boxes: number): Layout[] {
  const out: Layout[] = [];
  for (let r = 1; r <= boxes; r++) out.push(replication(r));
  const seen = new Set<string>();
  for (let m = 1; m <= Math.min(3, boxes - 2); m++) {
    for (const [k, n] of [
      [2, 2 + m],
      [boxes - m, boxes],
    ] as const) {
      if (k < 2 || n > boxes || seen.has(`${k}/${n}`)) continue;
      seen.add(`${k}/${n}`);
      out.push(erasure(k, n));
    }
  }
  return out.sort((a, b) => (a.kind === b.kind ? a.tolerance - b.tolerance || a.overhead - b.overhead : a.kind === 'replication' ? -1 : 1));
}

/** The physical parameters of one reserve. */
export interface ReserveParams {
  boxes: number;
  /** Annual failure rate of one Box, in (0, 1). */
  afr: number;
  /** Mean (exponential) or exact (fixed) time to replace a Box and re-replicate its data, in hours. */
  repairHours: number;
  /** Horizon, in years. */
  years: number;
}

/** Failure rate per Box per year: lambda = -ln(1 - P), computed without cancellation for small P. */
export function failureRate(afr: number): number {
  return -Math.log1p(-afr);
}

/** Repair rate per failed Box per year (mu = 1 / H, H in years). */
export function repairRate(repairHours: number): number {
  return HOURS_PER_YEAR / repairHours;
}

function finite(name: string, v: number): void {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new DurabilityInputError(`--${name} must be a number`);
}

/** Validate the reserve's parameters; throws DurabilityInputError with one line naming the option. */
export function checkParams(p: ReserveParams): void {
  finite('boxes', p.boxes);
  if (!Number.isInteger(p.boxes) || p.boxes < 1 || p.boxes > MAX_BOXES) {
    throw new DurabilityInputError(`--boxes must be a whole number from 1 to ${MAX_BOXES} (got ${p.boxes})`);
  }
  finite('afr', p.afr);
  if (!(p.afr > 0 && p.afr < 1)) throw new DurabilityInputError(`--afr must be an annual failure probability strictly between 0 and 1 (got ${p.afr}); 3% is 0.03`);
  finite('repair-hours', p.repairHours);
  if (!(p.repairHours >= 0.01)) throw new DurabilityInputError(`--repair-hours must be at least 0.01 (got ${p.repairHours})`);
  if (p.repairHours > 10 * HOURS_PER_YEAR) throw new DurabilityInputError(`--repair-hours must be at most ${10 * HOURS_PER_YEAR} (ten years; got ${p.repairHours})`);
  finite('years', p.years);
  if (!(p.years > 0 && p.years <= MAX_YEARS)) throw new DurabilityInputError(`--years must be more than 0 and at most ${MAX_YEARS} (got ${p.years})`);
}
