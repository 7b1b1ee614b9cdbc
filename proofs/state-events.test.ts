/**
 * Shared-state events: canonical encoding, content ids, signatures, join proofs, and the named error for every
 * kind of bad input. A fuzz property checks that no byte string decodes into something other than what was
 * signed.
 */
import * as dagCbor from '@ipld/dag-cbor';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { propertyOptions } from './support/fc.ts';
import { joinKeySigner, reserveIdOf, seal, signerFromSeed, unsealerFromSeed } from '../core/state/crypto.ts';
import {
  BadJoinProofError,
  BadSignatureError,
  createEvent,
  decodeEvent,
  eventIdOf,
  MalformedEventError,
  MAX_EVENT_BYTES,
  peekEvent,
  sealContext,
} from '../core/state/events.ts';
import type { StateEvent } from '../core/state/events.ts';
import { holderBody, joinBody, logBody, makeWorld, rotationBody, sign, snapshotBody } from './crdt-fixtures.ts';

function allKinds(): { world: ReturnType<typeof makeWorld>; events: StateEvent[] } {
  const world = makeWorld(11, 3);
  const [a, b, c] = world.boxes;
  const events: StateEvent[] = [
    sign(world, a, 'box-joined', joinBody(world, a, 0, { region: 'home' })),
    sign(world, b, 'box-joined', joinBody(world, b)),
    sign(world, c, 'box-joined', joinBody(world, c)),
    sign(world, a, 'box-updated', { capacity: 5, addresses: [] }),
    sign(world, a, 'config-changed', { set: [['events.warningWindowOverrides.file-size', 1000], ['replication.target', 4]] }),
    sign(world, a, 'snapshot-published', snapshotBody(1)),
    sign(world, b, 'snapshot-published', snapshotBody(2, 1)),
    sign(world, b, 'holder-report', holderBody(3)),
    sign(world, b, 'reserve-event', logBody(b, 1, 'warning')),
    sign(world, a, 'box-declared-dead', { box: c.signer.id, reason: 'gone' }),
    sign(world, a, 'secret-rotated', rotationBody(world, 1, [a, b])),
    sign(world, b, 'box-decommissioned', { box: c.signer.id }),
    sign(world, b, 'box-left', {}),
  ];
  return { world, events };
}

