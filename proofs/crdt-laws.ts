/**
 * The one law suite every CRDT backend passes (run by proofs/crdt-yjs.test.ts and proofs/crdt-automerge.test.ts):
 *
 * Document laws (the backend alone):
 * - convergence: replicas that each add entries and receive each other's updates in any order, with duplicates,
 *   across a partition that later heals, end with the same entries (the union of everything added);
 * - idempotence: applying an update again, or a replica's own state to itself, changes nothing;
 * - state-vector sync: a diff against a replica's state vector brings it everything it lacks, and nothing when it
 *   lacks nothing;
 * - deterministic genesis: replicas that open a document with the same genesis independently merge as one;
 * - garbage updates are refused with CrdtUpdateError (or ignored) and change nothing.
 * Reserve laws (ledgers over the backend: signed events, the reducer, compaction):
 * - every replica reaches the same state under random publishing, gossip in any order with duplicates and
 *   partitions, followed by healing, and that state is the reduce of all events published;
 * - the same with checkpoints proposed at random moments on both sides of partitions: all replicas end in the
 *   same epoch with the same state;
 * - on every replica, incremental state equals a full reduce of its epoch.
 *
 * All properties are seeded fast-check (propertyOptions); a failure prints the replay command.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyOptions } from './support/fc.ts';
import { ReserveError } from '../core/errors.ts';
import { CrdtUpdateError } from '../core/state/crdt.ts';
import type { CrdtBackend, CrdtBackendFactory } from '../core/state/crdt.ts';
import { ReserveLedger } from '../core/state/ledger.ts';
import { reduce } from '../core/state/reducer.ts';
import type { StateEvent } from '../core/state/events.ts';
import { SimRandom } from '../simulations/sim/rng.ts';
import { cidOf, RAW_CODE } from '../core/blocks/cid.ts';
import { makeWorld, ManualClock, plain, shuffle } from './crdt-fixtures.ts';

export interface LawOptions {
  /** Runs of each document law. */
  runs?: number;
  /** Runs of each reserve (ledger) law. */
  ledgerRuns?: number;
}

// ------------------------------------------------------------------------------------------------ documents

type DocOp =
  | { t: 'add'; r: number; k: number }
  | { t: 'deliver'; m: number; dup: boolean }
  | { t: 'partition'; mask: number }
  | { t: 'heal' };

const docOp = (replicas: number): fc.Arbitrary<DocOp> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ t: fc.constant('add' as const), r: fc.integer({ min: 0, max: replicas - 1 }), k: fc.integer({ min: 0, max: 40 }) }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('deliver' as const), m: fc.nat(), dup: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('partition' as const), mask: fc.nat(15) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('heal' as const) }) },
  );

function bytesFor(k: number): Uint8Array {
  return new TextEncoder().encode(`entry ${k} `.repeat(1 + (k % 5)));
}

function idFor(k: number): string {
  return cidOf(RAW_CODE, bytesFor(k)).toString();
}

function entrySet(doc: CrdtBackend): string[] {
  return [...doc.entries()].map(([id, b]) => `${id}=${Buffer.from(b).toString('hex')}`).sort();
}

function openReplicas(factory: CrdtBackendFactory, n: number, seed: number): CrdtBackend[] {
  return Array.from({ length: n }, (_, i) => factory({ random: new SimRandom(seed).fork(`replica/${i}`) }));
}

// ------------------------------------------------------------------------------------------------ ledgers

type LedgerOp =
  | { t: 'publish'; box: number; kind: number; n: number }
  | { t: 'deliver'; m: number; dup: boolean }
  | { t: 'partition'; mask: number }
  | { t: 'heal' }
  | { t: 'sync'; a: number; b: number }
  | { t: 'checkpoint'; box: number; force: boolean }
  | { t: 'tick'; ms: number };

