/**
 * The placement function's input and output shapes. `KeeperView` and `PlacementView` are produced by the state
 * reducer from the merged CRDT state; everything else here is what placement reports back.
 */
import type { BoxId } from '../net.ts';

export interface KeeperView {
  id: BoxId;
  /** Bytes this Box offers to the reserve; > 0. Placement weights Boxes by it. */
  capacity: number;
  /** Failure domain (site, house, ...). Keepers without one share the default region. */
  region?: string;
  /** Eligible for new replicas. Non-live keepers are ignored by placement. */
  live: boolean;
}

export interface PlacementView {
  keepers: readonly KeeperView[];
  /** Target replication factor. */
  rf: number;
}

/** Reported (never thrown) when the view has fewer live keepers than the replication factor asks for. */
export interface Shortfall {
  /** The replication factor the view asks for. */
  wanted: number;
  /** Replicas each chunk actually gets: the number of live keepers. */
  possible: number;
}

/** What must change for one chunk when the view changes. */
export interface Moves {
  /** Boxes that must receive a copy (in the new placement order). */
  add: BoxId[];
  /** Boxes whose copy is no longer wanted (in the old placement order). */
  drop: BoxId[];
}

/** One live keeper as the compiled placer sees it. */
export interface PlacementTarget {
  id: BoxId;
  /** Region key ('' is the default region). */
  region: string;
  capacity: number;
  /** capacity / total live capacity. */
  capacityShare: number;
  /**
   * Capacity-fair inclusion: min(1, lambda * capacity) summing to `replicas` (targets.ts). What the Box would
   * get if only capacity mattered.
   */
  fair: number;
  /**
   * Probability that a chunk has a replica on this Box under this placement (its inclusion probability), exact
   * from the race's model. Equals `fair` without regions; with regions the region rule reshapes it. Sums to
   * `replicas`; `inclusion * chunks` is the Box's expected replica count, its fair share under the rule.
   */
  inclusion: number;
  /** inclusion / replicas: the Box's expected share of all replicas. */
  share: number;
}

/** A view compiled once (weights solved, Box hashes precomputed) and reused for many placements. */
export interface CompiledPlacement {
  /** The view's replication factor. */
  readonly rf: number;
  /** Replicas per chunk: min(rf, live keepers). */
  readonly replicas: number;
  /** Live keepers in canonical (id) order with their targets. */
  readonly targets: readonly PlacementTarget[];
  /** Distinct regions among live keepers. */
  readonly regions: readonly string[];
  /** Largest relative error |model inclusion / target - 1| the weight solver left (diagnostic; ~1e-9). */
  readonly solverResidual: number;
  /** Ordered keepers for a chunk key (first = primary). */
  place(key: Uint8Array): BoxId[];
  /**
   * Allocation-free variant: writes the indexes (into `targets`) of the chosen Boxes, in placement order, into
   * `out` and returns how many were written (`replicas`).
   */
  placeIndexes(key: Uint8Array, out: Int32Array): number;
  /** Every live keeper for this key: the placement first (in order), then the others by race time. */
  rank(key: Uint8Array): BoxId[];
}
