/**
 * The narrow capabilities core/ code is given instead of reaching for the world itself. Production wires them to
 * the OS in adapters/; the simulator wires them to a virtual clock and a seeded PRNG.
 */

/** Wall-clock time in milliseconds since the Unix epoch, plus timers on the same time line. */
export interface Clock {
  now(): number;
  /** Calls `fn` once after `ms`; returns a function that cancels it. */
  setTimer(ms: number, fn: () => void): () => void;
}

/** A source of randomness. The simulator's is seeded; production's is crypto-strong. */
export interface Random {
  /** A uniformly distributed unsigned 32-bit integer. */
  u32(): number;
  /** `n` random bytes. */
  bytes(n: number): Uint8Array;
}

/** Progress of long work, reported to whoever drives it (a CLI progress bar, a daemon log, nothing). */
export interface Progress {
  /** Total units expected, when known. */
  total?(units: number): void;
  /** Units done since the last call. */
  advance(units: number): void;
}

export const noProgress: Progress = { advance() {} };

export interface AbortOptions {
  signal?: AbortSignal;
}