const ledgerOp = (boxes: number, checkpoints: boolean): fc.Arbitrary<LedgerOp> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.record({ t: fc.constant('publish' as const), box: fc.integer({ min: 0, max: boxes - 1 }), kind: fc.integer({ min: 0, max: 19 }), n: fc.nat(9) }) },
    { weight: 5, arbitrary: fc.record({ t: fc.constant('deliver' as const), m: fc.nat(), dup: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('partition' as const), mask: fc.nat(15) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('heal' as const) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('sync' as const), a: fc.integer({ min: 0, max: boxes - 1 }), b: fc.integer({ min: 0, max: boxes - 1 }) }) },
    { weight: checkpoints ? 2 : 0, arbitrary: fc.record({ t: fc.constant('checkpoint' as const), box: fc.integer({ min: 0, max: boxes - 1 }), force: fc.boolean() }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 5_000 }) }) },
  );

interface Net {
  ledgers: ReserveLedger[];
  inflight: Array<{ from: number; to: number; message: Uint8Array }>;
  side: number[];
  published: StateEvent[];
}

function canTalk(net: Net, a: number, b: number): boolean {
  return net.side[a] === net.side[b];
}

function syncPair(net: Net, a: number, b: number): void {
  if (a === b || !canTalk(net, a, b)) return;
  const x = net.ledgers[a];
  const y = net.ledgers[b];
  x.applyUpdate(y.diff(x.stateVector()));
  y.applyUpdate(x.diff(y.stateVector()));
}

function publishSomething(net: Net, box: number, kind: number, n: number, clock: ManualClock): void {
  const l = net.ledgers[box];
  const others = net.ledgers.filter((_, i) => i !== box);
  const other = others[n % others.length];
  const push = (ev: StateEvent | StateEvent[]) => net.published.push(...(Array.isArray(ev) ? ev : [ev]));
  try {
    if (kind < 4) push(l.publish('config-changed', { set: [[['replication.target', 'replication.minimum', 'limits.maxKeepers', 'regions'][kind], [1 + (n % 4), 1 + ((n + 1) % 4), 5 + n, n % 2 === 0 ? ['north'] : null][kind]]] }));
    else if (kind < 8) push(l.publish('snapshot-published', { root: cidOf(RAW_CODE, new TextEncoder().encode(`${box}/${kind}/${n}/${clock.time}`)), parent: null, time: clock.time, size: n * 100, files: n, chunks: n + 1 }));
    else if (kind < 11) push(l.publish('holder-report', { count: n, bytes: n * 1000, root: new Uint8Array(32).fill(n) }));
    else if (kind < 15) {
      const severity = n % 3 === 0 ? 'warning' : 'normal';
      push(l.publish('reserve-event', { event: { id: `${l.id}/${clock.time}/${n}`, source: l.id, time: clock.time, severity, kind: n % 4 === 0 ? 'resolved' : 'keeper-health', payload: { n } } }));
    } else if (kind < 17) push(l.publish('box-updated', { capacity: 1000 + n, addresses: [`/ip4/10.0.0.${n}/tcp/1`] }));
    else if (kind === 17) push(l.join({ capacity: 2000 + n, addresses: [] }));
    else if (kind === 18 && n < 3) push(l.remove(other.id, n === 0 ? 'decommissioned' : 'dead'));
    else if (kind === 19 && n < 2) push(l.leave());
    else push(l.publish('holder-report', { count: n + 1, bytes: 1, root: new Uint8Array(32) }));
  } catch (err) {
    // A Box that is no longer a member (left, declared dead, rotated out) cannot publish: that is the point.
    if (!(err instanceof ReserveError)) throw err;
  }
}

