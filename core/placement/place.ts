/**
 * Chunk placement: which Boxes keep which chunk, as a pure function of the chunk's key and the merged view.
 *
 * Method: weighted rendezvous hashing (HRW) run as an exponential race, with solved weights and region anchors.
 *
 *  - Race: for chunk key k every live Box i gets a time T_i = X(k, i) / w_i, where X is an Exp(1) variate from a
 *    fast 64-bit hash of (k, i) (hash.ts; Box id hashes are computed once per view) and -ln done in reproducible
 *    arithmetic (detmath.ts). Earlier is better. For one replica this is weighted HRW: Box i wins with
 *    probability exactly w_i / sum w, and adding or removing a Box changes only the chunks it wins or loses.
 *  - Replicas: R' = min(rf, live keepers); the shortfall is reported by shortfall(), never thrown. Without
 *    regions the R' earliest Boxes are chosen (never one Box twice), ordered by time: the first is the primary.
 *  - Capacity: top-k selection does not follow the weights it is given (the multi-pick anomaly: at rf 2 a Box
 *    with 40% of the weight gets fewer than 80% of the chunks, small Boxes get more than their share). So w is
 *    not the capacity: targets.ts defines each Box's capacity-fair inclusion (proportional to capacity, capped
 *    at every chunk once by water-filling) and solve.ts solves, once per view, for the weights whose race has
 *    exactly those inclusion probabilities (an exact integral model evaluated by quadrature, residual ~1e-10).
 *    A Box with more than 1/R' of the capacity holds every chunk once (it races with infinite weight, first of
 *    all); the capacity it cannot use is not spread over the others.
 *  - Regions: each region's earliest Box is its anchor. If R' >= G (regions among live keepers; keepers without
 *    one share the default region) every region's anchor is chosen, so each region alone holds a copy of every
 *    chunk, plus the E = R' - G earliest other Boxes; if R' < G, the anchors of the R' regions whose anchors come
 *    first, all in distinct regions. The region rule is applied to the same race without re-solving the
 *    weights: a region-aware exact solve would follow capacity inside the region constraints, but its weights
 *    shift with every added Box, and we measured 1.1x-1.7x the minimal movement for common layouts (2-4
 *    regions, equal Boxes) against exactly 1.0x for the race as is. So with regions, loads are what the rule
 *    makes of the capacity-following race (exact inclusion probabilities are still computed by the model and
 *    reported in `targets`; with one Box per region it is the region-free placement).
 *  - Movement: adding or removing a Box leaves every other Box's hash unchanged, and with equal capacities also
 *    its weight, so a chunk's set changes exactly where that Box enters or leaves it (moved = its replicas). With
 *    unequal capacities the solved weights of the others shift slightly: 1.00-1.06x the minimum for capacities
 *    within 4x and at least 4 Boxes per replica, up to ~1.1-1.3x for few Boxes near the cap with 8x+ skew
 *    (analysis.ts defines the minimum; proofs/ and the benchmark measure it).
 *  - Determinism: keepers are sorted by id, regions by name, ties broken by index, and every computation uses
 *    reproducible arithmetic in a fixed order, so every Box computes the same list in the same order.
 *
 * The repair rule and the move set are defined here too (see repairerFor and movesFor).
 */
import type { CID } from 'multiformats/cid';
import type { BoxId } from '../net.ts';
import { expVariate53 } from './detmath.ts';
import { DuplicateKeeperError, InvalidCapacityError, InvalidKeeperIdError, InvalidReplicationFactorError } from './errors.ts';
import { fmix32, hashBytes, hashString } from './hash.ts';
import type { Hash64 } from './hash.ts';
import { inclusionProbabilities, solveWeights } from './solve.ts';
import { cappedShares } from './targets.ts';
import type {
  CompiledPlacement,
  KeeperView,
  Moves,
  PlacementTarget,
  PlacementView,
  Shortfall,
} from './types.ts';

function validate(view: PlacementView): void {
  if (!Number.isInteger(view.rf) || view.rf < 0)
    throw new InvalidReplicationFactorError(`replication factor must be a whole number >= 0, got ${view.rf}`);
  const seen = new Set<string>();
  for (const k of view.keepers) {
    if (typeof k.id !== 'string' || k.id.length === 0)
      throw new InvalidKeeperIdError(`keeper id must be a non-empty string, got ${JSON.stringify(k.id)}`);
    if (seen.has(k.id)) throw new DuplicateKeeperError(`keeper ${k.id} appears twice in the view`);
    seen.add(k.id);
    if (typeof k.capacity !== 'number' || !Number.isFinite(k.capacity) || !(k.capacity > 0))
      throw new InvalidCapacityError(`keeper ${k.id} has capacity ${k.capacity}; it must be a finite number of bytes > 0`);
  }
}

