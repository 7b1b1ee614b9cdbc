/**
 * Core's BlockTransport over libp2p (`Libp2pNetwork.blocks`, block-sessions.ts): concurrent gets and puts to a peer
 * share one stream per direction; answers match their calls; missing, refused and failing blocks are told apart;
 * a Box that dies mid-transfer fails every call in flight (and the next call opens a new session); silence times
 * out; the push server stores a bounded number of blocks at once; non-members are refused. And BlockClient on top:
 * fastest holder first, the next holder when one fails or sends a bad copy, putMany's window.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CID, RAW_CODE, cidOf, matchesCid } from '../../core/blocks/cid.ts';
import { AbortedError } from '../../core/errors.ts';
import { BlockAbsentError, BlockClient, BlockRefusedError, PUT_WINDOW } from '../../core/keeper/block-client.ts';
import { PeerUnreachableError, RemoteError, RequestTimeoutError, type BlockService, type BoxId } from '../../core/net.ts';
import type { Clock } from '../../core/ports.ts';
import { PUSH_PROTOCOL_ID } from './block-sessions.ts';
import { FrameKind, encodeFrame, frameHeader } from './codec.ts';
import type { Libp2pNetwork } from './libp2p-network.ts';
import { Fleet, identities, outcome, sleep, waitFor } from './test-support.ts';

const fleet = new Fleet();
afterEach(() => fleet.stopAll());

function block(i: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = (i + 1) * 0x9e3779b1;
  for (let k = 0; k < size; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[k] = x & 0xff;
  }
  return out;
}

function blocks(n: number, size: (i: number) => number): Array<{ cid: CID; bytes: Uint8Array }> {
  return Array.from({ length: n }, (_, i) => {
    const bytes = block(i, size(i));
    return { cid: cidOf(RAW_CODE, bytes), bytes };
  });
}

/** A BlockService over a map, counting calls and the most puts it had in flight at once. */
function memoryService(initial: Array<{ cid: CID; bytes: Uint8Array }> = [], options: { putDelayMs?: number } = {}) {
  const held = new Map(initial.map((b) => [b.cid.toString(), b.bytes]));
  const stats = { gets: 0, puts: 0, inFlight: 0, maxInFlight: 0 };
  const service: BlockService = {
    get: async (_from, cid) => {
      stats.gets++;
      return held.get(cid.toString());
    },
    put: async (_from, cid, bytes) => {
      stats.puts++;
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      try {
        if (options.putDelayMs) await sleep(options.putDelayMs);
        if (!matchesCid(cid, bytes)) return false;
        held.set(cid.toString(), bytes.slice());
        return true;
      } finally {
        stats.inFlight--;
      }
    },
  };
  return { held, stats, service };
}

async function boxes(n: number, options: Parameters<Fleet['add']>[1] = {}): Promise<Libp2pNetwork[]> {
  const ids = await identities(n);
  ids.forEach((i) => fleet.members.add(i.id));
  const nets = ids.map((i) => fleet.add(i, options));
  await Promise.all(nets.map((n) => n.start()));
  for (const other of nets.slice(1)) await nets[0].dial(other.addresses()[0]);
  return nets;
}

const clock: Clock = { now: () => performance.now(), setTimer: (ms, fn) => {
  const t = setTimeout(fn, ms);
  return () => clearTimeout(t);
} } as Clock;

