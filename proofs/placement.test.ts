/**
 * Chunk placement (core/placement/), property by property:
 *   - determinism: the same view gives the same ordered placement whatever the keeper order and object identity;
 *   - shape: min(rf, live) distinct live Boxes, never a non-live one; rank() extends the placement;
 *   - regions: every region holds a replica of every chunk when replicas >= regions, distinct regions otherwise;
 *   - minimal movement: with equal capacities, adding or removing one Box changes only the chunks that Box
 *     enters or leaves (moved == its load, exactly), and moved <= 1.1x the theoretical minimum (analysis.ts);
 *     with unequal capacities (ratio <= 4, at least 4 Boxes per replica) moved <= 1.1x the minimum as well;
 *   - balance: equal capacities, 5-50 Boxes, rf 1-5: max/mean load <= 1.05;
 *   - capacity-following: solved weights hit the capacity-fair shares (model residual <= 1e-9) and sampled loads
 *     sit within binomial noise of them; a Box with more than 1/rf of the capacity holds every chunk once;
 *   - repair: exactly one Box is named for an under-replicated chunk that has a surviving copy, every Box names
 *     the same one, and nobody is named when there is nothing to do or nothing to copy from;
 *   - movesFor agrees with place() before and after; shortfall is reported, not thrown.
 * Chunk counts are sized per case so that binomial noise stays well inside each bound (the 1M-chunk figures are
 * in `npm run bench:placement` and `reserve sim placement`).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DuplicateKeeperError,
  InvalidCapacityError,
  InvalidKeeperIdError,
  InvalidReplicationFactorError,
  cappedShares,
  compileView,
  measureChange,
  measureLayout,
  movesFor,
  place,
  placeCid,
  repairerFor,
  shortfall,
  syntheticKeys,
} from '../core/placement/index.ts';
import type { KeeperView, PlacementView } from '../core/placement/index.ts';
import { cidOf, RAW_CODE } from '../core/blocks/cid.ts';
import { expVariate53 } from '../core/placement/detmath.ts';
import { fmix32, hashBytes, hashString } from '../core/placement/hash.ts';
import { ReserveError } from '../core/errors.ts';
import { propertyOptions } from './support/fc.ts';

// ---------------------------------------------------------------------------------------------------------------
// Generators

/** Box ids: distinct, of mixed shapes (peer-id-like, short, with unicode), so sorting and hashing see variety. */
const idArb = fc.oneof(
  fc.stringMatching(/^12D3KooW[1-9A-HJ-NP-Za-km-z]{8,20}$/),
  fc.string({ minLength: 1, maxLength: 12 }),
  fc.nat({ max: 10_000 }).map((n) => `box-${n}`),
);

interface ViewSpec {
  ids: string[];
  capacities: number[];
  regions: number; // 1 = no regions
  regionOf: number[];
  live: boolean[];
  rf: number;
}

function viewOf(s: ViewSpec): PlacementView {
  return {
    rf: s.rf,
    keepers: s.ids.map((id, i) => {
      const k: KeeperView = { id, capacity: s.capacities[i]!, live: s.live[i]! };
      if (s.regions > 1) k.region = `r${s.regionOf[i]}`;
      return k;
    }),
  };
}

const viewSpecArb = (opts: { minBoxes?: number; maxBoxes?: number; allLive?: boolean; maxRegions?: number } = {}) =>
  fc
    .uniqueArray(idArb, { minLength: opts.minBoxes ?? 1, maxLength: opts.maxBoxes ?? 16 })
    .chain((ids) =>
      fc.record({
        ids: fc.constant(ids),
        capacities: fc.array(fc.oneof(fc.integer({ min: 1, max: 16 }), fc.double({ min: 0.5, max: 4e12, noNaN: true })), {
          minLength: ids.length,
          maxLength: ids.length,
        }),
        regions: fc.integer({ min: 1, max: Math.min(opts.maxRegions ?? 4, ids.length) }),
        regionOf: fc.array(fc.nat({ max: 3 }), { minLength: ids.length, maxLength: ids.length }),
        live: opts.allLive
          ? fc.constant(ids.map(() => true))
          : fc.array(fc.boolean(), { minLength: ids.length, maxLength: ids.length }).map((l) => l.map((x, i) => x || i === 0)),
        rf: fc.integer({ min: 0, max: 6 }),
      }),
    )
    .map((s) => ({ ...s, regionOf: s.regionOf.map((r, i) => (i < s.regions ? i : r % s.regions)) }));

