/**
 * The simulator's one source of randomness: xoshiro128** (Blackman & Vigna) on four 32-bit words, seeded through
 * splitmix64 from a 64-bit seed. A seed may be given as a number, a bigint, a decimal string, a hex string (a git
 * commit hash works) or any other text (hashed with 64-bit FNV-1a), so a failing run can be named by whatever the
 * person has at hand and replayed from it exactly.
 *
 * `fork(name)` derives an independent generator from this generator's *seed* and the name, never from its current
 * state: forking consumes no draws, and adding or removing draws in one subsystem (say the network) leaves every
 * other subsystem's stream (disks, boxes, the scenario) unchanged. Forks of forks are paths: `rng.fork('box/b1')`.
 */
import type { Random } from '../../core/ports.ts';
import { InvalidInputError } from '../../core/errors.ts';

const MASK64 = (1n << 64n) - 1n;

/** A seed as a person may write it. */
export type Seed = string | number | bigint;

/** 64-bit FNV-1a over the UTF-16 code units of `text`. */
export function fnv1a64(text: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (let i = 0; i < text.length; i++) {
    h ^= BigInt(text.charCodeAt(i));
    h = (h * 0x100000001b3n) & MASK64;
  }
  return h;
}

/** splitmix64's output function: a bijective 64-bit mix. */
export function mix64(z: bigint): bigint {
  z = z & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/**
 * The 64-bit key of a seed. Decimal digits are read as a number (mod 2^64); `0x`-prefixed or 7-64 character hex
 * strings (commit hashes) as hex; anything else is hashed. Numbers must be non-negative safe integers.
 */
export function seedKey(seed: Seed): bigint {
  if (typeof seed === 'bigint') {
    if (seed < 0n) throw new InvalidInputError(`a seed must not be negative, got ${seed}`);
    return seed & MASK64;
  }
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new InvalidInputError(`a numeric seed must be a non-negative safe integer, got ${seed}`);
    return BigInt(seed);
  }
  const text = seed.trim();
  if (/^[0-9]+$/.test(text)) return BigInt(text) & MASK64;
  if (/^0x[0-9a-f]+$/i.test(text)) return BigInt(text) & MASK64;
  if (/^[0-9a-f]{7,64}$/i.test(text)) return BigInt(`0x${text}`) & MASK64;
  if (text.length === 0) throw new InvalidInputError('a seed must not be empty');
  return fnv1a64(text);
}

/** A label for a seed, as printed in replay commands. */
export function seedLabel(seed: Seed): string {
  return typeof seed === 'string' ? seed.trim() : seed.toString();
}

/** A seeded, forkable PRNG implementing core's `Random` port, with the helpers simulations need. */
export class SimRandom implements Random {
  /** The 64-bit key this generator was seeded from (forks derive from it). */
  readonly key: bigint;
  /** Where this generator sits in the fork tree, for diagnostics: `seed` or `seed/net/…`. */
  readonly path: string;
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: Seed, path?: string) {
    this.key = seedKey(seed);
    this.path = path ?? seedLabel(seed);
    // splitmix64: two outputs give the four state words; a zero state is impossible in practice, but guard anyway.
    let x = this.key;
    const next = (): bigint => {
      x = (x + 0x9e3779b97f4a7c15n) & MASK64;
      return mix64(x);
    };
    const s0 = next();
    const s1 = next();
    this.#a = Number(s0 & 0xffffffffn) >>> 0;
    this.#b = Number(s0 >> 32n) >>> 0;
    this.#c = Number(s1 & 0xffffffffn) >>> 0;
    this.#d = Number(s1 >> 32n) >>> 0;
    if ((this.#a | this.#b | this.#c | this.#d) === 0) this.#a = 1;
  }

  /** An independent generator for a named subsystem. Pure: consumes no draws from this one. */
  fork(name: string): SimRandom {
    return new SimRandom(mix64(this.key ^ mix64(fnv1a64(name))), `${this.path}/${name}`);
  }

  /** A uniformly distributed unsigned 32-bit integer (xoshiro128**). */
  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5), 7), 9) >>> 0;
    const t = this.#b << 9;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const w = this.u32();
      out[i] = w & 0xff;
      out[i + 1] = (w >>> 8) & 0xff;
      out[i + 2] = (w >>> 16) & 0xff;
      out[i + 3] = w >>> 24;
    }
    if (i < n) {
      let w = this.u32();
      for (; i < n; i++, w >>>= 8) out[i] = w & 0xff;
    }
    return out;
  }

  /** A float in [0, 1) with 53 random bits. */
  float(): number {
    const hi = this.u32() >>> 5;
    const lo = this.u32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** An integer in [0, n), without modulo bias. `n` must be a positive safe integer. */
  int(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidInputError(`int(n) needs a positive integer, got ${n}`);
    if (n <= 0x100000000) {
      const limit = 0x100000000 - (0x100000000 % n);
      for (;;) {
        const x = this.u32();
        if (x < limit) return x % n;
      }
    }
    return Math.floor(this.float() * n);
  }

  /** An integer in [lo, hi], both inclusive. */
  range(lo: number, hi: number): number {
    if (hi < lo) throw new InvalidInputError(`range(${lo}, ${hi}) is empty`);
    return lo + this.int(hi - lo + 1);
  }

  /** A float in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** A float whose logarithm is uniform in [log lo, log hi): for rates spanning orders of magnitude. */
  logUniform(lo: number, hi: number): number {
    if (!(lo > 0 && hi >= lo)) throw new InvalidInputError(`logUniform needs 0 < lo <= hi, got ${lo}, ${hi}`);
    return Math.exp(Math.log(lo) + (Math.log(hi) - Math.log(lo)) * this.float());
  }

  /** True with probability `p` (draws even when p is 0 or 1, so the stream does not depend on p's value). */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new InvalidInputError('pick from an empty list');
    return items[this.int(items.length)];
  }

  /** `k` distinct elements in random order (all of them when k >= length). */
  sample<T>(items: readonly T[], k: number): T[] {
    const copy = items.slice();
    const m = Math.min(k, copy.length);
    for (let i = 0; i < m; i++) {
      const j = i + this.int(copy.length - i);
      const tmp = copy[i];
      copy[i] = copy[j];
      copy[j] = tmp;
    }
    return copy.slice(0, m);
  }

  /** A shuffled copy (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    return this.sample(items, items.length);
  }

  /** A standard normal deviate (Box-Muller, one value per call). */
  normal(): number {
    const u = 1 - this.float(); // (0, 1]
    const v = this.float();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** An exponential deviate with the given mean. */
  exponential(mean: number): number {
    return -mean * Math.log(1 - this.float());
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * A bare stream of 32-bit words (splitmix32), for tests and benchmarks that need millions of cheap, repeatable
 * values without a SimRandom's forking and bookkeeping.
 */
export function splitmixWords(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}
