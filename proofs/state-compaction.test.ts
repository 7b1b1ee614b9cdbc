/**
 * Online compaction: summaries form a lattice (so concurrent checkpoints merge), a checkpoint changes nothing
 * its proposer can see, documents stay bounded while Boxes keep working, late events from old epochs are kept,
 * events that can never be decided do not block compaction forever, and a ledger survives a restart mid-epoch.
 */
import * as dagCbor from '@ipld/dag-cbor';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyOptions } from './support/fc.ts';
import { createYjsBackend } from '../adapters/crdt/yjs.ts';
import { createAutomergeBackend } from '../adapters/crdt/automerge.ts';
import { isCovered, proposeCut } from '../core/state/compaction.ts';
import { ReserveLedger } from '../core/state/ledger.ts';
import { reduce, StateReducer } from '../core/state/reducer.ts';
import type { ReserveState } from '../core/state/reducer.ts';
import { joinSummaries, summaryFromWire, summaryToWire } from '../core/state/summary.ts';
import type { Summary } from '../core/state/summary.ts';
import type { StateEvent } from '../core/state/events.ts';
import { cidOf, RAW_CODE } from '../core/blocks/cid.ts';
import { SimRandom } from '../simulations/sim/rng.ts';
import { joinBody, makeWorld, ManualClock, plain, scenarioEvents, scenarioOpArb, shuffle, sign } from './crdt-fixtures.ts';
import type { World } from './crdt-fixtures.ts';

const enc = (s: Summary): string => Buffer.from(dagCbor.encode(summaryToWire(s) as never)).toString('hex');

function summaryOf(world: World, events: readonly StateEvent[]): Summary {
  const r = new StateReducer(world.reserveId);
  r.addAll(events);
  return r.summary();
}

/** What a checkpoint must preserve (everything but per-event bookkeeping of compacted events). */
function meaning(s: ReserveState): unknown {
  return plain({
    members: s.members,
    generation: s.generation,
    generations: s.generations,
    config: s.config,
    configIssues: s.configIssues,
    configFields: s.configFields,
    catalog: s.catalog,
    heads: s.heads,
    holders: s.holders,
    important: s.log.entries.filter((e) => e.event.severity !== 'normal' || e.event.kind === 'resolved'),
    totals: s.log.totals,
    days: s.log.days,
  });
}

describe('summaries are a lattice', () => {
  it('join is commutative, associative and idempotent; the wire form round-trips', () => {
    fc.assert(
      fc.property(fc.array(scenarioOpArb(3), { maxLength: 25 }), fc.nat(), (ops, seed) => {
        const world = makeWorld(60, 3);
        const events = scenarioEvents(world, ops);
        const random = new SimRandom(seed);
        const pick = () => events.filter(() => random.u32() % 2 === 0);
        const [a, b, c] = [summaryOf(world, pick()), summaryOf(world, pick()), summaryOf(world, pick())];
        expect(enc(joinSummaries(a, b))).toBe(enc(joinSummaries(b, a)));
        expect(enc(joinSummaries(joinSummaries(a, b), c))).toBe(enc(joinSummaries(a, joinSummaries(b, c))));
        expect(enc(joinSummaries(a, a))).toBe(enc(joinSummaries(a)));
        const back = summaryFromWire(dagCbor.decode(dagCbor.encode(summaryToWire(a) as never)));
        expect(enc(back)).toBe(enc(a));
      }),
      propertyOptions('compaction: summary lattice', { numRuns: 40 }),
    );
  });
});