/** A deterministic permutation of `xs` driven by `seed`. */
function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = xs.slice();
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const j = (s >>> 0) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

function keysOf(seed: number, count: number): Uint8Array[] {
  const src = syntheticKeys(seed, count);
  return Array.from({ length: count }, (_, j) => src.key(j, new Uint8Array(32)));
}

// ---------------------------------------------------------------------------------------------------------------

describe('placement: determinism and shape', () => {
  it('is independent of keeper order and of object identity', () => {
    fc.assert(
      fc.property(viewSpecArb(), fc.nat(), fc.nat(), (spec, perm, seed) => {
        const a = viewOf(spec);
        const b: PlacementView = { rf: spec.rf, keepers: shuffled(a.keepers, perm).map((k) => ({ ...k })) };
        const ca = compileView(a);
        const cb = compileView(b);
        expect(cb.weights).toEqual(ca.weights);
        for (const key of keysOf(seed, 60)) expect(place(key, b)).toEqual(place(key, a));
      }),
      propertyOptions('placement is independent of keeper order', { numRuns: 50 }),
    );
  });

  it('places min(rf, live) distinct live Boxes and rank() extends the placement', () => {
    fc.assert(
      fc.property(viewSpecArb(), fc.nat(), (spec, seed) => {
        const view = viewOf(spec);
        const liveIds = new Set(view.keepers.filter((k) => k.live).map((k) => k.id));
        const placer = compileView(view);
        const want = Math.min(spec.rf, liveIds.size);
        expect(placer.replicas).toBe(want);
        const out = new Int32Array(64);
        for (const key of keysOf(seed, 40)) {
          const ids = placer.place(key);
          expect(ids).toHaveLength(want);
          expect(new Set(ids).size).toBe(want);
          for (const id of ids) expect(liveIds.has(id)).toBe(true);
          const len = placer.placeIndexes(key, out);
          expect(Array.from(out.subarray(0, len), (i) => placer.targets[i]!.id)).toEqual(ids);
          const ranked = placer.rank(key);
          expect(ranked.slice(0, want)).toEqual(ids);
          expect(new Set(ranked)).toEqual(liveIds);
          expect(ranked).toHaveLength(liveIds.size);
        }
      }),
      propertyOptions('placement shape', { numRuns: 50 }),
    );
  });

  it('the optimised selection equals a plain reference implementation of the rule', () => {
    // The rule written out naively: every time computed, sorted, anchors and extras picked from the sorted list.
    function reference(view: PlacementView, key: Uint8Array): string[] {
      const p = compileView(view);
      const kh = hashBytes(key);
      const T = p.targets.map((t, i) => {
        const bh = hashString(t.id);
        const x = fmix32(kh.lo ^ bh.lo);
        const y = fmix32((kh.hi ^ bh.hi) + Math.imul(x, 0x9e3779b9));
        const X = expVariate53(y >>> 11, (x ^ Math.imul(y, 0x85ebca6b)) >>> 0);
        return p.weights[i] === Infinity ? -1 / (1 + X) : X * (1 / p.weights[i]!);
      });
      const order = T.map((_, i) => i).sort((a, b) => T[a]! - T[b]! || a - b);
      const regions = p.regions;
      const regionOf = p.targets.map((t) => regions.indexOf(t.region));
      const anchor = regions.map((_, g) => order.find((i) => regionOf[i] === g)!);
      let chosen: number[];
      if (p.replicas >= regions.length) {
        const extras = order.filter((i) => !anchor.includes(i)).slice(0, p.replicas - regions.length);
        chosen = [...anchor, ...extras];
      } else {
        const byAnchor = regions.map((_, g) => g).sort((a, b) => T[anchor[a]!]! - T[anchor[b]!]! || a - b);
        chosen = byAnchor.slice(0, p.replicas).map((g) => anchor[g]!);
      }
      if (p.replicas === 0) chosen = [];
      return chosen.sort((a, b) => T[a]! - T[b]! || a - b).map((i) => p.targets[i]!.id);
    }
    fc.assert(
      fc.property(viewSpecArb({ maxBoxes: 24 }), fc.nat(), (spec, seed) => {
        const view = viewOf(spec);
        for (const key of keysOf(seed, 150)) expect(place(key, view)).toEqual(reference(view, key));
      }),
      propertyOptions('placement matches its reference', { numRuns: 60 }),
    );
  });

  it('with one Box per region, placement is the region-free placement', () => {
    fc.assert(
      fc.property(viewSpecArb({ minBoxes: 2, maxBoxes: 12, allLive: true }), fc.nat(), (spec, seed) => {
        const plain = viewOf({ ...spec, regions: 1 });
        const regional: PlacementView = { rf: spec.rf, keepers: plain.keepers.map((k) => ({ ...k, region: `own-${k.id}` })) };
        for (const key of keysOf(seed, 50)) expect(place(key, regional)).toEqual(place(key, plain));
        const a = compileView(plain).targets;
        const b = compileView(regional).targets;
        for (let i = 0; i < a.length; i++) expect(b[i]!.inclusion).toBeCloseTo(a[i]!.inclusion, 8);
      }),
      propertyOptions('placement singleton regions', { numRuns: 50 }),
    );
  });

  it('placeCid places by the multihash digest', () => {
    const view = viewOf({ ids: ['a', 'b', 'c', 'd'], capacities: [1, 2, 3, 4], regions: 1, regionOf: [0, 0, 0, 0], live: [true, true, true, true], rf: 2 });
    for (let i = 0; i < 20; i++) {
      const cid = cidOf(RAW_CODE, new TextEncoder().encode(`chunk ${i}`));
      expect(placeCid(cid, view)).toEqual(place(cid.multihash.digest, view));
    }
  });

  it('spreads replicas over regions: every region when replicas >= regions, distinct regions otherwise', () => {
    fc.assert(
      fc.property(viewSpecArb({ maxRegions: 4 }), fc.nat(), (spec, seed) => {
        const view = viewOf(spec);
        const placer = compileView(view);
        const regionOf = new Map(placer.targets.map((t) => [t.id, t.region]));
        const G = placer.regions.length;
        for (const key of keysOf(seed, 40)) {
          const regions = placer.place(key).map((id) => regionOf.get(id)!);
          if (placer.replicas >= G) expect(new Set(regions).size).toBe(G);
          else expect(new Set(regions).size).toBe(placer.replicas);
        }
      }),
      propertyOptions('placement region spread'),
    );
  });

  it('pins placements to golden values (every Box, every version must agree)', () => {
    const view: PlacementView = {
      rf: 3,
      keepers: [
        { id: '12D3KooWAlpha', capacity: 3e12, live: true },
        { id: '12D3KooWBravo', capacity: 2e12, live: true },
        { id: '12D3KooWCharlie', capacity: 1e12, live: true },
        { id: '12D3KooWDelta', capacity: 1e12, live: true },
        { id: '12D3KooWEcho', capacity: 8e12, live: false },
        { id: '12D3KooWFoxtrot', capacity: 3e12, live: true },
      ],
    };
    const regional: PlacementView = {
      rf: 2,
      keepers: view.keepers.map((k, i) => ({ ...k, region: ['home', 'cabin', 'office'][i % 3]! })),
    };
    const keys = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => cidOf(RAW_CODE, new TextEncoder().encode(`golden ${i}`)));
    expect(keys.map((k) => placeCid(k, view))).toEqual(GOLDEN_PLAIN);
    expect(keys.map((k) => placeCid(k, regional))).toEqual(GOLDEN_REGIONS);
  });
});

