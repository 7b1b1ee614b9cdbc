/**
 * Measuring a placement: per-Box loads against fair shares, balance, region coverage, and how many replicas a
 * view change moves compared with the theoretical minimum. Pure (no clock): the CLI, the benchmark and the
 * property tests all measure with these functions, so their figures mean the same thing.
 *
 * Theoretical minimum number of moved replicas for a view change over M chunks. A "move" is one replica copied
 * to a Box that did not hold it; dropping a surplus copy is free and counted separately. Let pi(b) and pi'(b) be
 * Box b's inclusion probability before and after (0 where b is not a live keeper; CompiledPlacement.targets):
 *  - transport bound: M * sum_b max(0, pi'(b) - pi(b)). Every Box must receive at least its expected gain.
 *    When a Box is added this is the new Box's fair share M * pi'(new) (no other Box gains: the others only
 *    give up replicas to it); when a Box is removed it is the removed Box's expected load.
 *  - removal: the replicas the removed Boxes actually held, minus M * (drop in replicas per chunk) when the
 *    removal leaves fewer live keepers than rf. Each must be re-created elsewhere. (Plus any expected gain of
 *    the remaining Boxes beyond what replacing those replicas explains; 0 unless the region rule reshuffles.)
 * minimal = the transport bound for an add, the removal figure for a removal, the larger of the two for a
 * change that does both. ratio = moved / minimal. The transport bound is an expectation, so a measured ratio
 * for an add carries binomial noise of about 1/sqrt(minimal); for a removal it is exact.
 */
import type { BoxId } from '../net.ts';
import { fmix32 } from './hash.ts';
import { compileView } from './place.ts';
import type { CompiledPlacement, PlacementView } from './types.ts';

/** A stream of chunk keys, generated on demand so that a million chunks need no million arrays. */
export interface KeySource {
  readonly count: number;
  /** Write key `j` (0 <= j < count) into `out` and return it. */
  key(j: number, out: Uint8Array): Uint8Array;
  /** Byte length of each key. */
  readonly length: number;
}

/**
 * `count` pseudo-random 32-byte keys (stand-ins for sha2-256 digests) determined by `seed`: key j is a
 * counter-mode expansion of (seed, j), so any key can be regenerated independently of the others.
 */
export function syntheticKeys(seed: number, count: number): KeySource {
  const s = fmix32((seed >>> 0) ^ 0x5bd1e995);
  const t = fmix32(Math.floor(seed / 4294967296) ^ 0x27d4eb2f);
  return {
    count,
    length: 32,
    key(j: number, out: Uint8Array): Uint8Array {
      const a = fmix32((j >>> 0) ^ s);
      const b = fmix32(Math.floor(j / 4294967296) + Math.imul(a, 0x9e3779b9) + t);
      for (let w = 0; w < 8; w++) {
        const z = fmix32(a + Math.imul(w + 1, 0x85ebca6b) + Math.imul(b ^ w, 0xc2b2ae35));
        out[4 * w] = z;
        out[4 * w + 1] = z >>> 8;
        out[4 * w + 2] = z >>> 16;
        out[4 * w + 3] = z >>> 24;
      }
      return out;
    },
  };
}

export interface BoxLoad {
  id: BoxId;
  region: string;
  capacity: number;
  capacityShare: number;
  /** Fair share of replicas: inclusion * chunks. */
  expected: number;
  /** Replicas actually placed on the Box. */
  load: number;
  /** load / expected - 1. */
  error: number;
}

export interface LayoutReport {
  chunks: number;
  replicas: number;
  boxes: BoxLoad[];
  /** Largest load over the mean load (1 = perfectly even; meaningful for equal capacities). */
  maxOverMean: number;
  /** Largest |load / fair share - 1| over the Boxes: how closely loads follow the targets. */
  maxShareError: number;
  regions: number;
  /** Regions that hold at least one replica of every chunk (each can restore everything alone). */
  regionsFullyCovered: number;
}

function newLoads(p: CompiledPlacement): { loads: Float64Array; covered: Float64Array; stamp: Int32Array } {
  return {
    loads: new Float64Array(p.targets.length),
    covered: new Float64Array(p.regions.length),
    stamp: new Int32Array(p.regions.length).fill(-1),
  };
}

function report(p: CompiledPlacement, chunks: number, loads: Float64Array, covered: Float64Array): LayoutReport {
  let sum = 0;
  let max = 0;
  let maxShareError = 0;
  const boxes: BoxLoad[] = p.targets.map((t, i) => {
    const load = loads[i]!;
    sum += load;
    if (load > max) max = load;
    const expected = t.inclusion * chunks;
    const error = expected > 0 ? load / expected - 1 : load > 0 ? Infinity : 0;
    if (Math.abs(error) > maxShareError) maxShareError = Math.abs(error);
    return { id: t.id, region: t.region, capacity: t.capacity, capacityShare: t.capacityShare, expected, load, error };
  });
  const mean = boxes.length > 0 ? sum / boxes.length : 0;
  let full = 0;
  for (let g = 0; g < covered.length; g++) if (covered[g] === chunks) full++;
  return {
    chunks,
    replicas: p.replicas,
    boxes,
    maxOverMean: mean > 0 ? max / mean : 0,
    maxShareError,
    regions: p.regions.length,
    regionsFullyCovered: full,
  };
}

function regionIndexes(p: CompiledPlacement): Int32Array {
  const idx = new Map(p.regions.map((r, g) => [r, g]));
  return Int32Array.from(p.targets, (t) => idx.get(t.region)!);
}

