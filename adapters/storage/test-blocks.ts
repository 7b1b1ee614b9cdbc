/**
 * Deterministic test blocks, shared by the acceptance suites, the crash-test child process and the benchmark
 * (kept free of vitest so a plain Node process can import it).
 */
import type { Pair } from '../../core/blocks/blockstore.ts';
import { cidOf, RAW_CODE } from '../../core/blocks/cid.ts';

/** Deterministic pseudo-random bytes (xorshift32), so every run stores the same blocks. */
export function pseudoRandomBytes(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed | 0 || 0x9e3779b9;
  const words = new Uint32Array(out.buffer, 0, size >>> 2);
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A raw block with deterministic content. */
export function block(seed: number, size = 1024): Pair {
  const bytes = pseudoRandomBytes(seed, size);
  return { cid: cidOf(RAW_CODE, bytes), bytes };
}

/** A small seeded PRNG (mulberry32) for choosing sizes and delays. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
