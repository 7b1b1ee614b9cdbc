/**
 * `npm run bench:sim`: speed figures of the simulators, each checked against its target and printed as a ratio.
 * Timed here (wall clock), never in unit tests.
 *
 * Sections (each an exported function returning its figures, run in order by `main`):
 * - durability: Box-years of simulated reserve history per second of wall time in the durability Monte Carlo,
 *   single thread and all threads, against the target of 10 million Box-years per second.
 * Another section (the full-engine `flood` scenario timing) is added by exporting a function of the same shape and
 * listing it in `sections`.
 */
import { cpus, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { failureRate, HOURS_PER_YEAR } from '../durability/model.ts';
import type { Estimator, McConfig, RepairModel } from '../durability/montecarlo.ts';
import { DEFAULT_BIAS, runBatch } from '../durability/montecarlo.ts';
import { defaultThreads, runJobs } from '../durability/parallel.ts';
import { streamSeed } from '../durability/rng.ts';

/** One measured figure: value, unit, and (optionally) the target it is held to. */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  target?: number;
  /** true when a larger value is better (rates), false for durations. */
  higherIsBetter?: boolean;
}

export interface SectionResult {
  section: string;
  figures: Figure[];
  notes: string[];
}

export interface BenchSection {
  name: string;
  run: () => Promise<SectionResult>;
}

/** The durability Monte Carlo's target: 10 million Box-years per second of wall time. */
export const DURABILITY_TARGET = 10_000_000;

/** The reference reserve of the example: 4 Boxes, RF=3, AFR 3%, 48 h repairs, 10 years. */
function reference(repair: RepairModel, estimator: Estimator): McConfig {
  return {
    boxes: 4,
    lossAt: 3,
    lambda: failureRate(0.03),
    repairYears: 48 / HOURS_PER_YEAR,
    years: 10,
    repair,
    estimator,
    fatal: null,
    bias: DEFAULT_BIAS[repair],
  };
}

/**
 * Box-years per second of one configuration on this thread, measured over at least `seconds` of wall time; also
 * per second of CPU time, which is what the core delivers when other processes are not competing for it.
 */
function singleThread(cfg: McConfig, seconds: number): { wall: number; cpu: number } {
  const batch = 100_000;
  runBatch(cfg, 1, batch); // warm-up: let the JIT compile the kernel
  let trials = 0;
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  let i = 0;
  while (performance.now() - start < seconds * 1000) {
    runBatch(cfg, streamSeed(7, i++), batch);
    trials += batch;
  }
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const boxYears = trials * cfg.boxes * cfg.years;
  return { wall: boxYears / elapsed, cpu: boxYears / ((cpu.user + cpu.system) / 1e6) };
}

/** Box-years per second over all threads, worker start-up included. */
async function allThreads(cfg: McConfig, threads: number, trials: number): Promise<number> {
  const batch = 200_000;
  const jobs = Array.from({ length: Math.ceil(trials / batch) }, (_, i) => ({ config: 0, seed: streamSeed(9, i), trials: batch }));
  const start = performance.now();
  await runJobs([cfg], jobs, { threads });
  const elapsed = (performance.now() - start) / 1000;
  return (jobs.length * batch * cfg.boxes * cfg.years) / elapsed;
}

