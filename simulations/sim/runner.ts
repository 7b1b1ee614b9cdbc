/**
 * The VOPR-style runner. A `Scenario` says how to draw its options from the seed, build a cluster, take one
 * safety-phase step (work plus faults), heal, and what its checkers are. `runScenario` runs it:
 *
 *   options <- scenario.options(seed)                (CLI overrides win, but every draw still happens)
 *   setup                                             then safety checkers
 *   faults phase: `steps` x (step, safety checkers)
 *   heal                                              then safety checkers
 *   liveness phase: every `livenessPollMs`, safety checkers, then liveness checkers; pass when all liveness
 *     checkers pass, fail when the bound runs out first ("time to full repair" = heal -> pass)
 *   end: safety checkers once more
 *
 * The result has one outcome, each with its own exit code: pass 0, crash 3 (an exception anywhere: scenario,
 * behaviour start(), a timer callback, ports.panic, a checker), liveness 4, safety 5. A failure report prints the
 * seed, the options and a one-line command that replays the run exactly, plus the last trace events; the trace
 * hash identifies the run bit for bit.
 */
import type { PathStats } from './net.ts';
import { SimRandom, seedLabel, type Seed } from './rng.ts';
import { formatMs } from './trace.ts';
import { SimWorld, type WorldOptions } from './world.ts';
import { InvalidInputError } from '../../core/errors.ts';

export const EXIT = { pass: 0, crash: 3, liveness: 4, safety: 5 } as const;
export type Outcome = keyof typeof EXIT;
export const EXIT_PASS = EXIT.pass;
export const EXIT_CRASH = EXIT.crash;
export const EXIT_LIVENESS = EXIT.liveness;
export const EXIT_SAFETY = EXIT.safety;

export type Phase = 'setup' | 'faults' | 'heal' | 'liveness' | 'end';

/** Options given on the command line (`--boxes 5 --rf 3` becomes { boxes: 5, rf: 3 }). */
export type Overrides = Readonly<Record<string, string | number | boolean>>;

export interface RunContext<O> {
  readonly world: SimWorld;
  readonly options: O;
  /** The scenario's own PRNG stream (independent of the network's, the disks', the Boxes'). */
  readonly rng: SimRandom;
  readonly phase: Phase;
  /** Safety-phase step index (the number of steps taken, after the phase). */
  readonly step: number;
}

/** A checker's verdict: nothing (or an empty list) when all is well, otherwise what is wrong. */
export type CheckResult = string | readonly string[] | undefined | void;

export interface Checker<O, S> {
  readonly name: string;
  /** Safety checkers run after every step and at the end; liveness checkers only in the liveness phase. */
  readonly kind: 'safety' | 'liveness';
  check(state: S, ctx: RunContext<O>): CheckResult | Promise<CheckResult>;
}

export interface Scenario<O extends object, S> {
  readonly name: string;
  readonly description?: string;
  /** Draw this run's options. Use `option()` so an override replaces a value without shifting later draws. */
  options(rng: SimRandom, overrides: Overrides): O;
  /** World settings (network defaults, epoch) for these options. */
  world?(options: O): Omit<WorldOptions, 'seed'>;
  setup(ctx: RunContext<O>): Promise<S>;
  /** Number of safety-phase steps. */
  steps(options: O): number;
  /** One safety-phase step: do work, inject faults, advance virtual time. */
  step(state: S, ctx: RunContext<O>): Promise<void>;
  /** End the faults (heal the network, restart Boxes, ...). */
  heal(state: S, ctx: RunContext<O>): Promise<void>;
  /** Virtual time the liveness checkers have, after heal, to all pass. */
  livenessBoundMs(options: O): number;
  /** How often (virtual ms) the liveness checkers are evaluated (default: bound / 100, at least 100 ms). */
  livenessPollMs?(options: O): number;
  readonly checkers: readonly Checker<O, S>[];
  /** Scenario-specific numbers for the report (bytes moved, blocks repaired, ...). */
  metrics?(state: S, ctx: RunContext<O>): Record<string, unknown>;
}

export interface Failure {
  phase: Phase;
  step: number;
  /** Virtual ms since the start when it was detected. */
  atMs: number;
  /** The checker that failed (safety, liveness). */
  checker?: string;
  problems: string[];
  /** The exception (crash). */
  error?: unknown;
}

