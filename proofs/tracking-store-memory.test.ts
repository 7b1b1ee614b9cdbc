/**
 * What a Box holds must not keep what it received alive: a CID decoded from a pushed frame (CID then block bytes,
 * one buffer) is a view into that frame, and the held set once kept every pushed block's frame this way (a
 * receiving Box's memory grew by the bytes it stored). The held CID must own a buffer of its own size.
 */
import { describe, expect, it } from 'vitest';
import { MemoryBlockstore } from '../adapters/storage/memory-blockstore.ts';
import { decodePut, encodePut } from '../adapters/net/codec.ts';
import { cidOf, RAW_CODE } from '../core/blocks/cid.ts';
import { TrackingBlockstore } from '../core/keeper/tracking-store.ts';

describe('TrackingBlockstore memory', () => {
  it('a held CID decoded from a pushed frame does not keep the frame alive', async () => {
    const block = new Uint8Array(1 << 20).fill(7);
    const cid = cidOf(RAW_CODE, block);
    const frame = encodePut(cid, block); // a Put frame's payload, as it arrives
    const put = decodePut(frame);
    // the decoded CID is a view into the 1 MiB frame: this is what must not be kept
    expect(put.cid.multihash.digest.buffer.byteLength).toBeGreaterThan(1 << 20);
    const store = new TrackingBlockstore(new MemoryBlockstore());
    await store.load();
    await store.put(put.cid, put.bytes.slice());
    const [[key, held]] = [...store.held()];
    expect(key).toBe(cid.toString());
    expect(held.equals(cid)).toBe(true);
    for (const part of [held.bytes, held.multihash.bytes, held.multihash.digest]) expect(part.buffer.byteLength).toBeLessThanOrEqual(held.bytes.byteLength);
    expect(store.holds(cid)).toBe(true);
  });
});