describe('block sessions (core BlockTransport over libp2p)', () => {
  it('many concurrent gets to one peer share one stream; answers match their calls; absent blocks are undefined', async () => {
    const [client, server] = await boxes(2);
    const all = blocks(120, (i) => (i % 10 === 0 ? 1 << 20 : 500 + i * 131));
    const mem = memoryService(all);
    server.blocks.serveBlocks(mem.service);
    const absent = cidOf(RAW_CODE, new Uint8Array([9, 9, 9]));
    const got = await Promise.all([...all.map((b) => client.blocks.getBlock(server.self, b.cid)), client.blocks.getBlock(server.self, absent)]);
    all.forEach((b, i) => expect(Buffer.compare(got[i]!, b.bytes)).toBe(0));
    expect(got[all.length]).toBeUndefined();
    expect(client.blockSessionStats.opened).toBe(1);
    // idle sessions end by themselves; the next call opens a new one
    await waitFor('the idle session to end', () => client.blockSessionStats.open === 0, 5000);
    expect(Buffer.compare((await client.blocks.getBlock(server.self, all[3].cid))!, all[3].bytes)).toBe(0);
    expect(client.blockSessionStats.opened).toBe(2);
  });

  it('puts are stored once durable, refused when the bytes do not match, and the peer stores a bounded number at once', async () => {
    const [client, server] = await boxes(2, { pushConcurrency: 3 });
    const mem = memoryService([], { putDelayMs: 5 });
    server.blocks.serveBlocks(mem.service);
    const all = blocks(60, (i) => 2000 + i * 977);
    const stored = await Promise.all(all.map((b) => client.blocks.putBlock(server.self, b.cid, b.bytes)));
    expect(stored.every(Boolean)).toBe(true);
    for (const b of all) expect(Buffer.compare(mem.held.get(b.cid.toString())!, b.bytes)).toBe(0);
    expect(mem.stats.maxInFlight).toBeLessThanOrEqual(3);
    expect(mem.stats.maxInFlight).toBeGreaterThan(1); // they overlap
    expect(client.blockSessionStats.opened).toBe(1);
    // a block whose bytes are not its CID's is refused, and the session goes on
    const wrong = await client.blocks.putBlock(server.self, all[0].cid, all[1].bytes);
    expect(wrong).toBe(false);
    expect(await client.blocks.putBlock(server.self, all[2].cid, all[2].bytes)).toBe(true);
  });

  it('the peer stores at most its byte bound of blocks at once, however many it may take by count', async () => {
    const [client, server] = await boxes(2, { pushMaxBytes: 256 * 1024 });
    const mem = memoryService([], { putDelayMs: 5 });
    server.blocks.serveBlocks(mem.service);
    const all = blocks(40, (i) => 100 * 1024 + i);
    const stored = await Promise.all(all.map((b) => client.blocks.putBlock(server.self, b.cid, b.bytes)));
    expect(stored.every(Boolean)).toBe(true);
    // reading stops once 256 KiB are unanswered: three blocks of 100 KiB, not the 64 the count allows
    expect(mem.stats.maxInFlight).toBeLessThanOrEqual(3);
    expect(mem.stats.maxInFlight).toBeGreaterThan(1);
  });

  it("the peer's service failing is a RemoteError by name for every call on the stream; the next call starts afresh", async () => {
    const [client, server] = await boxes(2);
    let fail = true;
    server.blocks.serveBlocks({
      get: async () => {
        if (fail) throw Object.assign(new Error('disk on fire'), { name: 'StorageFullError' });
        return undefined;
      },
      put: async () => {
        throw Object.assign(new Error('no room'), { name: 'StorageFullError' });
      },
    });
    const cids = blocks(5, () => 100).map((b) => b.cid);
    const results = await Promise.all(cids.map((c) => outcome(client.blocks.getBlock(server.self, c))));
    for (const r of results) {
      expect(r.error).toBeInstanceOf(RemoteError);
      expect((r.error as RemoteError).remoteName).toBe('StorageFullError');
    }
    const put = await outcome(client.blocks.putBlock(server.self, cids[0], block(0, 100)));
    expect((put.error as RemoteError).remoteName).toBe('StorageFullError');
    fail = false;
    expect(await client.blocks.getBlock(server.self, cids[0])).toBeUndefined();
  });

  it('a Box that dies mid-transfer fails every call in flight with PeerUnreachableError, quickly', async () => {
    const [client, server] = await boxes(2);
    const all = blocks(40, () => 1 << 20);
    const mem = memoryService(all);
    // slow enough that the transfer is under way when the server stops
    server.blocks.serveBlocks({ ...mem.service, get: async (f, c, o) => (await sleep(20), mem.service.get(f, c, o)) });
    const calls = all.map((b) => outcome(client.blocks.getBlock(server.self, b.cid)));
    await waitFor('the transfer to start', () => mem.stats.gets >= 3, 10_000, 5);
    await server.stop();
    const results = await Promise.all(calls);
    const failed = results.filter((r) => r.error);
    expect(failed.length).toBeGreaterThan(0);
    for (const r of failed) {
      expect(r.error).toBeInstanceOf(PeerUnreachableError);
      expect(r.ms).toBeLessThan(10_000);
    }
    // whatever did arrive is whole
    results.forEach((r, i) => r.value !== undefined && expect(Buffer.compare(r.value, all[i].bytes)).toBe(0));
  });

  it('a peer that sends nothing times out (RequestTimeoutError); a caller that gives up gets AbortedError', async () => {
    const [client, server] = await boxes(2);
    server.blocks.serveBlocks({ get: () => new Promise(() => undefined), put: () => new Promise(() => undefined) });
    const cid = blocks(1, () => 10)[0].cid;
    const slow = await outcome(client.blocks.getBlock(server.self, cid, { timeoutMs: 300 }));
    expect(slow.error).toBeInstanceOf(RequestTimeoutError);
    expect(slow.ms).toBeLessThan(5000);
    const ac = new AbortController();
    const p = outcome(client.blocks.putBlock(server.self, cid, new Uint8Array(10), { signal: ac.signal, timeoutMs: 10_000 }));
    await sleep(50);
    ac.abort();
    const aborted = await p;
    expect(aborted.error).toBeInstanceOf(AbortedError);
    expect(aborted.ms).toBeLessThan(1000);
  });

  it('a non-member is refused on both protocols, and a member never opens a session to one', async () => {
    const ids = await identities(2);
    fleet.members.add(ids[0].id); // ids[1] holds the secret but is not a member
    const member = fleet.add(ids[0]);
    const stranger = fleet.add(ids[1], { isMember: () => true });
    await Promise.all([member.start(), stranger.start()]);
    member.blocks.serveBlocks(memoryService(blocks(3, () => 10)).service);
    await stranger.dial(member.addresses()[0]).catch(() => undefined); // connected, allowed only to ask to join
    const get = await outcome(stranger.blocks.getBlock(member.self, blocks(1, () => 10)[0].cid));
    expect((get.error as RemoteError).remoteName).toBe('JoinRequiredError');
    const put = await outcome(stranger.blocks.putBlock(member.self, blocks(1, () => 10)[0].cid, block(0, 10)));
    expect((put.error as RemoteError).remoteName).toBe('JoinRequiredError');
    const back = await outcome(member.blocks.getBlock(stranger.self, blocks(1, () => 10)[0].cid));
    expect(back.error).toBeInstanceOf(PeerUnreachableError);
  });

  it('malformed input on the push protocol closes the stream and stores nothing', async () => {
    const [client, server] = await boxes(2);
    const mem = memoryService();
    server.blocks.serveBlocks(mem.service);
    const peerId = client.libp2p.getPeers().find((p) => p.toString() === server.self)!;
    for (const bytes of [
      encodeFrame(FrameKind.Want, new Uint8Array(4)), // a frame of the other protocol
      frameHeader(FrameKind.Put, 0xffffffff), // an impossible length
      encodeFrame(FrameKind.Put, Uint8Array.of(40, 1, 2, 3)), // a truncated CID
    ]) {
      const stream = await client.libp2p.dialProtocol(peerId, PUSH_PROTOCOL_ID);
      stream.send(bytes);
      await waitFor('the server to end the stream', () => stream.status !== 'open' || stream.remoteWriteStatus !== 'writable', 5000);
      stream.abort(new Error('done'));
    }
    expect(mem.stats.puts).toBe(0);
    // the protocol still works for well-formed clients
    const b = blocks(1, () => 1000)[0];
    expect(await client.blocks.putBlock(server.self, b.cid, b.bytes)).toBe(true);
  });
});

