/**
 * `reserve sim placement` (adapters/cli/sim-placement.ts): bad options get one clear InvalidInputError line and
 * exit code 2; a run reports {moved, minimal, ratio, maxOverMean, regionsFullyCovered} (plus per-Box loads and
 * timings) as JSON or as a table; the figures are those of core/placement/analysis.ts for the same seed; and the
 * real `reserve` binary has the subcommand wired in.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidInputError } from '../core/errors.ts';
import { CliExit } from '../adapters/cli/output.ts';
import {
  formatPlacement,
  parsePlacementOptions,
  registerPlacement,
  runPlacement,
  syntheticKeepers,
} from '../adapters/cli/sim-placement.ts';

const defaults = { boxes: '10', rf: '3', chunks: '1000', regions: '1', seed: '1' };

/** Run `sim placement <args>` in process; returns exit code, stdout and stderr. */
async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = new Command('reserve').exitOverride();
  const sim = program.command('sim').exitOverride();
  registerPlacement(sim);
  for (const c of sim.commands) c.exitOverride();
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((stdout += String(s)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((stderr += String(s)), true));
  let code = 0;
  try {
    await program.parseAsync(['node', 'reserve', 'sim', 'placement', ...args]);
  } catch (e) {
    if (e instanceof CliExit) code = e.code;
    else throw e;
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return { code, stdout, stderr };
}

afterEach(() => vi.restoreAllMocks());

describe('reserve sim placement: validation', () => {
  const bad: Array<[Record<string, string>, RegExp]> = [
    [{ rf: '5', boxes: '3' }, /--rf 5 is more than --boxes 3/],
    [{ boxes: '-2' }, /--boxes must be a whole number/],
    [{ boxes: '0' }, /--boxes must be >= 1/],
    [{ chunks: '1e6' }, /--chunks must be a whole number/],
    [{ rf: '0' }, /--rf must be >= 1/],
    [{ regions: '11' }, /--regions 11 is more than --boxes 10/],
    [{ add: '1', remove: '1' }, /either --add or --remove/],
    [{ remove: '10' }, /would leave no Box/],
    [{ capacities: '1,2,3' }, /--capacities has 3 entries; expected 10/],
    [{ capacities: '1,2,3,4,5,6,7,8,9,-1' }, /entry 10 must be a number > 0/],
    [{ capacities: '1,2,,4,5,6,7,8,9,10' }, /entry 3 must be a number > 0/],
  ];
  it('rejects each bad option with one clear InvalidInputError', () => {
    for (const [opts, message] of bad) {
      let caught: unknown;
      try {
        parsePlacementOptions({ ...defaults, ...opts });
      } catch (e) {
        caught = e;
      }
      expect(caught, JSON.stringify(opts)).toBeInstanceOf(InvalidInputError);
      expect((caught as Error).message).toMatch(message);
    }
  });

  it('prints one line on stderr and exits 2', async () => {
    const r = await run(['--boxes', '3', '--rf', '4']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^reserve: --rf 4 is more than --boxes 3/);
  });

  it('accepts capacities for the added Boxes too', () => {
    const run = parsePlacementOptions({ ...defaults, boxes: '3', add: '1', capacities: '1,2,3,4' });
    expect(syntheticKeepers(run).map((k) => k.capacity)).toEqual([1, 2, 3, 4]);
    const noExtra = parsePlacementOptions({ ...defaults, boxes: '3', add: '1', capacities: '1,2,3' });
    expect(syntheticKeepers(noExtra).map((k) => k.capacity)).toEqual([1, 2, 3, 2]);
  });
});

describe('reserve sim placement: results', () => {
  it('--json reports movement, balance and coverage for an add', async () => {
    const r = await run(['--boxes', '12', '--rf', '3', '--chunks', '40000', '--add', '1', '--regions', '3', '--json']);
    expect(r.code).toBe(0);
    const data = JSON.parse(r.stdout);
    for (const key of ['moved', 'minimal', 'ratio', 'maxOverMean', 'regionsFullyCovered']) expect(data).toHaveProperty(key);
    expect(data.boxes).toBe(13);
    expect(data.regions).toBe(3);
    expect(data.regionsFullyCovered).toBe(3);
    expect(data.ratio).toBeLessThanOrEqual(1.1);
    expect(data.moved).toBe(data.perBox.find((b: { id: string }) => b.id === data.changedBoxes[0]).load);
    expect(data.perBox).toHaveLength(13);
  });

  it('reports a removal against the removed Boxes replicas, and a shortfall when too few Boxes remain', () => {
    const res = runPlacement(parsePlacementOptions({ ...defaults, boxes: '6', rf: '3', chunks: '20000', remove: '1' }));
    expect(res.change).toBe('remove');
    expect(res.moved).toBe(res.minimal);
    expect(res.ratio).toBe(1);
    const short = runPlacement(parsePlacementOptions({ ...defaults, boxes: '3', rf: '3', chunks: '2000', remove: '1' }));
    expect(short.shortfall).toEqual({ wanted: 3, possible: 2 });
    expect(short.replicas).toBe(2);
    expect(short.moved).toBe(0);
  });

  it('follows unequal capacities and prints a table', () => {
    const res = runPlacement(parsePlacementOptions({ ...defaults, boxes: '4', rf: '2', chunks: '60000', capacities: '8,4,2,2' }));
    expect(res.perBox.map((b) => b.fair)).toEqual([1, 0.5, 0.25, 0.25]);
    expect(res.maxFairError).toBeLessThan(0.05);
    const text = formatPlacement(res);
    expect(text).toMatch(/^placement: 4 Boxes, rf 2, 60,000 chunks, 1 region, seed 1; no change/);
    expect(text).toMatch(/max\/mean load/);
    expect(text.split('\n').filter((l) => /^box\d/.test(l))).toHaveLength(4);
  });

  it('is repeatable from the seed', () => {
    const opts = { ...defaults, boxes: '7', rf: '2', chunks: '5000', add: '2', seed: '42' };
    const a = runPlacement(parsePlacementOptions(opts));
    const b = runPlacement(parsePlacementOptions(opts));
    expect(b.moved).toBe(a.moved);
    expect(b.perBox.map((x) => x.load)).toEqual(a.perBox.map((x) => x.load));
  });

  it('is wired into the reserve binary', async () => {
    const bin = new URL('../bin/reserve.mjs', import.meta.url).pathname;
    const { stdout } = await promisify(execFile)(process.execPath, [bin, 'sim', 'placement', '--boxes', '5', '--rf', '2', '--chunks', '2000', '--remove', '1', '--json']);
    const data = JSON.parse(stdout);
    expect(data.change).toBe('remove');
    expect(data.ratio).toBe(1);
  });
});