function byId(a: KeeperView, b: KeeperView): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

class Placer implements CompiledPlacement {
  readonly rf: number;
  readonly replicas: number;
  readonly targets: readonly PlacementTarget[];
  readonly regions: readonly string[];
  readonly solverResidual: number;
  /** The solved race weights (Infinity = always chosen); exposed for diagnostics and proofs. */
  readonly weights: readonly number[];

  private readonly ids: BoxId[];
  private readonly n: number;
  private readonly G: number;
  private readonly A: number;
  private readonly E: number;
  private readonly regionOf: Int32Array;
  private readonly invW: Float64Array;
  private readonly always: Uint8Array;
  private readonly boxHi: Int32Array;
  private readonly boxLo: Int32Array;
  // Scratch space for one placement at a time (placement is synchronous, so sharing it is safe).
  private readonly T: Float64Array;
  private readonly anchorOf: Int32Array;
  private readonly isAnchor: Uint8Array;
  private readonly regionPick: Int32Array;
  private readonly regionMin: Float64Array;
  private readonly cut: Float64Array;
  private cutLen = 0;
  private readonly pick: Int32Array;
  private readonly kh: Hash64 = { hi: 0, lo: 0 };

  constructor(view: PlacementView) {
    validate(view);
    const live = view.keepers.filter((k) => k.live).sort(byId);
    const n = live.length;
    this.n = n;
    this.rf = view.rf;
    const R = Math.min(view.rf, n);
    this.replicas = R;
    this.ids = live.map((k) => k.id);
    const regionNames = [...new Set(live.map((k) => k.region ?? ''))].sort();
    this.regions = regionNames;
    const regionIndex = new Map(regionNames.map((r, g) => [r, g]));
    const regionOf = live.map((k) => regionIndex.get(k.region ?? '')!);
    this.regionOf = Int32Array.from(regionOf);
    const G = regionNames.length;
    this.G = G;
    this.A = Math.min(R, G);
    this.E = R - this.A;

    const capacities = live.map((k) => k.capacity);
    const fair = cappedShares(capacities, R);
    const solved = solveWeights(fair, R);
    this.weights = solved.weights;
    this.solverResidual = solved.residual;
    const always = fair.map((t) => t >= 1);
    // Without regions the race follows the fair shares exactly; with regions the region rule reshapes them and
    // the model gives the resulting inclusion probabilities.
    const inclusion =
      G <= 1 || R === 0
        ? fair
        : inclusionProbabilities(
            { n, regionOf, regionCount: G, anchors: this.A, extras: this.E, boxAlways: always },
            solved.weights,
          );
    this.always = Uint8Array.from(always, (b) => (b ? 1 : 0));
    this.invW = Float64Array.from(solved.weights, (w) => (w === Infinity ? 0 : 1 / w));

    let total = 0;
    for (const c of capacities) total += c;
    this.targets = live.map((k, i) => ({
      id: k.id,
      region: k.region ?? '',
      capacity: k.capacity,
      capacityShare: k.capacity / total,
      fair: fair[i]!,
      inclusion: inclusion[i]!,
      share: R === 0 ? 0 : inclusion[i]! / R,
    }));

    this.boxHi = new Int32Array(n);
    this.boxLo = new Int32Array(n);
    const h: Hash64 = { hi: 0, lo: 0 };
    for (let i = 0; i < n; i++) {
      hashString(this.ids[i]!, h);
      this.boxHi[i] = h.hi | 0;
      this.boxLo[i] = h.lo | 0;
    }
    this.T = new Float64Array(n);
    this.anchorOf = new Int32Array(G);
    this.isAnchor = new Uint8Array(n);
    this.regionPick = new Int32Array(G);
    this.regionMin = new Float64Array(G);
    this.cut = new Float64Array(Math.max(1, R));
    this.pick = new Int32Array(Math.max(1, n));
  }

  /**
   * Box i's race time for the key hashed into (khi, klo): X / w_i with X the Exp(1) variate of the pair, or
   * -1 / (1 + X) for an always Box (negative: before every finite Box, and ordered among always Boxes by X).
   */
  private time(i: number, khi: number, klo: number): number {
    const x = fmix32(klo ^ this.boxLo[i]!);
    const y = fmix32((khi ^ this.boxHi[i]!) + Math.imul(x, 0x9e3779b9));
    const X = expVariate53(y >>> 11, (x ^ Math.imul(y, 0x85ebca6b)) >>> 0);
    // (placeIndexes writes the same two fmix32 calls out by hand for speed.)
    return this.always[i] === 1 ? -1 / (1 + X) : X * this.invW[i]!;
  }

