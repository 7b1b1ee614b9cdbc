/**
 * The LimitationWatcher over a real dispatcher and condition tracker (ManualClock, MemoryKvStore), and the
 * pre-flight limit check a backup runs before writing anything.
 */
import { describe, expect, it } from 'vitest';
import { MemoryKvStore } from '../adapters/storage/memory-kv.ts';
import { ConditionTracker } from '../core/events/conditions.ts';
import { EventDispatcher } from '../core/events/dispatcher.ts';
import { ManualClock } from '../core/events/manual-clock.ts';
import { validateDraft } from '../core/events/types.ts';
import type { EventEnvelope } from '../core/events/types.ts';
import { assertWithinLimits, checkLimits, checkLimitsDetailed, encounteredDraft, LimitExceededError } from '../core/forecast/limits.ts';
import { DAY_MS, HOUR_MS, LimitationWatcher, materialChange } from '../core/forecast/watcher.ts';
import type { LimitationWatcherOptions } from '../core/forecast/watcher.ts';

const GB = 1e9;

async function setup(options: Partial<LimitationWatcherOptions> = {}) {
  const kv = new MemoryKvStore();
  const clock = new ManualClock(1_700_000_000_000);
  const d = await EventDispatcher.open({ kv, clock, source: 'box-a' });
  const tracker = await ConditionTracker.open(d);
  const watcher = new LimitationWatcher({ tracker, clock, warningWindowMs: 7 * DAY_MS, ...options });
  const events: EventEnvelope[] = [];
  /** Observe hourly: value(h) for hours [from, to). */
  const run = async (from: number, to: number, value: (h: number) => number, limit = 1_000 * GB, subject = 'box-b') => {
    const raisedAt: Array<{ h: number; e: EventEnvelope }> = [];
    for (let h = from; h < to; h++) {
      const r = await watcher.observe({ limitation: 'disk-capacity', subject, value: value(h), limit });
      for (const e of r.raised) raisedAt.push({ h, e });
      events.push(...r.raised);
      clock.advance(HOUR_MS);
    }
    return raisedAt;
  };
  return { kv, clock, d, tracker, watcher, events, run };
}

describe('LimitationWatcher', () => {
  it('raises "imminent" once when the ETA enters the window, then "encountered" when the limit is hit', async () => {
    const { run, tracker } = await setup();
    // 500 GB used, +1 GB/hour, 1000 GB disk: full at hour 500; 7 days (168 h) before is hour 332.
    const raised = await run(0, 520, (h) => (500 + h) * GB);
    const imminent = raised.filter((r) => r.e.kind === 'limitation-imminent');
    expect(imminent).toHaveLength(1);
    expect(imminent[0].h).toBe(332);
    const p = imminent[0].e.payload as { eta: number; method: string; windowMs: number; subject: string };
    expect(p).toMatchObject({ method: 'theil-sen', windowMs: 7 * DAY_MS, subject: 'box-b' });
    expect(Math.abs(p.eta - (1_700_000_000_000 + 500 * HOUR_MS))).toBeLessThan(60_000);
    expect(imminent[0].e.severity).toBe('warning');

    const after = raised.filter((r) => r.h >= 500).map((r) => [r.h, r.e.kind, r.e.severity]);
    expect(after).toEqual([
      [500, 'resolved', 'normal'],
      [500, 'limitation-encountered', 'failure'],
    ]);
    const resolution = raised.find((r) => r.e.kind === 'resolved')!.e.payload as { resolves: string; note: string };
    expect(resolution).toMatchObject({ resolves: imminent[0].e.id, note: 'limit reached' });
    expect(tracker.list().map((c) => c.kind)).toEqual(['limitation-encountered']);
  });

  it('resolves "encountered" when usage falls back under the limit', async () => {
    const { run, tracker } = await setup();
    await run(0, 5, () => 1_000 * GB);
    const raised = await run(5, 8, () => 400 * GB);
    expect(raised.map((r) => r.e.kind)).toEqual(['resolved']);
    expect(tracker.list()).toEqual([]);
  });

  it('stays silent with no growth, or with shrinking use', async () => {
    const flat = await setup();
    expect(await flat.run(0, 400, () => 900 * GB)).toEqual([]);
    const shrinking = await setup();
    expect(await shrinking.run(0, 400, (h) => (990 - h) * GB)).toEqual([]);
  });

  it('raises again only when the prediction changes materially', async () => {
    const { run } = await setup({ method: { method: 'theil-sen', maxPoints: 24 } });
    // +1 GB/h, then from hour 380 on +3 GB/h: the ETA moves from hour 500 to ~hour 420.
    const raised = await run(0, 460, (h) => (h < 380 ? 500 + h : 880 + 3 * (h - 380)) * GB);
    const imminent = raised.filter((r) => r.e.kind === 'limitation-imminent');
    // The forecast converges on the new rate over a few hours (500 -> ~467 -> ... -> 420): each re-raise is a
    // material change from the previously raised ETA, and once it has settled nothing more is raised.
    expect(imminent.length).toBeGreaterThanOrEqual(2);
    expect(imminent.length).toBeLessThanOrEqual(6);
    expect(imminent[0].h).toBe(332);
    expect(imminent[1].h).toBeGreaterThan(380);
    for (let i = 1; i < imminent.length; i++) {
      const prev = (imminent[i - 1].e.payload as { eta: number }).eta;
      const next = (imminent[i].e.payload as { eta: number }).eta;
      expect(materialChange(prev, next, 1_700_000_000_000 + imminent[i].h * HOUR_MS)).toBe(true);
    }
    expect(imminent[imminent.length - 1].h).toBeLessThan(420);
    const last = imminent[imminent.length - 1].e.payload as { eta: number };
    expect(Math.abs(last.eta - (1_700_000_000_000 + 420 * HOUR_MS))).toBeLessThan(3 * HOUR_MS);
  });

  it('does not storm on a noisy series', async () => {
    let s = 9;
    const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    const { run } = await setup();
    const raised = await run(0, 490, (h) => (500 + h + (rnd() - 0.5) * 10) * GB);
    const imminent = raised.filter((r) => r.e.kind === 'limitation-imminent');
    expect(imminent.length).toBeGreaterThanOrEqual(1);
    expect(imminent.length).toBeLessThanOrEqual(3);
    expect(raised.filter((r) => r.e.kind === 'resolved')).toHaveLength(0);
  });

  it('resolves "imminent" after the ETA has left the window for a few observations', async () => {
    const { run } = await setup({ clearAfter: 3, method: { method: 'theil-sen', maxPoints: 24 } });
    await run(0, 340, (h) => (500 + h) * GB);
    // Usage drops (old snapshots pruned) and stays flat: the ETA is gone.
    const raised = await run(340, 400, () => 600 * GB);
    const resolved = raised.filter((r) => r.e.kind === 'resolved');
    expect(resolved).toHaveLength(1);
  });

  it('uses per-limitation window overrides', async () => {
    const { watcher } = await setup({ windowOverrides: { 'snapshot-size': DAY_MS } });
    expect(watcher.windowFor('snapshot-size')).toBe(DAY_MS);
    expect(watcher.windowFor('disk-capacity')).toBe(7 * DAY_MS);
    const { run } = await setup({ windowOverrides: { 'disk-capacity': DAY_MS } });
    const raised = await run(0, 500, (h) => (500 + h) * GB);
    expect(raised.find((r) => r.e.kind === 'limitation-imminent')?.h).toBe(476);
  });

  it('defines a material change as max(20% of the remaining time, 1 hour)', () => {
    const now = 0;
    expect(materialChange(10 * HOUR_MS, 11.9 * HOUR_MS, now)).toBe(false);
    expect(materialChange(10 * HOUR_MS, 12.1 * HOUR_MS, now)).toBe(true);
    expect(materialChange(2 * HOUR_MS, 2.9 * HOUR_MS, now)).toBe(false);
    expect(materialChange(2 * HOUR_MS, 3.1 * HOUR_MS, now)).toBe(true);
  });

  it('bounds its memory', async () => {
    const { watcher } = await setup({ maxPoints: 10, maxSeries: 2, minIntervalMs: 0 });
    for (let i = 0; i < 30; i++) await watcher.observe({ limitation: 'snapshot-size', value: i, limit: 1e9, time: i });
    expect(watcher.history('snapshot-size')).toHaveLength(10);
    await watcher.observe({ limitation: 'keepers', value: 1, limit: 5 });
    await watcher.observe({ limitation: 'file-size', value: 1, limit: 5 });
    expect(watcher.history('snapshot-size')).toEqual([]);
  });
});

