/**
 * The durability study behind `reserve sim durability`: for every layout of the sweep (replication RF 1..N and
 * erasure-coded k-of-n), P(loss within Y years) by the Markov chain (exponential repair) and by Monte Carlo
 * (exponential AND fixed repair, each with the naive and the importance-sampling estimator), MTTDL, the Markov
 * loss curve over time for the chart, and which layouts meet a target such as "less than 1e-6 over 10 years".
 *
 * Deterministic: every batch's generator seed is derived from (seed, layout k and n, repair model, estimator,
 * batch number), so a layout's numbers do not depend on which other layouts are in the sweep, on the thread
 * count, or on the order batches finish. Only `timing` varies between runs.
 */
import type { Layout, ReserveParams } from './model.ts';
import { DurabilityInputError, MAX_BOXES, checkParams, defaultLayouts, failureRate, HOURS_PER_YEAR, repairRate, replication } from './model.ts';
import { countChain, lossCurve, meanTimeToAbsorption, mttdlCount, subsetChain } from './markov.ts';
import type { BatchStats, Estimator, McConfig, RepairModel, Interval } from './montecarlo.ts';
import { DEFAULT_BIAS, emptyStats, mergeStats, weightedInterval, wilsonInterval } from './montecarlo.ts';
import { runJobs } from './parallel.ts';
import type { BatchJob } from './parallel.ts';
import { layoutFatalTable, MAX_CHUNK_BOXES } from './placement.ts';
import { streamSeed } from './rng.ts';

/** Largest N for which `--chunks` also gets an exact Markov chain over sets of failed Boxes (2^N states). */
export const SUBSET_CHAIN_MAX_BOXES = 8;
/** Trials per batch (the unit of parallel work and of progress). */
export const BATCH_TRIALS = 50_000;
/** Trials per estimator, repair model and layout when not given: this many, or fewer for big sweeps. */
export const DEFAULT_TRIALS = 500_000;
/** Simulated events (failures + repairs) a default run aims at: a few seconds on two cores. */
const DEFAULT_EVENT_BUDGET = 2e8;
/** Simulated events above which a run is refused as too long (tens of minutes). */
const MAX_EVENTS = 2e10;
export const DEFAULT_TARGET = 1e-6;
/** Points on each Markov loss curve in the chart. */
const CURVE_POINTS = 60;

export interface DurabilityRequest extends ReserveParams {
  /** The replication factor asked about (highlighted; always in the sweep). */
  rf: number;
  /** Trials per estimator, repair model and layout. */
  trials: number;
  seed: number;
  /** Largest acceptable P(loss within `years`). */
  target: number;
  /** Chunk-aware loss with this many chunks, or null for the many-chunks model. */
  chunks: number | null;
  /** Layouts to compute; default: defaultLayouts(boxes). The requested RF is added if missing. */
  layouts?: Layout[];
  threads: number;
  /** Importance-sampling failure bias per repair model (montecarlo.ts); default DEFAULT_BIAS. */
  bias?: Partial<Record<RepairModel, number>>;
}

export interface EstimatorResult extends Interval {
  estimator: Estimator;
  trials: number;
  /** Trials that lost data (under the sampling measure, for importance sampling). */
  hits: number;
  /** Half the 95% interval's width over the estimate. */
  relativeError: number;
}

export interface McResult {
  repair: RepairModel;
  naive: EstimatorResult;
  is: EstimatorResult;
  /** The estimator shown: the one with the tighter interval among those with at least 10 hits. */
  best: Estimator;
  estimate: number;
  low: number;
  high: number;
  /** False when neither estimator had 10 hits: the interval is then only indicative. */
  reliable: boolean;
}

