/**
 * `reserve sim run` prints what a scenario's change cost (blocks moved against the minimum, time to full
 * protection, traffic, events raised) and the owner's view, for people and as JSON.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BIN = new URL('../bin/reserve.mjs', import.meta.url).pathname;

describe('reserve sim run reports', () => {
  it('human: the change, its cost against the minimum, and the owner’s view', async () => {
    const { stdout } = await run(process.execPath, [BIN, 'sim', 'run', '--scenario', 'flood', '--seed', '1'], { timeout: 120_000 });
    expect(stdout).toMatch(/^PASS scenario=flood seed=1/);
    expect(stdout).toMatch(/blocks moved: \d+ \([\d.]+ MB\); the minimum: \d+ \([\d.]+ MB\): [\d.]+x the minimum/);
    expect(stdout).toMatch(/full protection: \d+h\d+m after the change \(at worst \d+ chunks below the target copies\)/);
    expect(stdout).toMatch(/events raised: .*keeper-removed\/warning x1/);
    expect(stdout).toContain("the owner's view");
    expect(stdout).toMatch(/warning +…\w+: …\w+ was removed from the reserve/);
  }, 120_000);

  it('json: metrics.change and metrics.owner', async () => {
    const { stdout } = await run(process.execPath, [BIN, 'sim', 'run', '--scenario', 'add-box', '--seed', '1', '--json'], { timeout: 120_000 });
    const r = JSON.parse(stdout);
    expect(r.outcome).toBe('pass');
    const change = r.metrics.change;
    expect(change.minimum.blocks).toBeGreaterThan(0);
    expect(change.moved.blocks).toBeLessThanOrEqual(1.1 * change.minimum.blocks);
    expect(change.protectedAfterMs).toBe(0);
    expect(change.events['keeper-added/normal']).toBe(1);
    expect(r.metrics.owner.some((e: { kind: string; text: string }) => e.kind === 'keeper-added' && /joined the reserve/.test(e.text))).toBe(true);
  }, 120_000);
});
