/**
 * Reconciliation between two holdings indexes (core/holdings/reconcile.ts): it finds exactly the symmetric
 * difference, restricted to a partition filter when one is given; its cost grows with the number of differences
 * times the depth, not with the number of blocks; it respects the message limit by splitting rounds; it refuses
 * answers that do not fit the question; and it runs over the Network port (here the simulator's network).
 */
import { splitmixWords } from '../simulations/sim/rng.ts';
import fc from 'fast-check';
import type { CID } from 'multiformats/cid';
import { describe, expect, it } from 'vitest';
import { cidFromSha256, DAG_CBOR_CODE, RAW_CODE } from '../core/blocks/cid.ts';
import {
  answer,
  DEFAULT_GEOMETRY,
  HASH_BYTES,
  HOLDINGS_PROTOCOL,
  HoldingsGeometryMismatchError,
  HoldingsIndex,
  holderReport,
  MalformedHoldingsMessageError,
  PartitionFilter,
  reconcile,
  reconcileWith,
  serveHoldings,
} from '../core/holdings/index.ts';
import type { HoldingsGeometry, ReconcileResult } from '../core/holdings/index.ts';
import { decodeRequest, decodeResponse, encodeResponse } from '../core/holdings/codec.ts';
import { RemoteError } from '../core/net.ts';
import { Life } from '../simulations/sim/scheduler.ts';
import { SimWorld } from '../simulations/sim/world.ts';
import { propertyOptions } from './support/fc.ts';


function makeCids(seed: number, n: number): CID[] {
  const next = splitmixWords(seed);
  const out: CID[] = [];
  for (let i = 0; i < n; i++) {
    const d = new Uint8Array(32);
    const v = new DataView(d.buffer);
    for (let w = 0; w < 8; w++) v.setUint32(w * 4, next());
    out.push(cidFromSha256(next() & 1 ? RAW_CODE : DAG_CBOR_CODE, d));
  }
  return out;
}

interface Pair {
  a: HoldingsIndex;
  b: HoldingsIndex;
  onlyA: CID[];
  onlyB: CID[];
}

/** CIDs are costly to make (several allocations each): the properties draw their sets from one shared pool. */
const POOL_SIZE = 52_000;
let pool: CID[] | undefined;

/** `n` distinct pool CIDs chosen by `seed` (a partial Fisher-Yates shuffle of the pool's positions). */
function draw(seed: number, n: number): CID[] {
  pool ??= makeCids(0x5eed, POOL_SIZE);
  if (n > POOL_SIZE) throw new Error(`the pool holds ${POOL_SIZE} CIDs, ${n} asked for`);
  const next = splitmixWords(seed);
  const order = new Int32Array(POOL_SIZE);
  for (let i = 0; i < POOL_SIZE; i++) order[i] = i;
  const out: CID[] = [];
  for (let i = 0; i < n; i++) {
    const j = i + (next() % (POOL_SIZE - i));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
    out.push(pool[order[i]!]!);
  }
  return out;
}

/** Two indexes sharing `shared` blocks, with `onlyA` and `onlyB` extra blocks on each side. */
function pair(seed: number, shared: number, onlyA: number, onlyB: number, geometry: HoldingsGeometry = DEFAULT_GEOMETRY): Pair {
  const all = draw(seed, shared + onlyA + onlyB);
  const common = all.slice(0, shared);
  const xa = all.slice(shared, shared + onlyA);
  const xb = all.slice(shared + onlyA);
  const a = new HoldingsIndex(geometry);
  for (const c of common) a.add(c, 1);
  const b = HoldingsIndex.restore(a.serialise());
  for (const c of xa) a.add(c, 1);
  for (const c of xb) b.add(c, 1);
  return { a, b, onlyA: xa, onlyB: xb };
}

const ask = (remote: HoldingsIndex) => async (req: Uint8Array) => answer(remote, req);

function keys(cids: CID[]): string[] {
  return cids.map((c) => c.toString()).sort();
}

function total(r: ReconcileResult): number {
  return r.stats.bytesSent + r.stats.bytesReceived;
}

const GEOMETRIES: HoldingsGeometry[] = [
  { partitionBits: 4, levelBits: 2 },
  { partitionBits: 8, levelBits: 2 },
  { partitionBits: 12, levelBits: 4 },
  { partitionBits: 8, levelBits: 8 },
  DEFAULT_GEOMETRY,
];

