/**
 * The reducer: what the merged event set means (membership, secret generations, config, catalog, holder reports,
 * event log), every rejection by name, the placement view, and the two laws everything else rests on: the state
 * is a function of the *set* of events (order and duplicates never matter) and incremental application equals a
 * full reduce.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyOptions } from './support/fc.ts';
import { checkEvent, reduce, StateReducer, toPlacementView } from '../core/state/reducer.ts';
import type { ReserveState } from '../core/state/reducer.ts';
import type { StateEvent } from '../core/state/events.ts';
import { NotAMemberError, StaleGenerationError } from '../core/state/events.ts';
import {
  holderBody,
  joinAll,
  joinBody,
  logBody,
  makeWorld,
  plain,
  rotationBody,
  scenarioEvents,
  scenarioOpArb,
  shuffle,
  sign,
  snapshotBody,
} from './crdt-fixtures.ts';
import { SimRandom } from '../simulations/sim/rng.ts';

function rejectionOf(state: ReserveState, ev: StateEvent): string | undefined {
  return state.rejected.get(ev.id)?.error;
}

describe('reducer: membership', () => {
  it('joins, leaves, deaths, decommissions and the placement view', () => {
    const world = makeWorld(21, 3);
    const [a, b, c] = world.boxes;
    const events: StateEvent[] = [
      sign(world, a, 'box-joined', joinBody(world, a, 0, { region: 'north' })),
      sign(world, b, 'box-joined', joinBody(world, b, 0, { region: 'south' })),
      sign(world, c, 'box-joined', joinBody(world, c)),
    ];
    let s = reduce(world.reserveId, events);
    expect([...s.members.values()].map((m) => m.status)).toEqual(['active', 'active', 'active']);
    expect(s.generation).toBe(0);
    const view = toPlacementView(s);
    expect(Object.keys(view).sort()).toEqual(['keepers', 'rf']);
    expect(view.rf).toBe(3);
    const ids = [a, b, c].map((x) => x.signer.id).sort();
    expect(view.keepers.map((k) => k.id)).toEqual(ids);
    for (const k of view.keepers) {
      expect(Object.keys(k).sort()).toEqual(k.region === undefined ? ['capacity', 'id', 'live'] : ['capacity', 'id', 'live', 'region']);
      expect(k.live).toBe(true);
    }
    expect(view.keepers.find((k) => k.id === a.signer.id)).toEqual({ id: a.signer.id, capacity: 1_000_000, region: 'north', live: true });

    events.push(sign(world, b, 'box-left', { reason: 'moving' }));
    events.push(sign(world, a, 'box-declared-dead', { box: c.signer.id, reason: 'silent for a week' }));
    s = reduce(world.reserveId, events);
    expect(s.members.get(b.signer.id)).toMatchObject({ status: 'left', statusReason: 'moving', statusBy: b.signer.id });
    expect(s.members.get(c.signer.id)).toMatchObject({ status: 'dead', statusBy: a.signer.id });
    expect(toPlacementView(s).keepers.map((k) => [k.id === a.signer.id, k.live])).toEqual(
      ids.map((id) => [id === a.signer.id, id === a.signer.id]),
    );

    // c was only presumed dead: it rejoins with the current secret and is active again (its clock has seen the
    // declaration, as a Box's hybrid clock does once it syncs).
    c.at = { wall: a.at.wall + 10, logical: 0 };
    const rejoin = sign(world, c, 'box-joined', joinBody(world, c));
    events.push(rejoin);
    expect(reduce(world.reserveId, events).members.get(c.signer.id)?.status).toBe('active');

    // Decommissioned is final: a later join under the same identity is refused.
    events.push(sign(world, a, 'box-decommissioned', { box: c.signer.id }));
    const back = sign(world, c, 'box-joined', joinBody(world, c));
    events.push(back);
    s = reduce(world.reserveId, events);
    expect(s.members.get(c.signer.id)?.status).toBe('decommissioned');
    expect(rejectionOf(s, back)).toBe('DecommissionedBoxError');
    expect(toPlacementView(s).keepers.map((k) => k.id)).not.toContain(c.signer.id);
  });

  it('events of non-members change nothing and are named: unknown author (pending), after leaving', () => {
    const world = makeWorld(22, 3);
    const [a, b, c] = world.boxes;
    const ja = sign(world, a, 'box-joined', joinBody(world, a));
    const jc = sign(world, c, 'box-joined', joinBody(world, c));
    const fromC = sign(world, c, 'snapshot-published', snapshotBody(1));
    let s = reduce(world.reserveId, [ja, fromC]);
    expect(s.rejected.get(fromC.id)).toMatchObject({ error: 'NotAMemberError', pending: true });
    expect(s.catalog.size).toBe(0);
    // Its join arrives later: the event counts.
    s = reduce(world.reserveId, [ja, fromC, jc]);
    expect(s.rejected.size).toBe(0);
    expect(s.catalog.size).toBe(1);

    const jb = sign(world, b, 'box-joined', joinBody(world, b));
    const before = sign(world, b, 'holder-report', holderBody(1));
    const left = sign(world, b, 'box-left', {});
    const after = sign(world, b, 'holder-report', holderBody(2));
    s = reduce(world.reserveId, [ja, jb, after, left, before]);
    expect(s.holders.get(b.signer.id)?.count).toBe(1);
    expect(s.rejected.get(after.id)).toMatchObject({ error: 'NotAMemberError', pending: false });
    expect(() => checkEvent(s, sign(world, b, 'holder-report', holderBody(3)))).toThrow(NotAMemberError);
  });

  it('secret rotation: removed Boxes cannot come back with the old secret; new ones prove the new secret', () => {
    const world = makeWorld(23, 4);
    const [a, b, c, d] = world.boxes;
    const events: StateEvent[] = joinAll(world).slice(0, 3);
    events.push(sign(world, a, 'box-declared-dead', { box: c.signer.id }));
    const rot = sign(world, a, 'secret-rotated', rotationBody(world, 1, [a, b]));
    events.push(rot);
    c.at = { wall: rot.at.wall + 10, logical: 0 };
    const cBack = sign(world, c, 'box-joined', joinBody(world, c, 0));
    d.at = { wall: rot.at.wall + 10, logical: 0 };
    const dOld = sign(world, d, 'box-joined', joinBody(world, d, 0));
    const dNew = sign(world, d, 'box-joined', joinBody(world, d, 1));
    events.push(cBack, dOld, dNew);
    let s = reduce(world.reserveId, events);
    expect(s.generation).toBe(1);
    expect(s.generations.get(1)?.recipients).toEqual([a.signer.id, b.signer.id].sort());
    expect(s.generations.get(1)?.sealed.size).toBe(2);
    expect(rejectionOf(s, cBack)).toBe('StaleGenerationError');
    expect(rejectionOf(s, dOld)).toBe('StaleGenerationError');
    expect(rejectionOf(s, dNew)).toBeUndefined();
    expect(s.members.get(c.signer.id)?.status).toBe('dead');
    expect(s.members.get(d.signer.id)).toMatchObject({ status: 'active', generation: 1 });
    expect(s.members.get(b.signer.id)?.generation).toBe(1);
    expect(() => checkEvent(s, sign(world, c, 'box-joined', joinBody(world, c, 0)))).toThrow(StaleGenerationError);

    // A join proving a generation nobody has started yet is pending, with a join key not the published one: bad.
    const e2 = sign(world, d, 'box-joined', joinBody(world, d, 2));
    const fake = world.secrets.get(1) as Uint8Array;
    world.secrets.set(1, new Uint8Array(32).fill(5));
    const wrongKey = sign(world, b, 'box-joined', joinBody(world, b, 1));
    world.secrets.set(1, fake);
    s = reduce(world.reserveId, [...events, e2, wrongKey]);
    expect(s.rejected.get(e2.id)).toMatchObject({ error: 'UnknownGenerationError', pending: true });
    expect(rejectionOf(s, wrongKey)).toBe('BadJoinProofError');
  });

  it('a new Box whose clock runs behind still joins with the secret of a later rotation', () => {
    const world = makeWorld(29, 3);
    const [a, b, c] = world.boxes;
    const joins = joinAll(world).slice(0, 2);
    const rot = sign(world, a, 'secret-rotated', rotationBody(world, 1, [a, b]), 1000);
    // c was invited after the rotation but its wall clock is behind: its join's key sorts before the rotation.
    const jc = sign(world, c, 'box-joined', joinBody(world, c, 1), 1);
    expect(jc.at.wall).toBeLessThan(rot.at.wall);
    const s = reduce(world.reserveId, [...joins, jc, rot]);
    expect(s.rejected.size).toBe(0);
    expect(s.members.get(c.signer.id)).toMatchObject({ status: 'active', generation: 1 });
  });

  it('concurrent rotations to the same generation: the first stands, the other is stale', () => {
    const world = makeWorld(24, 2);
    const [a, b] = world.boxes;
    const joins = joinAll(world);
    const r1 = sign(world, a, 'secret-rotated', rotationBody(world, 1, [a, b]), 5);
    const r2 = sign(world, b, 'secret-rotated', { ...rotationBody(world, 101, [a, b]), generation: 1 }, 9);
    const s = reduce(world.reserveId, [...joins, r2, r1]);
    expect(s.generations.get(1)?.by).toBe(a.signer.id);
    expect(rejectionOf(s, r2)).toBe('StaleGenerationError');
  });

  it('a join made while the secret was rotated without it leaves the Box out', () => {
    const world = makeWorld(25, 3);
    const [a, b, c] = world.boxes;
    const ja = sign(world, a, 'box-joined', joinBody(world, a), 1);
    const jb = sign(world, b, 'box-joined', joinBody(world, b), 1);
    const jc = sign(world, c, 'box-joined', joinBody(world, c), 3);
    const rot = sign(world, a, 'secret-rotated', rotationBody(world, 1, [a, b]), 10);
    const s = reduce(world.reserveId, [ja, jb, jc, rot]);
    expect(s.members.get(c.signer.id)).toMatchObject({ status: 'left', statusReason: 'missed-rotation' });
    expect(s.members.get(b.signer.id)).toMatchObject({ status: 'active', generation: 1 });
  });
});

describe('reducer: data', () => {
  it('config is last-writer-wins per field; an inconsistent merge is repaired and reported', () => {
    const world = makeWorld(26, 2);
    const [a, b] = world.boxes;
    const joins = joinAll(world);
    const c1 = sign(world, a, 'config-changed', { set: [['replication.target', 2]] }, 10);
    const c2 = sign(world, b, 'config-changed', { set: [['replication.minimum', 3]] }, 20);
    const c3 = sign(world, b, 'config-changed', { set: [['limits.maxKeepers', 9], ['regions', ['north']]] }, 1);
    const s = reduce(world.reserveId, [...joins, c3, c2, c1]);
    expect(s.config.replication).toEqual({ target: 2, minimum: 2 });
    expect(s.configIssues).toEqual([
      { path: 'replication.minimum', message: '3 is above replication.target 2; using 2' },
    ]);
    expect(s.config.limits.maxKeepers).toBe(9);
    expect(s.configFields.get('replication.minimum')).toMatchObject({ value: 3, by: b.signer.id });
    expect(toPlacementView(s).rf).toBe(2);
    const later = sign(world, a, 'config-changed', { set: [['limits.maxKeepers', null]] }, 50);
    expect(reduce(world.reserveId, [...joins, c3, later]).config.limits.maxKeepers).toBe(64);
  });

  it('catalog by root with heads per author; holder reports latest per Box', () => {
    const world = makeWorld(27, 2);
    const [a, b] = world.boxes;
    const joins = joinAll(world);
    const s1 = sign(world, a, 'snapshot-published', snapshotBody(1));
    const s2 = sign(world, a, 'snapshot-published', snapshotBody(2, 1));
    const dup = sign(world, b, 'snapshot-published', snapshotBody(1));
    const h1 = sign(world, b, 'holder-report', holderBody(1));
    const h2 = sign(world, b, 'holder-report', holderBody(7));
    const s = reduce(world.reserveId, [...joins, dup, s2, s1, h2, h1]);
    expect(s.catalog.size).toBe(2);
    const first = s.catalog.get(snapshotBody(1).root.toString());
    expect(first?.author).toBe(a.signer.id === first?.author ? a.signer.id : b.signer.id);
    expect(s.catalog.get(snapshotBody(2).root.toString())).toMatchObject({ parent: snapshotBody(1).root.toString(), size: 2000, files: 2, chunks: 4 });
    expect(s.heads.get(a.signer.id)?.root).toBe(snapshotBody(2).root.toString());
    expect(s.heads.get(b.signer.id)?.root).toBe(snapshotBody(1).root.toString());
    expect(s.holders.get(b.signer.id)).toMatchObject({ count: 7, bytes: 7 * 1024 });
  });

  it('event log: warnings and resolutions kept, normal events counted once per envelope', () => {
    const world = makeWorld(28, 1);
    const [a] = world.boxes;
    const events: StateEvent[] = joinAll(world);
    events.push(sign(world, a, 'reserve-event', logBody(a, 1, 'warning', 'network-disruption')));
    events.push(sign(world, a, 'reserve-event', logBody(a, 2, 'normal', 'resolved')));
    events.push(sign(world, a, 'reserve-event', logBody(a, 3)));
    events.push(sign(world, a, 'reserve-event', logBody(a, 3)));
    events.push(sign(world, a, 'reserve-event', logBody(a, 4)));
    const s = reduce(world.reserveId, events);
    expect(s.log.entries.map((e) => e.event.seq)).toEqual([1, 2, 3, 4]);
    expect(s.log.totals).toEqual([
      { author: a.signer.id, source: a.signer.id, kind: 'keeper-health', count: 2, firstTime: logBody(a, 3).event.time, lastTime: logBody(a, 4).event.time, firstSeq: 3, lastSeq: 4 },
    ]);
    expect(s.log.days.reduce((n, d) => n + d.count, 0)).toBe(2);
  });
});

describe('reducer laws', () => {
  it('the state is a function of the set: any order, any duplicates', () => {
    fc.assert(
      fc.property(fc.array(scenarioOpArb(4), { minLength: 1, maxLength: 30 }), fc.boolean(), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (ops, withhold, seed) => {
        const world = makeWorld(30, 4);
        const events = scenarioEvents(world, ops, { withholdLastJoin: withhold });
        const random = new SimRandom(seed);
        const expected = plain(reduce(world.reserveId, events));
        const dups = events.filter(() => random.u32() % 3 === 0);
        const shuffled = shuffle([...events, ...dups], random);
        expect(plain(reduce(world.reserveId, shuffled))).toEqual(expected);
      }),
      propertyOptions('reducer: order and duplicates do not matter', { numRuns: 60 }),
    );
  });

  it('incremental application equals a full reduce, whatever the arrival order', () => {
    fc.assert(
      fc.property(fc.array(scenarioOpArb(4), { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), (ops, seed) => {
        const world = makeWorld(31, 4);
        const events = scenarioEvents(world, ops, { withholdLastJoin: seed % 2 === 0 });
        const random = new SimRandom(seed);
        const r = new StateReducer(world.reserveId);
        // Mostly in order (the common case: incremental), with some events held back and delivered late.
        const late: StateEvent[] = [];
        for (const ev of events) {
          if (random.u32() % 5 === 0) late.push(ev);
          else r.add(ev);
          if (random.u32() % 4 === 0) r.state();
        }
        for (const ev of shuffle(late, random)) {
          r.add(ev);
          if (random.u32() % 3 === 0) r.state();
        }
        expect(plain(r.state())).toEqual(plain(reduce(world.reserveId, events)));
      }),
      propertyOptions('reducer: incremental equals full', { numRuns: 60 }),
    );
  });

  it('in-order arrival needs no re-fold', () => {
    const world = makeWorld(32, 3);
    const events = scenarioEvents(
      world,
      Array.from({ length: 60 }, (_, i) => ({ box: i % 3, kind: [0, 2, 3, 4, 6][i % 5], n: i % 7, dt: 1 })),
    );
    const r = new StateReducer(world.reserveId);
    const sorted = [...events].sort((x, y) => x.at.wall - y.at.wall || x.at.logical - y.at.logical || (x.id < y.id ? -1 : 1));
    for (const ev of sorted) {
      r.add(ev);
      r.state();
    }
    expect(r.rebuilds).toBe(0);
    expect(plain(r.state())).toEqual(plain(reduce(world.reserveId, events)));
  });
});