  placeIndexes(key: Uint8Array, out: Int32Array): number {
    const k = this.replicas;
    if (k === 0) return 0;
    const kh = hashBytes(key, this.kh);
    const khi = kh.hi | 0;
    const klo = kh.lo | 0;
    const { n, T } = this;
    if (this.G === 1) {
      // Top-k by (T, index) with an insertion-sorted buffer. A Box is skipped without its logarithm when a
      // lower bound of its time already loses: X = -ln u >= 1 - u >= (2^21 - 1 - top21bits) / 2^21, and
      // rounding is monotone, so the skip never changes the result.
      const { invW, always, boxHi, boxLo } = this;
      let len = 0;
      let tau = Infinity;
      for (let i = 0; i < n; i++) {
        // fmix32 twice, written out (this loop is the whole cost of placement).
        let x = klo ^ boxLo[i]!;
        x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
        x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
        x ^= x >>> 16;
        let y = (khi ^ boxHi[i]!) + Math.imul(x, 0x9e3779b9);
        y = Math.imul(y ^ (y >>> 16), 0x85ebca6b);
        y = Math.imul(y ^ (y >>> 13), 0xc2b2ae35);
        y ^= y >>> 16;
        const top = y >>> 11;
        let ti: number;
        if (always[i] === 1) ti = -1 / (1 + expVariate53(top, (x ^ Math.imul(y, 0x85ebca6b)) >>> 0));
        else {
          const iw = invW[i]!;
          if ((2097151 - top) * 4.76837158203125e-7 * iw >= tau) continue;
          ti = expVariate53(top, (x ^ Math.imul(y, 0x85ebca6b)) >>> 0) * iw;
          if (ti >= tau) continue; // ties keep the lower index, already in the buffer
        }
        T[i] = ti;
        let p = len < k ? len++ : k - 1;
        while (p > 0 && T[out[p - 1]!]! > ti) {
          out[p] = out[p - 1]!;
          p--;
        }
        out[p] = i;
        if (len === k) tau = T[out[k - 1]!]!;
      }
      return k;
    }
    return this.placeRegions(khi, klo, out);
  }

  /**
   * Keep `cut` = the K smallest candidate times, ascending: insert v, first removing `replaced` if it is there
   * (a region's anchor time that v supersedes). Returns the cut-off: cut[K - 1] when full, else `tau`.
   */
  private offer(v: number, replaced: number, K: number, tau: number): number {
    const cut = this.cut;
    let cl = this.cutLen;
    if (replaced !== Infinity) {
      for (let j = 0; j < cl; j++)
        if (cut[j] === replaced) {
          for (let m = j + 1; m < cl; m++) cut[m - 1] = cut[m]!;
          cl--;
          break;
        }
    }
    if (cl < K || v < cut[K - 1]!) {
      let p = cl < K ? cl++ : K - 1;
      while (p > 0 && cut[p - 1]! > v) {
        cut[p] = cut[p - 1]!;
        p--;
      }
      cut[p] = v;
    }
    this.cutLen = cl;
    return cl === K ? cut[K - 1]! : tau;
  }