describe('state events', () => {
  it('round-trips every kind through bytes: same id, same fields', () => {
    const { world, events } = allKinds();
    for (const ev of events) {
      const back = decodeEvent(ev.bytes, { reserveId: world.reserveId });
      expect(back.id).toBe(ev.id);
      expect(back.id).toBe(eventIdOf(ev.bytes));
      expect(back.kind).toBe(ev.kind);
      expect(back.author).toBe(ev.author);
      expect(back.seq).toBe(ev.seq);
      expect(back.at).toEqual(ev.at);
      expect(dagCbor.encode(back.body as never)).toEqual(dagCbor.encode(ev.body as never));
      expect(peekEvent(ev.bytes)).toEqual({ author: ev.author, seq: ev.seq, kind: ev.kind });
    }
    expect(events[0].id).toMatch(/^bafyrei/);
  });

  it('an event of one reserve does not verify in another (BadSignatureError)', () => {
    const { events } = allKinds();
    const other = reserveIdOf(new Uint8Array(32).fill(9));
    for (const ev of events) {
      expect(() => decodeEvent(ev.bytes, { reserveId: other })).toThrow(BadSignatureError);
    }
    // A join is additionally bound to its reserve by its proof: re-signed for the other reserve, it still fails.
    const world = makeWorld(11, 1);
    const a = world.boxes[0];
    expect(() => createEvent(a.signer, { reserveId: other }, { seq: 1, at: { wall: 1, logical: 0 } }, 'box-joined', joinBody(world, a))).toThrow(BadJoinProofError);
  });

  it('a signature by someone else is BadSignatureError', () => {
    const { world, events } = allKinds();
    const ev = events[5];
    const outer = dagCbor.decode(ev.bytes) as { p: Uint8Array; z: Uint8Array };
    const forged = signerFromSeed(new Uint8Array(32).fill(3)).sign(outer.p);
    const bytes = dagCbor.encode({ p: outer.p, z: forged });
    const err = (() => {
      try {
        decodeEvent(bytes, { reserveId: world.reserveId });
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.name).toBe('BadSignatureError');
    expect(err).toBeInstanceOf(BadSignatureError);
  });

  it('malformed input is MalformedEventError: not cbor, wrong shape, non-canonical, unknown kind, bad body', () => {
    const world = makeWorld(12, 1);
    const ctx = { reserveId: world.reserveId };
    const a = world.boxes[0];
    const join = sign(world, a, 'box-joined', joinBody(world, a));
    const bad: Uint8Array[] = [
      new Uint8Array([0xff, 0x00]),
      dagCbor.encode({ p: new Uint8Array(3) }),
      dagCbor.encode([1, 2, 3]),
      dagCbor.encode({ p: dagCbor.encode({ v: 1 }), z: new Uint8Array(64) }),
    ];
    // Non-canonical: a map with keys out of canonical order, written by hand.
    const outer = dagCbor.decode(join.bytes) as { p: Uint8Array; z: Uint8Array };
    const swapped = new Uint8Array([0xa2, 0x61, 0x7a, 0x58, 0x40, ...outer.z, 0x61, 0x70, ...dagCbor.encode(outer.p)]);
    bad.push(swapped);
    for (const bytes of bad) expect(() => decodeEvent(bytes, ctx)).toThrow(MalformedEventError);
    const signer = a.signer;
    const raw = (payload: unknown) => {
      const p = dagCbor.encode(payload);
      const prefix = new TextEncoder().encode(`reserve/state-event/v1\n${world.reserveId}\n`);
      const z = signer.sign(new Uint8Array([...prefix, ...p]));
      return dagCbor.encode({ p, z });
    };
    const cases: Array<[unknown, RegExp]> = [
      [{ v: 2, k: 'box-left', a: signer.id, s: 2, t: [1, 0], b: {} }, /version/],
      [{ v: 1, k: 'nope', a: signer.id, s: 2, t: [1, 0], b: {} }, /unknown event kind/],
      [{ v: 1, k: 'box-left', a: signer.id, s: 0, t: [1, 0], b: {} }, /seq/],
      [{ v: 1, k: 'box-left', a: signer.id, s: 1, t: [1, 0], b: {} }, /first event/],
      [{ v: 1, k: 'box-left', a: 'not-a-peer-id', s: 2, t: [1, 0], b: {} }, /author/],
      [{ v: 1, k: 'holder-report', a: signer.id, s: 2, t: [1, 0], b: { count: -1, bytes: 1, root: new Uint8Array(4) } }, /count/],
      [{ v: 1, k: 'config-changed', a: signer.id, s: 2, t: [1, 0], b: { set: [['replication.target', 0]] } }, /replication\.target/],
      [{ v: 1, k: 'config-changed', a: signer.id, s: 2, t: [1, 0], b: { set: [['no.such.field', 1]] } }, /no\.such\.field/],
      [{ v: 1, k: 'box-left', a: signer.id, s: 2, t: [1, 0], b: {}, extra: 1 }, /exactly the fields/],
      [{ v: 1, k: 'box-declared-dead', a: signer.id, s: 2, t: [1, 0], b: { box: 'x' } }, /box/],
    ];
    for (const [payload, message] of cases) {
      expect(() => decodeEvent(raw(payload), ctx)).toThrow(MalformedEventError);
      expect(() => decodeEvent(raw(payload), ctx)).toThrow(message);
    }
  });

  it('refuses oversized events (MalformedEventError)', () => {
    const world = makeWorld(13, 1);
    const a = world.boxes[0];
    sign(world, a, 'box-joined', joinBody(world, a));
    const big = { event: { id: 'x/1', source: 'x', time: 1, severity: 'normal' as const, kind: 'k', payload: 'y'.repeat(MAX_EVENT_BYTES) } };
    expect(() => sign(world, a, 'reserve-event', big)).toThrow(MalformedEventError);
  });

  it('a join must prove the secret: wrong secret or foreign join key is BadJoinProofError', () => {
    const world = makeWorld(14, 2);
    const [a, b] = world.boxes;
    const ok = sign(world, a, 'box-joined', joinBody(world, a));
    expect(ok.kind).toBe('box-joined');
    // The proof made with another secret's join key: the key does not hash to the reserve id.
    const wrong = joinKeySigner(new Uint8Array(32).fill(7), 0);
    const forged = { ...joinBody(world, b), joinKey: wrong.publicKey, proof: wrong.sign(new Uint8Array([1])) };
    expect(() => createEvent(b.signer, { reserveId: world.reserveId }, { seq: 1, at: { wall: 5, logical: 0 } }, 'box-joined', forged)).toThrow(BadJoinProofError);
    // The right join key but a proof over something else (another Box's id).
    const stolen = { ...joinBody(world, b), proof: joinBody(world, a).proof };
    expect(() => createEvent(b.signer, { reserveId: world.reserveId }, { seq: 1, at: { wall: 5, logical: 0 } }, 'box-joined', stolen)).toThrow(BadJoinProofError);
  });

  it('sealed secrets open only for their recipient and context', () => {
    const world = makeWorld(15, 2);
    const [a, b] = world.boxes;
    const secret = new Uint8Array(32).fill(42);
    const aad = sealContext(world.reserveId, 1, a.signer.id);
    const sealed = seal(a.unsealer.publicKey, secret, aad, world.random.fork('seal'));
    expect(a.unsealer.unseal(sealed, aad)).toEqual(secret);
    expect(() => b.unsealer.unseal(sealed, aad)).toThrow(expect.objectContaining({ name: 'UnsealError' }));
    expect(() => a.unsealer.unseal(sealed, sealContext(world.reserveId, 2, a.signer.id))).toThrow(expect.objectContaining({ name: 'UnsealError' }));
    const tampered = sealed.slice();
    tampered[40] ^= 1;
    expect(() => a.unsealer.unseal(tampered, aad)).toThrow(expect.objectContaining({ name: 'UnsealError' }));
    expect(unsealerFromSeed(new Uint8Array(32).fill(1)).publicKey).toHaveLength(32);
  });

  it('fuzz: any mutation of an event either fails with a named error or is the same event', () => {
    const { world, events } = allKinds();
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: events.length - 1 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (which, flips, truncate) => {
          const ev = events[which];
          const bytes = ev.bytes.slice();
          for (const [pos, x] of flips) bytes[pos % bytes.length] ^= x;
          const input = truncate ? bytes.subarray(0, bytes.length - 1 - (flips[0][0] % 8)) : bytes;
          try {
            const back = decodeEvent(input, { reserveId: world.reserveId });
            // Accepted only if it is byte-for-byte a validly signed event: then it must be the same event.
            expect(back.id).toBe(ev.id);
          } catch (err) {
            expect(['MalformedEventError', 'BadSignatureError', 'BadJoinProofError']).toContain((err as Error).name);
          }
        },
      ),
      propertyOptions('state events: mutation fuzz', { numRuns: 300 }),
    );
  });

  it('fuzz: arbitrary bytes never decode and never throw anything but MalformedEventError', () => {
    const world = makeWorld(16, 1);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(() => decodeEvent(bytes, { reserveId: world.reserveId })).toThrow(MalformedEventError);
      }),
      propertyOptions('state events: random bytes', { numRuns: 300 }),
    );
  });
});
