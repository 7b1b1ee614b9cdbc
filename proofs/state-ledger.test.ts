/**
 * The ledger's edges: what it refuses (by name) and that a refusal changes nothing; what it gossips; and how it
 * tells the network layer that a full sync is needed.
 */
import * as dagCbor from '@ipld/dag-cbor';
import { describe, expect, it } from 'vitest';
import { createYjsBackend } from '../adapters/crdt/yjs.ts';
import { createAutomergeBackend } from '../adapters/crdt/automerge.ts';
import { ReserveLedger } from '../core/state/ledger.ts';
import { toPlacementView } from '../core/state/reducer.ts';
import { reserveIdOf } from '../core/state/crypto.ts';
import { joinBody, makeWorld, ManualClock, plain, sign, snapshotBody } from './crdt-fixtures.ts';
import type { World } from './crdt-fixtures.ts';
import type { CrdtBackendFactory } from '../core/state/crdt.ts';

function ledgers(world: World, backend: CrdtBackendFactory, options: { checkpointEvery?: number } = {}): { clock: ManualClock; all: ReserveLedger[] } {
  const clock = new ManualClock();
  const all = world.boxes.map(
    (b) => new ReserveLedger({ reserveId: world.reserveId, signer: b.signer, unsealer: b.unsealer, secrets: world.secrets, clock, random: world.random.fork(`l/${b.index}`), backend, ...options }),
  );
  return { clock, all };
}

function errorName(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as Error).name;
  }
  return undefined;
}

describe('ledger', () => {
  it('refuses to publish for a Box that is not a member, and changes nothing', () => {
    const world = makeWorld(70, 2);
    const { all } = ledgers(world, createYjsBackend);
    const [a] = all;
    const before = { state: plain(a.state()), doc: a.stats().documentEntries };
    // Before joining, a Box can publish nothing but its join (its first event).
    expect(errorName(() => a.publish('snapshot-published', snapshotBody(1)))).toBe('MalformedEventError');
    expect(plain(a.state())).toEqual(before.state);
    expect(a.stats().documentEntries).toBe(before.doc);
    // The refused event did not use up a sequence number: the join is seq 1.
    expect(a.join({ capacity: 1, addresses: [] }).seq).toBe(1);
    a.leave();
    expect(errorName(() => a.publish('holder-report', { count: 1, bytes: 1, root: new Uint8Array(32) }))).toBe('NotAMemberError');
    expect(toPlacementView(a.state()).keepers).toEqual([{ id: a.id, capacity: 1, live: false }]);
  });

  it('refuses bad event bytes and bad sync messages by name, changing nothing', () => {
    const world = makeWorld(71, 2);
    const { all } = ledgers(world, createYjsBackend);
    const [a, b] = all;
    a.join({ capacity: 1, addresses: [] });
    const before = plain(a.state());
    expect(errorName(() => a.receive(new Uint8Array([1, 2, 3])))).toBe('MalformedEventError');
    const ev = sign(world, world.boxes[1], 'box-joined', joinBody(world, world.boxes[1]));
    void b;
    const tampered = ev.bytes.slice();
    tampered[tampered.length - 1] ^= 1;
    expect(errorName(() => a.receive(tampered))).toBe('BadSignatureError');
    expect(errorName(() => a.applyUpdate(new Uint8Array([0xff])))).toBe('BadSyncMessageError');
    const foreign = dagCbor.encode({ v: 1, r: reserveIdOf(new Uint8Array(32).fill(1)), e: 'genesis', u: new Uint8Array(0) });
    expect(errorName(() => a.applyUpdate(foreign))).toBe('BadSyncMessageError');
    expect(errorName(() => a.diff(foreign))).toBe('BadSyncMessageError');
    expect(plain(a.state())).toEqual(before);
    // Junk inside a well-formed update is counted and skipped.
    const junkDoc = createYjsBackend({ random: world.random.fork('junk') });
    junkDoc.add('bafyreinotreallyanid', new Uint8Array([1, 2, 3]));
    const r = a.applyUpdate(dagCbor.encode({ v: 1, r: world.reserveId, e: a.epoch, u: junkDoc.encodeState() }));
    expect(r).toMatchObject({ added: 0, invalid: 1 });
    expect(plain(a.state())).toEqual(before);
  });

  it('gossips its own changes only, and asks for a sync when a peer is in another epoch', () => {
    for (const backend of [createYjsBackend, createAutomergeBackend]) {
      const world = makeWorld(72, 2);
      const { clock, all } = ledgers(world, backend, { checkpointEvery: 3 });
      const [a, b] = all;
      const fromA: Uint8Array[] = [];
      const fromB: Uint8Array[] = [];
      a.onUpdate((m) => fromA.push(m));
      b.onUpdate((m) => fromB.push(m));
      a.join({ capacity: 1, addresses: [] });
      b.join({ capacity: 2, addresses: [] });
      expect(fromA).toHaveLength(1);
      for (const m of fromA.splice(0)) expect(b.applyUpdate(m)).toMatchObject({ added: 1, needsSync: false });
      for (const m of fromB.splice(0)) a.applyUpdate(m);
      expect(fromA).toHaveLength(0); // applying a peer's change is not re-gossiped
      for (let i = 0; i < 4; i++) {
        clock.advance(10);
        a.publish('holder-report', { count: i, bytes: i, root: new Uint8Array(32) });
      }
      a.maybeCheckpoint();
      expect(a.epoch).not.toBe(b.epoch);
      clock.advance(10);
      fromA.length = 0;
      a.publish('holder-report', { count: 9, bytes: 9, root: new Uint8Array(32) });
      const r = b.applyUpdate(fromA[fromA.length - 1]);
      expect(r.needsSync).toBe(true);
      b.applyUpdate(a.diff(b.stateVector()));
      a.applyUpdate(b.diff(a.stateVector()));
      expect(b.epoch).toBe(a.epoch);
      expect(plain(b.state())).toEqual(plain(a.state()));
    }
  });

  it("tells from a peer's state vector whether it holds an author's events up to a seq (the push protocol's check)", () => {
    const world = makeWorld(73, 2);
    const { all } = ledgers(world, createYjsBackend);
    const [a, b] = all;
    a.join({ capacity: 1, addresses: [] });
    b.applyUpdate(a.diff(b.stateVector()));
    b.join({ capacity: 1, addresses: [] });
    a.applyUpdate(b.diff(a.stateVector()));
    expect([a.ownSeq, b.ownSeq]).toEqual([1, 1]);
    a.publish('snapshot-published', snapshotBody(1));
    expect(a.ownSeq).toBe(2);
    // b has a's join, not yet its snapshot
    expect(a.peerHolds(b.stateVector(), a.id, 1)).toBe(true);
    expect(a.peerHolds(b.stateVector(), a.id, 2)).toBe(false);
    // what a sends after seeing b's state vector brings b up to a's newest own event
    b.applyUpdate(a.diff(b.stateVector()));
    expect(a.peerHolds(b.stateVector(), a.id, a.ownSeq)).toBe(true);
    expect(b.peerHolds(a.stateVector(), b.id, b.ownSeq)).toBe(true);
    expect(errorName(() => a.peerHolds(new Uint8Array([1, 2]), a.id, 1))).toBe('BadSyncMessageError');
  });
});