// Computed once from this implementation; a change here means Boxes on different versions would disagree.
const GOLDEN_PLAIN: string[][] = [
  ['12D3KooWAlpha', '12D3KooWBravo', '12D3KooWDelta'],
  ['12D3KooWAlpha', '12D3KooWFoxtrot', '12D3KooWDelta'],
  ['12D3KooWAlpha', '12D3KooWDelta', '12D3KooWFoxtrot'],
  ['12D3KooWBravo', '12D3KooWFoxtrot', '12D3KooWAlpha'],
  ['12D3KooWFoxtrot', '12D3KooWAlpha', '12D3KooWCharlie'],
  ['12D3KooWAlpha', '12D3KooWFoxtrot', '12D3KooWDelta'],
  ['12D3KooWFoxtrot', '12D3KooWAlpha', '12D3KooWBravo'],
  ['12D3KooWFoxtrot', '12D3KooWBravo', '12D3KooWAlpha'],
];
const GOLDEN_REGIONS: string[][] = [
  ['12D3KooWBravo', '12D3KooWAlpha'],
  ['12D3KooWAlpha', '12D3KooWFoxtrot'],
  ['12D3KooWAlpha', '12D3KooWCharlie'],
  ['12D3KooWBravo', '12D3KooWFoxtrot'],
  ['12D3KooWFoxtrot', '12D3KooWDelta'],
  ['12D3KooWAlpha', '12D3KooWCharlie'],
  ['12D3KooWFoxtrot', '12D3KooWAlpha'],
  ['12D3KooWBravo', '12D3KooWFoxtrot'],
];