function runLedgers(factory: CrdtBackendFactory, seed: number, boxes: number, ops: readonly LedgerOp[], checkpointEvery: number): { net: Net; checkpoints: number } {
  const world = makeWorld(seed, boxes);
  const clock = new ManualClock();
  const net: Net = { ledgers: [], inflight: [], side: Array.from({ length: boxes }, () => 0), published: [] };
  for (const b of world.boxes) {
    const ledger = new ReserveLedger({
      reserveId: world.reserveId,
      signer: b.signer,
      unsealer: b.unsealer,
      secrets: new Map([[0, world.secret]]),
      clock,
      random: world.random.fork(`ledger/${b.index}`),
      backend: factory,
      checkpointEvery,
    });
    const me = net.ledgers.length;
    ledger.onUpdate((message) => {
      for (let to = 0; to < boxes; to++) if (to !== me) net.inflight.push({ from: me, to, message });
    });
    net.ledgers.push(ledger);
  }
  for (const l of net.ledgers) {
    clock.advance(1);
    net.published.push(l.join({ capacity: 1_000_000, addresses: [`/ip4/127.0.0.1/tcp/${4000 + net.published.length}`] }));
  }
  let checkpoints = 0;
  for (const op of ops) {
    switch (op.t) {
      case 'publish':
        clock.advance(1);
        publishSomething(net, op.box, op.kind, op.n, clock);
        break;
      case 'deliver': {
        if (net.inflight.length === 0) break;
        const i = op.m % net.inflight.length;
        const msg = net.inflight[i];
        if (!canTalk(net, msg.from, msg.to)) break;
        net.ledgers[msg.to].applyUpdate(msg.message);
        if (!op.dup) net.inflight.splice(i, 1);
        break;
      }
      case 'partition':
        net.side = net.side.map((_, i) => (op.mask >> i) & 1);
        break;
      case 'heal':
        net.side = net.side.map(() => 0);
        break;
      case 'sync':
        syncPair(net, op.a, op.b);
        break;
      case 'checkpoint': {
        const cp = net.ledgers[op.box].maybeCheckpoint({ force: op.force });
        if (cp !== undefined) {
          checkpoints++;
          net.published.push(cp);
        }
        break;
      }
      case 'tick':
        clock.advance(op.ms);
        break;
    }
  }
  // Heal: deliver everything in flight, then anti-entropy until nothing changes.
  net.side = net.side.map(() => 0);
  for (const { to, message } of shuffle(net.inflight, new SimRandom(seed).fork('heal'))) net.ledgers[to].applyUpdate(message);
  net.inflight = [];
  for (let round = 0; round < 8; round++) {
    for (let a = 0; a < boxes; a++) for (let b = a + 1; b < boxes; b++) syncPair(net, a, b);
    net.inflight = [];
    const epochs = new Set(net.ledgers.map((l) => l.epoch));
    if (epochs.size === 1 && round > 0) break;
  }
  return { net, checkpoints };
}

function expectConverged(net: Net): void {
  const epochs = net.ledgers.map((l) => l.epoch);
  expect(new Set(epochs).size).toBe(1);
  const first = plain(net.ledgers[0].state());
  for (const l of net.ledgers.slice(1)) expect(plain(l.state())).toEqual(first);
  for (const l of net.ledgers) {
    // Incremental (the ledger's reducer) equals a full reduce of the same epoch.
    expect(plain(reduce(l.reserveId, l.uncompacted(), l.baseSummary()))).toEqual(plain(l.state()));
  }
}

// ------------------------------------------------------------------------------------------------ the suite

