/**
 * `reserve sim durability` end to end: the Monte Carlo and the Markov chain agree (naive MC where losses are
 * common, importance sampling where they are rare, chunk-aware placement against the chain over sets), the
 * numbers are a pure function of the seed whatever the thread count, and the command line gives one-line errors
 * for bad input, a JSON report and a well-formed chart.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../adapters/cli/main.ts';
import { replication } from '../simulations/durability/model.ts';
import { emptyStats, mergeStats, weightedInterval } from '../simulations/durability/montecarlo.ts';
import type { BatchStats } from '../simulations/durability/montecarlo.ts';
import { formatReport } from '../simulations/durability/report.ts';
import { runDurability } from '../simulations/durability/sweep.ts';
import type { DurabilityReport, DurabilityRequest, EstimatorResult } from '../simulations/durability/sweep.ts';
import { assertWellFormed } from '../simulations/durability/xml-check.ts';

function request(over: Partial<DurabilityRequest>): DurabilityRequest {
  return { boxes: 4, rf: 3, afr: 0.03, repairHours: 48, years: 10, trials: 100_000, seed: 1, target: 1e-6, chunks: null, threads: 1, ...over };
}

/** The statistics behind an importance-sampling result, rebuilt from its interval (for pooling runs). */
function statsOf(e: EstimatorResult): BatchStats {
  const se = (e.high - e.estimate) / 1.959963984540054;
  return { trials: e.trials, hits: e.hits, mean: e.estimate, m2: se * se * e.trials * (e.trials - 1), events: 0 };
}

const strip = (r: DurabilityReport): Omit<DurabilityReport, 'timing'> => {
  const { timing: _timing, ...rest } = r;
  return rest;
};

describe('Monte Carlo vs Markov (exponential repair)', () => {
  it('agree where naive Monte Carlo has plenty of hits: the Markov value is inside the naive 95% interval', async () => {
    // 3 Boxes, RF=2, AFR 10%, a month to repair: P(loss in 10 years) ~ 0.12.
    const report = await runDurability(request({ boxes: 3, rf: 2, afr: 0.1, repairHours: 720, layouts: [replication(2)] }));
    const r = report.layouts[0];
    expect(r.mc.exp.naive.hits).toBeGreaterThan(1000);
    expect(r.markov.loss).toBeGreaterThanOrEqual(r.mc.exp.naive.low);
    expect(r.markov.loss).toBeLessThanOrEqual(r.mc.exp.naive.high);
    // And the importance-sampling estimate agrees too.
    expect(r.markov.loss).toBeGreaterThanOrEqual(r.mc.exp.is.low);
    expect(r.markov.loss).toBeLessThanOrEqual(r.mc.exp.is.high);
  });

  it('agree on rare events (P ~ 1e-7, no naive hits) with importance sampling, over 8 seeds', async () => {
    // 95% intervals miss 1 time in 20 by design, so a single seed proves little: require the Markov value
    // inside at least 6 of 8 independent intervals (P(fewer) < 0.6% if calibrated) and inside the pooled one.
    const layouts = [replication(3)];
    let pooled = emptyStats();
    let inside = 0;
    let markov = 0;
    for (let seed = 1; seed <= 8; seed++) {
      const report = await runDurability(request({ seed, layouts }));
      const r = report.layouts[0];
      markov = r.markov.loss;
      expect(r.mc.exp.naive.hits).toBe(0);
      expect(r.mc.exp.best).toBe('is');
      if (r.mc.exp.low <= markov && markov <= r.mc.exp.high) inside++;
      pooled = mergeStats(pooled, statsOf(r.mc.exp.is));
    }
    expect(markov).toBeGreaterThan(5e-8);
    expect(markov).toBeLessThan(2e-7);
    expect(inside).toBeGreaterThanOrEqual(6);
    const iv = weightedInterval(pooled);
    expect(markov).toBeGreaterThanOrEqual(iv.low);
    expect(markov).toBeLessThanOrEqual(iv.high);
  });

  it('agree with --chunks: the chunk-aware Monte Carlo matches the exact chain over sets of failed Boxes', async () => {
    // 6 Boxes, RF=2, only 3 chunks: most pairs of failed Boxes lose nothing, so the loss is well below the
    // many-chunks model's.
    const report = await runDurability(request({ boxes: 6, rf: 2, afr: 0.1, repairHours: 720, chunks: 3, layouts: [replication(2)], trials: 200_000 }));
    const r = report.layouts[0];
    expect(r.markov.chain).toBe('set');
    expect(r.markov.bound).toBe('exact');
    expect(r.markov.loss).toBeGreaterThanOrEqual(r.mc.exp.low);
    expect(r.markov.loss).toBeLessThanOrEqual(r.mc.exp.high);
    const many = await runDurability(request({ boxes: 6, rf: 2, afr: 0.1, repairHours: 720, layouts: [replication(2)], trials: 1000 }));
    expect(r.markov.loss).toBeLessThan(many.layouts[0].markov.loss / 2);
  });

  it('with --chunks on more Boxes than the set chain handles, the count chain is reported as an upper bound', async () => {
    const report = await runDurability(request({ boxes: 10, rf: 2, afr: 0.1, repairHours: 720, chunks: 4, layouts: [replication(2)], trials: 20_000 }));
    const r = report.layouts[0];
    expect(r.markov.chain).toBe('count');
    expect(r.markov.bound).toBe('upper');
    expect(r.mc.exp.high).toBeLessThan(r.markov.loss);
    const text = formatReport(report, null);
    expect(text).toMatch(/Markov chain \(exponential repair\)\s+<= /);
    expect(text).toContain('an upper bound with finite chunks');
  });
});

