/**
 * Admission on the libp2p network: a peer that holds the reserve secret but is not a member may open the join
 * protocol and nothing else (every other request, block transfer and gossip is refused by name), it is dropped
 * after the join exchange or its deadline, and a join that makes it a member keeps it connected as a member.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import * as raw from 'multiformats/codecs/raw';
import fc from 'fast-check';
import * as dagCbor from '@ipld/dag-cbor';
import { ReserveError } from '../../core/errors.ts';
import {
  JOIN_PROTOCOL,
  JoinRequiredError,
  MAX_JOIN_EVENTS,
  decodeJoinRequest,
  decodeJoinResponse,
  encodeJoinRequest,
  encodeJoinResponse,
} from '../../core/keeper/protocol.ts';
import { propertyOptions } from '../../proofs/support/fc.ts';
import { RemoteError } from '../../core/net.ts';
import { TransferInterruptedError } from './errors.ts';
import { Fleet, identities, outcome, sleep, waitFor } from './test-support.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const fleet = new Fleet();
afterEach(() => fleet.stopAll());

describe('join admission', () => {
  it('a non-member may only ask to join: requests, blocks and gossip are refused by name; a failed join closes the connection', async () => {
    const ids = await identities(2);
    fleet.members.add(ids[0].id);
    const member = fleet.add(ids[0], { applicantTimeoutMs: 20_000 });
    const asked: string[] = [];
    member.handle('echo', async (_f, d) => d);
    member.handle(JOIN_PROTOCOL, async (from) => {
      asked.push(from);
      throw Object.assign(new Error('bad proof'), { name: 'JoinRefusedError' });
    });
    const bytes = enc.encode('a block');
    const cid = CID.createV1(raw.code, await sha256.digest(bytes));
    member.serveBlocks(async () => bytes);
    const heard: string[] = [];
    member.subscribe('reserve/state/1', (from, d) => heard.push(`${from}:${dec.decode(d)}`));
    const joiner = fleet.add(ids[1], { isMember: () => true });
    const got: string[] = [];
    joiner.subscribe('reserve/state/1', (_from, d) => got.push(dec.decode(d)));
    await Promise.all([member.start(), joiner.start()]);

    const dial = await outcome(joiner.dial(member.addresses()[0]));
    expect(dial.error?.message).toContain('not a member of this reserve; join with an invite token');
    expect(member.peers()).toEqual([]);

    const req = await outcome(joiner.request(member.self, 'echo', enc.encode('hi')));
    expect(req.error).toBeInstanceOf(JoinRequiredError);
    expect(req.error).toBeInstanceOf(RemoteError); // the Network port's contract for a refusal
    expect(req.error!.message).toContain('not a member of this reserve; join with an invite token');
    expect(req.ms).toBeLessThan(3000);

    const blocks = await outcome(joiner.fetchBlocks(member.self, [cid], async () => undefined));
    expect(blocks.error).toBeInstanceOf(TransferInterruptedError);
    expect(((blocks.error as TransferInterruptedError).cause as RemoteError).remoteName).toBe('JoinRequiredError');

    // gossip both ways is dropped: the applicant's is ignored, and nothing is published to it
    for (let i = 0; i < 10; i++) {
      joiner.publish('reserve/state/1', enc.encode(`from the applicant ${i}`));
      member.publish('reserve/state/1', enc.encode(`from the member ${i}`));
      await sleep(100);
    }
    expect(heard).toEqual([]);
    expect(got).toEqual([]);

    // the join protocol is served; the member refused this join, so the connection is closed right after
    const join = await outcome(joiner.request(member.self, JOIN_PROTOCOL, new Uint8Array([1])));
    expect((join.error as RemoteError).remoteName).toBe('JoinRefusedError');
    expect(asked).toEqual([joiner.self]);
    await waitFor('the member to close the connection', () => member.libp2p.getConnections().length === 0, 3000);
  });

  it('an applicant that does not join is dropped at its deadline', async () => {
    const ids = await identities(2);
    fleet.members.add(ids[0].id);
    const member = fleet.add(ids[0], { applicantTimeoutMs: 800 });
    const joiner = fleet.add(ids[1], { isMember: () => true });
    await Promise.all([member.start(), joiner.start()]);
    const t = performance.now();
    await outcome(joiner.dial(member.addresses()[0]));
    expect(member.libp2p.getConnections().length).toBe(1);
    await waitFor('the deadline', () => member.libp2p.getConnections().length === 0, 5000);
    expect(performance.now() - t).toBeGreaterThan(600);
  });

  it('a join that makes the applicant a member keeps it connected, as a member, both ways', async () => {
    const ids = await identities(2);
    fleet.members.add(ids[0].id);
    const ups: string[] = [];
    const member = fleet.add(ids[0], { applicantTimeoutMs: 800, onPeerUp: (p) => ups.push(p) });
    member.handle('echo', async (_f, d) => d);
    member.handle(JOIN_PROTOCOL, async (from) => {
      fleet.members.add(from); // what the Box does: the join is applied to its ledger
      return enc.encode('welcome');
    });
    const heard: string[] = [];
    member.subscribe('reserve/state/1', (from, d) => heard.push(`${from}:${dec.decode(d)}`));
    const joiner = fleet.add(ids[1], { isMember: () => true });
    joiner.subscribe('reserve/state/1', () => undefined);
    await Promise.all([member.start(), joiner.start()]);
    await outcome(joiner.dial(member.addresses()[0]));

    expect(dec.decode(await joiner.request(member.self, JOIN_PROTOCOL, new Uint8Array([1])))).toBe('welcome');
    expect(dec.decode(await joiner.request(member.self, 'echo', enc.encode('now a member')))).toBe('now a member');
    expect(member.peers()).toEqual([joiner.self]);
    expect(ups).toEqual([joiner.self]);
    await sleep(1200); // past the applicant deadline: still connected
    expect(member.libp2p.getConnections().length).toBeGreaterThan(0);
    // its gossip is taken now (the score cache refreshes within a heartbeat)
    for (let i = 0; i < 50 && heard.length === 0; i++) {
      joiner.publish('reserve/state/1', enc.encode('hello'));
      await sleep(100);
    }
    expect(heard[0]).toBe(`${joiner.self}:hello`);
  });
});

describe('the JOIN codec', () => {
  it('round-trips, and refuses malformed, oversized and foreign input by name without throwing anything else', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 64 }), fc.array(fc.uint8Array({ minLength: 1, maxLength: 600 }), { minLength: 1, maxLength: MAX_JOIN_EVENTS }), fc.nat(), (r, events, n) => {
        expect(decodeJoinRequest(encodeJoinRequest({ reserveId: r, events }))).toEqual({ reserveId: r, events });
        expect(decodeJoinResponse(encodeJoinResponse({ reserveId: r, members: n }))).toEqual({ reserveId: r, members: n });
      }),
      propertyOptions('JOIN codec round-trips', { numRuns: 100 }),
    );
    const named = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(ReserveError);
      }
    };
    const valid = encodeJoinRequest({ reserveId: 'r', events: [new Uint8Array([1, 2, 3])] });
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.nat({ max: valid.length }).map((n) => valid.slice(0, n)),
          fc.tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, b]) => {
            const c = valid.slice();
            c[i] = b;
            return c;
          }),
          fc.anything().map((v) => {
            try {
              return dagCbor.encode(v as never);
            } catch {
              return new Uint8Array(0);
            }
          }),
        ),
        (bytes) => {
          named(() => decodeJoinRequest(bytes));
          named(() => decodeJoinResponse(bytes));
        },
      ),
      propertyOptions('JOIN codec refuses junk by name', { numRuns: 300 }),
    );
    expect(() => decodeJoinRequest(encodeJoinRequest({ reserveId: 'r', events: Array.from({ length: MAX_JOIN_EVENTS + 1 }, () => new Uint8Array(1)) }))).toThrow(/expected 1 to/);
    expect(() => decodeJoinRequest(new Uint8Array(64 * 1024))).toThrow(/exceeds/);
  });
});
