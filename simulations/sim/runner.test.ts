/**
 * The VOPR-style runner: outcome categories and exit codes, the failure report and replay line, determinism of
 * whole runs (trace hashes), swarm options, and the demo scenario catching a deliberately planted durability bug.
 */
import { describe, expect, it } from 'vitest';
import { SimCluster, type BoxPorts } from './cluster.ts';
import { demoScenario } from './demo.ts';
import { FAULT_KINDS, swarmOptions } from './faults.ts';
import { SimRandom } from './rng.ts';
import { EXIT, formatResult, option, replayCommand, runScenario, runSeeds, type Checker, type Scenario } from './runner.ts';

interface TinyOptions {
  steps: number;
  fail: 'none' | 'throw' | 'safety' | 'liveness' | 'panic';
}
interface TinyState {
  cluster: SimCluster<{ start(): Promise<void>; stop(): Promise<void>; ticks: number }, unknown>;
  converged: boolean;
}

/** A scenario small enough to make each outcome happen on purpose. */
function tiny(fail: TinyOptions['fail']): Scenario<TinyOptions, TinyState> {
  const checkers: Array<Checker<TinyOptions, TinyState>> = [
    {
      name: 'no-bad-step',
      kind: 'safety',
      check: (_s, ctx) => (ctx.options.fail === 'safety' && ctx.step === 2 ? 'step 2 is bad' : undefined),
    },
    {
      name: 'converges',
      kind: 'liveness',
      check: (s) => (s.converged ? [] : ['not converged yet']),
    },
  ];
  return {
    name: 'tiny',
    options: (rng, overrides) => ({ steps: option(overrides, 'steps', rng.range(3, 5)), fail }),
    async setup(ctx) {
      const cluster = new SimCluster(ctx.world, (ports: BoxPorts) => {
        const box = {
          ticks: 0,
          async start() {
            const tick = (): void => {
              box.ticks++;
              if (fail === 'panic' && box.ticks === 3) ports.panic(new Error('tick 3 went wrong'));
              ports.clock.setTimer(100, tick);
            };
            ports.clock.setTimer(100, tick);
          },
          async stop() {},
        };
        return box;
      });
      cluster.add();
      return { cluster, converged: false };
    },
    steps: (o) => o.steps,
    async step(s, ctx) {
      if (ctx.options.fail === 'throw' && ctx.step === 1) throw new Error('scenario step exploded');
      await ctx.world.runFor(100);
    },
    async heal(s, ctx) {
      if (ctx.options.fail !== 'liveness') ctx.world.scheduler.after(1500, () => (s.converged = true));
    },
    livenessBoundMs: () => 5000,
    livenessPollMs: () => 250,
    checkers,
    metrics: (s) => ({ ticks: s.cluster.box('box-1').running.ticks }),
  };
}

const quiet = { print: () => undefined };

describe('runScenario outcomes', () => {
  it('passes, with exit code 0, the time to full repair and metrics', async () => {
    const r = await runScenario(tiny('none'), { seed: 11, ...quiet });
    expect(r.outcome).toBe('pass');
    expect(r.exitCode).toBe(0);
    expect(r.failure).toBeUndefined();
    expect(r.repairMs).toBe(1500);
    expect(r.metrics.ticks).toBeGreaterThan(3);
    expect(formatResult(r)).toMatch(/^PASS scenario=tiny seed=11 .*full repair 1.5s after heal/);
  });

  it('classifies an exception as a crash (exit 3) and prints seed, options and the replay line', async () => {
    const printed: string[] = [];
    const r = await runScenario(tiny('throw'), { seed: 'abc', overrides: { steps: 4 }, print: (t) => printed.push(t) });
    expect(r.outcome).toBe('crash');
    expect(r.exitCode).toBe(EXIT.crash);
    expect(r.exitCode).toBe(3);
    expect(r.failure).toMatchObject({ phase: 'faults', step: 1, problems: ['Error: scenario step exploded'] });
    expect(printed).toHaveLength(1);
    const text = printed[0];
    expect(text).toContain('FAIL crash scenario=tiny seed=abc');
    expect(text).toContain('options: {"steps":4,"fail":"throw"}');
    expect(text).toContain('replay: node bin/reserve.mjs sim run --scenario tiny --seed abc --steps 4');
    expect(text).toContain('last events:');
  });

  it('classifies a ports.panic from inside the simulation as a crash', async () => {
    const r = await runScenario(tiny('panic'), { seed: 1, ...quiet });
    expect(r.outcome).toBe('crash');
    expect(r.failure?.problems[0]).toContain('tick 3 went wrong');
  });

  it('classifies a safety checker failure (exit 5) at the step it happened', async () => {
    const r = await runScenario(tiny('safety'), { seed: 2, ...quiet });
    expect(r.outcome).toBe('safety');
    expect(r.exitCode).toBe(5);
    expect(r.failure).toMatchObject({ phase: 'faults', step: 2, checker: 'no-bad-step', problems: ['step 2 is bad'] });
  });

  it('classifies a liveness bound overrun (exit 4)', async () => {
    const r = await runScenario(tiny('liveness'), { seed: 3, ...quiet });
    expect(r.outcome).toBe('liveness');
    expect(r.exitCode).toBe(4);
    expect(r.failure?.checker).toBe('converges');
    expect(r.failure?.problems).toEqual(['not converged yet', 'not achieved within 5s of healing']);
    expect(r.failure?.phase).toBe('liveness');
  });
});