describe('BlockClient over the bulk transport', () => {
  it('fetches from the fastest holder, moves on when one lacks the block, fails or sends a bad copy', async () => {
    const [client, good, liar, empty] = await boxes(4);
    const all = blocks(30, (i) => 1000 + i);
    good.blocks.serveBlocks(memoryService(all).service);
    empty.blocks.serveBlocks(memoryService().service);
    liar.blocks.serveBlocks({ get: async () => block(999, 1000), put: async () => false });
    const bad: Array<[BoxId, string]> = [];
    const bc = new BlockClient({ network: client, clock, timeoutMs: 5000, onBadCopy: (peer, cid) => bad.push([peer, cid.toString()]) });
    // every holder asked answered, none had a good copy: the bad copy and the absence are both told
    const none = await outcome(bc.fetch(all[0].cid, [liar.self, empty.self]));
    expect(none.error).toBeInstanceOf(BlockAbsentError);
    expect((none.error as BlockAbsentError).corrupt).toEqual([liar.self]);
    expect((none.error as BlockAbsentError).absent).toEqual([empty.self]);
    expect(bad).toEqual([[liar.self, all[0].cid.toString()]]);
    const order = [liar.self, empty.self, good.self];
    const got = await Promise.all(all.map((b) => bc.fetch(b.cid, order)));
    got.forEach((g, i) => {
      expect(g.from).toBe(good.self);
      expect(Buffer.compare(g.bytes, all[i].bytes)).toBe(0);
    });
    // the good one answers every time: it ranks first now
    expect(bc.rank(order)[0]).toBe(good.self);
    await good.stop();
    const gone = await outcome(bc.fetch(all[0].cid, order));
    expect(gone.error?.name).toBe('BlockNotFoundError');
  });

  it('putMany keeps a bounded window in flight, stores everything, and stops at the first refusal', async () => {
    const [client, server] = await boxes(2);
    const mem = memoryService([], { putDelayMs: 2 });
    server.blocks.serveBlocks(mem.service);
    const bc = new BlockClient({ network: client, clock, timeoutMs: 5000 });
    const all = blocks(200, (i) => (i % 20 === 0 ? 1 << 20 : 3000));
    let reading = 0;
    let maxReading = 0;
    const r = await bc.putMany(server.self, all.map((b) => b.cid), async (cid) => {
      reading++;
      maxReading = Math.max(maxReading, reading);
      await sleep(0);
      reading--;
      return all.find((b) => b.cid.equals(cid))!.bytes;
    });
    expect(r.stored).toBe(200);
    expect(r.bytes).toBe(all.reduce((n, b) => n + b.bytes.byteLength, 0));
    expect(mem.held.size).toBe(200);
    expect(maxReading).toBeLessThanOrEqual(PUT_WINDOW.reads);
    expect(client.blockSessionStats.opened).toBe(1);
    // a block the peer refuses ends the batch with BlockRefusedError
    const more = blocks(10, (i) => 100 + i);
    const refused = await outcome(bc.putMany(server.self, more.map((b) => b.cid), async (cid) => (cid.equals(more[4].cid) ? block(777, 50) : more.find((b) => b.cid.equals(cid))!.bytes)));
    expect(refused.error).toBeInstanceOf(BlockRefusedError);
  });

  it('putMany with handOver frees each buffer once its block is stored there, and only then', async () => {
    const [client, server] = await boxes(2);
    const mem = memoryService([], { putDelayMs: 2 });
    server.blocks.serveBlocks(mem.service);
    const bc = new BlockClient({ network: client, clock, timeoutMs: 5000 });
    const all = blocks(12, (i) => 100_000 + i);
    const given: Uint8Array[] = [];
    const r = await bc.putMany(
      server.self,
      all.map((b) => b.cid),
      async (_cid, i) => {
        const copy = all[i].bytes.slice(); // the caller's own buffer, handed over
        given.push(copy);
        return copy;
      },
      { handOver: true },
    );
    expect(r.stored).toBe(12);
    // the peer stored the bytes intact, and every buffer handed over is freed (detached: no bytes left)
    for (const b of all) expect(Buffer.compare(mem.held.get(b.cid.toString())!, b.bytes)).toBe(0);
    expect(given.map((g) => g.byteLength)).toEqual(new Array(12).fill(0));
    // without handOver the caller keeps its buffers
    const kept = blocks(3, (i) => 5000 + i);
    await bc.putMany(server.self, kept.map((b) => b.cid), async (_cid, i) => kept[i].bytes);
    expect(kept.map((b) => b.bytes.byteLength)).toEqual([5000, 5001, 5002]);
    // a refused block's buffer is not freed
    const bad = block(778, 60);
    const other = blocks(1, () => 70)[0];
    const refused = await outcome(bc.putMany(server.self, [other.cid], async () => bad, { handOver: true }));
    expect(refused.error).toBeInstanceOf(BlockRefusedError);
    expect(bad.byteLength).toBe(60);
  });
});
