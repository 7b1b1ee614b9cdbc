/**
 * The libp2p Network adapter on 127.0.0.1: mesh formation from one bootstrap address, gossip, request/response and
 * its failures, refusal of a wrong secret and of non-members (quickly, by name), remembered addresses.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PeerUnreachableError, RemoteError, RequestTimeoutError } from '../../core/net.ts';
import { AbortedError } from '../../core/errors.ts';
import { AccessDeniedError, FrameTooLargeError, ListenFailedError } from './errors.ts';
import { protocolId, type Libp2pNetwork } from './libp2p-network.ts';
import { Fleet, OTHER_PSK, identities, outcome, sleep, waitFor } from './test-support.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const fleet = new Fleet();
afterEach(() => fleet.stopAll());

/** Gossip is best effort: publish every 100 ms until `done()` (at most 5 s). */
async function publishUntil(net: Libp2pNetwork, topic: string, text: string, done: () => boolean): Promise<void> {
  for (let i = 0; !done(); i++) {
    if (i === 50) throw new Error(`gossip ${JSON.stringify(text)} not delivered in 5 s`);
    net.publish(topic, enc.encode(text));
    await sleep(100);
  }
}

describe('mesh and gossip', () => {
  it('four Boxes form a full mesh from one bootstrap address; one publish reaches every subscriber', async () => {
    const ids = await identities(4);
    ids.forEach((i) => fleet.members.add(i.id));
    const ups = new Map<string, string[]>();
    const first = fleet.add(ids[0], { onPeerUp: (p) => ups.set(ids[0].id, [...(ups.get(ids[0].id) ?? []), p]) });
    await first.start();
    const boot = first.addresses()[0];
    expect(boot).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/p2p\/12D3/);
    const rest = ids.slice(1).map((i) => fleet.add(i, { bootstrap: [boot] }));
    await Promise.all(rest.map((n) => n.start()));
    const nets = [first, ...rest];
    await waitFor('a full mesh', () => nets.every((n) => n.peers().length === 3), 15_000);
    for (const n of nets) expect(n.peers()).toEqual(ids.map((i) => i.id).filter((id) => id !== n.self).sort());
    expect(new Set(ups.get(ids[0].id))).toEqual(new Set(ids.slice(1).map((i) => i.id)));

    const got = nets.map(() => [] as string[]);
    nets.forEach((n, i) => n.subscribe('reserve/test/1', (from, data) => got[i].push(`${from}:${dec.decode(data)}`)));
    // gossip is best effort (a message published before the publisher has a stream to a peer is not delivered
    // to it): wait until the gossip mesh has formed, then publish once
    await waitFor('the gossip mesh', () => nets.every((n) => n.gossipMeshPeers('reserve/test/1').length === 3), 10_000);
    nets[2].publish('reserve/test/1', enc.encode('hello'));
    await waitFor('the message everywhere', () => [0, 1, 3].every((i) => got[i].length === 1), 5000);
    for (const i of [0, 1, 3]) expect(got[i]).toEqual([`${ids[2].id}:hello`]);
    expect(got[2]).toEqual([]); // not delivered to its publisher
  });

  it('publish never throws for missing peers, and unsubscribe stops delivery', async () => {
    const ids = await identities(2);
    ids.forEach((i) => fleet.members.add(i.id));
    const a = fleet.add(ids[0]);
    await a.start();
    expect(() => a.publish('lonely', enc.encode('x'))).not.toThrow();
    const b = fleet.add(ids[1], { bootstrap: a.addresses() });
    const got: string[] = [];
    const off = b.subscribe('t', (_f, d) => got.push(dec.decode(d))); // before start: taken up at start
    await b.start();
    await waitFor('subscription', () => a.libp2p.services.pubsub.getSubscribers('t').length === 1);
    // a is not subscribed itself (no mesh): publish until its stream to b carries one
    await publishUntil(a, 't', 'one', () => got.length > 0);
    await sleep(200);
    const before = got.length;
    off();
    await waitFor('unsubscription', () => a.libp2p.services.pubsub.getSubscribers('t').length === 0);
    a.publish('t', enc.encode('two'));
    await sleep(300);
    expect(got.length).toBe(before);
    expect(got.every((m) => m === 'one')).toBe(true);
    expect(() => a.publish('t', new Uint8Array(2 * 1024 * 1024))).toThrow(FrameTooLargeError);
  });
});