describe('checkpoints', () => {
  it('a checkpoint changes nothing its proposer can see: summary + uncovered events = full reduce', () => {
    let covering = 0;
    fc.assert(
      fc.property(fc.array(scenarioOpArb(4), { minLength: 1, maxLength: 30 }), fc.boolean(), (ops, withhold) => {
        const world = makeWorld(61, 4);
        const events = scenarioEvents(world, ops, { withholdLastJoin: withhold });
        const full = new StateReducer(world.reserveId);
        full.addAll(events);
        const p = proposeCut({ base: full.base, events, checkpointSeqs: new Map(), full });
        if (p.covered > 0) covering++;
        const rest = events.filter((e) => !isCovered(p.cut, e.author, e.seq));
        expect(rest.length + p.covered).toBe(events.length);
        expect(meaning(reduce(world.reserveId, rest, p.summary))).toEqual(meaning(full.state()));
      }),
      propertyOptions('compaction: checkpoint is transparent', { numRuns: 50 }),
    );
    expect(covering).toBeGreaterThan(25);
  });

  // Found by the property above under RESERVE_SEED=424242 with 4x its runs. A Box joins (its first join lost, so
  // its events stay out of the checkpoint) before a rotation sealed to it; the rotation is compacted into the
  // summary. Folded onto the summary, the join left the Box at generation 0 where the full fold gives 1.
  it('regression: a join folded after a compacted rotation that included the Box gets that generation', () => {
    const world = makeWorld(61, 4);
    const events = scenarioEvents(
      world,
      [
        { box: 3, kind: 9, n: 0, dt: 0 },
        { box: 0, kind: 10, n: 0, dt: 0 },
      ],
      { withholdLastJoin: true },
    );
    const full = new StateReducer(world.reserveId);
    full.addAll(events);
    const p = proposeCut({ base: full.base, events, checkpointSeqs: new Map(), full });
    const rest = events.filter((e) => !isCovered(p.cut, e.author, e.seq));
    expect(rest.map((e) => e.kind)).toEqual(['box-joined']);
    const joiner = world.boxes[3]!.signer.id;
    expect(full.state().members.get(joiner)?.generation).toBe(1);
    expect(reduce(world.reserveId, rest, p.summary).members.get(joiner)?.generation).toBe(1);
    expect(meaning(reduce(world.reserveId, rest, p.summary))).toEqual(meaning(full.state()));
  });

  it('events that can never be decided are given up after the grace period instead of blocking compaction', () => {
    const world = makeWorld(62, 3);
    const [a, b, ghost] = world.boxes;
    const clock = new ManualClock();
    const ledger = new ReserveLedger({ reserveId: world.reserveId, signer: a.signer, unsealer: a.unsealer, secrets: world.secrets, clock, random: world.random.fork('l'), backend: createYjsBackend, checkpointEvery: 4, pendingGraceMs: 60_000 });
    ledger.join({ capacity: 10, addresses: [] });
    // b declares dead a Box that never joined (a typo): the event waits for that Box's join forever.
    ledger.receive(sign(world, b, 'box-joined', joinBody(world, b)).bytes);
    const stuck = sign(world, b, 'box-declared-dead', { box: ghost.signer.id });
    const after = sign(world, b, 'holder-report', { count: 7, bytes: 7, root: new Uint8Array(32) });
    ledger.receive(stuck.bytes);
    ledger.receive(after.bytes);
    expect(ledger.state().rejected.get(stuck.id)).toMatchObject({ error: 'UnknownBoxError', pending: true });
    for (let i = 0; i < 6; i++) ledger.publish('holder-report', { count: i, bytes: i, root: new Uint8Array(32) });
    expect(ledger.maybeCheckpoint({ force: true })).toBeDefined();
    // b's events from the waiting one on are not compacted yet.
    expect(ledger.uncompacted().map((e) => e.id).sort()).toEqual([stuck.id, after.id].sort());
    clock.advance(120_000);
    for (let i = 0; i < 6; i++) ledger.publish('holder-report', { count: 10 + i, bytes: i, root: new Uint8Array(32) });
    expect(ledger.maybeCheckpoint({ force: true })).toBeDefined();
    expect(ledger.uncompacted()).toEqual([]);
    expect(ledger.state().rejected.size).toBe(0);
    expect(ledger.state().holders.get(b.signer.id)?.count).toBe(7);
    expect(ledger.state().holders.get(a.signer.id)?.count).toBe(15);
  });
});