describe('reconcile: finds exactly the symmetric difference', () => {
  it('for random sets and random differences, both ways round', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.oneof({ weight: 5, arbitrary: fc.integer({ min: 0, max: 3000 }) }, { weight: 1, arbitrary: fc.integer({ min: 3000, max: 50_000 }) }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: 0, max: 200 }),
        fc.constantFrom(...GEOMETRIES),
        async (seed, shared, na, nb, geometry) => {
          const p = pair(seed, shared, na, nb, geometry);
          const ab = await reconcile(p.a, ask(p.b));
          expect(keys(ab.onlyLocal)).toEqual(keys(p.onlyA));
          expect(keys(ab.onlyRemote)).toEqual(keys(p.onlyB));
          const ba = await reconcile(p.b, ask(p.a));
          expect(keys(ba.onlyLocal)).toEqual(keys(p.onlyB));
          expect(keys(ba.onlyRemote)).toEqual(keys(p.onlyA));
          expect(ab.stats.rounds).toBeLessThanOrEqual(p.a.depth + 1);
          // applying the difference makes the two equal
          for (const c of ab.onlyRemote) p.a.add(c, 1);
          for (const c of ab.onlyLocal) p.a.delete(c);
          expect(p.a.root()).toEqual(p.b.root());
        },
      ),
      propertyOptions('holdings: reconcile finds the symmetric difference', { numRuns: 35 }),
    );
  });

  it('within a partition filter, finds the difference restricted to the filter, and nothing else', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 0, max: 4000 }),
        fc.integer({ min: 0, max: 150 }),
        fc.integer({ min: 0, max: 150 }),
        fc.constantFrom(...GEOMETRIES),
        fc.oneof(
          fc.array(fc.tuple(fc.nat(), fc.nat(64)), { maxLength: 8 }).map((rs) => ({ kind: 'ranges' as const, rs })),
          fc.integer({ min: 0, max: 2 ** 31 - 1 }).map((s) => ({ kind: 'random' as const, s })),
        ),
        async (seed, shared, na, nb, geometry, spec) => {
          const p = pair(seed, shared, na, nb, geometry);
          const parts = p.a.partitions;
          const filter =
            spec.kind === 'ranges'
              ? PartitionFilter.ranges(parts, spec.rs.map(([s, len]) => [s % parts, Math.min(parts, (s % parts) + len)] as [number, number]))
              : PartitionFilter.where(parts, (x) => ((splitmixWords(spec.s ^ x)() >>> 7) & 1) === 1);
          const inFilter = (c: CID): boolean => filter.includes(p.a.partitionOf(c));
          const r = await reconcile(p.a, ask(p.b), { filter });
          expect(keys(r.onlyLocal)).toEqual(keys(p.onlyA.filter(inFilter)));
          expect(keys(r.onlyRemote)).toEqual(keys(p.onlyB.filter(inFilter)));
        },
      ),
      propertyOptions('holdings: reconcile within a partition filter', { numRuns: 40 }),
    );
  });

  it('handles an empty side, identical sets, and a known remote report', async () => {
    const cids = makeCids(1, 5000);
    const full = HoldingsIndex.from(cids.map((c) => [c, 1] as const));
    const empty = new HoldingsIndex();
    const pull = await reconcile(empty, ask(full));
    expect(keys(pull.onlyRemote)).toEqual(keys(cids));
    expect(pull.onlyLocal).toEqual([]);
    const push = await reconcile(full, ask(empty));
    expect(keys(push.onlyLocal)).toEqual(keys(cids));
    expect(push.stats.rounds).toBe(1); // the remote's children are all empty: nothing more to ask
    const same = await reconcile(full, ask(HoldingsIndex.restore(full.serialise())));
    expect(same.onlyLocal).toEqual([]);
    expect(same.onlyRemote).toEqual([]);
    expect(same.stats.rounds).toBe(1);
    expect(total(same)).toBeLessThan(16 * (HASH_BYTES + 4) + 32);
    const known = await reconcile(full, async () => {
      throw new Error('must not be asked');
    }, { remoteReport: holderReport(full) });
    expect(known.stats.rounds).toBe(0);
    const none = await reconcile(full, ask(empty), { filter: PartitionFilter.of(full.partitions, []) });
    expect(none.stats.rounds).toBe(0);
    expect(none.onlyLocal).toEqual([]);
  });
});