export interface MarkovResult {
  /** P(loss within Y years) with exponential repair. */
  loss: number;
  /** Mean time to data loss, years. */
  mttdlYears: number;
  /** 'count' chain (number of failed Boxes) or 'set' chain (which Boxes failed, for --chunks). */
  chain: 'count' | 'set';
  /** 'exact' for the model, or 'upper' when the count chain stands in for a chunk-aware model it bounds. */
  bound: 'exact' | 'upper';
  /** P(loss within t) at CURVE_POINTS times up to Y, for the chart. */
  curve: Array<[years: number, loss: number]>;
}

export interface LayoutResult {
  layout: Layout;
  markov: MarkovResult;
  mc: { exp: McResult; fixed: McResult };
  /** The largest of the Markov value and both Monte Carlo upper bounds: what is compared to the target. */
  worstCase: number;
  meetsTarget: boolean;
}

export interface DurabilityReport {
  boxes: number;
  afr: number;
  repairHours: number;
  years: number;
  trials: number;
  seed: number;
  target: number;
  chunks: number | null;
  lambdaPerYear: number;
  muPerYear: number;
  requested: string;
  layouts: LayoutResult[];
  /** The smallest replication factor meeting the target, or null if none up to N does. */
  smallestRf: number | null;
  /** The layout with the least storage overhead meeting the target, or null. */
  cheapest: string | null;
  timing: { seconds: number; boxYears: number; boxYearsPerSecond: number; threads: number };
}

export function checkRequest(req: DurabilityRequest): void {
  checkParams(req);
  if (!Number.isInteger(req.rf) || req.rf < 1) throw new DurabilityInputError(`--rf must be a whole number of at least 1 (got ${req.rf})`);
  if (req.rf > req.boxes) throw new DurabilityInputError(`--rf ${req.rf} is more than --boxes ${req.boxes}: each replica needs its own Box`);
  if (!Number.isInteger(req.trials) || req.trials < 1000 || req.trials > 1e10) {
    throw new DurabilityInputError(`--trials must be a whole number from 1000 to 1e10 (got ${req.trials})`);
  }
  if (!Number.isInteger(req.seed) || req.seed < 0 || req.seed > 0xffffffff) {
    throw new DurabilityInputError(`--seed must be a whole number from 0 to 4294967295 (got ${req.seed})`);
  }
  if (!(req.target > 0 && req.target < 1)) throw new DurabilityInputError(`--target must be a probability strictly between 0 and 1 (got ${req.target})`);
  if (req.chunks !== null) {
    if (!Number.isInteger(req.chunks) || req.chunks < 1 || req.chunks > 1e7) {
      throw new DurabilityInputError(`--chunks must be a whole number from 1 to 10000000 (got ${req.chunks})`);
    }
    if (req.boxes > MAX_CHUNK_BOXES) throw new DurabilityInputError(`--chunks works with at most ${MAX_CHUNK_BOXES} Boxes`);
  }
  if (!Number.isInteger(req.threads) || req.threads < 1 || req.threads > 256) {
    throw new DurabilityInputError(`--threads must be a whole number from 1 to 256 (got ${req.threads})`);
  }
  if (req.boxes > MAX_BOXES) throw new DurabilityInputError(`--boxes must be at most ${MAX_BOXES}`);
  for (const l of req.layouts ?? []) {
    if (l.n > req.boxes) throw new DurabilityInputError(`layout ${l.label} needs ${l.n} Boxes but there are only ${req.boxes}`);
  }
}

/**
 * Rough number of failures and repairs simulated per history of one layout, summed over both repair models and
 * both estimators: a naive history has about two events per failure, plus one; an importance-sampling one also
 * walks up to the loss threshold and back.
 */
function eventsPerHistory(req: Pick<DurabilityRequest, 'boxes' | 'afr' | 'years'>, layout: Layout): number {
  const naive = 2 + 2 * req.boxes * failureRate(req.afr) * req.years;
  return REPAIRS.length * (naive + naive + 3 * layout.lossAt);
}

