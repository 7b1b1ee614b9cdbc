/**
 * Keeper health: a synthetic HealthSource drives the HealthSampler, whose thresholds become keeper-health
 * conditions (sustained before opening, hysteresis before resolving, escalation once), disk space becomes the
 * 'disk-capacity' limitation, and reported corruption becomes a failure listing the blocks.
 */
import { describe, expect, it } from 'vitest';
import { MemoryKvStore } from '../adapters/storage/memory-kv.ts';
import { cidOf, RAW_CODE } from '../core/blocks/cid.ts';
import { ConditionTracker } from '../core/events/conditions.ts';
import { EventDispatcher } from '../core/events/dispatcher.ts';
import { HealthSampler, ManualHealthSource } from '../core/events/health.ts';
import type { HealthSamplerOptions } from '../core/events/health.ts';
import { ManualClock } from '../core/events/manual-clock.ts';
import type { EventEnvelope } from '../core/events/types.ts';
import { HOUR_MS, LimitationWatcher } from '../core/forecast/watcher.ts';

const GiB = 2 ** 30;
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function setup(options: Partial<HealthSamplerOptions> = {}, kv = new MemoryKvStore()) {
  const clock = new ManualClock(0);
  const d = await EventDispatcher.open({ kv, clock, source: 'box-a' });
  const tracker = await ConditionTracker.open(d);
  const source = new ManualHealthSource({ memory: { totalBytes: 8 * GiB, availableBytes: 6 * GiB }, cpu: { busyFraction: 0.2 } });
  const sampler = new HealthSampler({ source, tracker, clock, keeper: 'box-a', ...options });
  const raised: EventEnvelope[] = [];
  const tick = async (n = 1) => {
    for (let i = 0; i < n; i++) raised.push(...(await sampler.tick()).raised);
  };
  return { kv, clock, d, tracker, source, sampler, raised, tick };
}

