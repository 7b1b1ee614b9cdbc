/**
 * `reserve sim placement`: place M synthetic chunks on N synthetic Boxes, optionally add or remove Boxes, and
 * report how many replicas moved against the theoretical minimum, how even the load is, how closely it follows
 * capacity, and whether every region holds a full copy. Everything is derived from --seed, so a run can be
 * repeated exactly.
 */
import type { Command } from 'commander';
import { InvalidInputError } from '../../core/errors.ts';
import { fmix32 } from '../../core/placement/hash.ts';
import { compileView, measureChange, measureLayout, shortfall, syntheticKeys } from '../../core/placement/index.ts';
import type { ChangeReport, KeeperView, LayoutReport, PlacementView } from '../../core/placement/index.ts';
import { action, emit } from './output.ts';

interface PlacementOptions {
  boxes: string;
  rf: string;
  chunks: string;
  add?: string;
  remove?: string;
  regions: string;
  capacities?: string;
  seed: string;
  json?: boolean;
}

function whole(name: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(text.trim())) throw new InvalidInputError(`--${name} must be a whole number >= ${min}, got ${JSON.stringify(text)}`);
  const v = Number(text);
  if (v < min) throw new InvalidInputError(`--${name} must be >= ${min}, got ${v}`);
  if (v > max) throw new InvalidInputError(`--${name} must be <= ${max}, got ${v}`);
  return v;
}

function parseCapacities(text: string): number[] {
  return text.split(',').map((part, i) => {
    const s = part.trim();
    const v = Number(s);
    if (s === '' || !Number.isFinite(v) || v <= 0)
      throw new InvalidInputError(`--capacities entry ${i + 1} must be a number > 0, got ${JSON.stringify(part)}`);
    return v;
  });
}

export interface PlacementRun {
  boxes: number;
  rf: number;
  chunks: number;
  regions: number;
  seed: number;
  change: 'none' | 'add' | 'remove';
  changedBoxes: number;
  capacities?: number[];
}

/** Validate the options into a run description, with one clear error per problem. */
export function parsePlacementOptions(o: PlacementOptions): PlacementRun {
  const boxes = whole('boxes', o.boxes, 1, 10_000);
  const rf = whole('rf', o.rf, 1);
  if (rf > boxes) throw new InvalidInputError(`--rf ${rf} is more than --boxes ${boxes}: every replica needs its own Box`);
  const chunks = whole('chunks', o.chunks, 1, 100_000_000);
  const regions = whole('regions', o.regions, 1);
  if (regions > boxes) throw new InvalidInputError(`--regions ${regions} is more than --boxes ${boxes}: every region needs a Box`);
  const seed = whole('seed', o.seed, 0);
  if (o.add !== undefined && o.remove !== undefined) throw new InvalidInputError('give either --add or --remove, not both');
  let change: PlacementRun['change'] = 'none';
  let changedBoxes = 0;
  if (o.add !== undefined) {
    change = 'add';
    changedBoxes = whole('add', o.add, 1, 10_000);
  } else if (o.remove !== undefined) {
    change = 'remove';
    changedBoxes = whole('remove', o.remove, 1);
    if (changedBoxes >= boxes) throw new InvalidInputError(`--remove ${changedBoxes} would leave no Box out of --boxes ${boxes}`);
  }
  const run: PlacementRun = { boxes, rf, chunks, regions, seed, change, changedBoxes };
  if (o.capacities !== undefined) {
    const caps = parseCapacities(o.capacities);
    const withAdded = change === 'add' ? boxes + changedBoxes : boxes;
    if (caps.length !== boxes && caps.length !== withAdded)
      throw new InvalidInputError(
        `--capacities has ${caps.length} entries; expected ${boxes} (one per Box)` +
          (change === 'add' ? ` or ${withAdded} (including the added Boxes)` : ''),
      );
    run.capacities = caps;
  }
  return run;
}

