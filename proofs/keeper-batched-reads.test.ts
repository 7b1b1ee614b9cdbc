/**
 * TrackingBlockstore's batched reads: `readPacked` passes through to a store that can read many small blocks at
 * once (else says it cannot), and `inOrderReader` (what a push reads with) asks such a store once per group, falls
 * back to `get` for blocks it did not return and when a group read fails, and lets go of each group once read.
 */
import { describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import { MemoryBlockstore } from '../adapters/storage/memory-blockstore.ts';
import { block } from '../adapters/storage/test-blocks.ts';
import { BlockNotFoundError } from '../core/blocks/blockstore.ts';
import { inOrderReader, TrackingBlockstore, type PackedReads } from '../core/keeper/tracking-store.ts';

/** A memory store that "packs" blocks below `packBelow` bytes and counts its calls. */
class PackingStore extends MemoryBlockstore implements PackedReads {
  packedCalls: number[] = [];
  gets = 0;
  failNext = false;
  constructor(readonly packBelow: number) {
    super();
  }
  override async get(cid: CID): Promise<Uint8Array> {
    this.gets++;
    return super.get(cid);
  }
  async readPacked(cids: readonly CID[]): Promise<Array<Uint8Array | undefined>> {
    this.packedCalls.push(cids.length);
    if (this.failNext) {
      this.failNext = false;
      throw new Error('pack read failed');
    }
    return Promise.all(
      cids.map(async (c) => {
        try {
          const b = await super.get(c);
          return b.byteLength < this.packBelow ? b : undefined;
        } catch {
          return undefined;
        }
      }),
    );
  }
}

describe('TrackingBlockstore batched reads', () => {
  it('readPacked says "not packed" for every block of a store that cannot read in batches', async () => {
    const inner = new MemoryBlockstore();
    const b = block(1, 10);
    await inner.put(b.cid, b.bytes);
    expect(await new TrackingBlockstore(inner).readPacked([b.cid, block(2).cid])).toEqual([undefined, undefined]);
  });

  it('inOrderReader reads packed blocks a group at a time and the others one by one, each with its own bytes', async () => {
    const inner = new PackingStore(100);
    const blocks = Array.from({ length: 10 }, (_, i) => block(10 + i, i % 3 === 0 ? 500 : 50));
    for (const b of blocks) await inner.put(b.cid, b.bytes);
    const store = new TrackingBlockstore(inner);
    const cids = blocks.map((b) => b.cid);
    const read = inOrderReader(store, cids, 4);
    for (let i = 0; i < cids.length; i++) expect(await read(cids[i], i)).toEqual(blocks[i].bytes);
    expect(inner.packedCalls).toEqual([4, 4, 2]); // one call per group
    expect(inner.gets).toBe(blocks.filter((b) => b.bytes.byteLength >= 100).length); // the large ones: one get each
  });

  it('inOrderReader falls back to get when a group read fails, and each missing block fails alone', async () => {
    const inner = new PackingStore(100);
    const present = [block(30, 20), block(31, 20)];
    for (const b of present) await inner.put(b.cid, b.bytes);
    const missing = block(32, 20);
    const cids = [present[0].cid, missing.cid, present[1].cid];
    inner.failNext = true;
    const read = inOrderReader(new TrackingBlockstore(inner), cids, 8);
    expect(await read(cids[0], 0)).toEqual(present[0].bytes);
    await expect(read(cids[1], 1)).rejects.toBeInstanceOf(BlockNotFoundError);
    expect(await read(cids[2], 2)).toEqual(present[1].bytes);
    expect(inner.gets).toBe(3);
  });

  it('inOrderReader reads a block it was not given at that index with a plain get', async () => {
    const inner = new PackingStore(100);
    const [a, b] = [block(40, 20), block(41, 20)];
    for (const x of [a, b]) await inner.put(x.cid, x.bytes);
    const read = inOrderReader(new TrackingBlockstore(inner), [a.cid], 8);
    expect(await read(b.cid, 0)).toEqual(b.bytes);
    expect(inner.packedCalls).toEqual([]);
  });
});