describe('placement: validation and shortfall', () => {
  const base = (keepers: KeeperView[], rf = 2): PlacementView => ({ rf, keepers });

  it('rejects malformed views with named errors', () => {
    const cases: Array<[PlacementView, string]> = [
      [base([{ id: 'a', capacity: 0, live: true }]), InvalidCapacityError.name],
      [base([{ id: 'a', capacity: -1, live: true }]), InvalidCapacityError.name],
      [base([{ id: 'a', capacity: Number.NaN, live: true }]), InvalidCapacityError.name],
      [base([{ id: 'a', capacity: Infinity, live: false }]), InvalidCapacityError.name],
      [base([{ id: 'a', capacity: 1, live: true }, { id: 'a', capacity: 2, live: false }]), DuplicateKeeperError.name],
      [base([{ id: '', capacity: 1, live: true }]), InvalidKeeperIdError.name],
      [base([{ id: 'a', capacity: 1, live: true }], 1.5), InvalidReplicationFactorError.name],
      [base([{ id: 'a', capacity: 1, live: true }], -1), InvalidReplicationFactorError.name],
    ];
    for (const [view, name] of cases) {
      let caught: unknown;
      try {
        compileView(view);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ReserveError);
      expect((caught as Error).name).toBe(name);
    }
  });

  it('reports a shortfall instead of throwing, and places on every live keeper', () => {
    fc.assert(
      fc.property(viewSpecArb({ maxBoxes: 8 }), fc.nat(), (spec, seed) => {
        const view = viewOf(spec);
        const live = view.keepers.filter((k) => k.live).length;
        const s = shortfall(view);
        if (spec.rf > live) expect(s).toEqual({ wanted: spec.rf, possible: live });
        else expect(s).toBeNull();
        for (const key of keysOf(seed, 5)) expect(place(key, view)).toHaveLength(Math.min(spec.rf, live));
      }),
      propertyOptions('placement shortfall'),
    );
  });

  it('places nothing for rf 0 or no live keeper', () => {
    const key = new Uint8Array(32);
    expect(place(key, base([{ id: 'a', capacity: 1, live: true }], 0))).toEqual([]);
    expect(place(key, base([{ id: 'a', capacity: 1, live: false }], 2))).toEqual([]);
    expect(shortfall(base([{ id: 'a', capacity: 1, live: false }], 2))).toEqual({ wanted: 2, possible: 0 });
  });
});

// ---------------------------------------------------------------------------------------------------------------

function equalView(n: number, rf: number, regions: number, tag: string, extra = 0): PlacementView {
  return {
    rf,
    keepers: Array.from({ length: n + extra }, (_, i) => {
      const k: KeeperView = { id: `${tag}-${i}`, capacity: 1, live: true };
      if (regions > 1) k.region = `r${i % regions}`;
      return k;
    }),
  };
}