export interface RunResult {
  scenario: string;
  seed: string;
  overrides: Overrides;
  options: unknown;
  outcome: Outcome;
  exitCode: number;
  failure?: Failure;
  /** One line that replays this run exactly. */
  replay: string;
  /** Identifies the whole run: equal seeds give equal hashes. */
  traceHash: string;
  traceEvents: number;
  /** Scheduler events run. */
  events: number;
  virtualMs: number;
  /** Real time the run took (reporting only; never feeds the simulation). */
  wallMs: number;
  /** Virtual ms from heal until every liveness checker passed. */
  repairMs?: number;
  net: PathStats;
  metrics: Record<string, unknown>;
  /** The last trace events, one per line (failures only). */
  trace?: string;
}

export interface RunOptions {
  seed: Seed;
  overrides?: Overrides;
  /** Where the failure report goes (default: console.error). Pass `() => {}` to stay quiet. */
  print?: (text: string) => void;
  /** Trace lines in a failure report (default 40). */
  traceLines?: number;
  /** Size of the trace ring (default 2000). */
  traceCapacity?: number;
}

/** Read an option: always draw (so the PRNG stream does not depend on overrides), then let an override win. */
export function option<T extends string | number | boolean>(overrides: Overrides, key: string, drawn: T): T {
  if (!(key in overrides)) return drawn;
  const raw = overrides[key];
  if (typeof drawn === 'number') {
    const n = typeof raw === 'number' ? raw : Number(raw);
    if (!Number.isFinite(n)) throw new InvalidInputError(`--${kebab(key)} must be a number, got ${JSON.stringify(raw)}`);
    return n as T;
  }
  if (typeof drawn === 'boolean') {
    if (typeof raw === 'boolean') return raw as T;
    if (raw === 'true' || raw === 1 || raw === '1') return true as T;
    if (raw === 'false' || raw === 0 || raw === '0') return false as T;
    throw new InvalidInputError(`--${kebab(key)} must be true or false, got ${JSON.stringify(raw)}`);
  }
  return String(raw) as T;
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function shellQuote(text: string): string {
  return /^[\w.,:@%+=/-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

/** `node bin/reserve.mjs sim run --scenario <name> --seed <seed> [--key value ...]` (overrides sorted by key). */
export function replayCommand(scenario: string, seed: Seed, overrides: Overrides = {}): string {
  const parts = ['node', 'bin/reserve.mjs', 'sim', 'run', '--scenario', shellQuote(scenario), '--seed', shellQuote(seedLabel(seed))];
  for (const key of Object.keys(overrides).sort()) {
    const v = overrides[key];
    if (v === true) parts.push(`--${kebab(key)}`);
    else if (v === false) parts.push(`--no-${kebab(key)}`);
    else parts.push(`--${kebab(key)}`, shellQuote(String(v)));
  }
  return parts.join(' ');
}

/** JSON for reports: bigints, Sets, Maps and bytes made printable, keys in a stable order. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Set) return [...v];
    if (v instanceof Map) return Object.fromEntries(v);
    if (v instanceof Uint8Array) return `<${v.byteLength} bytes>`;
    if (v === Infinity) return 'Infinity';
    return v;
  });
}

function problemsOf(result: CheckResult): string[] {
  if (result === undefined) return [];
  if (typeof result === 'string') return [result];
  return [...result];
}

class CheckFailed {
  constructor(
    readonly outcome: 'safety' | 'liveness',
    readonly checker: string,
    readonly problems: string[],
  ) {}
}

/** Run one scenario from one seed. Never throws for failures of the system under test: they are in the result. */
export async function runScenario<O extends object, S>(scenario: Scenario<O, S>, run: RunOptions): Promise<RunResult> {
  const wallStart = performance.now();
  const overrides = run.overrides ?? {};
  const root = new SimRandom(run.seed);
  const options = scenario.options(root.fork('options'), overrides);
  const world = new SimWorld({ ...scenario.world?.(options), seed: run.seed, traceCapacity: run.traceCapacity });
  let phase: Phase = 'setup';
  let step = 0;
  const ctx: RunContext<O> = {
    world,
    options,
    rng: root.fork('scenario'),
    get phase() {
      return phase;
    },
    get step() {
      return step;
    },
  };
  let state: S | undefined;
  let failure: Failure | undefined;
  let outcome: Outcome = 'pass';
  let repairMs: number | undefined;

  const check = async (kind: 'safety' | 'liveness'): Promise<CheckFailed | undefined> => {
    for (const checker of scenario.checkers) {
      if (checker.kind !== kind) continue;
      const problems = problemsOf(await checker.check(state as S, ctx));
      if (problems.length > 0) return new CheckFailed(kind, checker.name, problems);
    }
    return undefined;
  };
  const safety = async (): Promise<void> => {
    if (world.scheduler.failure !== undefined) throw world.scheduler.failure; // a panic recorded outside a run loop
    const failed = await check('safety');
    if (failed !== undefined) throw failed;
  };

  try {
    state = await scenario.setup(ctx);
    await safety();
    phase = 'faults';
    const steps = scenario.steps(options);
    for (step = 0; step < steps; ) {
      await scenario.step(state, ctx);
      step++;
      await safety();
    }
    phase = 'heal';
    await scenario.heal(state, ctx);
    await safety();
    phase = 'liveness';
    const healedAt = world.elapsed;
    const bound = scenario.livenessBoundMs(options);
    const poll = scenario.livenessPollMs?.(options) ?? Math.max(100, bound / 100);
    for (;;) {
      await safety();
      const pending = await check('liveness');
      if (pending === undefined) {
        repairMs = world.elapsed - healedAt;
        break;
      }
      const spent = world.elapsed - healedAt;
      if (spent >= bound) throw new CheckFailed('liveness', pending.checker, [...pending.problems, `not achieved within ${formatMs(bound)} of healing`]);
      await world.runFor(Math.min(poll, bound - spent));
    }
    phase = 'end';
    await safety();
  } catch (error) {
    if (error instanceof CheckFailed) {
      outcome = error.outcome;
      failure = { phase, step, atMs: world.elapsed, checker: error.checker, problems: error.problems };
    } else {
      outcome = 'crash';
      const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
      failure = { phase, step, atMs: world.elapsed, problems: [message], error };
    }
    world.trace.record('run.fail', '', `${outcome} ${failure.checker ?? ''} ${failure.problems[0] ?? ''}`);
  }

  let metrics: Record<string, unknown> = {};
  if (state !== undefined && scenario.metrics !== undefined) {
    try {
      metrics = scenario.metrics(state, ctx);
    } catch (error) {
      metrics = { error: error instanceof Error ? error.message : String(error) };
    }
  }
  const result: RunResult = {
    scenario: scenario.name,
    seed: world.seed,
    overrides,
    options,
    outcome,
    exitCode: EXIT[outcome],
    ...(failure === undefined ? {} : { failure }),
    replay: replayCommand(scenario.name, run.seed, overrides),
    traceHash: world.trace.hash(),
    traceEvents: world.trace.count,
    events: world.scheduler.eventsRun,
    virtualMs: world.elapsed,
    wallMs: performance.now() - wallStart,
    ...(repairMs === undefined ? {} : { repairMs }),
    net: world.net.stats().total,
    metrics,
    ...(failure === undefined ? {} : { trace: world.trace.format(run.traceLines ?? 40) }),
  };
  if (failure !== undefined) (run.print ?? ((text: string) => console.error(text)))(formatResult(result));
  return result;
}

/** A human report of a run: a one-line summary for a pass, the full failure report otherwise. */
export function formatResult(result: RunResult): string {
  const head = `${result.outcome === 'pass' ? 'PASS' : `FAIL ${result.outcome}`} scenario=${result.scenario} seed=${result.seed}`;
  const timing = `virtual ${formatMs(result.virtualMs)}, ${result.events} events, ${result.net.sent} messages / ${result.net.bytes} bytes, wall ${Math.round(result.wallMs)} ms`;
  if (result.failure === undefined) {
    const repair = result.repairMs === undefined ? '' : `, full repair ${formatMs(result.repairMs)} after heal`;
    return `${head} (${timing}${repair}) trace ${result.traceHash}`;
  }
  const f = result.failure;
  const lines = [
    `${head} in phase ${f.phase}, step ${f.step}, at ${formatMs(f.atMs)}${f.checker === undefined ? '' : `, checker ${f.checker}`}`,
    ...f.problems.map((p) => `  - ${p}`),
    `  options: ${toJson(result.options)}`,
    `  ${timing}; trace ${result.traceHash}`,
    `  replay: ${result.replay}`,
  ];
  if (f.error instanceof Error && f.error.stack !== undefined) lines.push('  stack:', ...f.error.stack.split('\n').slice(1, 8).map((l) => `  ${l}`));
  if (result.trace !== undefined && result.trace !== '') lines.push('  last events:', ...result.trace.split('\n').map((l) => `    ${l}`));
  return lines.join('\n');
}

/** Run one scenario over many seeds (sequentially). */
export async function runSeeds<O extends object, S>(
  scenario: Scenario<O, S>,
  seeds: Iterable<Seed>,
  run: Omit<RunOptions, 'seed'> = {},
): Promise<{ passed: number; failed: RunResult[]; results: RunResult[] }> {
  const results: RunResult[] = [];
  for (const seed of seeds) results.push(await runScenario(scenario, { ...run, seed }));
  const failed = results.filter((r) => r.outcome !== 'pass');
  return { passed: results.length - failed.length, failed, results };
}
