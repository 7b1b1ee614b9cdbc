/**
 * Network disruption as a condition: a grace period before it counts, one warning when it starts, again only
 * when more peers are lost, a quiet update when some come back, one resolution when all are back, and no
 * repeat after a restart.
 */
import { describe, expect, it } from 'vitest';
import { MemoryKvStore } from '../adapters/storage/memory-kv.ts';
import { ConditionTracker } from '../core/events/conditions.ts';
import { EventDispatcher } from '../core/events/dispatcher.ts';
import { ManualClock } from '../core/events/manual-clock.ts';
import { NETWORK_CONDITION_KEY, NetworkWatch } from '../core/events/network.ts';

const MIN = 60_000;
const members = ['box-b', 'box-c', 'box-d'];

async function setup(kv = new MemoryKvStore(), clock = new ManualClock(0)) {
  const d = await EventDispatcher.open({ kv, clock, source: 'box-a' });
  const tracker = await ConditionTracker.open(d);
  return { kv, clock, tracker, watch: new NetworkWatch({ tracker, clock, graceMs: 5 * MIN }) };
}

describe('NetworkWatch', () => {
  it('raises once after the grace period, again only for newly lost peers, and resolves when all are back', async () => {
    const { clock, tracker, watch } = await setup();
    const kinds: string[] = [];
    const step = async (reachable: string[], minutes = 1) => {
      const e = await watch.update(members, reachable);
      if (e) kinds.push(`${clock.now() / MIN}:${e.kind}:${JSON.stringify(e.payload)}`);
      clock.advance(minutes * MIN);
    };
    await step(members);
    // box-b drops at minute 1; a 2-minute blip of box-c does not count.
    for (let m = 1; m < 4; m++) await step(['box-d']);
    for (let m = 4; m < 8; m++) await step(['box-c', 'box-d']);
    expect(kinds).toEqual(['6:network-disruption:{"peers":["box-b"],"since":60000}']);
    // box-d is lost too (from minute 8): raised again at minute 13 with both.
    for (let m = 8; m < 20; m++) await step(['box-c']);
    expect(kinds[1]).toBe('13:network-disruption:{"peers":["box-b","box-d"],"since":60000}');
    // box-b comes back: recorded quietly.
    await step(['box-b', 'box-c']);
    expect(kinds).toHaveLength(2);
    expect(tracker.active(NETWORK_CONDITION_KEY)?.payload).toEqual({ peers: ['box-d'], since: 8 * MIN });
    await step(members);
    expect(kinds).toHaveLength(3);
    expect(kinds[2]).toContain(':resolved:');
    expect(kinds[2]).toContain('"resolves":"box-a/1","latest":"box-a/2"');
    await step(members);
    expect(kinds).toHaveLength(3);
  });

  it('does not raise again after a restart while the disruption persists', async () => {
    const first = await setup();
    for (let m = 0; m < 10; m++) {
      await first.watch.update(members, ['box-c', 'box-d']);
      first.clock.advance(MIN);
    }
    expect(first.tracker.list()).toHaveLength(1);
    const again = await setup(first.kv, first.clock);
    expect(again.watch.disrupted()).toEqual(['box-b']);
    expect(await again.watch.update(members, ['box-c', 'box-d'])).toBeUndefined();
    expect((await again.watch.update(members, members))?.kind).toBe('resolved');
  });

  it('forgets peers that are no longer members', async () => {
    const { clock, watch } = await setup();
    await watch.update(members, ['box-c', 'box-d']);
    clock.advance(10 * MIN);
    expect((await watch.update(members, ['box-c', 'box-d']))?.kind).toBe('network-disruption');
    expect((await watch.update(['box-c', 'box-d'], ['box-c', 'box-d']))?.kind).toBe('resolved');
  });
});