/** Place every key and report loads, balance and region coverage. */
export function measureLayout(view: PlacementView, keys: KeySource): LayoutReport {
  const p = compileView(view);
  const { loads, covered, stamp } = newLoads(p);
  const regionOf = regionIndexes(p);
  const out = new Int32Array(Math.max(1, p.targets.length));
  const buf = new Uint8Array(keys.length);
  for (let j = 0; j < keys.count; j++) {
    const len = p.placeIndexes(keys.key(j, buf), out);
    for (let r = 0; r < len; r++) {
      const i = out[r]!;
      loads[i]++;
      const g = regionOf[i]!;
      if (stamp[g] !== j) {
        stamp[g] = j;
        covered[g]++;
      }
    }
  }
  return report(p, keys.count, loads, covered);
}

export interface ChangeReport {
  chunks: number;
  /** Replicas copied to a Box that did not hold them before. */
  moved: number;
  /** Replicas no longer wanted where they are. */
  dropped: number;
  /** Chunks whose placement set changed. */
  changedChunks: number;
  /** The theoretical minimum of `moved` (see the file comment). */
  minimal: number;
  /** moved / minimal (1 when both are 0). */
  ratio: number;
  added: BoxId[];
  removed: BoxId[];
  /** Replicas the added Boxes hold after the change. */
  addedLoad: number;
  /** Replicas the removed Boxes held before the change. */
  removedLoad: number;
  before: LayoutReport;
  after: LayoutReport;
}

/** sum over Boxes of max(0, inclusion after - inclusion before): the least expected gain per chunk. */
export function transportBound(before: CompiledPlacement, after: CompiledPlacement): number {
  const prev = new Map(before.targets.map((t) => [t.id, t.inclusion]));
  let sum = 0;
  for (const t of after.targets) {
    const gain = t.inclusion - (prev.get(t.id) ?? 0);
    if (gain > 0) sum += gain;
  }
  return sum;
}

/** Place every key under both views and count what moves. */
export function measureChange(before: PlacementView, after: PlacementView, keys: KeySource): ChangeReport {
  const pb = compileView(before);
  const pa = compileView(after);
  const lb = newLoads(pb);
  const la = newLoads(pa);
  const rb = regionIndexes(pb);
  const ra = regionIndexes(pa);
  // Map both views' Box indexes onto one id space.
  const ids = new Map<BoxId, number>();
  for (const t of pb.targets) if (!ids.has(t.id)) ids.set(t.id, ids.size);
  for (const t of pa.targets) if (!ids.has(t.id)) ids.set(t.id, ids.size);
  const gb = Int32Array.from(pb.targets, (t) => ids.get(t.id)!);
  const ga = Int32Array.from(pa.targets, (t) => ids.get(t.id)!);
  const mark = new Int32Array(ids.size).fill(-1);
  const ob = new Int32Array(Math.max(1, pb.targets.length));
  const oa = new Int32Array(Math.max(1, pa.targets.length));
  const buf = new Uint8Array(keys.length);
  let moved = 0;
  let dropped = 0;
  let changedChunks = 0;
  for (let j = 0; j < keys.count; j++) {
    const key = keys.key(j, buf);
    const nb = pb.placeIndexes(key, ob);
    const na = pa.placeIndexes(key, oa);
    for (let r = 0; r < nb; r++) {
      const i = ob[r]!;
      mark[gb[i]!] = j;
      lb.loads[i]++;
      const g = rb[i]!;
      if (lb.stamp[g] !== j) {
        lb.stamp[g] = j;
        lb.covered[g]++;
      }
    }
    let kept = 0;
    for (let r = 0; r < na; r++) {
      const i = oa[r]!;
      if (mark[ga[i]!] === j) kept++;
      else moved++;
      la.loads[i]++;
      const g = ra[i]!;
      if (la.stamp[g] !== j) {
        la.stamp[g] = j;
        la.covered[g]++;
      }
    }
    dropped += nb - kept;
    if (kept !== nb || kept !== na) changedChunks++;
  }
  const beforeIds = new Set(pb.targets.map((t) => t.id));
  const afterIds = new Set(pa.targets.map((t) => t.id));
  const added = pa.targets.filter((t) => !beforeIds.has(t.id)).map((t) => t.id);
  const removed = pb.targets.filter((t) => !afterIds.has(t.id)).map((t) => t.id);
  let addedLoad = 0;
  pa.targets.forEach((t, i) => {
    if (!beforeIds.has(t.id)) addedLoad += la.loads[i]!;
  });
  let removedLoad = 0;
  pb.targets.forEach((t, i) => {
    if (!afterIds.has(t.id)) removedLoad += lb.loads[i]!;
  });
  const M = keys.count;
  const shrink = Math.max(0, pb.replicas - pa.replicas) * M;
  const transport = transportBound(pb, pa) * M;
  let expectedRemoved = 0;
  for (const t of pb.targets) if (!afterIds.has(t.id)) expectedRemoved += t.inclusion * M;
  // Removal: the replicas actually lost, plus any expected gain beyond what replacing them explains.
  const beyond = transport - (expectedRemoved - shrink);
  const removal = removedLoad - shrink + (beyond > 1e-9 * M ? beyond : 0);
  const minimal = Math.max(0, removed.length === 0 ? transport : added.length === 0 ? removal : Math.max(transport, removal));
  return {
    chunks: keys.count,
    moved,
    dropped,
    changedChunks,
    minimal,
    ratio: minimal > 0 ? moved / minimal : moved === 0 ? 1 : Infinity,
    added,
    removed,
    addedLoad,
    removedLoad,
    before: report(pb, keys.count, lb.loads, lb.covered),
    after: report(pa, keys.count, la.loads, la.covered),
  };
}