  /**
   * The region rule. Times are computed in index order while tracking each region's earliest time and the
   * cut-off that a Box must beat to matter (the E-th earliest non-anchor so far when every region gets an
   * anchor, the A-th earliest region anchor otherwise). Both only decrease, so a Box whose time provably cannot
   * beat them (by the same lower bound as above) is given time +Infinity without its logarithm. The selection
   * itself then runs on the times. A region's first Box is never skipped, so every anchor has its real time.
   */
  private placeRegions(khi: number, klo: number, out: Int32Array): number {
    const { n, G, A, E, T, regionOf, anchorOf, isAnchor, regionPick, invW, always, boxHi, boxLo } = this;
    const { regionMin, cut } = this;
    regionMin.fill(Infinity);
    // cut holds the K smallest candidate times so far, ascending: non-anchors when every region gets an anchor
    // (K = E), region anchor times otherwise (K = A).
    const K = A === G ? E : A;
    this.cutLen = 0;
    // The cut-off is cut[K - 1] once K candidates are known; with no extras to compete for (A = G, E = 0) only
    // the anchors matter.
    let tau = K === 0 ? -Infinity : Infinity;
    for (let i = 0; i < n; i++) {
      let x = klo ^ boxLo[i]!;
      x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
      x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
      x ^= x >>> 16;
      let y = (khi ^ boxHi[i]!) + Math.imul(x, 0x9e3779b9);
      y = Math.imul(y ^ (y >>> 16), 0x85ebca6b);
      y = Math.imul(y ^ (y >>> 13), 0xc2b2ae35);
      y ^= y >>> 16;
      const top = y >>> 11;
      const g = regionOf[i]!;
      const rm = regionMin[g]!;
      let ti: number;
      if (always[i] === 1) ti = -1 / (1 + expVariate53(top, (x ^ Math.imul(y, 0x85ebca6b)) >>> 0));
      else {
        const iw = invW[i]!;
        const lb = (2097151 - top) * 4.76837158203125e-7 * iw;
        // A = G: skip when it can be neither its region's anchor nor among the E earliest non-anchors. A < G:
        // when it cannot be its region's anchor, or would be later than the A-th earliest region anchor
        // (strictly: region ties are broken by region index, not by processing order).
        if (A === G ? lb >= rm && lb >= tau : lb >= rm || lb > tau) {
          T[i] = Infinity;
          continue;
        }
        ti = expVariate53(top, (x ^ Math.imul(y, 0x85ebca6b)) >>> 0) * iw;
      }
      T[i] = ti;
      if (ti < rm) {
        regionMin[g] = ti;
        if (A === G) {
          if (rm !== Infinity && K > 0) tau = this.offer(rm, Infinity, K, tau); // the displaced anchor
        } else tau = this.offer(ti, rm, K, tau); // region g's anchor time drops from rm to ti
      } else if (A === G && K > 0) tau = this.offer(ti, Infinity, K, tau);
    }

    anchorOf.fill(-1);
    for (let i = 0; i < n; i++) {
      const g = regionOf[i]!;
      const a = anchorOf[g]!;
      if (a < 0 || T[i]! < T[a]!) anchorOf[g] = i;
    }
    isAnchor.fill(0);
    let len = 0;
    if (A === G) {
      for (let g = 0; g < G; g++) out[len++] = anchorOf[g]!;
    } else {
      // The A regions whose anchors come first (ties by region index).
      let rl = 0;
      for (let g = 0; g < G; g++) {
        const key = T[anchorOf[g]!]!;
        if (rl === A && key >= T[anchorOf[regionPick[A - 1]!]!]!) continue;
        let p = rl < A ? rl++ : A - 1;
        while (p > 0 && T[anchorOf[regionPick[p - 1]!]!]! > key) {
          regionPick[p] = regionPick[p - 1]!;
          p--;
        }
        regionPick[p] = g;
      }
      for (let j = 0; j < A; j++) out[len++] = anchorOf[regionPick[j]!]!;
    }
    for (let j = 0; j < len; j++) isAnchor[out[j]!] = 1;
    if (E > 0) {
      // The E earliest non-anchors.
      const base = len;
      let el = 0;
      for (let i = 0; i < n; i++) {
        if (isAnchor[i] === 1) continue;
        const ti = T[i]!;
        if (el === E && ti >= T[out[base + E - 1]!]!) continue;
        let p = el < E ? el++ : E - 1;
        while (p > 0 && T[out[base + p - 1]!]! > ti) {
          out[base + p] = out[base + p - 1]!;
          p--;
        }
        out[base + p] = i;
      }
      len += el;
    }
    // Placement order: by time, ties by index.
    for (let j = 1; j < len; j++) {
      const v = out[j]!;
      const tv = T[v]!;
      let p = j;
      while (p > 0 && (T[out[p - 1]!]! > tv || (T[out[p - 1]!]! === tv && out[p - 1]! > v))) {
        out[p] = out[p - 1]!;
        p--;
      }
      out[p] = v;
    }
    return len;
  }

  place(key: Uint8Array): BoxId[] {
    const len = this.placeIndexes(key, this.pick);
    const res: BoxId[] = new Array(len);
    for (let j = 0; j < len; j++) res[j] = this.ids[this.pick[j]!]!;
    return res;
  }

  rank(key: Uint8Array): BoxId[] {
    const len = this.placeIndexes(key, this.pick);
    const kh = hashBytes(key, this.kh);
    for (let i = 0; i < this.n; i++) this.T[i] = this.time(i, kh.hi | 0, kh.lo | 0);
    const chosen = new Set<number>();
    const res: BoxId[] = [];
    for (let j = 0; j < len; j++) {
      chosen.add(this.pick[j]!);
      res.push(this.ids[this.pick[j]!]!);
    }
    const rest: number[] = [];
    for (let i = 0; i < this.n; i++) if (!chosen.has(i)) rest.push(i);
    const T = this.T;
    rest.sort((a, b) => T[a]! - T[b]! || a - b);
    for (const i of rest) res.push(this.ids[i]!);
    return res;
  }
}

