/**
 * `reserve sim durability`: the probability of losing any data within Y years, by a Markov chain and by Monte
 * Carlo (naive and importance sampling, exponential and fixed repair times), over a sweep of replication factors
 * and erasure-coded layouts; writes an SVG chart and names the smallest RF that meets the target.
 * The model and its assumptions: simulations/durability/model.ts.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { renderChart } from '../../simulations/durability/chart.ts';
import { checkParams, DurabilityInputError, parseLayout } from '../../simulations/durability/model.ts';
import { defaultThreads } from '../../simulations/durability/parallel.ts';
import { formatReport } from '../../simulations/durability/report.ts';
import { DEFAULT_TARGET, DEFAULT_TRIALS, defaultTrials, runDurability, sweepLayouts } from '../../simulations/durability/sweep.ts';
import type { DurabilityRequest } from '../../simulations/durability/sweep.ts';
import { action, emit, progressBar } from './output.ts';
import type { GlobalOptions } from './output.ts';

interface DurabilityCliOptions extends GlobalOptions {
  boxes: string;
  rf: string;
  afr: string;
  repairHours: string;
  years: string;
  trials?: string;
  seed: string;
  target: string;
  chunks?: string;
  layouts?: string;
  threads?: string;
  chart: string | false;
}

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i;

/** A number from an option's text, or a one-line error naming the option. */
export function numberOption(name: string, text: string): number {
  const t = text.trim().replace(/_/g, '');
  if (!NUMBER.test(t)) throw new DurabilityInputError(`--${name} expects a number, got ${JSON.stringify(text)}`);
  return Number(t);
}

/** Turn the command line's options into a validated request (throws DurabilityInputError). */
export function requestFromOptions(o: DurabilityCliOptions): DurabilityRequest {
  const boxes = numberOption('boxes', o.boxes);
  const req: DurabilityRequest = {
    boxes,
    rf: numberOption('rf', o.rf),
    afr: numberOption('afr', o.afr),
    repairHours: numberOption('repair-hours', o.repairHours),
    years: numberOption('years', o.years),
    trials: 0,
    seed: numberOption('seed', o.seed),
    target: numberOption('target', o.target),
    chunks: o.chunks === undefined ? null : numberOption('chunks', o.chunks),
    threads: 1,
  };
  if (o.layouts !== undefined) {
    if (!(Number.isInteger(boxes) && boxes >= 1)) throw new DurabilityInputError(`--boxes must be a whole number of at least 1 (got ${boxes})`);
    req.layouts = o.layouts.split(',').filter((s) => s.trim() !== '').map((s) => parseLayout(s, boxes));
  }
  checkParams(req);
  req.trials = o.trials !== undefined ? numberOption('trials', o.trials) : defaultTrials(req, sweepLayouts(req));
  // Threads: all cores when there is enough work for them to pay for their start-up (~0.3 s).
  const work = req.trials * 4 * sweepLayouts(req).length;
  req.threads = o.threads !== undefined ? numberOption('threads', o.threads) : work >= 4e6 ? defaultThreads() : 1;
  return req;
}

export function register(sim: Command): void {
  sim
    .command('durability')
    .description(
      'probability of losing any data within Y years: Markov chain and Monte Carlo (importance sampling for rare losses) side by side, ' +
        'a sweep over RF 1..N and erasure-coded k-of-n layouts, an SVG chart, and the smallest RF meeting the target',
    )
    .requiredOption('--boxes <n>', 'number of Boxes in the reserve')
    .requiredOption('--rf <r>', 'replication factor to report on (each chunk on r Boxes)')
    .requiredOption('--afr <p>', 'annual failure rate of one Box, e.g. 0.03 for 3%')
    .requiredOption('--repair-hours <h>', 'time to replace a failed Box and re-replicate its data (mean for the Markov model)')
    .requiredOption('--years <y>', 'horizon in years')
    .option('--trials <t>', `Monte Carlo histories per layout, repair model and estimator (default ${DEFAULT_TRIALS}, fewer for big sweeps)`)
    .option('--seed <s>', 'seed of the Monte Carlo (same seed, same numbers)', '1')
    .option('--target <p>', 'largest acceptable probability of loss within the horizon', DEFAULT_TARGET.toExponential())
    .option('--chunks <c>', 'place this many chunks by rendezvous hashing and count a loss only when a placed chunk is hit')
    .option('--layouts <list>', 'layouts to sweep instead of the default, e.g. rf2,rf3,2-of-4,3-of-5')
    .option('--threads <n>', 'worker threads for the Monte Carlo (default: all cores for long runs)')
    .option('--chart <file>', 'where to write the SVG chart', 'durability.svg')
    .option('--no-chart', 'do not write a chart')
    .option('--json', 'print the full report as JSON')
    .addHelpText(
      'after',
      '\nExample:\n  reserve sim durability --boxes 4 --rf 3 --afr 0.03 --repair-hours 48 --years 10\n' +
        '\nModel: Boxes fail independently at lambda = -ln(1 - AFR) per year; each failed Box is replaced and re-replicated\n' +
        'after the repair time; data is lost when more Boxes are down at once than a layout tolerates (RF-1 for\n' +
        'replication, n-k for k-of-n). See simulations/durability/model.ts for every assumption.',
    )
    .action(
      action(async (o: DurabilityCliOptions) => {
        const req = requestFromOptions(o);
        const bar = progressBar(o, 'Monte Carlo batches', 'items');
        let last = 0;
        const report = await runDurability(req, (done, total) => {
          if (done === 0) bar.total?.(total);
          else {
            bar.advance(done - last);
            last = done;
          }
        }).finally(() => bar.stop());
        let chartPath: string | null = null;
        if (o.chart !== false) {
          chartPath = o.chart;
          await writeFile(resolve(chartPath), renderChart(report));
        }
        emit(o, () => formatReport(report, chartPath), { ...report, chart: chartPath === null ? null : resolve(chartPath) });
      }),
    );
}
