/** Virtual time: ordering, cancellation, run loops, microtask draining, reentrancy, failures, incarnations. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_EPOCH_MS, Life, Scheduler, SimClock } from './scheduler.ts';

describe('Scheduler', () => {
  it('fires timers by virtual time, ties in insertion order, and cancels', async () => {
    const s = new Scheduler();
    const clock = new SimClock(s, new Life('t'));
    const fired: string[] = [];
    clock.setTimer(30, () => fired.push('c30'));
    clock.setTimer(10, () => fired.push('a10'));
    clock.setTimer(10, () => fired.push('b10'));
    const cancel = clock.setTimer(20, () => fired.push('x20'));
    clock.setTimer(0, () => fired.push('z0'));
    clock.setTimer(-5, () => fired.push('neg'));
    cancel();
    await s.runFor(100);
    expect(fired).toEqual(['z0', 'neg', 'a10', 'b10', 'c30']);
    expect(s.elapsed).toBe(100);
    expect(clock.now()).toBe(DEFAULT_EPOCH_MS + 100);
  });

  it('runs timers set by timers at the right instants, including zero-delay ones after those already due', async () => {
    const s = new Scheduler();
    const log: Array<[string, number]> = [];
    s.after(10, () => {
      log.push(['first', s.elapsed]);
      s.after(0, () => log.push(['child0', s.elapsed]));
      s.after(5, () => log.push(['child5', s.elapsed]));
    });
    s.after(10, () => log.push(['second', s.elapsed]));
    await s.runFor(20);
    expect(log).toEqual([
      ['first', 10],
      ['second', 10],
      ['child0', 10],
      ['child5', 15],
    ]);
  });

  it('drains every promise continuation of an event before the next event runs', async () => {
    const s = new Scheduler();
    const log: string[] = [];
    const deep = async (n: number): Promise<void> => {
      if (n === 0) return;
      await Promise.resolve();
      await deep(n - 1);
    };
    s.after(5, () => {
      void (async () => {
        await deep(200);
        log.push(`chain done at ${s.elapsed}`);
      })();
    });
    s.after(5, () => log.push(`second event at ${s.elapsed}`));
    await s.runFor(10);
    expect(log).toEqual(['chain done at 5', 'second event at 5']);
  });

  it('runUntil stops as soon as the predicate holds, reports idle when nothing can change, honours maxMs', async () => {
    const s = new Scheduler();
    let n = 0;
    const tick = (): void => {
      n++;
      s.after(100, tick);
    };
    s.after(100, tick);
    const r = await s.runUntil(() => n === 3, { maxMs: 10_000 });
    expect(r).toEqual({ ok: true, elapsedMs: 300, idle: false });
    const late = await s.runUntil(() => n === 1000, { maxMs: 1000 });
    expect(late.ok).toBe(false);
    expect(late.idle).toBe(false);
    expect(s.elapsed).toBe(1300);
    const quiet = new Scheduler();
    quiet.after(10, () => undefined);
    expect(await quiet.runUntil(() => false, { maxMs: 1000 })).toEqual({ ok: false, elapsedMs: 10, idle: true });
    const polled = await s.runUntil(() => n >= 20, { maxMs: 5000, everyMs: 1000 });
    expect(polled.ok).toBe(true);
    expect(polled.elapsedMs).toBe(1000);
  });

  it('settle runs the world until a promise settles, and reports a stall', async () => {
    const s = new Scheduler();
    const later = new Promise<string>((resolve) => s.after(250, () => resolve('done')));
    await expect(s.settle(later)).resolves.toBe('done');
    expect(s.elapsed).toBe(250);
    const failing = new Promise<string>((_, reject) => s.after(10, () => reject(new Error('nope'))));
    await expect(s.settle(failing)).rejects.toThrow('nope');
    await expect(s.settle(new Promise(() => undefined), { what: 'forever' })).rejects.toMatchObject({ name: 'SimStallError', idle: true });
    s.after(1e9, () => undefined);
    await expect(s.settle(new Promise(() => undefined), { maxMs: 1000 })).rejects.toMatchObject({ name: 'SimStallError', idle: false, waitedMs: 1000 });
  });

  it('refuses to be driven from inside an event', async () => {
    const s = new Scheduler();
    let caught: unknown;
    s.after(1, () => {
      s.runFor(1).catch((e: unknown) => (caught = e));
    });
    await s.runFor(5);
    expect((caught as Error).name).toBe('SimReentrancyError');
  });

  it('a throwing event fails the run, and the world stays failed', async () => {
    const s = new Scheduler();
    s.after(5, () => {
      throw new Error('boom');
    });
    s.after(6, () => undefined);
    await expect(s.runFor(10)).rejects.toThrow('boom');
    expect(s.elapsed).toBe(5);
    await expect(s.runFor(10)).rejects.toThrow('boom');
  });

  it("a killed incarnation's timers never fire; a new incarnation's do", async () => {
    const s = new Scheduler();
    const old = new Life('b#1');
    const fired: string[] = [];
    new SimClock(s, old).setTimer(10, () => fired.push('old'));
    old.kill();
    new SimClock(s, old).setTimer(1, () => fired.push('old-after-death'));
    const next = new Life('b#2');
    new SimClock(s, next).setTimer(10, () => fired.push('new'));
    await s.runFor(20);
    expect(fired).toEqual(['new']);
    expect(s.pending).toBe(0);
  });

  it('step runs exactly one event', async () => {
    const s = new Scheduler();
    const fired: number[] = [];
    s.after(3, () => fired.push(3));
    s.after(7, () => fired.push(7));
    expect(await s.step()).toBe(true);
    expect(fired).toEqual([3]);
    expect(s.elapsed).toBe(3);
    expect(await s.step()).toBe(true);
    expect(await s.step()).toBe(false);
    expect(fired).toEqual([3, 7]);
  });
});
