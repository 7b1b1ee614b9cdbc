/**
 * The idle countdown of a block stream: it follows its parent signal (a network's whole-run signal) while the
 * stream runs, and lets go of it when disposed, so a daemon that serves streams for months does not collect a
 * listener per stream on that one signal.
 */
import { getEventListeners, setMaxListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { IdleTimer } from './blocks.ts';
import { IdleTimeoutError } from './errors.ts';

describe('IdleTimer', () => {
  it('lets go of its parent signal when disposed, and follows it until then', () => {
    const parent = new AbortController();
    setMaxListeners(100, parent.signal);
    const timers = Array.from({ length: 20 }, () => new IdleTimer(60_000, parent.signal));
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(20);
    for (const t of timers.slice(0, 19)) t.dispose();
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(1);
    const reason = new Error('the network is stopping');
    parent.abort(reason);
    expect(timers[19].signal.reason).toBe(reason);
    expect(timers[0].signal.aborted).toBe(false); // disposed: no longer tied to the parent
    timers[19].dispose();
  });

  it('a disposed timer no longer fires; a live one times out by name', async () => {
    const quiet = new IdleTimer(20);
    quiet.dispose();
    const live = new IdleTimer(20);
    await new Promise((r) => setTimeout(r, 60));
    expect(quiet.signal.aborted).toBe(false);
    expect(live.signal.reason).toBeInstanceOf(IdleTimeoutError);
    live.dispose();
  });
});