describe('pre-flight limit check', () => {
  const limits = { maxFileBytes: 4 * GB, maxFilesPerDirectory: 10_000, maxSnapshotBytes: 2_000 * GB, maxKeepers: 5, keeperReserveBytes: 10 * GB };

  it('passes a backup within every limit', () => {
    const planned = {
      files: [{ path: '/a', bytes: GB }],
      directories: [{ path: '/', entries: 3 }],
      snapshotBytes: 100 * GB,
      keepers: 3,
      keeperDemand: [{ keeper: 'box-b', freeBytes: 500 * GB, plannedBytes: 100 * GB }],
    };
    expect(checkLimits(planned, limits)).toEqual([]);
    expect(() => assertWithinLimits(planned, limits)).not.toThrow();
    expect(checkLimits(planned, {})).toEqual([]);
  });

  it('lists every violation, one per limitation kind and subject', () => {
    const planned = {
      files: [
        { path: '/big.iso', bytes: 5 * GB },
        { path: '/ok', bytes: GB },
        { path: '/huge.img', bytes: 50 * GB },
      ],
      directories: [{ path: '/photos', entries: 20_000 }],
      snapshotBytes: 3_000 * GB,
      keepers: 6,
      keeperDemand: [
        { keeper: 'box-b', freeBytes: 100 * GB, plannedBytes: 95 * GB },
        { keeper: 'box-c', freeBytes: 1_000 * GB, plannedBytes: 95 * GB },
      ],
    };
    const v = checkLimits(planned, limits);
    expect(v.map((x) => [x.limitation, x.subject])).toEqual([
      ['file-size', '/big.iso'],
      ['file-size', '/huge.img'],
      ['files-per-directory', '/photos'],
      ['snapshot-size', ''],
      ['keepers', ''],
      ['disk-capacity', 'box-b'],
    ]);
    expect(v[5]).toMatchObject({ value: 95 * GB, limit: 90 * GB });
    for (const x of v) expect(x.message.length).toBeGreaterThan(10);
    let err: unknown;
    try {
      assertWithinLimits(planned, limits);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LimitExceededError);
    expect((err as LimitExceededError).name).toBe('LimitExceededError');
    expect((err as LimitExceededError).violations).toHaveLength(6);
    expect((err as Error).message).toContain('/big.iso');
    // Each violation becomes a valid "limitation encountered" event.
    for (const x of v) expect(validateDraft(encounteredDraft(x)).kind).toBe('limitation-encountered');
  });

  it('caps the listed violations per limitation and counts the rest', () => {
    const files = Array.from({ length: 250 }, (_, i) => ({ path: `/f${i}`, bytes: 5 * GB }));
    const r = checkLimitsDetailed({ files }, limits, { maxPerLimitation: 100 });
    expect(r.violations).toHaveLength(100);
    expect(r.omitted).toBe(150);
  });
});