/** The synthetic keepers of a run: Box i has a seed-derived id, region i mod G and its capacity. */
export function syntheticKeepers(run: PlacementRun): KeeperView[] {
  const total = run.boxes + (run.change === 'add' ? run.changedBoxes : 0);
  const caps = run.capacities ?? [];
  const mean = caps.length > 0 ? caps.slice(0, run.boxes).reduce((a, b) => a + b, 0) / run.boxes : 1;
  const width = String(total - 1).length;
  return Array.from({ length: total }, (_, i) => {
    const tag = fmix32(Math.imul(run.seed + 1, 0x9e3779b9) ^ i).toString(16).padStart(8, '0');
    const keeper: KeeperView = {
      id: `box${String(i).padStart(width, '0')}-${tag}`,
      capacity: caps[i] ?? mean,
      live: true,
    };
    if (run.regions > 1) keeper.region = `region${i % run.regions}`;
    return keeper;
  });
}

export interface PlacementResult {
  boxes: number;
  rf: number;
  replicas: number;
  chunks: number;
  regions: number;
  seed: number;
  change: PlacementRun['change'];
  changedBoxes: string[];
  moved: number;
  dropped: number;
  minimal: number;
  ratio: number;
  changedChunks: number;
  maxOverMean: number;
  maxShareError: number;
  maxFairError: number;
  regionsFullyCovered: number;
  shortfall: { wanted: number; possible: number } | null;
  elapsedMs: { compile: number; place: number };
  placementsPerSecond: number;
  initial?: { maxOverMean: number; maxShareError: number; regionsFullyCovered: number };
  perBox: Array<{
    id: string;
    region: string;
    capacity: number;
    capacityShare: number;
    fair: number;
    expected: number;
    load: number;
    share: number;
    error: number;
  }>;
}

/** Run the experiment (pure computation plus timing). */
export function runPlacement(run: PlacementRun): PlacementResult {
  const keepers = syntheticKeepers(run);
  const initial: PlacementView = { rf: run.rf, keepers: keepers.slice(0, run.boxes) };
  const final: PlacementView =
    run.change === 'add'
      ? { rf: run.rf, keepers }
      : run.change === 'remove'
        ? { rf: run.rf, keepers: keepers.slice(0, run.boxes - run.changedBoxes) }
        : initial;
  const keys = syntheticKeys(run.seed, run.chunks);
  const t0 = performance.now();
  compileView(initial);
  const placer = compileView(final);
  const t1 = performance.now();
  let report: ChangeReport | null = null;
  let layout: LayoutReport;
  if (run.change === 'none') layout = measureLayout(final, keys);
  else {
    report = measureChange(initial, final, keys);
    layout = report.after;
  }
  const t2 = performance.now();
  const placements = run.chunks * (report ? 2 : 1);
  const fairOf = new Map(placer.targets.map((t) => [t.id, t.fair]));
  let maxFairError = 0;
  const perBox = layout.boxes.map((b) => {
    const fair = fairOf.get(b.id) ?? 0;
    const fairLoad = fair * run.chunks;
    const e = fairLoad > 0 ? Math.abs(b.load / fairLoad - 1) : 0;
    if (e > maxFairError) maxFairError = e;
    return {
      id: b.id,
      region: b.region,
      capacity: b.capacity,
      capacityShare: b.capacityShare,
      fair,
      expected: b.expected,
      load: b.load,
      share: layout.replicas > 0 ? b.load / (run.chunks * layout.replicas) : 0,
      error: b.error,
    };
  });
  return {
    boxes: final.keepers.length,
    rf: run.rf,
    replicas: layout.replicas,
    chunks: run.chunks,
    regions: layout.regions,
    seed: run.seed,
    change: run.change,
    changedBoxes: report ? [...report.added, ...report.removed] : [],
    moved: report?.moved ?? 0,
    dropped: report?.dropped ?? 0,
    minimal: report ? Math.round(report.minimal) : 0,
    ratio: report?.ratio ?? 1,
    changedChunks: report?.changedChunks ?? 0,
    maxOverMean: layout.maxOverMean,
    maxShareError: layout.maxShareError,
    maxFairError,
    regionsFullyCovered: layout.regionsFullyCovered,
    shortfall: shortfall(final),
    elapsedMs: { compile: t1 - t0, place: t2 - t1 },
    placementsPerSecond: placements / Math.max((t2 - t1) / 1000, 1e-9),
    ...(report
      ? {
          initial: {
            maxOverMean: report.before.maxOverMean,
            maxShareError: report.before.maxShareError,
            regionsFullyCovered: report.before.regionsFullyCovered,
          },
        }
      : {}),
    perBox,
  };
}