describe('placement: minimal movement', () => {
  it('equal capacities: adding or removing one Box moves exactly its replicas, within 1.1x the minimum', () => {
    fc.assert(
      fc.property(
        fc.record({
          n: fc.integer({ min: 5, max: 40 }),
          rf: fc.integer({ min: 1, max: 5 }),
          regions: fc.integer({ min: 1, max: 4 }),
          seed: fc.nat(),
          remove: fc.boolean(),
        }),
        ({ n, rf, regions, seed, remove }) => {
          const small = equalView(n, rf, regions, `m${seed}`);
          const big: PlacementView = { rf, keepers: [...small.keepers, { id: `m${seed}-new`, capacity: 1, live: true, ...(regions > 1 ? { region: `r${seed % regions}` } : {}) }] };
          // Enough chunks that the minimal move count is >= ~3000 (binomial noise ~1.8%, the bound is 10%).
          const chunks = Math.ceil((3000 * (n + 1)) / Math.min(rf, n + 1));
          const r = remove ? measureChange(big, small, syntheticKeys(seed, chunks)) : measureChange(small, big, syntheticKeys(seed, chunks));
          // Insertion-only: every changed chunk gained (or lost) exactly the changed Box.
          if (remove) expect(r.moved).toBe(r.removedLoad);
          else expect(r.moved).toBe(r.addedLoad);
          expect(r.dropped).toBe(r.moved);
          expect(r.changedChunks).toBe(r.moved);
          expect(r.moved).toBeLessThanOrEqual(1.1 * r.minimal);
        },
      ),
      propertyOptions('placement movement, equal capacities', { numRuns: 10 }),
    );
  });

  it('unequal capacities (ratio <= 4, >= 4 Boxes per replica): moved <= 1.1x the minimum', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }).chain((rf) =>
          fc.record({
            rf: fc.constant(rf),
            caps: fc.array(fc.integer({ min: 25, max: 100 }), { minLength: 4 * rf + 1, maxLength: Math.max(4 * rf + 1, 20) }),
            seed: fc.nat(),
            which: fc.nat(),
            remove: fc.boolean(),
          }),
        ),
        ({ rf, caps, seed, which, remove }) => {
          const keepers = caps.map((c, i) => ({ id: `u${seed}-${i}`, capacity: c, live: true }));
          const j = which % keepers.length;
          const big: PlacementView = { rf, keepers };
          const small: PlacementView = { rf, keepers: keepers.filter((_, i) => i !== j) };
          const share = compileView(big).targets.find((t) => t.id === keepers[j]!.id)!.inclusion;
          const chunks = Math.ceil(3000 / share);
          const r = remove ? measureChange(big, small, syntheticKeys(seed, chunks)) : measureChange(small, big, syntheticKeys(seed, chunks));
          expect(r.minimal).toBeGreaterThan(2500);
          expect(r.moved).toBeLessThanOrEqual(1.1 * r.minimal);
        },
      ),
      propertyOptions('placement movement, unequal capacities', { numRuns: 12 }),
    );
  });
});