describe('ledgers with compaction', () => {
  for (const [name, backend] of [
    ['yjs', createYjsBackend],
    ['automerge', createAutomergeBackend],
  ] as const) {
    it(`${name}: the document stays bounded while a Box keeps publishing, and nothing is lost`, () => {
      const world = makeWorld(63, 2);
      const [a, b] = world.boxes;
      const clock = new ManualClock();
      const mk = (box: typeof a) =>
        new ReserveLedger({ reserveId: world.reserveId, signer: box.signer, unsealer: box.unsealer, secrets: world.secrets, clock, random: world.random.fork(`l/${box.index}`), backend, checkpointEvery: 30 });
      const la = mk(a);
      const lb = mk(b);
      la.onUpdate((m) => lb.applyUpdate(m));
      lb.onUpdate((m) => la.applyUpdate(m));
      la.join({ capacity: 10, addresses: [] });
      lb.join({ capacity: 20, addresses: [] });
      let maxEntries = 0;
      for (let i = 0; i < 300; i++) {
        clock.advance(1000);
        const l = i % 2 === 0 ? la : lb;
        if (i % 10 === 0) l.publish('snapshot-published', { root: cidOf(RAW_CODE, new Uint8Array([i >> 8, i & 0xff])), parent: null, time: clock.time, size: i, files: 1, chunks: 1 });
        else l.publish('reserve-event', { event: { id: `${l.id}/${i}`, source: l.id, seq: i, time: clock.time, severity: i % 50 === 1 ? 'warning' : 'normal', kind: 'keeper-health', payload: { i } } });
        la.maybeCheckpoint();
        lb.maybeCheckpoint();
        maxEntries = Math.max(maxEntries, la.stats().documentEntries, lb.stats().documentEntries);
      }
      la.applyUpdate(lb.diff(la.stateVector()));
      lb.applyUpdate(la.diff(lb.stateVector()));
      expect(la.epoch).toBe(lb.epoch);
      expect(la.stats().checkpointsAdopted).toBeGreaterThan(5);
      expect(maxEntries).toBeLessThanOrEqual(2 * 30 + 4);
      const s = la.state();
      expect(plain(s)).toEqual(plain(lb.state()));
      expect(s.catalog.size).toBe(30);
      // Every normal event counted exactly once (compacted or not); every warning kept verbatim.
      expect(s.log.totals.reduce((n, t) => n + t.count, 0)).toBe(270 - 6);
      expect(s.log.entries.filter((e) => e.event.severity === 'warning')).toHaveLength(6);
    });
  }

  it('an event from an old epoch that arrives late is kept; one already compacted changes nothing', () => {
    const world = makeWorld(64, 3);
    const [a, b, c] = world.boxes;
    const clock = new ManualClock();
    const mk = (box: typeof a) =>
      new ReserveLedger({ reserveId: world.reserveId, signer: box.signer, unsealer: box.unsealer, secrets: world.secrets, clock, random: world.random.fork(`l/${box.index}`), backend: createYjsBackend, checkpointEvery: 5 });
    const [la, lb, lc] = [mk(a), mk(b), mk(c)];
    const all = [la, lb, lc];
    const syncAll = () => {
      for (const x of all) for (const y of all) if (x !== y) x.applyUpdate(y.diff(x.stateVector()));
    };
    for (const l of all) l.join({ capacity: 1, addresses: [] });
    syncAll();
    // c is cut off and publishes; meanwhile a and b compact.
    clock.advance(10);
    const late = lc.publish('snapshot-published', { root: cidOf(RAW_CODE, new Uint8Array([1])), parent: null, time: 1, size: 1, files: 1, chunks: 1 });
    for (let i = 0; i < 8; i++) la.publish('holder-report', { count: i, bytes: i, root: new Uint8Array(32) });
    lb.applyUpdate(la.diff(lb.stateVector()));
    const cp = la.maybeCheckpoint({ force: true });
    expect(cp).toBeDefined();
    lb.applyUpdate(la.diff(lb.stateVector()));
    expect(lb.epoch).toBe(la.epoch);
    // The old-epoch event reaches a by itself, long after: it is added to the current epoch.
    expect(la.receive(late.bytes)).toEqual({ id: late.id, status: 'added' });
    expect(la.state().catalog.size).toBe(1);
    // A compacted event arriving again changes nothing.
    const oldJoin = lb.uncompacted().length === 0 ? undefined : lb.uncompacted()[0];
    expect(oldJoin).toBeUndefined();
    const before = plain(la.state());
    const stale = lc.uncompacted().find((e) => e.author === a.signer.id);
    expect(stale).toBeDefined();
    expect(la.receive((stale as StateEvent).bytes).status).toBe('covered');
    expect(plain(la.state())).toEqual(before);
    // c comes back: its whole old-epoch document arrives, and everyone converges.
    syncAll();
    syncAll();
    expect(new Set(all.map((l) => l.epoch)).size).toBe(1);
    expect(plain(lc.state())).toEqual(plain(la.state()));
  });

  it('a ledger survives a restart mid-epoch (save / load), and keeps its sequence and clock', () => {
    for (const backend of [createYjsBackend, createAutomergeBackend]) {
      const world = makeWorld(65, 1);
      const [a] = world.boxes;
      const clock = new ManualClock();
      const options = { reserveId: world.reserveId, signer: a.signer, unsealer: a.unsealer, secrets: world.secrets, clock, random: world.random.fork('l'), backend, checkpointEvery: 5 };
      const l = new ReserveLedger(options);
      l.join({ capacity: 1, addresses: [] });
      for (let i = 0; i < 7; i++) l.publish('holder-report', { count: i, bytes: i, root: new Uint8Array(32) });
      l.maybeCheckpoint({ force: true });
      const last = l.publish('holder-report', { count: 99, bytes: 1, root: new Uint8Array(32) });
      const reloaded = ReserveLedger.load({ ...options, random: world.random.fork('l2') }, l.save());
      expect(reloaded.epoch).toBe(l.epoch);
      expect(plain(reloaded.state())).toEqual(plain(l.state()));
      clock.advance(-5000); // the wall clock went back while the Box was down
      const next = reloaded.publish('holder-report', { count: 100, bytes: 1, root: new Uint8Array(32) });
      expect(next.seq).toBe(last.seq + 1);
      expect(next.at.wall > last.at.wall || (next.at.wall === last.at.wall && next.at.logical > last.at.logical)).toBe(true);
      expect(() => ReserveLedger.load(options, new Uint8Array([1, 2, 3]))).toThrow(expect.objectContaining({ name: 'BadSavedLedgerError' }));
    }
  });

  it('secret rotation through the ledger: members learn the new secret, the removed Box is refused', () => {
    const world = makeWorld(66, 3);
    const clock = new ManualClock();
    const learned: Array<[number, number]> = [];
    const ledgers = world.boxes.map(
      (b) =>
        new ReserveLedger({
          reserveId: world.reserveId,
          signer: b.signer,
          unsealer: b.unsealer,
          secrets: world.secrets,
          clock,
          random: world.random.fork(`l/${b.index}`),
          backend: createYjsBackend,
          onSecret: (g) => learned.push([b.index, g]),
        }),
    );
    const syncAll = () => {
      for (const x of ledgers) for (const y of ledgers) if (x !== y) x.applyUpdate(y.diff(x.stateVector()));
    };
    for (const l of ledgers) l.join({ capacity: 5, addresses: [] });
    syncAll();
    clock.advance(100);
    const [la, lb, lc] = ledgers;
    la.remove(lc.id, 'dead', 'disk died');
    syncAll();
    expect(la.state().generation).toBe(1);
    expect([...lb.secrets().keys()]).toEqual([0, 1]);
    expect([...lc.secrets().keys()]).toEqual([0]);
    expect(learned).toEqual([
      [0, 1],
      [1, 1],
    ]);
    // c only has the old secret: its rejoin is refused everywhere.
    clock.advance(100);
    expect(() => lc.join({ capacity: 5, addresses: [] })).toThrow(expect.objectContaining({ name: 'StaleGenerationError' }));
    expect(la.state().members.get(lc.id)?.status).toBe('dead');
    // A new Box invited with the new secret joins.
    const d = makeWorld(66, 4).boxes[3];
    const ld = new ReserveLedger({ reserveId: world.reserveId, signer: d.signer, unsealer: d.unsealer, secrets: new Map([[1, lb.secrets().get(1) as Uint8Array]]), clock, random: world.random.fork('l/d'), backend: createYjsBackend });
    ld.join({ capacity: 7, addresses: [] });
    la.applyUpdate(ld.diff(la.stateVector()));
    expect(la.state().members.get(ld.id)).toMatchObject({ status: 'active', generation: 1 });
  });

  it('shuffled full-state exchanges between many replicas converge (a random gossip mesh)', () => {
    const world = makeWorld(67, 5);
    const clock = new ManualClock();
    const ledgers = world.boxes.map(
      (b) => new ReserveLedger({ reserveId: world.reserveId, signer: b.signer, unsealer: b.unsealer, secrets: world.secrets, clock, random: world.random.fork(`l/${b.index}`), backend: createYjsBackend, checkpointEvery: 8 }),
    );
    const random = new SimRandom(67);
    for (const l of ledgers) l.join({ capacity: 1, addresses: [] });
    for (let step = 0; step < 200; step++) {
      clock.advance(random.u32() % 100);
      const l = ledgers[random.u32() % ledgers.length];
      l.publish('holder-report', { count: step, bytes: step, root: new Uint8Array(32) });
      if (random.u32() % 5 === 0) {
        const x = ledgers[random.u32() % ledgers.length];
        const y = ledgers[random.u32() % ledgers.length];
        if (x !== y) x.applyUpdate(y.diff(x.stateVector()));
      }
      if (random.u32() % 7 === 0) ledgers[random.u32() % ledgers.length].maybeCheckpoint();
    }
    for (let round = 0; round < 3; round++) for (const x of shuffle(ledgers, random)) for (const y of ledgers) if (x !== y) x.applyUpdate(y.diff(x.stateVector()));
    expect(new Set(ledgers.map((l) => l.epoch)).size).toBe(1);
    for (const l of ledgers) expect(plain(l.state())).toEqual(plain(ledgers[0].state()));
    expect(ledgers[0].stats().checkpointsAdopted).toBeGreaterThan(3);
  });
});
