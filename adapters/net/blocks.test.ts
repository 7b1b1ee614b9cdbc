/**
 * Bulk block transfer over `/reserve/blocks/1.0.0` between Boxes on 127.0.0.1: verified, in order, missing and
 * corrupt blocks reported by name, resumed at another holder when the serving Box stops mid-transfer, memory held
 * back by a slow receiver, malformed input closing the stream without harm.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CID, RAW_CODE, cidOf } from '../../core/blocks/cid.ts';
import { RemoteError } from '../../core/net.ts';
import { BLOCKS_PROTOCOL_ID } from './blocks.ts';
import { FrameKind, encodeFrame, frameHeader } from './codec.ts';
import { BlockMismatchError, TransferInterruptedError } from './errors.ts';
import type { Libp2pNetwork } from './libp2p-network.ts';
import { Fleet, identities, outcome, sleep, waitFor } from './test-support.ts';

const fleet = new Fleet();
afterEach(() => fleet.stopAll());

/** Deterministic pseudo-random block `i` of `size` bytes. */
function block(i: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const words = new Uint32Array(out.buffer, 0, size >> 2);
  let x = (i + 1) * 0x9e3779b1;
  for (let k = 0; k < words.length; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[k] = x >>> 0;
  }
  for (let k = words.length * 4; k < size; k++) out[k] = i & 0xff;
  return out;
}

function store(n: number, size: (i: number) => number): { cids: CID[]; bytes: Map<string, Uint8Array> } {
  const bytes = new Map<string, Uint8Array>();
  const cids: CID[] = [];
  for (let i = 0; i < n; i++) {
    const b = block(i, size(i));
    const c = cidOf(RAW_CODE, b);
    cids.push(c);
    bytes.set(c.toString(), b);
  }
  return { cids, bytes };
}

async function pair(): Promise<[Libp2pNetwork, Libp2pNetwork, Libp2pNetwork]> {
  const ids = await identities(3);
  ids.forEach((i) => fleet.members.add(i.id));
  const nets = ids.map((i) => fleet.add(i));
  await Promise.all(nets.map((n) => n.start()));
  await nets[0].dial(nets[1].addresses()[0]);
  await nets[0].dial(nets[2].addresses()[0]);
  return nets as [Libp2pNetwork, Libp2pNetwork, Libp2pNetwork];
}

