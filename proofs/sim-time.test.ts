/**
 * Properties of the simulator's time and randomness: timers fire in (virtual time, insertion order) whatever the
 * cancellations and however a run is chopped into runFor calls; PRNG forks are independent of draws elsewhere.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { propertyOptions } from './support/fc.ts';
import { Life, Scheduler, SimClock } from '../simulations/sim/scheduler.ts';
import { SimRandom } from '../simulations/sim/rng.ts';

describe('simulator time', () => {
  it('timers fire in (time, insertion) order, cancelled ones never, however the run is chopped up', async () => {
    const name = 'sim: timers fire in (time, insertion) order regardless of cancellation and run chunking';
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ delay: fc.integer({ min: -5, max: 60 }), cancel: fc.boolean(), child: fc.option(fc.integer({ min: 0, max: 30 })) }), { maxLength: 40 }),
        fc.array(fc.integer({ min: 0, max: 25 }), { minLength: 1, maxLength: 8 }),
        async (timers, chunks) => {
          const s = new Scheduler();
          const clock = new SimClock(s, new Life('p'));
          const fired: Array<[string, number]> = [];
          // Model: (due, seq) for each live timer; children are scheduled when their parent fires.
          const expected: Array<{ due: number; seq: number; label: string }> = [];
          let seq = 0;
          timers.forEach((t, i) => {
            const due = Math.max(0, t.delay);
            const mySeq = seq++;
            const cancel = clock.setTimer(t.delay, () => {
              fired.push([`t${i}`, s.elapsed]);
              if (t.child !== null) clock.setTimer(t.child, () => fired.push([`c${i}`, s.elapsed]));
            });
            if (t.cancel) cancel();
            else expected.push({ due, seq: mySeq, label: `t${i}` });
          });
          for (const c of chunks) await s.runFor(c);
          await s.runFor(200);
          // Replay the model: a parent at `due` schedules its child at due + child, after everything already queued.
          const queue = [...expected];
          const order: Array<[string, number]> = [];
          while (queue.length > 0) {
            queue.sort((a, b) => a.due - b.due || a.seq - b.seq);
            const next = queue.shift() as (typeof queue)[number];
            order.push([next.label, next.due]);
            const i = Number(next.label.slice(1));
            const child = timers[i].child;
            if (next.label.startsWith('t') && child !== null) queue.push({ due: next.due + child, seq: seq++, label: `c${i}` });
          }
          if (JSON.stringify(fired) !== JSON.stringify(order)) throw new Error(`fired ${JSON.stringify(fired)}\nmodel ${JSON.stringify(order)}`);
        },
      ),
      propertyOptions(name, { numRuns: 100 }),
    );
  });

  it('a fork depends only on the seed and its name, never on draws made elsewhere', () => {
    const name = 'sim: PRNG forks are independent of draws in the parent and in sibling forks';
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
        fc.string({ maxLength: 12 }),
        fc.string({ maxLength: 12 }),
        fc.nat({ max: 300 }),
        fc.nat({ max: 300 }),
        (seed, a, b, parentDraws, siblingDraws) => {
          const quiet = new SimRandom(seed).fork(a);
          const busy = new SimRandom(seed);
          for (let i = 0; i < parentDraws; i++) busy.u32();
          const sibling = busy.fork(`${b}#sibling`);
          for (let i = 0; i < siblingDraws; i++) sibling.u32();
          const forked = busy.fork(a);
          const x = [quiet.u32(), quiet.u32(), quiet.u32(), quiet.u32()];
          const y = [forked.u32(), forked.u32(), forked.u32(), forked.u32()];
          if (x.join() !== y.join()) return false;
          if (a === b) return true;
          const other = new SimRandom(seed).fork(b);
          return [other.u32(), other.u32(), other.u32(), other.u32()].join() !== x.join();
        },
      ),
      propertyOptions(name, { numRuns: 200 }),
    );
  });
});