/** Section "durability": Box-years/s of the Monte Carlo, naive and importance sampling, both repair models. */
export async function benchDurability(): Promise<SectionResult> {
  const figures: Figure[] = [];
  const threads = defaultThreads();
  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  const perCpu: string[] = [];
  for (const repair of ['exp', 'fixed'] as const) {
    for (const estimator of ['naive', 'is'] as const) {
      const name = `single thread, ${estimator === 'is' ? 'importance sampling' : 'naive'}, ${repair === 'exp' ? 'exponential' : 'fixed'} repair`;
      const r = singleThread(reference(repair, estimator), 1);
      figures.push({ name, value: r.wall, unit: 'Box-years/s', target: DURABILITY_TARGET, higherIsBetter: true });
      perCpu.push(`${formatRate(r.cpu)}`);
    }
  }
  for (const estimator of ['naive', 'is'] as const) {
    figures.push({
      name: `${threads} threads, ${estimator === 'is' ? 'importance sampling' : 'naive'}, exponential repair`,
      value: await allThreads(reference('exp', estimator), threads, 24_000_000),
      unit: 'Box-years/s',
      target: DURABILITY_TARGET,
      higherIsBetter: true,
    });
  }
  const cpu = process.cpuUsage(cpu0);
  const wall = (performance.now() - wall0) / 1000;
  const load = loadavg()[0];
  return {
    section: 'durability',
    figures,
    notes: [
      'reference reserve: 4 Boxes, RF=3, AFR 3%, 48 h repairs, 10-year histories (40 Box-years each)',
      `single thread per CPU-second (same four rows): ${perCpu.join(', ')} Box-years`,
      `machine: ${cpus().length} cores (${threads} used), load average ${load.toFixed(1)} at the end; ` +
        `main-thread CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s over ${wall.toFixed(1)} s of wall time` +
        (load > cpus().length ? ' (other processes were competing for the cores: figures are lower bounds)' : ''),
    ],
  };
}

/** Every section, in the order `main` runs them. */
/** The full engine: 5 Boxes, ~10,000 chunks, the flood, a simulated year. Target: under 30 s of wall time. */
export async function benchFloodYear(): Promise<SectionResult> {
  const { floodYear } = await import('../reserve/flood-year.ts');
  const cpu0 = process.cpuUsage();
  const r = await floodYear(1, 2500);
  const cpu = process.cpuUsage(cpu0);
  const cpuSecs = (cpu.user + cpu.system) / 1e6;
  const secs = r.wallMs / 1000;
  const load = loadavg()[0];
  return {
    section: 'Full-engine simulator: the flood scenario, 5 Boxes, RF 3, ~10,000 chunks, one simulated year',
    figures: [
      { name: 'wall time for one simulated year', value: secs, unit: 's', target: 30, higherIsBetter: false },
      { name: 'simulated days per wall second', value: r.virtualDays / secs, unit: 'days/s' },
      { name: 'CPU time (this process, GC threads included)', value: cpuSecs, unit: 's' },
    ],
    notes: [
      `${r.chunks} chunks, ${r.snapshots} snapshots, ${r.events} scheduler events, ${r.messages} messages; trace ${r.traceHash} (the same seed gives the same trace)`,
      `load average ${load.toFixed(1)} at the end on ${cpus().length} cores` + (load > cpus().length ? ' (other processes were competing for the cores: the wall time is an upper bound; CPU time is the steadier figure)' : ''),
      `restore on the factory-new Box: ${r.restoreProblems.length === 0 ? 'every snapshot byte-identical' : r.restoreProblems.join('; ')}`,
      `chunks below target RF at the end: ${r.underReplicatedAtEnd}`,
    ],
  };
}

export const sections: BenchSection[] = [
  { name: 'durability', run: benchDurability },
  { name: 'flood-year', run: benchFloodYear },
];

function formatRate(v: number): string {
  return v >= 1e6 ? `${(v / 1e6).toFixed(1)} M` : v.toFixed(0);
}

export function formatSection(r: SectionResult): string {
  const lines = [`== ${r.section}`];
  const width = Math.max(...r.figures.map((f) => f.name.length));
  for (const f of r.figures) {
    let line = `  ${f.name.padEnd(width)}  ${formatRate(f.value)} ${f.unit}`;
    if (f.target !== undefined) {
      const ratio = f.higherIsBetter === false ? f.target / f.value : f.value / f.target;
      line += `  = ${ratio.toFixed(1)}x the target of ${formatRate(f.target)} ${f.unit} ${ratio >= 1 ? '(met)' : '(NOT met)'}`;
    }
    lines.push(line);
  }
  for (const n of r.notes) lines.push(`  ${n}`);
  return lines.join('\n');
}

/** Run the sections named in `only` (all by default) and print each as it finishes. */
export async function main(only: string[] = []): Promise<SectionResult[]> {
  const results: SectionResult[] = [];
  for (const s of sections) {
    if (only.length > 0 && !only.includes(s.name)) continue;
    const r = await s.run();
    process.stdout.write(formatSection(r) + '\n');
    results.push(r);
  }
  return results;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