describe('determinism', () => {
  it('the same seed gives the same report, inline or on worker threads; another seed does not', async () => {
    const req = request({ trials: 60_000, layouts: [replication(2), replication(3)] });
    const inline = await runDurability(req);
    const again = await runDurability(req);
    const threaded = await runDurability({ ...req, threads: 2 });
    expect(strip(again)).toEqual(strip(inline));
    expect(strip(threaded)).toEqual(strip(inline));
    const other = await runDurability({ ...req, seed: 2 });
    expect(other.layouts[1].mc.exp.estimate).not.toBe(inline.layouts[1].mc.exp.estimate);
  });

  it("a layout's numbers do not depend on which other layouts are swept", async () => {
    const alone = await runDurability(request({ trials: 20_000, layouts: [replication(3)] }));
    const swept = await runDurability(request({ trials: 20_000 }));
    const rf3 = swept.layouts.find((l) => l.layout.label === 'RF=3');
    expect(rf3?.mc).toEqual(alone.layouts[0].mc);
  });
});

describe('the sweep answers the RFC question', () => {
  it('4 Boxes, AFR 3%, 48 h repairs: RF=3 is the smallest RF under 1e-6 over 10 years; 2-of-4 is the cheapest layout', async () => {
    const report = await runDurability(request({ trials: 20_000 }));
    expect(report.layouts.map((l) => l.layout.label)).toEqual(['RF=1', 'RF=2', 'RF=3', 'RF=4', '3-of-4', '2-of-3', '2-of-4']);
    expect(report.smallestRf).toBe(3);
    expect(report.cheapest).toBe('2-of-4');
    // 2-of-4 survives 2 Boxes down, like RF=3: with many chunks it is the same chain, at 2x instead of 3x storage.
    const byLabel = (label: string) => report.layouts.find((l) => l.layout.label === label);
    expect(byLabel('2-of-4')?.markov.loss).toBe(byLabel('RF=3')?.markov.loss);
    expect(byLabel('2-of-4')?.layout.overhead).toBe(2);
    const rf1 = report.layouts[0];
    expect(rf1.markov.loss).toBeCloseTo(-Math.expm1(-4 * -Math.log1p(-0.03) * 10), 12);
  });
});

