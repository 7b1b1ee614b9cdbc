/**
 * A subset of partitions to compare, e.g. the partitions a sweep covers this round, or those placement assigns to
 * both Boxes. Kept as sorted, merged, half-open ranges [start, end) of partition numbers, so "is this subtree
 * wholly in, wholly out, or cut?" is one binary search, and a contiguous selection costs a few bytes on the wire.
 */
import { InvalidInputError } from '../errors.ts';

/** How a filter meets a span of partitions. */
export const Coverage = { None: 0, Some: 1, All: 2 } as const;
export type Coverage = (typeof Coverage)[keyof typeof Coverage];

export class PartitionFilter {
  /** Number of partitions of the geometry this filter is for (2^partitionBits). */
  readonly partitions: number;
  /** Flat [start0, end0, start1, end1, ...]: ascending, non-empty, non-overlapping, non-adjacent. */
  readonly #ranges: Uint32Array;

  private constructor(partitions: number, ranges: Uint32Array) {
    this.partitions = partitions;
    this.#ranges = ranges;
  }

  /** Every partition. */
  static all(partitions: number): PartitionFilter {
    checkPartitions(partitions);
    return new PartitionFilter(partitions, Uint32Array.of(0, partitions));
  }

  /** The union of half-open ranges [start, end) in any order; overlapping and adjacent ranges are merged. */
  static ranges(partitions: number, ranges: Iterable<readonly [number, number]>): PartitionFilter {
    checkPartitions(partitions);
    const list: Array<[number, number]> = [];
    for (const [s, e] of ranges) {
      if (!Number.isInteger(s) || !Number.isInteger(e) || s < 0 || e > partitions || s > e)
        throw new InvalidInputError(`partition range [${s}, ${e}) is not within [0, ${partitions})`);
      if (s < e) list.push([s, e]);
    }
    list.sort((a, b) => a[0] - b[0]);
    const flat: number[] = [];
    for (const [s, e] of list) {
      const n = flat.length;
      if (n > 0 && s <= flat[n - 1]!) flat[n - 1] = Math.max(flat[n - 1]!, e);
      else flat.push(s, e);
    }
    return new PartitionFilter(partitions, Uint32Array.from(flat));
  }

  /** Exactly the listed partitions. */
  static of(partitions: number, list: Iterable<number>): PartitionFilter {
    const r: Array<[number, number]> = [];
    for (const p of list) r.push([p, p + 1]);
    return PartitionFilter.ranges(partitions, r);
  }

  /** The partitions for which `pred` holds. */
  static where(partitions: number, pred: (partition: number) => boolean): PartitionFilter {
    checkPartitions(partitions);
    const flat: number[] = [];
    let start = -1;
    for (let p = 0; p < partitions; p++) {
      if (pred(p)) {
        if (start < 0) start = p;
      } else if (start >= 0) {
        flat.push(start, p);
        start = -1;
      }
    }
    if (start >= 0) flat.push(start, partitions);
    return new PartitionFilter(partitions, Uint32Array.from(flat));
  }

  /** True when every partition is selected. */
  get isAll(): boolean {
    return this.#ranges.length === 2 && this.#ranges[0] === 0 && this.#ranges[1] === this.partitions;
  }

  /** Number of selected partitions. */
  get size(): number {
    let n = 0;
    for (let i = 0; i < this.#ranges.length; i += 2) n += this.#ranges[i + 1]! - this.#ranges[i]!;
    return n;
  }

  /** Number of maximal ranges. */
  get rangeCount(): number {
    return this.#ranges.length / 2;
  }

  /** The maximal ranges, ascending. */
  rangeList(): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = 0; i < this.#ranges.length; i += 2) out.push([this.#ranges[i]!, this.#ranges[i + 1]!]);
    return out;
  }

  includes(partition: number): boolean {
    return this.coverage(partition, partition + 1) === Coverage.All;
  }

  /** How the filter meets the partitions [start, end) (end > start). */
  coverage(start: number, end: number): Coverage {
    const r = this.#ranges;
    // first range whose end is > start
    let lo = 0;
    let hi = r.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (r[mid * 2 + 1]! > start) hi = mid;
      else lo = mid + 1;
    }
    if (lo === r.length / 2) return Coverage.None;
    const s = r[lo * 2]!;
    const e = r[lo * 2 + 1]!;
    if (s >= end) return Coverage.None;
    if (s <= start && e >= end) return Coverage.All;
    return Coverage.Some;
  }

  equals(other: PartitionFilter): boolean {
    if (other.partitions !== this.partitions || other.#ranges.length !== this.#ranges.length) return false;
    for (let i = 0; i < this.#ranges.length; i++) if (other.#ranges[i] !== this.#ranges[i]) return false;
    return true;
  }
}

function checkPartitions(partitions: number): void {
  if (!Number.isInteger(partitions) || partitions < 1 || partitions > 2 ** 24)
    throw new InvalidInputError(`a partition count must be a whole number in [1, 2^24], got ${partitions}`);
}
