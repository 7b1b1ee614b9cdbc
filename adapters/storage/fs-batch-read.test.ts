/**
 * The restore's read entry points of FsBlockstore: `getBatch` (packed neighbours with one read of their pack,
 * PackSet.getMany) and `getInto` (a block read into a buffer the caller reuses). Same bytes as `get`, in the order
 * asked, whatever mix of packed, file and absent blocks is asked for.
 */
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockNotFoundError } from '../../core/blocks/blockstore.ts';
import { discard } from '../../core/util/buffers.ts';
import { FsBlockstore } from './fs-blockstore.ts';
import { PackSet, packKey } from './fs-packs.ts';
import { block } from './test-blocks.ts';

let dir: string;
beforeEach(async () => {
  dir = await fs.mkdtemp('/tmp/reserve-batch-read-');
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** A store in `dir` that packs blocks below 64 KiB, closed after `fn`. */
async function withPackingStore(fn: (store: FsBlockstore) => Promise<void>): Promise<void> {
  const store = await FsBlockstore.open(dir, { fsync: false, packBelow: 64 * 1024 });
  try {
    await fn(store);
  } finally {
    await store.close();
  }
}

describe('FsBlockstore.getBatch', () => {
  it('returns every block in the order asked: packed ones, file ones, duplicates', async () => {
    await withPackingStore(async (store) => {
      const small = Array.from({ length: 40 }, (_, i) => block(i + 1, 100 + i * 997));
      const large = [block(1001, 200 * 1024), block(1002, 70 * 1024)];
      for (const b of [...small, ...large]) await store.put(b.cid, b.bytes);
      const asked = [small[5], large[0], small[0], small[39], small[5], large[1], ...small.slice(10, 30).reverse()];
      const got = await store.getBatch(asked.map((b) => b.cid));
      expect(got).toHaveLength(asked.length);
      got.forEach((bytes, i) => expect(Buffer.from(bytes).equals(Buffer.from(asked[i].bytes))).toBe(true));
    });
  });

  it('throws BlockNotFoundError for a block that is not stored', async () => {
    const store = await FsBlockstore.open(dir, { fsync: false });
    try {
      const [a, gone] = [block(1), block(2)];
      await store.put(a.cid, a.bytes);
      const err = await store.getBatch([a.cid, gone.cid]).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BlockNotFoundError);
      expect((err as BlockNotFoundError).cid.equals(gone.cid)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it('reads blocks of a reopened store (sealed packs, records far apart) with the same bytes', async () => {
    const blocks = Array.from({ length: 300 }, (_, i) => block(i + 7, 1000 + ((i * 7919) % 60_000)));
    const first = await FsBlockstore.open(dir, { fsync: false, packBytes: 1024 * 1024 });
    for (const b of blocks) await first.put(b.cid, b.bytes);
    await first.close();
    const store = await FsBlockstore.open(dir, { fsync: false, packBytes: 1024 * 1024 });
    try {
      const asked = blocks.filter((_, i) => i % 3 !== 1);
      const got = await store.getBatch(asked.map((b) => b.cid));
      got.forEach((bytes, i) => expect(Buffer.from(bytes).equals(Buffer.from(asked[i].bytes))).toBe(true));
    } finally {
      await store.close();
    }
  });
});

describe('PackSet.getMany', () => {
  it('reads neighbours with one buffer, splits runs at the gap and span limits, leaves unknown keys undefined', async () => {
    const packs = new PackSet({ dir, fsync: false, target: 16 * 1024 * 1024, io: { open: fs.open, rename: fs.rename }, mapError: (e) => e });
    await packs.load();
    try {
      const blocks = Array.from({ length: 12 }, (_, i) => block(i + 100, 10_000));
      for (const b of blocks) await packs.append(packKey(b.cid), b.cid, b.bytes).ready;
      const keys = [...blocks.map((b) => packKey(b.cid)), packKey(block(999).cid)];

      const together = await packs.getMany(keys);
      expect(together[12]).toBeUndefined();
      together.slice(0, 12).forEach((bytes, i) => expect(Buffer.from(bytes!).equals(Buffer.from(blocks[i].bytes))).toBe(true));
      expect(new Set(together.slice(0, 12).map((b) => b!.buffer)).size).toBe(1); // one read

      // A span of three records per read: four reads.
      const bySpan = await packs.getMany(keys.slice(0, 12), 3 * 10_100);
      bySpan.forEach((bytes, i) => expect(Buffer.from(bytes!).equals(Buffer.from(blocks[i].bytes))).toBe(true));
      expect(new Set(bySpan.map((b) => b!.buffer)).size).toBe(4);

      // Every other record: the gaps (one record each) exceed a gap limit of 100 bytes.
      const sparse = keys.filter((_, i) => i < 12 && i % 2 === 0);
      const byGap = await packs.getMany(sparse, 1 << 20, 100);
      byGap.forEach((bytes, i) => expect(Buffer.from(bytes!).equals(Buffer.from(blocks[i * 2].bytes))).toBe(true));
      expect(new Set(byGap.map((b) => b!.buffer)).size).toBe(6);
    } finally {
      await packs.close();
    }
  });
});

describe('FsBlockstore.getInto', () => {
  it('reads a block into the buffer given when it is shorter, else into one of its own', async () => {
    await withPackingStore(async (store) => {
      const big = block(5, 300 * 1024);
      const packed = block(6, 5000);
      await store.put(big.cid, big.bytes);
      await store.put(packed.cid, packed.bytes);

      const into = new Uint8Array(512 * 1024);
      const a = await store.getInto(big.cid, into);
      expect(a.buffer).toBe(into.buffer);
      expect(Buffer.from(a).equals(Buffer.from(big.bytes))).toBe(true);

      // Exactly as long as the buffer: the read cannot tell where the block ends, so it is read whole elsewhere.
      const exact = new Uint8Array(300 * 1024);
      const b = await store.getInto(big.cid, exact);
      expect(b.buffer).not.toBe(exact.buffer);
      expect(Buffer.from(b).equals(Buffer.from(big.bytes))).toBe(true);

      const c = await store.getInto(packed.cid, into);
      expect(Buffer.from(c).equals(Buffer.from(packed.bytes))).toBe(true);

      await expect(store.getInto(block(7, 300 * 1024).cid, into)).rejects.toBeInstanceOf(BlockNotFoundError);

      // A block file with bytes appended (damage): read whole, so its hash no longer matches.
      await fs.appendFile(join(dir, 'blocks', Buffer.from(big.cid.multihash.digest.subarray(0, 1)).toString('hex'), big.cid.toString()), 'x');
      const d = await store.getInto(big.cid, into);
      expect(d.byteLength).toBe(big.bytes.byteLength + 1);
    });
  });
});

describe('a pack cut short after it was written', () => {
  it('getBatch names the pack and the offset with PackTruncatedError instead of returning short bytes', async () => {
    await withPackingStore(async (store) => {
      const small = Array.from({ length: 6 }, (_, i) => block(i + 500, 3000));
      for (const b of small) await store.put(b.cid, b.bytes);
      const last = (await store.locate(small[5].cid))!;
      await fs.truncate(last.path, last.offset + 10);
      const err = await store.getBatch(small.map((b) => b.cid)).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.name).toBe('PackTruncatedError');
      expect(err?.message).toContain(last.path);
    });
  });
});

describe('FsBlockstore reads are the caller\'s (handsOverReads)', () => {
  it('a buffer get or readPacked returned can be freed at once, and the next read is intact', async () => {
    await withPackingStore(async (store) => {
      expect(store.handsOverReads).toBe(true);
      const small = Array.from({ length: 6 }, (_, i) => block(i + 1, 3000 + i));
      const large = block(2001, 300 * 1024);
      for (const b of [...small, large]) await store.put(b.cid, b.bytes);
      for (let round = 0; round < 2; round++) {
        const got = [await store.get(large.cid), await store.get(small[0].cid), ...(await store.readPacked(small.map((b) => b.cid)))];
        const want = [large, small[0], ...small];
        got.forEach((bytes, i) => expect(Buffer.from(bytes!).equals(Buffer.from(want[i].bytes))).toBe(true));
        // free every buffer as putMany's handOver does (a transfer detaches it: any view sharing it would go empty)
        for (const bytes of got) discard(bytes!);
      }
    });
  });
});