describe('request / response', () => {
  it('answers, reports remote errors by name, refuses unknown protocols and oversize messages, times out', async () => {
    const ids = await identities(2);
    ids.forEach((i) => fleet.members.add(i.id));
    const a = fleet.add(ids[0]);
    const b = fleet.add(ids[1]);
    b.handle('echo', async (from, data) => enc.encode(`${from}:${dec.decode(data)}`));
    await Promise.all([a.start(), b.start()]);
    b.handle('reserve/fail/1', async () => {
      throw Object.assign(new Error('no such snapshot'), { name: 'SnapshotNotFoundError' });
    });
    b.handle('slow', () => new Promise(() => undefined));
    b.handle('big', async () => new Uint8Array(100 * 1024));
    await a.dial(b.addresses()[0]);

    expect(dec.decode(await a.request(b.self, 'echo', enc.encode('ping')))).toBe(`${a.self}:ping`);

    const failed = await outcome(a.request(b.self, 'reserve/fail/1', new Uint8Array(0)));
    expect(failed.error).toBeInstanceOf(RemoteError);
    expect((failed.error as RemoteError).remoteName).toBe('SnapshotNotFoundError');
    expect(failed.error!.message).toContain('no such snapshot');

    const unknown = await outcome(a.request(b.self, 'nobody-serves-this', new Uint8Array(0)));
    expect(unknown.error).toBeInstanceOf(RemoteError);
    expect((unknown.error as RemoteError).remoteName).toBe('UnsupportedProtocolError');

    const slow = await outcome(a.request(b.self, 'slow', new Uint8Array(0), { timeoutMs: 300 }));
    expect(slow.error).toBeInstanceOf(RequestTimeoutError);
    expect(slow.ms).toBeLessThan(3000);

    // the response exceeds the 64 KiB control limit: the server refuses to send it, by name
    const big = await outcome(a.request(b.self, 'big', new Uint8Array(0)));
    expect((big.error as RemoteError).remoteName).toBe('FrameTooLargeError');
    // a request over the limit is refused before it leaves
    await expect(a.request(b.self, 'echo', new Uint8Array(65 * 1024))).rejects.toBeInstanceOf(FrameTooLargeError);

    const ctl = new AbortController();
    const cancelled = a.request(b.self, 'slow', new Uint8Array(0), { signal: ctl.signal });
    setTimeout(() => ctl.abort(), 50);
    await expect(cancelled).rejects.toBeInstanceOf(AbortedError);

    // a protocol configured for large answers: a 20 MiB response (more than the reader's 8 MiB mark) arrives whole
    b.handle('bulk', async () => new Uint8Array(20 * 1024 * 1024).fill(3), { maxResponseBytes: 32 * 1024 * 1024 });
    await waitFor('bulk handler', () => b.libp2p.getProtocols().includes('/reserve/bulk/1.0.0'));
    const bulk = await a.request(b.self, 'bulk', new Uint8Array(0), { maxResponseBytes: 32 * 1024 * 1024, timeoutMs: 20_000 });
    expect(bulk.byteLength).toBe(20 * 1024 * 1024);
    expect(bulk[0] === 3 && bulk[bulk.byteLength - 1] === 3).toBe(true);

    // still healthy after all that
    expect(dec.decode(await a.request(b.self, 'echo', enc.encode('again')))).toBe(`${a.self}:again`);
  });

  it('maps protocol names to libp2p protocol ids', () => {
    expect(protocolId('echo')).toBe('/reserve/echo/1.0.0');
    expect(protocolId('reserve/sync/1')).toBe('/reserve/sync/1/1.0.0');
    expect(() => protocolId('blocks')).toThrow();
    expect(() => protocolId('/abs')).toThrow();
  });

  it('an unreachable member fails fast with PeerUnreachableError', async () => {
    const ids = await identities(3);
    ids.forEach((i) => fleet.members.add(i.id));
    const downs: string[] = [];
    const a = fleet.add(ids[0], { onPeerDown: (p) => downs.push(p) });
    const b = fleet.add(ids[1]);
    b.handle('echo', async (_f, d) => d);
    await Promise.all([a.start(), b.start()]);
    await a.dial(b.addresses()[0]);
    await b.stop();
    await waitFor('a to notice', () => a.peers().length === 0 && downs.length === 1);
    expect(downs).toEqual([b.self]);
    const gone = await outcome(a.request(ids[1].id, 'echo', new Uint8Array(0)));
    expect(gone.error).toBeInstanceOf(PeerUnreachableError);
    expect(gone.ms).toBeLessThan(3000);
    // a member nobody has an address for
    const nowhere = await outcome(a.request(ids[2].id, 'echo', new Uint8Array(0)));
    expect(nowhere.error).toBeInstanceOf(PeerUnreachableError);
    expect(nowhere.ms).toBeLessThan(3000);
    // a closed port
    const closed = await outcome(a.dial(`/ip4/127.0.0.1/tcp/1/p2p/${ids[1].id}`));
    expect(closed.error).toBeInstanceOf(PeerUnreachableError);
    // itself
    await expect(a.request(a.self, 'echo', new Uint8Array(0))).rejects.toBeInstanceOf(PeerUnreachableError);
  });
});

