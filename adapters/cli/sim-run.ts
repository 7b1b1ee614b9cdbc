/**
 * `reserve sim run` and `reserve sim swarm`: the production Box in the deterministic simulator. A run prints what
 * happened (the owner's view: events, bytes moved, time to full repair, anything lost); a failure prints its seed,
 * options and a one-line replay command, and exits with a distinct code (crash 3, liveness 4, safety 5).
 */
import type { Command } from 'commander';
import { InvalidInputError } from '../../core/errors.ts';
import type { Overrides, RunResult } from '../../simulations/sim/runner.ts';
import { action, progressBar, type GlobalOptions } from './output.ts';
import type { ChangeReport } from '../../simulations/reserve/harness.ts';
import type { OwnerEvent } from '../../simulations/reserve/owner-view.ts';

/** The simulator loads only when a sim command runs, so every other command starts fast. */
async function simulator() {
  const [runner, trace, harness, scenarios, owner] = await Promise.all([
    import('../../simulations/sim/runner.ts'),
    import('../../simulations/sim/trace.ts'),
    import('../../simulations/reserve/harness.ts'),
    import('../../simulations/reserve/scenarios.ts'),
    import('../../simulations/reserve/owner-view.ts'),
  ]);
  return { ...runner, formatMs: trace.formatMs, traffic: harness.traffic, scenarioByName: scenarios.scenarioByName, formatOwnerView: owner.formatOwnerView };
}

const SCENARIO_NAMES = 'flood, add-box, remove-box, bitrot, partition, churn, crash-mid-backup, swarm, lose-rf-1, lose-rf, conflict';

interface RunCli extends GlobalOptions {
  scenario: string;
  seed: string;
  boxes?: string;
  rf?: string;
  minimum?: string;
  files?: string;
  meanBytes?: string;
}

