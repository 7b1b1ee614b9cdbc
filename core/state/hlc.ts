/**
 * Hybrid logical clock (Kulkarni et al.): timestamps that follow the injected wall clock when it moves forward
 * and a logical counter when it does not (same millisecond, clock stepped back, or a peer ahead of us), so every
 * event a Box signs is stamped strictly after everything that Box has seen. Shared-state events are ordered by
 * (hlc, event id); the id breaks ties between Boxes.
 *
 * A peer's timestamp too far ahead of our wall clock is refused (ClockDriftError) instead of dragging our clock
 * into the future; the event itself may still be stored: only our clock does not follow it.
 */
import { ReserveError } from '../errors.ts';
import type { Clock } from '../ports.ts';

export interface Hlc {
  /** Milliseconds since the Unix epoch (the largest wall time seen). */
  readonly wall: number;
  /** Counter within `wall`. */
  readonly logical: number;
}

export const HLC_ZERO: Hlc = Object.freeze({ wall: 0, logical: 0 });

/** Default bound on how far a peer's timestamp may run ahead of our wall clock. */
export const DEFAULT_MAX_DRIFT_MS = 60_000;

/** A peer's timestamp is further ahead of our wall clock than the allowed drift. */
export class ClockDriftError extends ReserveError {
  static override readonly name = 'ClockDriftError';
  constructor(
    readonly remote: Hlc,
    readonly localWall: number,
    readonly maxDriftMs: number,
  ) {
    super(`a timestamp ${remote.wall - localWall} ms ahead of this Box's clock exceeds the allowed drift of ${maxDriftMs} ms`);
  }
}

export function compareHlc(a: Hlc, b: Hlc): number {
  return a.wall !== b.wall ? (a.wall < b.wall ? -1 : 1) : a.logical !== b.logical ? (a.logical < b.logical ? -1 : 1) : 0;
}

export function maxHlc(a: Hlc, b: Hlc): Hlc {
  return compareHlc(a, b) >= 0 ? a : b;
}

export function minHlc(a: Hlc, b: Hlc): Hlc {
  return compareHlc(a, b) <= 0 ? a : b;
}

export function isHlc(value: unknown): value is Hlc {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Hlc;
  return Number.isSafeInteger(v.wall) && v.wall >= 0 && Number.isSafeInteger(v.logical) && v.logical >= 0;
}

/** A Box's clock. Not shared between Boxes; persist `last` with the Box's state so restarts never go backwards. */
export class HybridClock {
  #clock: Clock;
  #last: Hlc;
  readonly maxDriftMs: number;

  constructor(clock: Clock, options: { last?: Hlc; maxDriftMs?: number } = {}) {
    this.#clock = clock;
    this.#last = options.last ?? HLC_ZERO;
    this.maxDriftMs = options.maxDriftMs ?? DEFAULT_MAX_DRIFT_MS;
  }

  /** The latest timestamp issued or observed. */
  get last(): Hlc {
    return this.#last;
  }

  /** A fresh timestamp for a local event, strictly after every timestamp issued or observed so far. */
  now(): Hlc {
    const pt = Math.max(0, Math.floor(this.#clock.now()));
    const last = this.#last;
    this.#last = pt > last.wall ? { wall: pt, logical: 0 } : { wall: last.wall, logical: last.logical + 1 };
    return this.#last;
  }

  /**
   * Take a peer's timestamp into account so the next `now()` orders after it. Throws ClockDriftError (and changes
   * nothing) when the timestamp is more than `maxDriftMs` ahead of the wall clock.
   */
  observe(remote: Hlc): Hlc {
    const pt = Math.max(0, Math.floor(this.#clock.now()));
    if (remote.wall - pt > this.maxDriftMs) throw new ClockDriftError(remote, pt, this.maxDriftMs);
    const last = this.#last;
    const wall = Math.max(pt, last.wall, remote.wall);
    let logical: number;
    if (wall === last.wall && wall === remote.wall) logical = Math.max(last.logical, remote.logical) + 1;
    else if (wall === last.wall) logical = last.logical + 1;
    else if (wall === remote.wall) logical = remote.logical + 1;
    else logical = 0;
    this.#last = { wall, logical };
    return this.#last;
  }
}
