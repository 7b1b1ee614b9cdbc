/**
 * `npm run sim:soak`: thousands of seeds across every named scenario (default: 1000 swarm seeds and 100 of each
 * other scenario; SOAK_SEEDS and SOAK_FROM override). Prints pass/fail counts per scenario and the replay line of
 * every failure; exits with the worst failure's code (crash 3, liveness 4, safety 5).
 */
import { runScenario, type RunResult } from './sim/runner.ts';
import { SCENARIOS } from './reserve/scenarios.ts';

const from = Number(process.env.SOAK_FROM ?? 1);
const perScenario = Number(process.env.SOAK_SEEDS ?? 100);
const only = process.argv.slice(2);
let worst = 0;
for (const [name, scenario] of Object.entries(SCENARIOS)) {
  if (only.length && !only.includes(name)) continue;
  const n = name === 'swarm' ? perScenario * 10 : perScenario;
  const failed: RunResult[] = [];
  const started = performance.now();
  for (let seed = from; seed < from + n; seed++) {
    const r = await runScenario(scenario, { seed, print: () => {} });
    if (r.outcome !== 'pass') {
      failed.push(r);
      worst = Math.max(worst, r.exitCode);
      process.stdout.write(`  FAIL ${r.outcome} ${name} seed ${seed}: ${(r.failure?.problems ?? []).slice(0, 2).join('; ')}\n    replay: ${r.replay}\n`);
    }
  }
  process.stdout.write(`${name}: ${n - failed.length}/${n} seeds passed in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
}
process.exitCode = worst;