const int = (v: number): string => Math.round(v).toLocaleString('en-US');
const pct = (v: number, signed = false): string => {
  const text = (v * 100).toFixed(2);
  const zero = /^-?0\.00$/.test(text);
  return `${signed && (v >= 0 || zero) ? '+' : ''}${zero ? '0.00' : text}%`;
};

/** The short human summary and per-Box table. */
export function formatPlacement(r: PlacementResult): string {
  const lines: string[] = [];
  const what = r.change === 'none' ? 'no change' : `${r.change} ${r.changedBoxes.length} Box${r.changedBoxes.length === 1 ? '' : 'es'}`;
  lines.push(
    `placement: ${r.boxes} Boxes, rf ${r.rf}, ${int(r.chunks)} chunks, ${r.regions} region${r.regions === 1 ? '' : 's'}, seed ${r.seed}; ${what}`,
  );
  if (r.shortfall) lines.push(`shortfall: rf ${r.shortfall.wanted} wanted, only ${r.shortfall.possible} live Boxes`);
  if (r.change !== 'none')
    lines.push(
      `moved ${int(r.moved)} replicas, minimal ${int(r.minimal)}, ratio ${r.ratio.toFixed(4)}; dropped ${int(r.dropped)}; ` +
        `${pct(r.changedChunks / r.chunks)} of chunks changed`,
    );
  lines.push(
    `balance: max/mean load ${r.maxOverMean.toFixed(4)}; largest error vs expected ${pct(r.maxShareError)}, ` +
      `vs capacity-fair ${pct(r.maxFairError)}; regions holding every chunk ${r.regionsFullyCovered}/${r.regions}`,
  );
  lines.push(
    `time: compile ${r.elapsedMs.compile.toFixed(0)} ms, place ${(r.elapsedMs.place / 1000).toFixed(2)} s ` +
      `(${(r.placementsPerSecond / 1e6).toFixed(2)} M placements/s)`,
  );
  const header = ['box', 'region', 'capacity', 'cap share', 'fair', 'expected', 'load', 'error'];
  const rows = r.perBox.map((b) => [
    b.id,
    b.region || '-',
    String(b.capacity),
    pct(b.capacityShare),
    b.fair.toFixed(4),
    int(b.expected),
    int(b.load),
    pct(b.error, true),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const fmt = (cells: string[]): string => cells.map((cell, c) => (c < 2 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  lines.push('', fmt(header), ...rows.map(fmt));
  return lines.join('\n');
}

export function registerPlacement(sim: Command): void {
  sim
    .command('placement')
    .description('place synthetic chunks on synthetic Boxes; measure movement on add/remove, balance and region coverage')
    .option('--boxes <n>', 'number of Boxes', '10')
    .option('--rf <r>', 'replication factor', '3')
    .option('--chunks <m>', 'number of chunks', '100000')
    .option('--add <k>', 'add k Boxes and measure what moves')
    .option('--remove <k>', 'remove the last k Boxes and measure what moves')
    .option('--regions <g>', 'spread the Boxes round-robin over g regions', '1')
    .option('--capacities <list>', 'comma-separated capacities, one per Box (added Boxes may be included; default: all equal)')
    .option('--seed <s>', 'seed for Box ids and chunk keys', '1')
    .option('--json', 'print one JSON document')
    .action(
      action(async (opts: PlacementOptions) => {
        const run = parsePlacementOptions(opts);
        const result = runPlacement(run);
        emit({ json: opts.json }, () => formatPlacement(result), result);
      }),
    );
}
