/**
 * The hybrid logical clock: strictly increasing under any wall-clock behaviour (stalls, jumps back), always
 * after every timestamp observed, close to the wall clock, and refusing peers too far in the future.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyOptions } from './support/fc.ts';
import { ClockDriftError, compareHlc, HybridClock } from '../core/state/hlc.ts';
import type { Hlc } from '../core/state/hlc.ts';
import { ManualClock } from './crdt-fixtures.ts';

describe('hybrid logical clock', () => {
  it('is strictly increasing, after everything observed, and never far from the wall clock', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('tick' as const), dt: fc.integer({ min: -5_000, max: 5_000 }) }),
            fc.record({ op: fc.constant('observe' as const), ahead: fc.integer({ min: -10_000, max: 50_000 }), logical: fc.nat(50) }),
          ),
          { maxLength: 200 },
        ),
        (ops) => {
          const clock = new ManualClock(1_000_000);
          const hlc = new HybridClock(clock, { maxDriftMs: 60_000 });
          let last: Hlc = { wall: 0, logical: 0 };
          let maxWall = 0;
          for (const o of ops) {
            if (o.op === 'tick') {
              clock.advance(o.dt);
              const t = hlc.now();
              expect(compareHlc(t, last)).toBeGreaterThan(0);
              last = t;
            } else {
              const remote = { wall: Math.max(0, clock.time + o.ahead), logical: o.logical };
              hlc.observe(remote);
              const t = hlc.now();
              expect(compareHlc(t, remote)).toBeGreaterThan(0);
              expect(compareHlc(t, last)).toBeGreaterThan(0);
              last = t;
            }
            maxWall = Math.max(maxWall, clock.time);
            // Never ahead of the largest wall time seen, local or (accepted) remote, so bounded by drift.
            expect(last.wall).toBeLessThanOrEqual(maxWall + 60_000);
          }
        },
      ),
      propertyOptions('hlc: monotone and bounded'),
    );
  });

  it('follows the wall clock when it moves forward', () => {
    const clock = new ManualClock(5_000);
    const hlc = new HybridClock(clock);
    expect(hlc.now()).toEqual({ wall: 5_000, logical: 0 });
    expect(hlc.now()).toEqual({ wall: 5_000, logical: 1 });
    clock.advance(3);
    expect(hlc.now()).toEqual({ wall: 5_003, logical: 0 });
    clock.advance(-100);
    expect(hlc.now()).toEqual({ wall: 5_003, logical: 1 });
  });

  it('refuses a peer timestamp beyond the drift bound and changes nothing', () => {
    const clock = new ManualClock(10_000);
    const hlc = new HybridClock(clock, { maxDriftMs: 1_000 });
    const before = hlc.now();
    expect(() => hlc.observe({ wall: 12_000, logical: 0 })).toThrow(ClockDriftError);
    expect(hlc.last).toEqual(before);
    hlc.observe({ wall: 10_900, logical: 7 });
    expect(hlc.now()).toEqual({ wall: 10_900, logical: 9 });
  });

  it('resumes after a restart from a saved timestamp', () => {
    const clock = new ManualClock(100);
    const hlc = new HybridClock(clock, { last: { wall: 500, logical: 3 } });
    expect(hlc.now()).toEqual({ wall: 500, logical: 4 });
  });
});