function overridesOf(o: RunCli): Overrides {
  const out: Record<string, number> = {};
  for (const k of ['boxes', 'rf', 'minimum', 'files', 'meanBytes'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidInputError(`--${k === 'meanBytes' ? 'mean-bytes' : k} must be a whole number, got ${JSON.stringify(v)}`);
    out[k] = n;
  }
  return out;
}

function report(r: RunResult, formatResult: (r: RunResult) => string, formatMs: (ms: number) => string, formatOwnerView: (events: readonly OwnerEvent[]) => string[]): string {
  const m = r.metrics as Record<string, unknown>;
  const lines = [formatResult(r)];
  if (r.outcome === 'pass') {
    lines.push(`  options: ${JSON.stringify(r.options)}`);
  }
  for (const n of (m.notes as string[] | undefined) ?? []) lines.push(`  - ${n}`);
  const change = m.change as ChangeReport | undefined;
  if (change) {
    const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
    lines.push('  the change:');
    lines.push(
      `    blocks moved: ${change.moved.blocks} (${mb(change.moved.bytes)}); the minimum: ${change.minimum.blocks} (${mb(change.minimum.bytes)})` +
        (change.minimum.bytes > 0 ? `: ${change.ratio.toFixed(2)}x the minimum` : ''),
    );
    lines.push(
      change.protectedAfterMs === undefined
        ? '    full protection: not reached'
        : change.mostBelowTarget === 0
          ? '    full protection: never lost (every chunk kept its target copies)'
          : `    full protection: ${formatMs(change.protectedAfterMs)} after the change (at worst ${change.mostBelowTarget} chunks below the target copies)`,
    );
    lines.push(`    network: ${mb(change.networkBytes)}: ${Object.entries(change.traffic).map(([k, t]) => `${k} ${t.requests} req ${mb(t.sent + t.received)}`).join('; ')}`);
    const raised = Object.entries(change.events);
    lines.push(`    events raised: ${raised.length ? raised.map(([k, v]) => `${k} x${v}`).join(', ') : 'none'}`);
  }
  const owner = (m.owner as OwnerEvent[] | undefined) ?? [];
  if (owner.length) {
    lines.push("  the owner's view (reserve events, oldest first):");
    for (const l of formatOwnerView(owner)) lines.push(`    ${l}`);
  }
  const notices = (m.notices as Record<string, number> | undefined) ?? {};
  if (Object.keys(notices).length) lines.push(`  keeper activity: ${Object.entries(notices).map(([k, v]) => `${k} x${v}`).join(', ')}`);
  lines.push(`  moved: ${((m.bytesMoved as number) / 1e6).toFixed(2)} MB in ${m.messages} messages; snapshots ${m.snapshots}; Boxes lost ${m.lostBoxes}`);
  if (r.repairMs !== undefined) lines.push(`  back to full protection ${formatMs(r.repairMs)} after the faults ended`);
  const problems = m.restoreProblems as string[] | null | undefined;
  lines.push(problems == null ? '  restore: not checked' : problems.length === 0 ? '  restore: every snapshot byte-identical' : `  LOST: ${problems.join('; ')}`);
  return lines.join('\n');
}

export function register(sim: Command): void {
  sim
    .command('run')
    .description(`run one named scenario on the production Box in the simulator (${SCENARIO_NAMES})`)
    .requiredOption('--scenario <name>', 'the scenario')
    .option('--seed <seed>', 'the seed (a number or any text); the same seed replays the same run', '1')
    .option('--boxes <n>', 'number of Boxes (scenario default otherwise)')
    .option('--rf <n>', 'target replication factor')
    .option('--minimum <n>', 'minimum acceptable replication factor')
    .option('--files <n>', 'files in the first backup')
    .option('--mean-bytes <n>', 'mean file size in bytes')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (opts: RunCli) => {
        const { scenarioByName, runScenario, traffic, toJson, formatResult, formatMs, formatOwnerView } = await simulator();
        const scenario = scenarioByName(opts.scenario);
        const overrides = overridesOf(opts);
        traffic.clear();
        const r = await runScenario(scenario, { seed: opts.seed, overrides, print: opts.json ? () => {} : (t) => process.stderr.write(t + '\n') });
        const perProtocol = Object.fromEntries(traffic);
        if (opts.json) process.stdout.write(toJson({ ...r, traffic: perProtocol }) + '\n');
        else process.stdout.write(report(r, formatResult, formatMs, formatOwnerView) + '\n');
        return r.exitCode;
      }),
    );

  sim
    .command('swarm')
    .description('many random scenarios: faults and rates drawn from each seed; prints pass/fail counts and replay lines')
    .option('--seeds <n>', 'how many seeds', '20')
    .option('--from <n>', 'first seed', '1')
    .option('--scenario <name>', 'scenario to run on every seed', 'swarm')
    .option('--json', 'print the results as JSON')
    .action(
      action(async (opts: GlobalOptions & { seeds: string; from: string; scenario: string }) => {
        const n = Number(opts.seeds);
        const from = Number(opts.from);
        if (!Number.isInteger(n) || n < 1) throw new InvalidInputError(`--seeds must be a positive whole number, got ${opts.seeds}`);
        if (!Number.isInteger(from)) throw new InvalidInputError(`--from must be a whole number, got ${opts.from}`);
        const { scenarioByName, runScenario, toJson, EXIT: SIM_EXIT } = await simulator();
        const scenario = scenarioByName(opts.scenario);
        const bar = progressBar(opts, `sim ${opts.scenario}`, 'items');
        bar.total?.(n);
        const results: RunResult[] = [];
        for (let seed = from; seed < from + n; seed++) {
          results.push(await runScenario(scenario, { seed, print: () => {} }));
          bar.advance(1);
        }
        bar.stop();
        const failed = results.filter((r) => r.outcome !== 'pass');
        if (opts.json) {
          process.stdout.write(toJson({ scenario: opts.scenario, seeds: n, from, passed: n - failed.length, failed: failed.map((r) => ({ seed: r.seed, outcome: r.outcome, failure: r.failure, replay: r.replay })) }) + '\n');
        } else {
          process.stdout.write(`${opts.scenario}: ${n - failed.length} of ${n} seeds passed (seeds ${from}..${from + n - 1})\n`);
          for (const r of failed) process.stdout.write(`  FAIL ${r.outcome} seed ${r.seed}: ${(r.failure?.problems ?? []).slice(0, 2).join('; ')}\n    replay: ${r.replay}\n`);
        }
        const worst: number = failed.reduce<number>((code, r) => Math.max(code, r.exitCode), SIM_EXIT.pass);
        return worst;
      }),
    );
}