describe('bulk block transfer', () => {
  it('moves blocks verified and in request order; blocks the holder lacks are listed as missing', async () => {
    const [client, server] = await pair();
    const { cids, bytes } = store(48, (i) => (i % 3 === 0 ? 1 << 20 : 1000 + i * 997));
    const absent = [cidOf(RAW_CODE, new Uint8Array([1, 2, 3])), cidOf(RAW_CODE, new Uint8Array([4]))];
    server.serveBlocks(async (cid) => bytes.get(cid.toString()));
    const wanted = [...cids.slice(0, 10), absent[0], ...cids.slice(10), absent[1]];
    const seen: string[] = [];
    const r = await client.fetchBlocks(server.self, wanted, (cid, b) => {
      expect(Buffer.compare(b, bytes.get(cid.toString())!)).toBe(0);
      seen.push(cid.toString());
    });
    expect(seen).toEqual(cids.map(String));
    expect(r.received).toBe(48);
    expect(r.bytes).toBe([...bytes.values()].reduce((n, b) => n + b.byteLength, 0));
    expect(r.missing.map(String)).toEqual(absent.map(String));
    expect(r.corrupt).toEqual([]);
  });

  it('a corrupted block is refused by name and dropped; the rest arrives', async () => {
    const [client, server, other] = await pair();
    const { cids, bytes } = store(12, () => 4096);
    const bad = cids[5].toString();
    server.serveBlocks(async (cid) => {
      const b = bytes.get(cid.toString());
      if (cid.toString() !== bad || !b) return b;
      const flipped = b.slice();
      flipped[100] ^= 1;
      return flipped;
    });
    other.serveBlocks(async (cid) => bytes.get(cid.toString()));
    const seen: string[] = [];
    const reported: BlockMismatchError[] = [];
    const r = await client.fetchBlocks(server.self, cids, (cid) => void seen.push(cid.toString()), { onCorrupt: (e) => reported.push(e) });
    expect(seen).toEqual(cids.map(String).filter((c) => c !== bad));
    expect(r.corrupt).toHaveLength(1);
    expect(r.corrupt[0]).toBeInstanceOf(BlockMismatchError);
    expect(r.corrupt[0].name).toBe('BlockMismatchError');
    expect(r.corrupt[0].cid.toString()).toBe(bad);
    expect(reported).toEqual(r.corrupt);
    // fetchBlocksFrom takes the corrupt one from the next holder
    seen.length = 0;
    const all = await client.fetchBlocksFrom([server.self, other.self], cids, (cid) => void seen.push(cid.toString()));
    expect(all.received).toBe(12);
    expect(new Set(seen)).toEqual(new Set(cids.map(String)));
    expect(all.missing).toEqual([]);
  });

  it('resumes at a second holder from the first block not received when the serving Box stops mid-transfer', async () => {
    const [client, first, second] = await pair();
    const { cids, bytes } = store(60, () => 256 * 1024);
    first.serveBlocks(async (cid) => bytes.get(cid.toString()));
    second.serveBlocks(async (cid) => bytes.get(cid.toString()));
    const seen: string[] = [];
    let stopped: Promise<void> | undefined;
    const r = await client.fetchBlocksFrom(
      [first.self, second.self],
      cids,
      (cid, b) => {
        expect(Buffer.compare(b, bytes.get(cid.toString())!)).toBe(0);
        seen.push(cid.toString());
        if (seen.length === 20) stopped = first.stop(); // the serving Box goes away mid-transfer
      },
      { idleTimeoutMs: 5000 },
    );
    await stopped;
    expect(r.interruptions).toHaveLength(1);
    const cut = r.interruptions[0];
    expect(cut).toBeInstanceOf(TransferInterruptedError);
    expect(cut.peer).toBe(first.self);
    expect(cut.received).toBeGreaterThanOrEqual(20);
    // remaining starts right after the last block received: nothing lost, nothing twice
    expect(cut.remaining.map(String)).toEqual(cids.slice(cut.received).map(String));
    expect(seen).toEqual(cids.map(String));
    expect(r.received).toBe(60);
    expect(r.missing).toEqual([]);
  });

  it('a receiver that stalls holds the sender back: memory stays bounded', async () => {
    const [client, server] = await pair();
    const n = 80;
    const { cids, bytes } = store(n, () => 1 << 20);
    let served = 0;
    server.serveBlocks(async (cid) => {
      served++;
      return bytes.get(cid.toString());
    });
    let delivered = 0;
    let aheadAfterStall = -1;
    const r = await client.fetchBlocks(server.self, cids, async () => {
      delivered++;
      if (delivered === 4) {
        await sleep(1000); // the consumer stalls (a slow disk): without backpressure the server would send all 80
        aheadAfterStall = served - delivered;
      }
    });
    expect(r.received).toBe(n);
    // read-ahead (4) + write buffer (4 MiB) + yamux window (<= 8 MiB) + reader high water (8 MiB) + one in flight
    expect(aheadAfterStall).toBeGreaterThan(0);
    expect(aheadAfterStall).toBeLessThanOrEqual(32);
  });

  it('an interruption reports what is left; silence times out; a peer without the protocol is named', async () => {
    const [client, server, bare] = await pair();
    const [freshId] = await identities(1);
    fleet.members.add(freshId.id);
    const fresh = fleet.add(freshId);
    await fresh.start();
    await client.dial(fresh.addresses()[0]);
    const { cids, bytes } = store(5, () => 1000);
    server.serveBlocks(async (cid) => {
      if (cid.equals(cids[2])) throw Object.assign(new Error('disk on fire'), { name: 'DiskError' });
      return bytes.get(cid.toString());
    });
    const r = await outcome(client.fetchBlocks(server.self, cids, () => undefined));
    expect(r.error).toBeInstanceOf(TransferInterruptedError);
    const e = r.error as TransferInterruptedError;
    expect(e.received).toBe(2);
    expect(e.remaining.map(String)).toEqual(cids.slice(2).map(String));
    expect(e.cause).toBeInstanceOf(RemoteError);
    expect((e.cause as RemoteError).remoteName).toBe('DiskError');

    // a holder that stops answering (a hung disk): the client gives up after its idle timeout, by name
    bare.serveBlocks(() => new Promise<undefined>(() => undefined));
    const hung = await outcome(client.fetchBlocks(bare.self, cids, () => undefined, { idleTimeoutMs: 400 }));
    expect(hung.error).toBeInstanceOf(TransferInterruptedError);
    expect(((hung.error as TransferInterruptedError).cause as Error).name).toBe('IdleTimeoutError');
    expect(hung.ms).toBeLessThan(3000);
    expect((hung.error as TransferInterruptedError).remaining.length).toBe(5);

    const none = await outcome(client.fetchBlocks(fresh.self, cids, () => undefined));
    expect(none.error).toBeInstanceOf(TransferInterruptedError);
    expect(((none.error as TransferInterruptedError).cause as RemoteError).remoteName).toBe('UnsupportedProtocolError');
  });

  it('malformed or oversized input closes the stream and changes nothing', async () => {
    const [client, server] = await pair();
    const { cids, bytes } = store(3, () => 1000);
    let calls = 0;
    server.serveBlocks(async (cid) => {
      calls++;
      return bytes.get(cid.toString());
    });
    const closed = async (payload: Uint8Array) => {
      const stream = await client.libp2p.dialProtocol(server.libp2p.peerId, BLOCKS_PROTOCOL_ID, { signal: AbortSignal.timeout(3000) });
      const ended = new Promise<string>((resolve) => stream.addEventListener('close', (e) => resolve(e.error?.name ?? 'closed')));
      stream.send(payload);
      return Promise.race([ended, sleep(3000).then(() => 'still open')]);
    };
    // garbage, an unknown version, a Want announcing 4 GiB, a Block sent the wrong way
    expect(await closed(new Uint8Array([9, 9, 9, 9, 9, 9, 9, 9]))).not.toBe('still open');
    expect(await closed(Uint8Array.of(2, FrameKind.Want, 0, 0, 0, 0))).not.toBe('still open');
    expect(await closed(frameHeader(FrameKind.Want, 0xffffffff))).not.toBe('still open');
    expect(await closed(encodeFrame(FrameKind.Block, new Uint8Array(10)))).not.toBe('still open');
    expect(calls).toBe(0);
    // request/response streams too: an oversize request never reaches the handler
    let handled = 0;
    server.handle('echo', async (_f, d) => {
      handled++;
      return d;
    });
    await waitFor('handler registered', () => server.libp2p.getProtocols().includes('/reserve/echo/1.0.0'));
    const rr = await client.libp2p.dialProtocol(server.libp2p.peerId, '/reserve/echo/1.0.0', { signal: AbortSignal.timeout(3000) });
    const rrClosed = new Promise<boolean>((resolve) => rr.addEventListener('close', () => resolve(true)));
    rr.send(frameHeader(FrameKind.Request, 10 * 1024 * 1024));
    expect(await Promise.race([rrClosed, sleep(3000).then(() => false)])).toBe(true);
    expect(handled).toBe(0);
    // and the server still works
    const r = await client.fetchBlocks(server.self, cids, () => undefined);
    expect(r.received).toBe(3);
    expect(calls).toBe(3);
  });
});
