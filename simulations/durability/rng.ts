/**
 * Seeded randomness for the durability Monte Carlo: xoshiro128** (Blackman & Vigna) on four 32-bit words,
 * seeded through splitmix32 so that any 32-bit seed gives a well-mixed state. Every batch of trials gets its
 * own generator from `streamSeed(seed, ...labels)`, so results do not depend on how batches are spread over
 * threads, and a run is reproduced exactly from its seed. No Math.random anywhere.
 */

/** murmur3's 32-bit finaliser: a bijective mix of one word. */
export function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** A 32-bit seed for one stream, derived from a base seed and a path of integer labels (layout, batch, ...). */
export function streamSeed(seed: number, ...labels: number[]): number {
  let h = mix32((seed >>> 0) ^ 0x9e3779b9);
  for (const label of labels) h = mix32((h + Math.imul(label >>> 0, 0x27d4eb2f) + 0x165667b1) >>> 0);
  return h;
}

/** xoshiro128**: fast, 2^128-1 period, passes BigCrush; the output is one unsigned 32-bit word. */
export class Xoshiro128 {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    // splitmix32 expands the seed into four words; an all-zero state is impossible because splitmix32's
    // outputs for four consecutive counters are never all zero.
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      return (z ^ (z >>> 15)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
  }

  /** A generator with an explicit state (for reference vectors); the state must not be all zero. */
  static fromState(state: readonly [number, number, number, number]): Xoshiro128 {
    const g = new Xoshiro128(0);
    [g.a, g.b, g.c, g.d] = state.map((x) => x | 0);
    return g;
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  u32(): number {
    const b = this.b;
    const r = Math.imul(b, 5);
    const rot = (r << 7) | (r >>> 25);
    const out = Math.imul(rot, 9) >>> 0;
    const t = b << 9;
    this.c ^= this.a;
    this.d ^= b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = (this.d << 11) | (this.d >>> 21);
    return out;
  }

  /**
   * A uniform double in the open interval (0, 1) with 53 random bits: never exactly 0 or 1, so `-Math.log(u)`
   * and `Math.log1p(-u)` are always finite.
   */
  uniform(): number {
    const hi = this.u32() >>> 5; // 27 bits
    const lo = this.u32() >>> 6; // 26 bits
    return (hi * 67108864 + lo + 0.5) / 9007199254740992;
  }

  /** An exponential variate with the given rate (mean 1/rate). */
  exponential(rate: number): number {
    return -Math.log(this.uniform()) / rate;
  }

  /** A uniform integer in [0, n) for 1 <= n <= 2^32 (multiply-shift: bias at most n / 2^32, irrelevant here). */
  below(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }
}