describe('reconcile: cost', () => {
  it('bytes exchanged stay within 64 (d+1) depth hashSize plus the differing buckets, never near the full list', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.oneof(fc.integer({ min: 1000, max: 10_000 }), fc.integer({ min: 10_000, max: 50_000 })),
        fc.integer({ min: 0, max: 60 }),
        fc.integer({ min: 0, max: 60 }),
        async (seed, shared, na, nb) => {
          const p = pair(seed, shared, na, nb);
          const r = await reconcile(p.a, ask(p.b));
          const d = na + nb;
          let largest = 0;
          for (let bkt = 0; bkt < p.a.partitions; bkt++) largest = Math.max(largest, p.a.bucketSize(bkt), p.b.bucketSize(bkt));
          // per difference: its bucket's entries both ways (<= 2 x 40 bytes each)
          const bound = 64 * (d + 1) * p.a.depth * HASH_BYTES + d * largest * 80 + 256;
          expect(total(r)).toBeLessThanOrEqual(bound);
          // where differences are rare (d <= n / 100), a quarter of the full list is plenty
          if (d * 100 <= shared) expect(total(r)).toBeLessThan(((shared + na) * 36) / 4);
          expect(r.stats.rounds).toBeLessThanOrEqual(p.a.depth + 1);
        },
      ),
      propertyOptions('holdings: reconcile bytes grow like d log n', { numRuns: 20 }),
    );
  });

  it('grows with the differences, not with the number of blocks', async () => {
    const at = async (shared: number, d: number): Promise<number> => {
      const p = pair(shared + d, shared, d, 0);
      return total(await reconcile(p.a, ask(p.b)));
    };
    const small = await at(2_000, 10);
    const large = await at(40_000, 10);
    expect(large).toBeLessThan(small * 2); // 20x the blocks, well under 2x the bytes
    const d1 = await at(20_000, 1);
    const d100 = await at(20_000, 100);
    expect(d100).toBeLessThan(d1 * 100); // sublinear in d: differences share upper levels
    expect(d100).toBeGreaterThan(d1 * 10);
  });

  it('splits a round into several messages when the limit requires, with the same result', async () => {
    const p = pair(77, 20_000, 300, 300);
    const wide = await reconcile(p.a, ask(p.b));
    const sent: number[] = [];
    const narrow = await reconcile(
      p.a,
      async (req) => {
        sent.push(req.length);
        return answer(p.b, req, { maxMessageBytes: 4096 });
      },
      { maxMessageBytes: 4096 },
    );
    expect(keys(narrow.onlyLocal)).toEqual(keys(wide.onlyLocal));
    expect(keys(narrow.onlyRemote)).toEqual(keys(wide.onlyRemote));
    expect(narrow.stats.requests).toBeGreaterThan(narrow.stats.rounds);
    expect(narrow.stats.rounds).toBe(wide.stats.rounds);
    expect(Math.max(...sent)).toBeLessThanOrEqual(4096);
  });
});