describe('access: only members holding the reserve secret get in', () => {
  it('a wrong secret is refused fast, by name, on every attempt (no hang)', async () => {
    const ids = await identities(2);
    ids.forEach((i) => fleet.members.add(i.id));
    const a = fleet.add(ids[0]);
    a.handle('echo', async (_f, d) => d);
    await a.start();
    const intruder = fleet.add(ids[1], { psk: OTHER_PSK, knownPeers: { [a.self]: { addrs: a.addresses(), lastSeen: 0 } } });
    await intruder.start();
    for (let i = 0; i < 5; i++) {
      const r = await outcome(intruder.dial(a.addresses()[0]));
      expect(r.error).toBeInstanceOf(AccessDeniedError);
      expect((r.error as AccessDeniedError).reason).toBe('wrong-secret');
      expect(r.error!.message).toMatch(/^wrong reserve secret or not a member/);
      expect(r.ms).toBeLessThan(3000); // a hang detector, not a speed target
      const back = await outcome(a.dial(intruder.addresses()[0]));
      expect((back.error as AccessDeniedError).reason).toBe('wrong-secret');
      expect(back.ms).toBeLessThan(3000);
    }
    // through the Network port: a request fails the port's way (PeerUnreachableError), under its own name
    const req = await outcome(intruder.request(a.self, 'echo', new Uint8Array(1)));
    expect(req.error).toBeInstanceOf(PeerUnreachableError);
    expect(req.error!.name).toBe('AccessDeniedError');
    expect(req.ms).toBeLessThan(3000);
    expect(a.peers()).toEqual([]);
  });

  it('a non-member holding the secret gets past the handshake only to ask to join; a member never dials it', async () => {
    const ids = await identities(2);
    fleet.members.add(ids[0].id); // ids[1] is not a member
    const a = fleet.add(ids[0], { applicantTimeoutMs: 1000 });
    a.handle('echo', async (_f, d) => d);
    // the outsider thinks everyone is a member
    const outsider = fleet.add(ids[1], { isMember: () => true });
    outsider.handle('echo', async (_f, d) => d);
    await Promise.all([a.start(), outsider.start()]);

    const inbound = await outcome(outsider.dial(a.addresses()[0]));
    expect(inbound.error).toBeInstanceOf(AccessDeniedError);
    expect((inbound.error as AccessDeniedError).reason).toBe('not-a-member');
    expect(inbound.error!.message).toContain('not a member of this reserve; join with an invite token');
    expect(inbound.ms).toBeLessThan(3000);
    expect(a.peers()).toEqual([]);
    // it is dropped once its deadline passes
    await waitFor('a to drop the applicant', () => a.libp2p.getConnections().length === 0, 5000);

    // a refuses to dial it (known id), or to keep a connection to it (address without id)
    const byId = await outcome(a.dial(outsider.addresses()[0]));
    expect((byId.error as AccessDeniedError).reason).toBe('not-a-member');
    const byAddr = await outcome(a.dial(outsider.addresses()[0].replace(/\/p2p\/.*$/, '')));
    expect((byAddr.error as AccessDeniedError).reason).toBe('not-a-member');
    expect(byAddr.ms).toBeLessThan(3000);
    await expect(a.request(outsider.self, 'echo', new Uint8Array(0))).rejects.toBeInstanceOf(AccessDeniedError);
  });

  it('gossip of a Box that stopped being a member is ignored, and refreshMembership disconnects it', async () => {
    const ids = await identities(3);
    ids.forEach((i) => fleet.members.add(i.id));
    let cIsMemberForA = true;
    const a = fleet.add(ids[0], { isMember: (p) => (p === ids[2].id ? cIsMemberForA : fleet.members.has(p)) });
    const b = fleet.add(ids[1]);
    const c = fleet.add(ids[2]);
    await a.start();
    await Promise.all([b, c].map((n) => n.start()));
    await b.dial(a.addresses()[0]);
    await c.dial(a.addresses()[0]);
    await waitFor('mesh', () => [a, b, c].every((n) => n.peers().length === 2), 10_000);
    const atA: string[] = [];
    const atB: string[] = [];
    a.subscribe('t', (from, d) => atA.push(`${from}:${dec.decode(d)}`));
    b.subscribe('t', (from, d) => atB.push(`${from}:${dec.decode(d)}`));
    await waitFor('subscriptions', () => c.libp2p.services.pubsub.getSubscribers('t').length === 2 && b.libp2p.services.pubsub.getSubscribers('t').length === 1);
    // c is not subscribed (no mesh of its own): publish until its streams carry one to each
    await publishUntil(c, 't', 'while a member', () => atA.length > 0 && atB.length > 0);
    // a learns that c was removed; b has not heard yet and still accepts it
    cIsMemberForA = false;
    const seenByB = atB.length;
    await publishUntil(c, 't', 'after removal', () => atB.length > seenByB);
    await sleep(300);
    expect(atA.length).toBeGreaterThan(0);
    expect(atA.every((m) => m === `${c.self}:while a member`)).toBe(true);
    expect(a.peers()).toEqual([b.self]); // peers() only lists members
    await a.refreshMembership();
    await waitFor('a to drop its connection to c', () => a.libp2p.getConnections().every((conn) => conn.remotePeer.toString() !== c.self));
    // and c cannot come back
    const back = await outcome(c.dial(a.addresses()[0]));
    expect(back.error).toBeInstanceOf(AccessDeniedError);
    expect(back.ms).toBeLessThan(3000);
  });
});

