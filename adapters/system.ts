/** The real world's Clock and Random, for Boxes and the CLI (the simulator injects virtual ones instead). */
import { randomBytes } from 'node:crypto';
import type { Clock, Random } from '../core/ports.ts';

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return () => clearTimeout(t);
  },
};

export const systemRandom: Random = {
  u32: () => randomBytes(4).readUInt32LE(0),
  bytes: (n) => new Uint8Array(randomBytes(n)),
};
