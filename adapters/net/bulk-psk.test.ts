/**
 * More than 200 MiB through one PSK connection between two Boxes in this process, every byte checked (each block
 * against its CID, and a digest of the whole stream against the digest of what was served). With @libp2p/pnet as
 * shipped, ~52 MiB kill every PSK connection of the process (its xsalsa20 WebAssembly memory view goes stale):
 * afterwards a request over another PSK connection must still work.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { RAW_CODE, cidOf, type CID } from '../../core/blocks/cid.ts';
import { Fleet, identities } from './test-support.ts';

const fleet = new Fleet();
afterEach(() => fleet.stopAll());

const BLOCK = 1 << 20;
const COUNT = Number(process.env.RESERVE_BULK_MIB ?? 208);

/** Block i: 1 MiB of xorshift output, generated on demand so the test holds only a few blocks at a time. */
function block(i: number): Uint8Array {
  const out = new Uint8Array(BLOCK);
  const w = new Uint32Array(out.buffer);
  let x = (i + 1) * 0x2545f491;
  for (let k = 0; k < w.length; k++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[k] = x >>> 0;
  }
  return out;
}

describe('bulk through the PSK protector', () => {
  it(`moves ${COUNT} MiB between two Boxes, every byte verified, and other PSK connections survive`, async () => {
    const ids = await identities(3);
    ids.forEach((i) => fleet.members.add(i.id));
    const [client, server, third] = ids.map((i) => fleet.add(i));
    await Promise.all([client, server, third].map((n) => n.start()));
    await client.dial(server.addresses()[0]);
    await client.dial(third.addresses()[0]);
    third.handle('echo', async (_f, d) => d);

    const cids: CID[] = [];
    const index = new Map<string, number>();
    const served = createHash('sha256');
    for (let i = 0; i < COUNT; i++) {
      const b = block(i);
      served.update(b);
      const c = cidOf(RAW_CODE, b);
      cids.push(c);
      index.set(c.toString(), i);
    }
    server.serveBlocks(async (cid) => {
      const i = index.get(cid.toString());
      return i === undefined ? undefined : block(i);
    });

    const received = createHash('sha256');
    let n = 0;
    const t = performance.now();
    const r = await client.fetchBlocks(server.self, cids, (cid, bytes) => {
      expect(cid.equals(cids[n])).toBe(true);
      received.update(bytes);
      n++;
    });
    const seconds = (performance.now() - t) / 1000;
    expect(r.received).toBe(COUNT);
    expect(r.bytes).toBe(COUNT * BLOCK);
    expect(r.corrupt).toEqual([]);
    expect(received.digest('hex')).toBe(served.digest('hex'));
    // the other PSK connection of this process is alive and well
    const probe = crypto.getRandomValues(new Uint8Array(1000));
    expect(await client.request(third.self, 'echo', probe)).toEqual(new Uint8Array(probe));
    console.log(`bulk-psk: ${COUNT} MiB in ${seconds.toFixed(1)} s (${(COUNT / seconds).toFixed(0)} MiB/s, one process, both ends)`);
  }, Math.max(60_000, COUNT * 600)); // `npm run soak:net` moves 1 GiB
});