describe('reserve sim durability (command line)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'reserve-durability-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const o = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => ((out += String(chunk)), true));
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => ((err += String(chunk)), true));
    try {
      const code = await main(['node', 'reserve', 'sim', 'durability', ...args]);
      return { code, out, err };
    } finally {
      o.mockRestore();
      e.mockRestore();
    }
  }

  const base = ['--boxes', '4', '--rf', '3', '--afr', '0.03', '--repair-hours', '48', '--years', '10', '--trials', '2000', '--threads', '1'];
  const withOpt = (name: string, value: string): string[] => {
    const args = [...base];
    const i = args.indexOf(name);
    if (i >= 0) args[i + 1] = value;
    else args.push(name, value);
    return [...args, '--no-chart'];
  };

  it.each([
    ['--rf', '5', /--rf 5 is more than --boxes 4/],
    ['--rf', '0', /--rf must be a whole number/],
    ['--afr', '0', /--afr must be .* strictly between 0 and 1/],
    ['--afr', '1', /--afr must be .* strictly between 0 and 1/],
    ['--afr', '3', /--afr must be .* strictly between 0 and 1/],
    ['--afr', 'often', /--afr expects a number, got "often"/],
    ['--boxes', '0', /--boxes must be a whole number from 1 to 16/],
    ['--boxes', '2.5', /--boxes must be a whole number/],
    ['--repair-hours', '0', /--repair-hours must be at least 0.01/],
    ['--years', '-1', /--years must be more than 0/],
    ['--trials', '10', /--trials must be a whole number from 1000/],
    ['--seed', '-3', /--seed must be a whole number/],
    ['--target', '2', /--target must be a probability/],
    ['--layouts', '2-of-5', /layout 2-of-5 needs 5 Boxes but there are only 4/],
    ['--layouts', 'raid6', /layout "raid6": expected RF=R/],
    ['--chunks', '0', /--chunks must be a whole number/],
    ['--trials', '1e10', /\(far too long\): lower --trials/],
  ])('%s %s fails with one clear line and exit code 2', async (name, value, message) => {
    const { code, out, err } = await cli(...withOpt(name, value));
    expect(code).toBe(2);
    expect(out).toBe('');
    expect(err).toMatch(message);
    expect(err.trimEnd().split('\n')).toHaveLength(1);
    expect(err).toMatch(/^reserve: /);
  });

  it('a missing required option is a usage error', async () => {
    const { code, err } = await cli('--boxes', '4', '--rf', '3');
    expect(code).toBe(2);
    expect(err).toMatch(/required option '--afr <p>' not specified/);
  });

  it('prints the report and writes the chart where asked', async () => {
    const chart = join(dir, 'out.svg');
    const { code, out, err } = await cli(...base, '--chart', chart);
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toContain('RF=3: probability of losing data within 10 years');
    expect(out).toContain('Markov chain (exponential repair)');
    expect(out).toContain('Monte Carlo, fixed repair');
    expect(out).toMatch(/Smallest replication factor meeting less than 1e-6 over 10 years: RF=3/);
    expect(out).toContain(`Chart written to ${chart}`);
    const svg = readFileSync(chart, 'utf8');
    assertWellFormed(svg);
    for (const label of ['RF=1', 'RF=2', 'RF=3', 'RF=4', '2-of-4']) expect(svg).toContain(`data-layout="${label}"`);
  });

  it('--json prints one JSON document with every layout', async () => {
    const { code, out } = await cli(...base, '--json', '--no-chart', '--layouts', 'rf2,2-of-4');
    expect(code).toBe(0);
    const doc = JSON.parse(out) as DurabilityReport & { chart: string | null };
    expect(doc.chart).toBeNull();
    expect(doc.layouts.map((l) => l.layout.label)).toEqual(['RF=2', '2-of-4', 'RF=3']);
    expect(doc.layouts[2].markov.loss).toBeGreaterThan(0);
    expect(doc.smallestRf).toBe(3);
  });
});