export function crdtLaws(name: string, factory: CrdtBackendFactory, options: LawOptions = {}): void {
  const runs = options.runs ?? 60;
  const ledgerRuns = options.ledgerRuns ?? 25;

  describe(`CRDT laws: ${name}`, () => {
    it('converges under any delivery order, duplication and partition', () => {
      fc.assert(
        fc.property(fc.integer({ min: 2, max: 4 }), fc.array(docOp(4), { maxLength: 80 }), fc.nat(), (n, ops, seed) => {
          const docs = openReplicas(factory, n, seed);
          const inflight: Array<{ from: number; to: number; update: Uint8Array }> = [];
          docs.forEach((d, from) =>
            d.onUpdate((c) => {
              if (c.origin !== 'local') return;
              for (let to = 0; to < n; to++) if (to !== from) inflight.push({ from, to, update: c.update });
            }),
          );
          let side = Array.from({ length: n }, () => 0);
          const added = new Set<number>();
          for (const op of ops) {
            if (op.t === 'add') {
              const r = op.r % n;
              docs[r].add(idFor(op.k), bytesFor(op.k));
              added.add(op.k);
            } else if (op.t === 'deliver') {
              if (inflight.length === 0) continue;
              const i = op.m % inflight.length;
              const m = inflight[i];
              if (side[m.from] !== side[m.to]) continue;
              docs[m.to].applyUpdate(m.update);
              if (!op.dup) inflight.splice(i, 1);
            } else if (op.t === 'partition') {
              side = side.map((_, i) => (op.mask >> i) & 1);
            } else {
              side = side.map(() => 0);
            }
          }
          // Heal: every update still in flight arrives, in a random order, some twice.
          const random = new SimRandom(seed).fork('heal');
          for (const m of shuffle(inflight, random)) {
            docs[m.to].applyUpdate(m.update);
            if (random.u32() % 3 === 0) docs[m.to].applyUpdate(m.update);
          }
          const expected = [...added].map((k) => `${idFor(k)}=${Buffer.from(bytesFor(k)).toString('hex')}`).sort();
          for (const d of docs) {
            expect(entrySet(d)).toEqual(expected);
            expect(d.size).toBe(expected.length);
            expect(d.missingDependencies).toBe(false);
            for (const k of added) expect(d.has(idFor(k))).toBe(true);
          }
          docs.forEach((d) => d.destroy());
        }),
        propertyOptions(`${name}: convergence`, { numRuns: runs }),
      );
    });

    it('is idempotent: an update applied again, or a state applied to itself, changes nothing', () => {
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 20 }), fc.array(fc.integer({ min: 0, max: 30 }), { maxLength: 20 }), fc.nat(), (ka, kb, seed) => {
          const [a, b] = openReplicas(factory, 2, seed);
          const updates: Uint8Array[] = [];
          a.onUpdate((c) => {
            if (c.origin === 'local') updates.push(c.update);
          });
          for (const k of ka) a.add(idFor(k), bytesFor(k));
          for (const k of kb) b.add(idFor(k), bytesFor(k));
          for (const u of updates) b.applyUpdate(u);
          const once = entrySet(b);
          const known = new Set([...b.entries()].map(([id]) => id));
          let reported = 0;
          b.onUpdate((c) => (reported += c.added.filter(([id]) => !known.has(id)).length));
          for (const u of updates) b.applyUpdate(u);
          b.applyUpdate(b.encodeState());
          b.applyUpdate(a.encodeState());
          expect(entrySet(b)).toEqual(once);
          expect(reported).toBe(0);
          a.destroy();
          b.destroy();
        }),
        propertyOptions(`${name}: idempotence`, { numRuns: runs }),
      );
    });

    it('syncs with a state vector and a diff, in both directions', () => {
      fc.assert(
        fc.property(fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 30 }), fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 30 }), fc.nat(), (ka, kb, seed) => {
          const [a, b] = openReplicas(factory, 2, seed);
          for (const k of ka) a.add(idFor(k), bytesFor(k));
          if (kb.length > 0) b.addMany(kb.map((k) => [idFor(k), bytesFor(k)] as const));
          a.applyUpdate(b.encodeDiff(a.encodeStateVector()));
          b.applyUpdate(a.encodeDiff(b.encodeStateVector()));
          const union = new Set([...ka, ...kb]);
          expect(entrySet(a)).toEqual(entrySet(b));
          expect(a.size).toBe(union.size);
          // In sync: a diff brings nothing new.
          let added = 0;
          const known = new Set([...b.entries()].map(([id]) => id));
          b.onUpdate((c) => (added += c.added.filter(([id]) => !known.has(id)).length));
          const sizeBefore = b.size;
          b.applyUpdate(a.encodeDiff(b.encodeStateVector()));
          expect(b.size).toBe(sizeBefore);
          expect(added).toBe(0);
          a.destroy();
          b.destroy();
        }),
        propertyOptions(`${name}: state-vector sync`, { numRuns: runs }),
      );
    });

    it('genesis is deterministic: replicas that open the same epoch alone merge as one', () => {
      fc.assert(
        fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 50 }), { maxLength: 15 }), fc.nat(), (ks, seed) => {
          const genesis = ks.map((k) => [idFor(k), bytesFor(k)] as const);
          const a = factory({ random: new SimRandom(seed).fork('a'), genesis });
          const b = factory({ random: new SimRandom(seed).fork('b'), genesis });
          const before = a.encodeState();
          a.applyUpdate(b.encodeState());
          expect(a.size).toBe(ks.length);
          expect(entrySet(a)).toEqual(entrySet(b));
          // Nothing was duplicated: the merged document encodes exactly as before.
          expect(Buffer.from(a.encodeState()).equals(Buffer.from(before))).toBe(true);
          a.destroy();
          b.destroy();
        }),
        propertyOptions(`${name}: deterministic genesis`, { numRuns: Math.max(10, runs >> 2) }),
      );
    });

    it('refuses garbage updates (CrdtUpdateError) or ignores them, and changes nothing', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (junk, seed) => {
          const [a] = openReplicas(factory, 1, seed);
          a.add(idFor(1), bytesFor(1));
          const before = entrySet(a);
          try {
            a.applyUpdate(junk);
          } catch (err) {
            expect(err).toBeInstanceOf(CrdtUpdateError);
          }
          expect(entrySet(a)).toEqual(before);
          try {
            a.encodeDiff(junk);
          } catch (err) {
            expect((err as Error).name).toBe('CrdtUpdateError');
          }
          a.destroy();
        }),
        propertyOptions(`${name}: garbage`, { numRuns: runs }),
      );
    });

    it('every replica reaches the same state, the reduce of all events (gossip in any order, partitions)', () => {
      fc.assert(
        fc.property(fc.integer({ min: 2, max: 4 }), fc.array(ledgerOp(4, false), { maxLength: 45 }), fc.nat(), (boxes, ops, seed) => {
          const fixed = ops.map((o) => ('box' in o ? { ...o, box: o.box % boxes } : 'a' in o ? { ...o, a: o.a % boxes, b: o.b % boxes } : o));
          const { net } = runLedgers(factory, 40 + (seed % 3), boxes, fixed, 1_000_000);
          expectConverged(net);
          expect(plain(net.ledgers[0].state())).toEqual(plain(reduce(net.ledgers[0].reserveId, net.published)));
          net.ledgers.forEach((l) => expect(l.stats().uncompacted).toBe(net.published.length));
        }),
        propertyOptions(`${name}: ledgers converge`, { numRuns: ledgerRuns }),
      );
    });

    it('with online compaction, replicas converge on the same epoch and the same state', () => {
      let compacted = 0;
      fc.assert(
        fc.property(fc.integer({ min: 2, max: 4 }), fc.array(ledgerOp(4, true), { minLength: 10, maxLength: 50 }), fc.nat(), (boxes, ops, seed) => {
          const fixed = ops.map((o) => ('box' in o ? { ...o, box: o.box % boxes } : 'a' in o ? { ...o, a: o.a % boxes, b: o.b % boxes } : o));
          const { net, checkpoints } = runLedgers(factory, 50 + (seed % 3), boxes, fixed, 6);
          if (checkpoints > 0) compacted++;
          expectConverged(net);
          // Nothing published is lost: every snapshot that any Box published is in the catalog.
          const roots = net.published.filter((e) => e.kind === 'snapshot-published').map((e) => (e as StateEvent & { kind: 'snapshot-published' }).body.root.toString());
          const state = net.ledgers[0].state();
          for (const r of roots) {
            const author = net.published.find((e) => e.kind === 'snapshot-published' && e.body.root.toString() === r)?.author as string;
            if (state.rejected.size === 0 && state.members.get(author)?.status === 'active') expect(state.catalog.has(r)).toBe(true);
          }
        }),
        propertyOptions(`${name}: ledgers converge with compaction`, { numRuns: ledgerRuns }),
      );
      // The property must actually have exercised compaction.
      expect(compacted).toBeGreaterThan(ledgerRuns / 3);
    });
  });
}