describe('reconcile: refusals', () => {
  it('the answerer refuses another geometry; the asker refuses a filter for another partition count', async () => {
    const a = HoldingsIndex.from(makeCids(2, 50).map((c) => [c, 1] as const));
    const b = HoldingsIndex.from(makeCids(2, 50).map((c) => [c, 1] as const), { partitionBits: 12, levelBits: 4 });
    await expect(reconcile(a, ask(b))).rejects.toThrow(HoldingsGeometryMismatchError);
    await expect(reconcile(a, ask(a), { filter: PartitionFilter.all(16) })).rejects.toThrow(HoldingsGeometryMismatchError);
  });

  it('refuses answers that do not fit the question', async () => {
    const p = pair(3, 2000, 5, 5);
    type Res = ReturnType<typeof decodeResponse>;
    type Req = ReturnType<typeof decodeRequest>;
    /** Each edit returns false when this round offers nothing to tamper with (the answer then goes out intact). */
    const cases: Array<[string, (res: Res, req: Req) => boolean]> = [
      ['one node short of children', (res, req) => {
        if (req.expand.length === 0) return false;
        res.counts.splice(0, 16);
        res.hashes = res.hashes.subarray(16 * 16);
        return true;
      }],
      ['another fanout', (res) => {
        res.levelBits = 2;
        return true;
      }],
      ['an item answer missing or added', (res, req) => {
        if (req.items.length > 0) res.items.pop();
        else res.items.push({ listed: 0, missing: new Uint8Array(0), extra: new Uint8Array(0), extraCount: 0 });
        return true;
      }],
      ['an answer for a different number of listed entries', (res, req) => {
        const it = req.items.findIndex((i) => i.count > 0);
        if (it < 0) return false;
        res.items[it] = { ...res.items[it]!, listed: 0, missing: new Uint8Array(0) };
        return true;
      }],
      ['one of our own entries claimed as an extra', (res, req) => {
        const it = req.items.findIndex((i) => i.count > 0 && res.items[req.items.indexOf(i)]!.extraCount === 0);
        if (it < 0) return false;
        res.items[it] = { ...res.items[it]!, extra: req.items[it]!.keys.slice(0, 36), extraCount: 1 };
        return true;
      }],
      ['an extra entry from outside the item', (res, req) => {
        const it = req.items.findIndex((i) => i.count > 0 && i.level >= 1); // spans at most half the partitions
        if (it < 0) return false;
        const key = req.items[it]!.keys.slice(0, 36);
        key[0]! ^= 0x80;
        res.items[it] = { ...res.items[it]!, extra: key, extraCount: 1 };
        return true;
      }],
      ['blocks counted outside the filter', (res, req) => {
        if (req.expand.length === 0 || req.filter.isAll) return false;
        res.counts[res.counts.length - 1] = 1;
        return true;
      }],
    ];
    for (const [name, edit] of cases) {
      let tampered = false;
      const filter = name === 'blocks counted outside the filter' ? PartitionFilter.ranges(p.a.partitions, [[0, 1000]]) : undefined;
      const run = reconcile(
        p.a,
        async (req) => {
          const res = decodeResponse(answer(p.b, req));
          if (!tampered) tampered = edit(res, decodeRequest(req));
          return encodeResponse(res);
        },
        filter === undefined ? {} : { filter },
      );
      const outcome = await run.then(() => `${name}: resolved`, (e: Error) => (e instanceof MalformedHoldingsMessageError ? "ok" : `${name}: ${e.name}`));
      expect(outcome).toBe("ok");
      expect(tampered, name).toBe(true);
    }
    await expect(reconcile(p.a, async () => new Uint8Array([1, 0x41, 4, 9]))).rejects.toThrow(MalformedHoldingsMessageError);
  });
});

describe('reconcile over the Network port', () => {
  it('serveHoldings / reconcileWith find the difference in depth + 1 round trips of simulated time', async () => {
    const world = new SimWorld({
      seed: 5,
      net: { latency: { kind: 'fixed', ms: 25 }, upBytesPerSec: Infinity, downBytesPerSec: Infinity, discovery: 'all' },
    });
    for (const id of ['a', 'b']) world.net.register(id, { bootstrap: ['a', 'b'] });
    const ea = world.net.attach('a', new Life('a'));
    const eb = world.net.attach('b', new Life('b'));
    const p = pair(9, 30_000, 4, 6);
    serveHoldings(eb, p.b);
    serveHoldings(ea, () => p.a);
    const started = world.elapsed;
    const result = await world.settle(reconcileWith(ea, 'b', p.a, { timeoutMs: 10_000 }));
    expect(keys(result.onlyLocal)).toEqual(keys(p.onlyA));
    expect(keys(result.onlyRemote)).toEqual(keys(p.onlyB));
    expect(result.stats.rounds).toBe(p.a.depth + 1);
    expect(world.elapsed - started).toBe(result.stats.rounds * 50);

    const other = new HoldingsIndex({ partitionBits: 8, levelBits: 4 });
    const refused = await world.settle(reconcileWith(eb, 'a', other).catch((e: unknown) => e));
    expect(refused).toBeInstanceOf(RemoteError);
    expect((refused as RemoteError).remoteName).toBe('HoldingsGeometryMismatchError');
    expect(HOLDINGS_PROTOCOL).toBe('reserve/holdings/1');
  });
});