describe('HealthSampler', () => {
  it('opens a condition only when a threshold is exceeded for `sustain` samples, and resolves it once', async () => {
    const { source, raised, tick, tracker } = await setup({ sustain: 3, clearAfter: 2 });
    await tick(5);
    expect(raised).toEqual([]);
    source.update({ cpu: { busyFraction: 0.99 } });
    await tick(2);
    expect(raised).toEqual([]);
    // A short dip does not reset an open condition, nor does it count toward opening.
    source.update({ cpu: { busyFraction: 0.5 } });
    await tick(1);
    source.update({ cpu: { busyFraction: 0.99 } });
    await tick(3);
    expect(raised.map((e) => [e.kind, e.severity])).toEqual([['keeper-health', 'warning']]);
    expect(raised[0].payload).toEqual({ metric: 'cpu', keeper: 'box-a', busyFraction: 0.99, threshold: 0.95 });
    await tick(20);
    expect(raised).toHaveLength(1);
    // Inside the hysteresis band (0.90 < x < 0.95) nothing is resolved.
    source.update({ cpu: { busyFraction: 0.93 } });
    await tick(5);
    expect(raised).toHaveLength(1);
    source.update({ cpu: { busyFraction: 0.3 } });
    await tick(1);
    expect(raised).toHaveLength(1);
    await tick(1);
    expect(raised.map((e) => e.kind)).toEqual(['keeper-health', 'resolved']);
    expect(raised[1].payload).toMatchObject({ of: 'keeper-health', resolves: raised[0].id, condition: 'keeper-health/cpu/box-a' });
    expect(tracker.list()).toEqual([]);
  });

  it('escalates a warning to a failure once, and reports memory in bytes and as a fraction', async () => {
    const { source, raised, tick } = await setup({ sustain: 2 });
    source.update({ memory: { totalBytes: 8 * GiB, availableBytes: 0.6 * GiB } }); // 92.5% used
    await tick(2);
    source.update({ memory: { totalBytes: 8 * GiB, availableBytes: 0.1 * GiB } }); // 98.75% used
    await tick(6);
    expect(raised.map((e) => e.severity)).toEqual(['warning', 'failure']);
    expect(raised[0].payload).toMatchObject({ metric: 'memory', usedBytes: 7.4 * GiB, totalBytes: 8 * GiB, threshold: 0.9 });
    expect(raised[1].payload).toMatchObject({ metric: 'memory', threshold: 0.97 });
    expect((raised[1].payload as { usedFraction: number }).usedFraction).toBeCloseTo(0.9875, 6);
  });

  it('watches disk I/O saturation', async () => {
    const { source, raised, tick } = await setup({ sustain: 1, thresholds: { diskBusyFraction: { warning: 0.8 } } });
    source.update({ diskIo: { device: 'sda', readBytesPerSec: 1e8, writeBytesPerSec: 5e7, busyFraction: 0.85 } });
    await tick();
    expect(raised[0].payload).toEqual({ metric: 'disk-io', keeper: 'box-a', device: 'sda', readBytesPerSec: 1e8, writeBytesPerSec: 5e7, busyFraction: 0.85, threshold: 0.8 });
  });

  it('feeds disk space to the limitation watcher as disk capacity', async () => {
    const kv = new MemoryKvStore();
    const clock = new ManualClock(0);
    const d = await EventDispatcher.open({ kv, clock, source: 'box-a' });
    const tracker = await ConditionTracker.open(d);
    const watcher = new LimitationWatcher({ tracker, clock, warningWindowMs: 24 * HOUR_MS });
    const source = new ManualHealthSource();
    const sampler = new HealthSampler({ source, tracker, clock, keeper: 'box-a', watcher });
    const kinds: string[] = [];
    // 1000 GiB disk, 10 GiB more used each hour from 700 GiB: full at hour 30; within 24 h from hour 6.
    for (let h = 0; h < 31; h++) {
      source.set({ disk: { path: '/data', totalBytes: 1000 * GiB, availableBytes: (300 - 10 * h) * GiB } });
      for (const e of (await sampler.tick()).raised) kinds.push(`${h}:${e.kind}`);
      clock.advance(HOUR_MS);
    }
    expect(kinds).toEqual(['6:limitation-imminent', '30:resolved', '30:limitation-encountered']);
    expect(watcher.history('disk-capacity', 'box-a')).toHaveLength(31);
  });

  it('reports corruption with the blocks, raises again for new ones, resolves when all are repaired', async () => {
    const { sampler, d, kv } = await setup();
    const cids = [1, 2, 3].map((i) => cidOf(RAW_CODE, new Uint8Array([i])).toString());
    const first = await sampler.reportCorruption([cids[0], cids[1]]);
    expect(first).toMatchObject({ id: 'box-a/1', severity: 'failure', payload: { metric: 'disk-corruption', keeper: 'box-a', blocks: [cids[0], cids[1]].sort(), totalBlocks: 2 } });
    expect(await sampler.reportCorruption([cids[1]])).toBeUndefined();
    const more = await sampler.reportCorruption([cids[2]]);
    expect(more?.payload).toMatchObject({ totalBlocks: 3 });
    expect(await sampler.reportRepaired([cids[0]])).toBeUndefined();
    expect(sampler.corruptBlocks()).toEqual([cids[1], cids[2]].sort());
    // A restart remembers the open condition and its blocks.
    await d.close();
    const d2 = await EventDispatcher.open({ kv, clock: new ManualClock(0), source: 'box-a' });
    const t2 = await ConditionTracker.open(d2);
    const s2 = new HealthSampler({ source: new ManualHealthSource(), tracker: t2, clock: new ManualClock(0), keeper: 'box-a' });
    expect(s2.corruptBlocks()).toEqual([cids[1], cids[2]].sort());
    expect(await s2.reportRepaired([cids[1]])).toBeUndefined();
    const resolved = await s2.reportRepaired([cids[2]]);
    expect(resolved?.payload).toMatchObject({ of: 'keeper-health', resolves: 'box-a/1', latest: 'box-a/2' });
    expect(t2.list()).toEqual([]);
  });

  it('samples on the clock until stopped', async () => {
    const { clock, sampler, source } = await setup({ intervalMs: 1_000, sustain: 1 });
    source.update({ cpu: { busyFraction: 1 } });
    let samples = 0;
    const inner = source.sample.bind(source);
    source.sample = async () => {
      samples++;
      return inner();
    };
    sampler.start();
    sampler.start();
    await clock.advanceAsync(5_000, settle);
    expect(samples).toBe(5);
    sampler.stop();
    await clock.advanceAsync(5_000, settle);
    expect(samples).toBe(5);
  });
});