describe('placement: balance and capacity', () => {
  it('equal capacities, 5-50 Boxes, rf 1-5: max/mean load <= 1.05', () => {
    fc.assert(
      fc.property(fc.integer({ min: 5, max: 50 }), fc.integer({ min: 1, max: 5 }), fc.nat(), (n, rf, seed) => {
        const view = equalView(n, rf, 1, `b${seed}`);
        const placer = compileView(view);
        for (const t of placer.targets) expect(t.inclusion).toBeCloseTo(rf / n, 12);
        // Mean load >= 6400 replicas: binomial noise ~1.25%, so 1.05 is >= 4 sigma above the largest of 50 Boxes.
        const chunks = Math.ceil((6400 * n) / rf);
        const layout = measureLayout(view, syntheticKeys(seed, chunks));
        expect(layout.maxOverMean).toBeLessThanOrEqual(1.05);
      }),
      propertyOptions('placement balance', { numRuns: 8 }),
    );
  });

  it('unequal capacities: solved weights hit the capacity-fair shares, and sampled loads follow them', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 16 }), { minLength: 2, maxLength: 12 }),
        fc.integer({ min: 1, max: 5 }),
        fc.nat(),
        (caps, rf, seed) => {
          const view: PlacementView = { rf, keepers: caps.map((c, i) => ({ id: `c${seed}-${i}`, capacity: c, live: true })) };
          const placer = compileView(view);
          expect(placer.solverResidual).toBeLessThanOrEqual(1e-9);
          // The fair shares are capacity-proportional up to the one-replica cap (water-filling).
          const R = placer.replicas;
          const total = placer.targets.reduce((s, t) => s + t.inclusion, 0);
          expect(total).toBeCloseTo(R, 9);
          const free = placer.targets.filter((t) => t.inclusion < 1);
          for (const t of free) expect(t.inclusion / t.capacity).toBeCloseTo(free[0]!.inclusion / free[0]!.capacity, 9);
          for (const t of placer.targets.filter((x) => x.inclusion === 1))
            for (const f of free) expect(t.capacity).toBeGreaterThanOrEqual(f.capacity);
          const chunks = 30_000;
          const layout = measureLayout(view, syntheticKeys(seed, chunks));
          for (const b of layout.boxes) {
            if (b.expected === chunks) expect(b.load).toBe(chunks);
            // 5% of the fair share, or 5 binomial sigmas where the share is too small for 5% to be measurable.
            else expect(Math.abs(b.load - b.expected)).toBeLessThanOrEqual(Math.max(0.05 * b.expected, 5 * Math.sqrt(b.expected)));
          }
        },
      ),
      propertyOptions('placement follows capacity', { numRuns: 25 }),
    );
  });

  it('a Box with more than 1/rf of the capacity holds every chunk once; the rest share by capacity', () => {
    const view: PlacementView = {
      rf: 2,
      keepers: [
        { id: 'huge', capacity: 100, live: true },
        { id: 'a', capacity: 30, live: true },
        { id: 'b', capacity: 20, live: true },
        { id: 'c', capacity: 10, live: true },
      ],
    };
    expect(cappedShares([100, 30, 20, 10], 2)).toEqual([1, 0.5, 1 / 3, 1 / 6]);
    const chunks = 120_000;
    const layout = measureLayout(view, syntheticKeys(7, chunks));
    const load = new Map(layout.boxes.map((b) => [b.id, b.load]));
    expect(load.get('huge')).toBe(chunks);
    for (const [id, share] of [['a', 0.5], ['b', 1 / 3], ['c', 1 / 6]] as const)
      expect(Math.abs(load.get(id)! / (share * chunks) - 1)).toBeLessThan(0.05);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('placement: repair and moves', () => {
  it('names exactly one alive repairer for an under-replicated chunk with a surviving copy, the same on every Box', () => {
    fc.assert(
      fc.property(
        viewSpecArb({ maxBoxes: 10 }),
        fc.nat(),
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        fc.boolean(),
        (spec, seed, holdBits, aliveBits, strayHolder) => {
          const view = viewOf(spec);
          const ids = view.keepers.map((k) => k.id);
          const holdersList = ids.filter((_, i) => holdBits[i]);
          if (strayHolder) holdersList.push('not-a-keeper');
          const aliveSet = new Set([...ids, 'not-a-keeper'].filter((_, i) => aliveBits[i % 12]));
          const alive = (id: string) => aliveSet.has(id);
          for (const key of keysOf(seed, 6)) {
            const targets = place(key, view);
            const answer = repairerFor(key, view, new Set(holdersList), alive);
            // Every Box computes it from its own copy of the state: another keeper order, another Set order.
            const other: PlacementView = { rf: view.rf, keepers: shuffled(view.keepers, seed + 1).map((k) => ({ ...k })) };
            expect(repairerFor(key, other, new Set(shuffled(holdersList, seed + 2)), alive)).toBe(answer);
            const complete = targets.every((id) => holdersList.includes(id) && alive(id));
            const source = holdersList.some(alive);
            if (complete || !source) {
              expect(answer).toBeNull();
              continue;
            }
            expect(answer).not.toBeNull();
            expect(alive(answer!)).toBe(true);
            const firstAliveTarget = targets.find(alive);
            if (firstAliveTarget !== undefined) expect(answer).toBe(firstAliveTarget);
            else expect(holdersList).toContain(answer);
            // "Am I the repairer?" asked by every Box: exactly one yes.
            const everyone = new Set([...ids, ...holdersList]);
            expect([...everyone].filter((b) => repairerFor(key, view, new Set(holdersList), alive) === b)).toHaveLength(1);
          }
        },
      ),
      propertyOptions('placement repairer', { numRuns: 60 }),
    );
  });

  it('movesFor turns the old placement into the new one', () => {
    fc.assert(
      fc.property(viewSpecArb({ maxBoxes: 12 }), viewSpecArb({ maxBoxes: 12 }), fc.nat(), (s1, s2, seed) => {
        // Two views over overlapping keepers: the second reuses some of the first's ids.
        const before = viewOf(s1);
        const after = viewOf({ ...s2, ids: s2.ids.map((id, i) => (i < s1.ids.length && i % 2 === 0 ? s1.ids[i]! : id)) });
        if (new Set(after.keepers.map((k) => k.id)).size !== after.keepers.length) return;
        for (const key of keysOf(seed, 20)) {
          const b = place(key, before);
          const a = place(key, after);
          const { add, drop } = movesFor(key, before, after);
          expect(add).toEqual(a.filter((id) => !b.includes(id)));
          expect(drop).toEqual(b.filter((id) => !a.includes(id)));
          const result = new Set([...b.filter((id) => !drop.includes(id)), ...add]);
          expect(result).toEqual(new Set(a));
        }
      }),
      propertyOptions('placement movesFor', { numRuns: 60 }),
    );
  });
});