export type { Placer };

const compiled = new WeakMap<PlacementView, Placer>();

/**
 * Compile a view once: validate it, canonicalise the keeper order, solve the race weights and hash the Box ids.
 * The result places any number of chunks. Throws InvalidCapacityError, DuplicateKeeperError,
 * InvalidKeeperIdError or InvalidReplicationFactorError for a malformed view.
 */
export function compileView(view: PlacementView): CompiledPlacement & { readonly weights: readonly number[] } {
  let p = compiled.get(view);
  if (!p) {
    p = new Placer(view);
    compiled.set(view, p);
  }
  return p;
}

/**
 * Ordered keepers for a chunk (first = primary): min(rf, live keepers) distinct Boxes. `key` is the chunk's
 * multihash digest bytes. Views are treated as immutable: the compiled form is memoised per view object.
 */
export function place(key: Uint8Array, view: PlacementView): BoxId[] {
  return compileView(view).place(key);
}

/** place() for a CID (uses its multihash digest). */
export function placeCid(cid: CID, view: PlacementView): BoxId[] {
  return compileView(view).place(cid.multihash.digest);
}

/** The shortfall of a view (rf above the number of live keepers), or null when every chunk gets rf replicas. */
export function shortfall(view: PlacementView): Shortfall | null {
  if (!Number.isInteger(view.rf) || view.rf < 0)
    throw new InvalidReplicationFactorError(`replication factor must be a whole number >= 0, got ${view.rf}`);
  let live = 0;
  for (const k of view.keepers) if (k.live) live++;
  return view.rf > live ? { wanted: view.rf, possible: live } : null;
}

/**
 * The replicas that must change for one chunk when the view changes from `before` to `after`: `add` are the
 * Boxes of the new placement that were not in the old one (in new placement order), `drop` the Boxes of the old
 * placement that are not in the new one (in old placement order). Copy to `add` first, then drop.
 */
export function movesFor(key: Uint8Array, before: PlacementView, after: PlacementView): Moves {
  const b = place(key, before);
  const a = place(key, after);
  const inB = new Set(b);
  const inA = new Set(a);
  return { add: a.filter((id) => !inB.has(id)), drop: b.filter((id) => !inA.has(id)) };
}

/**
 * The one Box responsible for repairing a chunk, or null when there is nothing to repair or nothing to repair
 * from. Every Box that evaluates it with the same view, holder set and liveness answers the same.
 *
 * Rule:
 *  1. The chunk needs repair when some Box of its placement (`place(key, view)`) is not an alive holder, i.e.
 *     fewer than `replicas` alive copies sit where placement wants them.
 *  2. It can be repaired only if some alive Box holds it (`holders` may include Boxes outside the placement, or
 *     no longer live, still holding an old copy). Otherwise null: nobody has a copy to make copies from.
 *  3. The repairer is the first alive Box in placement order (the primary if it is alive). It pulls the chunk
 *     from an alive holder if it lacks it and pushes it to the other placement Boxes that lack it.
 *  4. If no Box of the placement is alive, the repairer is the first alive holder in rank order (the live
 *     keepers by race time for this chunk), then by id among holders that are not live keepers. It keeps
 *     custody until the placement's Boxes return or the view changes.
 * Like IPFS Cluster's "closest peer repins", but on our own deterministic order, so repair is neither skipped
 * (some alive Box is always named while a copy survives) nor duplicated (exactly one is named).
 */
export function repairerFor(
  key: Uint8Array,
  view: PlacementView,
  holders: ReadonlySet<BoxId>,
  alive: (id: BoxId) => boolean,
): BoxId | null {
  const placer = compileView(view);
  const targets = placer.place(key);
  let complete = true;
  for (const id of targets)
    if (!holders.has(id) || !alive(id)) {
      complete = false;
      break;
    }
  if (complete) return null;
  let source = false;
  for (const id of holders)
    if (alive(id)) {
      source = true;
      break;
    }
  if (!source) return null;
  for (const id of targets) if (alive(id)) return id;
  const ranked = placer.rank(key);
  for (const id of ranked) if (holders.has(id) && alive(id)) return id;
  const inView = new Set(ranked);
  const outside = [...holders].filter((id) => !inView.has(id) && alive(id)).sort();
  return outside[0] ?? null;
}