/** Rough total of simulated events for `trials` histories per layout, repair model and estimator. */
export function estimatedEvents(req: Pick<DurabilityRequest, 'boxes' | 'afr' | 'years'>, layouts: readonly Layout[], trials: number): number {
  let perTrial = 0;
  for (const l of layouts) perTrial += eventsPerHistory(req, l);
  return trials * perTrial;
}

/** DEFAULT_TRIALS, or fewer (down to 10,000) when the sweep is big, so that a default run takes seconds. */
export function defaultTrials(req: Pick<DurabilityRequest, 'boxes' | 'afr' | 'years'>, layouts: readonly Layout[]): number {
  const fit = DEFAULT_EVENT_BUDGET / estimatedEvents(req, layouts, 1);
  return Math.max(10_000, Math.min(DEFAULT_TRIALS, Math.floor(fit / 10_000) * 10_000));
}

/** The layouts of a request: the given or default sweep, plus the requested RF, without duplicates. */
export function sweepLayouts(req: DurabilityRequest): Layout[] {
  const list = [...(req.layouts ?? defaultLayouts(req.boxes))];
  if (!list.some((l) => l.k === 1 && l.n === req.rf)) list.push(replication(req.rf));
  const seen = new Set<string>();
  const out: Layout[] = [];
  for (const l of list) {
    const key = `${l.k}/${l.n}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(l);
  }
  return out;
}

const REPAIRS: RepairModel[] = ['exp', 'fixed'];
const ESTIMATORS: Estimator[] = ['naive', 'is'];

/** Sizes of the batches `trials` is split into (as equal as possible, at most BATCH_TRIALS each). */
export function batchSizes(trials: number): number[] {
  const count = Math.ceil(trials / BATCH_TRIALS);
  const base = Math.floor(trials / count);
  return Array.from({ length: count }, (_, i) => base + (i < trials - base * count ? 1 : 0));
}

function estimatorResult(estimator: Estimator, s: BatchStats): EstimatorResult {
  if (estimator === 'is') return { estimator, trials: s.trials, hits: s.hits, ...weightedInterval(s) };
  const iv = wilsonInterval(s.hits, s.trials);
  const relativeError = iv.estimate > 0 ? (iv.high - iv.low) / 2 / iv.estimate : Infinity;
  return { estimator, trials: s.trials, hits: s.hits, ...iv, relativeError };
}

function pickBest(repair: RepairModel, naive: EstimatorResult, is: EstimatorResult): McResult {
  const eligible = [naive, is].filter((e) => e.hits >= 10);
  let best: EstimatorResult;
  if (eligible.length > 0) best = eligible.reduce((a, b) => (b.high - b.low < a.high - a.low ? b : a));
  else best = is.hits > 0 ? is : naive;
  return { repair, naive, is, best: best.estimator, estimate: best.estimate, low: best.low, high: best.high, reliable: eligible.length > 0 };
}

/** Run the whole study. `onProgress(done, total)` is called as Monte Carlo batches finish. */
export async function runDurability(req: DurabilityRequest, onProgress?: (done: number, total: number) => void): Promise<DurabilityReport> {
  checkRequest(req);
  const started = performance.now();
  const lambda = failureRate(req.afr);
  const mu = repairRate(req.repairHours);
  const repairYears = req.repairHours / HOURS_PER_YEAR;
  const layouts = sweepLayouts(req);
  const events = estimatedEvents(req, layouts, req.trials);
  if (events > MAX_EVENTS) {
    throw new DurabilityInputError(
      `this run would simulate about ${events.toExponential(1)} failures and repairs (far too long): lower --trials (${req.trials}), --years, --afr or the number of --layouts`,
    );
  }
  const fatalTables = layouts.map((l) => (req.chunks === null ? null : layoutFatalTable(l, req.boxes, req.chunks)));

  const configs: McConfig[] = [];
  const jobs: BatchJob[] = [];
  const owner: Array<{ layout: number; repair: number; estimator: number }> = [];
  const sizes = batchSizes(req.trials);
  layouts.forEach((layout, li) => {
    REPAIRS.forEach((repair, ri) => {
      ESTIMATORS.forEach((estimator, ei) => {
        const config = configs.length;
        configs.push({
          boxes: req.boxes,
          lossAt: layout.lossAt,
          lambda,
          repairYears,
          years: req.years,
          repair,
          estimator,
          fatal: fatalTables[li],
          bias: req.bias?.[repair] ?? DEFAULT_BIAS[repair],
        });
        owner.push({ layout: li, repair: ri, estimator: ei });
        sizes.forEach((trials, batch) => jobs.push({ config, trials, seed: streamSeed(req.seed, layout.k, layout.n, ri, ei, batch) }));
      });
    });
  });

  let done = 0;
  onProgress?.(0, jobs.length);
  const stats = await runJobs(configs, jobs, { threads: req.threads, onBatch: () => onProgress?.(++done, jobs.length) });
  const mcSeconds = (performance.now() - started) / 1000;
  const merged = configs.map(() => emptyStats());
  jobs.forEach((job, i) => (merged[job.config] = mergeStats(merged[job.config], stats[i])));

  const times = Array.from({ length: CURVE_POINTS }, (_, i) => ((i + 1) * req.years) / CURVE_POINTS);
  const results: LayoutResult[] = layouts.map((layout, li) => {
    const markov = markovFor(req, layout, fatalTables[li], lambda, mu, times);
    const mcFor = (ri: number): McResult => {
      const pick = (ei: number) => merged[owner.findIndex((o) => o.layout === li && o.repair === ri && o.estimator === ei)];
      return pickBest(REPAIRS[ri], estimatorResult('naive', pick(0)), estimatorResult('is', pick(1)));
    };
    const mc = { exp: mcFor(0), fixed: mcFor(1) };
    const worstCase = Math.max(markov.bound === 'exact' ? markov.loss : 0, mc.exp.high, mc.fixed.high);
    return { layout, markov, mc, worstCase, meetsTarget: worstCase <= req.target };
  });

  const meeting = results.filter((r) => r.meetsTarget);
  const rfs = meeting.filter((r) => r.layout.kind === 'replication').map((r) => r.layout.n);
  const cheapest = meeting.slice().sort((a, b) => a.layout.overhead - b.layout.overhead || a.layout.n - b.layout.n)[0];
  const boxYears = req.trials * configs.length * req.boxes * req.years;
  const seconds = (performance.now() - started) / 1000;
  return {
    boxes: req.boxes,
    afr: req.afr,
    repairHours: req.repairHours,
    years: req.years,
    trials: req.trials,
    seed: req.seed,
    target: req.target,
    chunks: req.chunks,
    lambdaPerYear: lambda,
    muPerYear: mu,
    requested: `RF=${req.rf}`,
    layouts: results,
    smallestRf: rfs.length > 0 ? Math.min(...rfs) : null,
    cheapest: cheapest ? cheapest.layout.label : null,
    timing: { seconds, boxYears, boxYearsPerSecond: boxYears / mcSeconds, threads: req.threads },
  };
}

function markovFor(req: DurabilityRequest, layout: Layout, fatal: Uint8Array | null, lambda: number, mu: number, times: number[]): MarkovResult {
  const useSets = fatal !== null && req.boxes <= SUBSET_CHAIN_MAX_BOXES;
  const chain = useSets ? subsetChain(req.boxes, fatal, lambda, mu) : countChain(req.boxes, layout.lossAt, lambda, mu);
  const curveValues = lossCurve(chain, times);
  return {
    loss: curveValues[curveValues.length - 1],
    mttdlYears: useSets ? meanTimeToAbsorption(chain) : mttdlCount(req.boxes, layout.lossAt, lambda, mu),
    chain: useSets ? 'set' : 'count',
    bound: fatal !== null && !useSets ? 'upper' : 'exact',
    curve: times.map((t, i) => [t, curveValues[i]]),
  };
}