describe('determinism', () => {
  it('one seed gives one trace hash; different seeds give different ones', async () => {
    const a = await runSeeds(demoScenario, [1, 2, 3], quiet);
    const b = await runSeeds(demoScenario, [1, 2, 3], quiet);
    expect(a.passed).toBe(3);
    expect(a.results.map((r) => r.traceHash)).toEqual(b.results.map((r) => r.traceHash));
    expect(a.results.map((r) => r.events)).toEqual(b.results.map((r) => r.events));
    expect(new Set(a.results.map((r) => r.traceHash)).size).toBe(3);
    expect(a.results[0].traceEvents).toBeGreaterThan(100);
  });

  it('an override changes only what it overrides', async () => {
    const rng = (): SimRandom => new SimRandom(9).fork('options');
    const plain = demoScenario.options(rng(), {});
    const changed = demoScenario.options(rng(), { boxes: plain.boxes === 3 ? 4 : 3 });
    expect(changed.boxes).not.toBe(plain.boxes);
    expect({ ...changed, boxes: 0 }).toEqual({ ...plain, boxes: 0 });
  });
});

describe('the demo scenario finds a planted bug', () => {
  it('acknowledging a write before it is durable is caught as a safety failure, and only with the bug', async () => {
    const overrides = { bug: 'unawaited-counter', steps: 40, stepMs: 500 };
    const seeds = Array.from({ length: 8 }, (_, i) => 100 + i);
    const buggy = await runSeeds(demoScenario, seeds, { overrides, ...quiet });
    const caught = buggy.failed.filter((r) => r.outcome === 'safety' && r.failure?.checker === 'acknowledged-counter-is-durable');
    expect(caught.length).toBeGreaterThan(0);
    expect(buggy.failed.every((r) => r.outcome === 'safety')).toBe(true);
    const one = caught[0];
    expect(one.failure?.problems[0]).toMatch(/acknowledged counter \d+ but its disk holds \d+/);
    expect(one.replay).toBe(`node bin/reserve.mjs sim run --scenario demo --seed ${one.seed} --bug unawaited-counter --step-ms 500 --steps 40`);
    // Replaying the failing seed fails the same way, event for event.
    const again = await runScenario(demoScenario, { seed: one.seed, overrides, ...quiet });
    expect(again.traceHash).toBe(one.traceHash);
    expect(again.failure).toEqual(one.failure);
    // Without the bug the same seeds pass.
    const fixed = await runSeeds(demoScenario, caught.map((r) => r.seed), { overrides: { ...overrides, bug: 'none' }, ...quiet });
    expect(fixed.failed.map((r) => formatResult(r))).toEqual([]);
  });
});

describe('swarm options and replay lines', () => {
  it('switches some fault kinds off entirely per seed, and forcing one kind leaves the rest alone', () => {
    const swarms = Array.from({ length: 50 }, (_, i) => swarmOptions(new SimRandom(i)));
    for (const kind of FAULT_KINDS) {
      expect(swarms.some((s) => s.enabled[kind])).toBe(true);
      expect(swarms.some((s) => !s.enabled[kind])).toBe(true);
    }
    for (const s of swarms) for (const kind of FAULT_KINDS) expect(s.rates[kind] > 0).toBe(s.enabled[kind]);
    const base = swarmOptions(new SimRandom(5));
    const forced = swarmOptions(new SimRandom(5), { on: ['loss'], off: ['crash'] });
    expect(forced.enabled.loss).toBe(true);
    expect(forced.enabled.crash).toBe(false);
    for (const kind of FAULT_KINDS.filter((k) => k !== 'loss' && k !== 'crash')) expect(forced.rates[kind]).toBe(base.rates[kind]);
    expect(forced.restart).toBe(base.restart);
    expect(() => swarmOptions(new SimRandom(1), { on: ['meteor' as never] })).toThrow(/unknown fault kind/);
  });

  it('writes overrides as kebab-case flags and quotes what the shell would mangle', () => {
    expect(replayCommand('flood', 42, { boxes: 5, rf: 3, stepMs: 100, verbose: true, json: false })).toBe(
      'node bin/reserve.mjs sim run --scenario flood --seed 42 --boxes 5 --no-json --rf 3 --step-ms 100 --verbose',
    );
    expect(replayCommand('x', "it's a seed")).toBe(`node bin/reserve.mjs sim run --scenario x --seed 'it'\\''s a seed'`);
  });

  it('option() coerces CLI strings to the drawn type and rejects nonsense', () => {
    expect(option({ boxes: '5' }, 'boxes', 3)).toBe(5);
    expect(option({ on: 'true' }, 'on', false)).toBe(true);
    expect(option({}, 'boxes', 3)).toBe(3);
    expect(() => option({ boxes: 'many' }, 'boxes', 3)).toThrow(/--boxes must be a number/);
  });
});