describe('addresses', () => {
  it('a listen address in use fails start by name', async () => {
    const ids = await identities(2);
    const a = fleet.add(ids[0]);
    await a.start();
    const port = /\/tcp\/(\d+)/.exec(a.addresses()[0])![1];
    const b = fleet.add(ids[1], { listen: [`/ip4/127.0.0.1/tcp/${port}`] });
    await expect(b.start()).rejects.toBeInstanceOf(ListenFailedError);
    expect(b.isRunning).toBe(false);
  });

  it('a restarted Box finds the others from the addresses it remembered, without bootstrap', async () => {
    const ids = await identities(3);
    ids.forEach((i) => fleet.members.add(i.id));
    const a = fleet.add(ids[0]);
    await a.start();
    const b = fleet.add(ids[1], { bootstrap: a.addresses() });
    const c = fleet.add(ids[2], { bootstrap: a.addresses() });
    await Promise.all([b.start(), c.start()]);
    await waitFor('mesh', () => [a, b, c].every((n) => n.peers().length === 2), 10_000);
    const book = c.knownPeers();
    expect(Object.keys(book).sort()).toEqual([a.self, b.self].sort());
    expect(book[b.self].addrs.length).toBeGreaterThan(0);
    await c.stop();
    const downs: string[] = [];
    const c2 = fleet.add(ids[2], { knownPeers: JSON.parse(JSON.stringify(book)), onPeerUp: (p) => downs.push(p) });
    await c2.start();
    await waitFor('c to reconnect to both', () => c2.peers().length === 2, 10_000);
    expect(new Set(downs)).toEqual(new Set([a.self, b.self]));
  });

  // Maintenance ticks an hour apart: only a dial made at once on the news can connect within the test.
  const noTicks = { maintenanceIntervalMs: 3_600_000 };

  it("a member's newly learnt address is dialled at once, not at the next maintenance tick", async () => {
    const ids = await identities(2);
    ids.forEach((i) => fleet.members.add(i.id));
    const a = fleet.add(ids[0], noTicks);
    const b = fleet.add(ids[1], noTicks);
    await Promise.all([a.start(), b.start()]);
    await sleep(300);
    expect(b.peers()).toEqual([]); // neither knows where the other is
    const t = performance.now();
    b.addPeerAddresses(a.self, a.addresses()); // e.g. announced in the shared state
    await waitFor('b to dial a', () => b.peers().includes(a.self) && a.peers().includes(b.self), 5_000);
    expect(performance.now() - t).toBeLessThan(5_000);
  });

  it('a Box that becomes a member is dialled as soon as the membership is refreshed', async () => {
    const ids = await identities(2);
    fleet.members.add(ids[1].id); // a is not a member yet
    const a = fleet.add(ids[0], noTicks);
    const b = fleet.add(ids[1], noTicks);
    await Promise.all([a.start(), b.start()]);
    b.addPeerAddresses(a.self, a.addresses());
    await sleep(300);
    expect(b.peers()).toEqual([]); // a member never dials a non-member
    fleet.members.add(ids[0].id); // the join is admitted
    await b.refreshMembership();
    await waitFor('b to dial the new member', () => b.peers().includes(a.self), 5_000);
  });
});
