/**
 * FsBlockstore: the shared Blockstore acceptance suite (with real fsyncs, as a durable store), then the parts only
 * a file-system store has: on-disk layout and sharding, leftover temp files, foreign files, quarantine, stat and
 * full-disk errors.
 */
import { mkdtemp, readdir, rm, writeFile, mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import { BlockNotFoundError, StorageFullError } from '../../core/blocks/blockstore.ts';
import { DAG_CBOR_CODE, cidOf } from '../../core/blocks/cid.ts';
import { block, expectBytes, runBlockstoreAcceptance } from './blockstore-acceptance.ts';
import { FsBlockstore, type FsBlockstoreOptions } from './fs-blockstore.ts';

async function fixtureDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'reserve-fs-blockstore-'));
}

function acceptance(name: string, options: FsBlockstoreOptions, numRuns: number): void {
  runBlockstoreAcceptance(
    name,
    async () => {
      const dir = await fixtureDir();
      const opened: FsBlockstore[] = [];
      const open = async (): Promise<FsBlockstore> => {
        const store = await FsBlockstore.open(dir, options);
        opened.push(store);
        return store;
      };
      return {
        store: await open(),
        reopen: open,
        teardown: async () => {
          for (const s of opened) await s.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
    { durable: true, numRuns },
  );
}

// Small blocks packed, large ones in files (the default); every block a file; tiny packs, so puts rotate packs and
// deletes rewrite them all the time.
acceptance('FsBlockstore', {}, 30);
acceptance('FsBlockstore (no packs)', { packBelow: 0 }, 15);
acceptance('FsBlockstore (8 KiB packs)', { packBytes: 8 * 1024, packBelow: 4 * 1024 }, 30);

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)).split(sep).join('/'));
  }
  return out.sort();
}

describe('FsBlockstore on disk (block files)', () => {
  let dir: string;
  let store: FsBlockstore;

  beforeEach(async () => {
    dir = await fixtureDir();
    store = await FsBlockstore.open(dir, { packBelow: 0 });
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('lays blocks out as blocks/<xx>/<cid> with xx the first digest byte in hex', async () => {
    const b = block(1);
    await store.put(b.cid, b.bytes);
    const d = b.cid.multihash.digest;
    const hex = (n: number): string => n.toString(16).padStart(2, '0');
    const expected = `blocks/${hex(d[0])}/${b.cid.toString()}`;
    expect(await filesUnder(dir)).toEqual([expected]);
    expect(store.pathOf(b.cid)).toBe(join(dir, expected));
    expect(new Uint8Array(await readFile(store.pathOf(b.cid)))).toEqual(b.bytes);
  });

  it('spreads blocks over shards evenly', async () => {
    // 4096 CIDs over 256 first-level shards: about 16 each; none may be wildly off.
    const counts = new Map<string, number>();
    for (let i = 0; i < 4096; i++) {
      const xx = relative(join(dir, 'blocks'), store.pathOf(block(i, 8).cid)).split(sep)[0];
      counts.set(xx, (counts.get(xx) ?? 0) + 1);
    }
    expect(counts.size).toBe(256);
    expect(Math.max(...counts.values())).toBeLessThan(40);
  });

  it('open() deletes leftover temp files, which were never visible as blocks', async () => {
    const b = block(2);
    await store.put(b.cid, b.bytes);
    // What a crash mid-write leaves: a partial temp file, even one named like a block.
    const half = block(3, 4096);
    await writeFile(join(dir, 'tmp', 'leftover-1'), half.bytes.subarray(0, 100));
    await writeFile(join(dir, 'tmp', half.cid.toString()), half.bytes.subarray(0, 100));
    expect((await collect(store.keys())).map(String)).toEqual([b.cid.toString()]);
    expect(await store.has(half.cid)).toBe(false);
    await store.close();
    store = await FsBlockstore.open(dir, { packBelow: 0 });
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect((await collect(store.keys())).map(String)).toEqual([b.cid.toString()]);
  });

  it('keys() and stat() skip foreign files and misplaced blocks', async () => {
    const b = block(4, 300);
    await store.put(b.cid, b.bytes);
    const shard = join(dir, 'blocks', 'ab');
    await mkdir(shard, { recursive: true });
    await writeFile(join(shard, 'README.txt'), 'not a block');
    await writeFile(join(dir, 'blocks', 'stray-file'), 'x');
    await mkdir(join(dir, 'blocks', 'not-a-shard', 'zz'), { recursive: true });
    const misplaced = block(5, 10);
    await writeFile(join(shard, misplaced.cid.toString()), misplaced.bytes); // a valid CID in the wrong shard
    expect((await collect(store.keys())).map(String)).toEqual([b.cid.toString()]);
    expect(await store.stat()).toEqual({ blocks: 1, bytes: 300 });
  });

  it('stat() counts blocks and bytes', async () => {
    expect(await store.stat()).toEqual({ blocks: 0, bytes: 0 });
    const blocks = [block(6, 0), block(7, 10), block(8, 1000)];
    for await (const _ of store.putMany(blocks)) void _;
    expect(await store.stat()).toEqual({ blocks: 3, bytes: 1010 });
  });

  it('stat() stays exact while blocks are written, deleted and quarantined around it, without walking tallied shards again', async () => {
    // Block files in few shards, written and removed while stat() runs: every answer must match what is on disk
    // (a fresh store's walk) once the writes settle, and a quiet store answers from its tallies.
    const files = Array.from({ length: 40 }, (_, i) => block(100 + i, 300 + i));
    const first = await store.stat();
    expect(first).toEqual({ blocks: 0, bytes: 0 });
    const stats: Array<Promise<unknown>> = [];
    await Promise.all(
      files.map(async (b, i) => {
        if (i % 5 === 0) stats.push(store.stat());
        await store.put(b.cid, b.bytes);
      }),
    );
    await Promise.all(stats);
    const fresh = async () => {
      const other = await FsBlockstore.open(dir, { packBelow: 0 });
      try {
        return await other.stat();
      } finally {
        await other.close();
      }
    };
    const sum = (bs: typeof files) => ({ blocks: bs.length, bytes: bs.reduce((n, b) => n + b.bytes.length, 0) });
    expect(await store.stat()).toEqual(sum(files));
    expect(await fresh()).toEqual(sum(files));
    await Promise.all([store.delete(files[0].cid), store.stat(), store.quarantine(files[1].cid), store.stat(), store.put(block(200, 500).cid, block(200, 500).bytes)]);
    const now = [...files.slice(2), block(200, 500)];
    expect(await store.stat()).toEqual(sum(now));
    expect(await fresh()).toEqual(sum(now));
    // Quiet now: the answer comes from the tallies, not a walk. A block file written behind the store's back (which
    // the store does not expect: one process owns a store) shows it: a walk would count it, the tallies do not.
    const foreign = block(300, 700);
    await writeFile(store.pathOf(foreign.cid), foreign.bytes);
    expect(await store.stat()).toEqual(sum(now));
    expect(await fresh()).toEqual(sum([...now, foreign]));
  });

  it('quarantine() moves a block out of service, keeping its bytes', async () => {
    const b = block(9, 64);
    await store.put(b.cid, b.bytes);
    const where = await store.quarantine(b.cid);
    expect(where).toBe(join(dir, 'quarantine', b.cid.toString()));
    expect(new Uint8Array(await readFile(where))).toEqual(b.bytes);
    expect(await store.has(b.cid)).toBe(false);
    await expect(store.get(b.cid)).rejects.toBeInstanceOf(BlockNotFoundError);
    expect((await collect(store.keys())).length).toBe(0);
    // Stored again (e.g. repaired from a peer) and quarantined again: the first copy is kept.
    await store.put(b.cid, b.bytes);
    expect(await store.quarantine(b.cid)).toBe(join(dir, 'quarantine', `${b.cid.toString()}.1`));
    expect((await readdir(join(dir, 'quarantine'))).sort()).toEqual([b.cid.toString(), `${b.cid.toString()}.1`]);
    const err = await store.quarantine(block(10).cid).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlockNotFoundError);
  });

  it('putMany with concurrency 1 and fsync off still stores everything', async () => {
    await store.close();
    store = await FsBlockstore.open(dir, { concurrency: 1, fsync: false, packBelow: 0 });
    const blocks = Array.from({ length: 25 }, (_, i) => block(20 + i, 500));
    const yielded = (await collect(store.putMany(blocks))).map(String);
    expect(yielded.sort()).toEqual(blocks.map((b) => b.cid.toString()).sort());
  });

  it('rejects a non-positive concurrency', async () => {
    await expect(FsBlockstore.open(dir, { concurrency: 0 })).rejects.toBeInstanceOf(RangeError);
  });
});

describe('FsBlockstore on a full disk', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fixtureDir();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function noSpace(code: 'ENOSPC' | 'EDQUOT'): NodeJS.ErrnoException {
    return Object.assign(new Error(`${code}: simulated`), { code });
  }

  it.each([
    ['packed', undefined],
    ['block files', 0],
  ])('turns ENOSPC while writing into StorageFullError naming the dir and size, and leaves no temp file (%s)', async (_, packBelow) => {
    const { open } = await import('node:fs/promises');
    const store = await FsBlockstore.open(dir, {
      packBelow,
      fs: {
        open: (async (path: string, flags: string) => {
          const fh = await open(path, flags);
          // A disk that fills up after the first 1000 bytes of a file.
          fh.write = (async () => {
            throw noSpace('ENOSPC');
          }) as typeof fh.write;
          return fh;
        }) as typeof open,
      },
    });
    const b = block(1, 1234);
    const err = await store.put(b.cid, b.bytes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageFullError);
    expect((err as Error).name).toBe('StorageFullError');
    expect((err as Error).message).toContain(dir);
    expect((err as Error).message).toContain('1234 bytes');
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(await store.has(b.cid)).toBe(false);

    const many = [block(2, 10), block(3, 20)];
    const err2 = await collect(store.putMany(many)).catch((e: unknown) => e);
    expect(err2).toBeInstanceOf(StorageFullError);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    await store.close();
  });

  it('putMany stops at a failed write: what it yielded is stored, the failure is thrown, no temp file is left', async () => {
    const { rename } = await import('node:fs/promises');
    const blocks = Array.from({ length: 40 }, (_, i) => block(100 + i, 2000));
    const doomed = blocks[25].cid.toString();
    const store = await FsBlockstore.open(dir, {
      concurrency: 4,
      packBelow: 0,
      fs: {
        rename: async (from, to) => {
          if (String(to).endsWith(doomed)) throw Object.assign(new Error('EIO: simulated'), { code: 'EIO' });
          return rename(from, to);
        },
      },
    });
    const yielded: string[] = [];
    const err = await (async () => {
      for await (const cid of store.putMany(blocks)) yielded.push(cid.toString());
    })().catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('EIO');
    expect(yielded).not.toContain(doomed);
    expect(yielded.length).toBeGreaterThan(0);
    for (const c of yielded) expect(await store.has(blocks.find((b) => b.cid.toString() === c)!.cid)).toBe(true);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    await store.close();
  });

  it('turns EDQUOT on rename into StorageFullError too', async () => {
    const store = await FsBlockstore.open(dir, {
      packBelow: 0,
      fs: {
        rename: async () => {
          throw noSpace('EDQUOT');
        },
      },
    });
    const b = block(4, 77);
    const err = await store.put(b.cid, b.bytes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageFullError);
    expect((err as Error).message).toMatch(/quota/);
    expect((err as Error).message).toContain('77 bytes');
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    await store.close();
  });
});

describe('FsBlockstore pack files', () => {
  let dir: string;
  const opened: FsBlockstore[] = [];
  const open = async (options: FsBlockstoreOptions = {}): Promise<FsBlockstore> => {
    const s = await FsBlockstore.open(dir, options);
    opened.push(s);
    return s;
  };

  beforeEach(async () => {
    dir = await fixtureDir();
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  const packFiles = async (): Promise<string[]> => (await readdir(join(dir, 'packs'))).filter((n) => n.endsWith('.pack')).sort();

  it('packs blocks below the threshold and gives larger ones a file each', async () => {
    const store = await open({ packBelow: 4096 });
    const small = [block(1, 0), block(2, 100), block(3, 4095)];
    const large = block(4, 4096);
    for (const b of [...small, large]) await store.put(b.cid, b.bytes);
    const d = large.cid.multihash.digest;
    expect((await filesUnder(dir)).filter((f) => f.startsWith('blocks/'))).toEqual([`blocks/${d[0].toString(16).padStart(2, '0')}/${large.cid}`]);
    expect(await packFiles()).toHaveLength(1);
    for (const b of small) {
      const at = await store.locate(b.cid);
      expect(at?.path).toBe(join(dir, 'packs', (await packFiles())[0]));
      expect(at?.length).toBe(b.bytes.length);
      expectBytes(await store.get(b.cid), b.bytes);
    }
    expect(await store.locate(large.cid)).toEqual({ path: store.pathOf(large.cid), offset: 0, length: 4096 });
    expect(await store.locate(block(5).cid)).toBeNull();
    expect(await store.stat()).toEqual({ blocks: 4, bytes: 100 + 4095 + 4096 });
  });

  it('readPacked gives the packed blocks asked for, in order, and undefined for block files and absent blocks', async () => {
    const store = await open({ packBelow: 4096 });
    const small = [block(60, 10), block(61, 3000), block(62, 4000), block(63, 1)];
    const large = block(64, 5000);
    for (const b of [...small, large]) await store.put(b.cid, b.bytes);
    const absent = block(65, 10);
    const got = await store.readPacked([small[2], large, small[0], absent, small[3], small[1]].map((b) => b.cid));
    expect(got).toHaveLength(6);
    expectBytes(got[0]!, small[2].bytes);
    expect(got[1]).toBeUndefined();
    expectBytes(got[2]!, small[0].bytes);
    expect(got[3]).toBeUndefined();
    expectBytes(got[4]!, small[3].bytes);
    expectBytes(got[5]!, small[1].bytes);
    await store.delete(small[0].cid);
    expect((await store.readPacked([small[0].cid]))[0]).toBeUndefined();
  });

  it('keeps manifest nodes (dag-cbor) in packs apart from file data (raw)', async () => {
    const store = await open();
    const raw = [block(50, 100), block(51, 200)];
    const nodes = [0, 1].map((i) => {
      const bytes = new TextEncoder().encode(`node ${i}`);
      return { cid: cidOf(DAG_CBOR_CODE, bytes), bytes };
    });
    for (const b of [raw[0], nodes[0], raw[1], nodes[1]]) await store.put(b.cid, b.bytes);
    const where = async (b: { cid: CID }) => (await store.locate(b.cid))!.path;
    expect(await where(raw[0])).toBe(await where(raw[1]));
    expect(await where(nodes[0])).toBe(await where(nodes[1]));
    expect(await where(raw[0])).not.toBe(await where(nodes[0]));
    for (const b of [...raw, ...nodes]) expectBytes(await store.get(b.cid), b.bytes);
  });

  it('rotates full packs, seals them with an index, and reopens from the index or, without one, by scanning', async () => {
    let store = await open({ packBytes: 64 * 1024 });
    const blocks = Array.from({ length: 60 }, (_, i) => block(100 + i, 5000 + i));
    await collect(store.putMany(blocks));
    await store.close();
    const packs = await packFiles();
    expect(packs.length).toBeGreaterThan(3);
    const idx = (await readdir(join(dir, 'packs'))).filter((n) => n.endsWith('.idx'));
    expect(idx).toHaveLength(packs.length);
    store = await open({ packBytes: 64 * 1024 });
    for (const b of blocks) expectBytes(await store.get(b.cid), b.bytes);
    await store.close();
    // Lose one index and damage another: both packs are scanned instead (and sealed again).
    await rm(join(dir, 'packs', idx[0]));
    const damaged = join(dir, 'packs', idx[1]);
    const bytes = await readFile(damaged);
    bytes[20] ^= 1;
    await writeFile(damaged, bytes);
    store = await open({ packBytes: 64 * 1024 });
    expect((await collect(store.keys())).map(String).sort()).toEqual(blocks.map((b) => b.cid.toString()).sort());
    for (const b of blocks) expectBytes(await store.get(b.cid), b.bytes);
    expect((await readdir(join(dir, 'packs'))).filter((n) => n.endsWith('.idx'))).toHaveLength(packs.length);
  });

  it('recovers a pack cut inside a record (a crash mid-append) up to the last whole record', async () => {
    const store = await open();
    const blocks = Array.from({ length: 5 }, (_, i) => block(200 + i, 3000));
    for (const b of blocks) await store.put(b.cid, b.bytes);
    const last = (await store.locate(blocks[4].cid))!;
    await store.close();
    // What a crash leaves: no index, and the last record only partly written.
    const [pack] = await packFiles();
    await rm(join(dir, 'packs', pack.replace('.pack', '.idx')));
    const { truncate } = await import('node:fs/promises');
    await truncate(last.path, last.offset + 100);
    const again = await open();
    expect((await collect(again.keys())).map(String).sort()).toEqual(blocks.slice(0, 4).map((b) => b.cid.toString()).sort());
    for (const b of blocks.slice(0, 4)) expectBytes(await again.get(b.cid), b.bytes);
    await expect(again.get(blocks[4].cid)).rejects.toBeInstanceOf(BlockNotFoundError);
    // The torn block can be stored again, and everything survives another reopen.
    await again.put(blocks[4].cid, blocks[4].bytes);
    await again.close();
    const third = await open();
    for (const b of blocks) expectBytes(await third.get(b.cid), b.bytes);
  });

  it('a record whose bytes do not match its CID ends the scan of an unsealed pack', async () => {
    const store = await open();
    const blocks = Array.from({ length: 4 }, (_, i) => block(300 + i, 2000));
    for (const b of blocks) await store.put(b.cid, b.bytes);
    const second = (await store.locate(blocks[1].cid))!;
    await store.close();
    const [pack] = await packFiles();
    await rm(join(dir, 'packs', pack.replace('.pack', '.idx')));
    const bytes = await readFile(second.path);
    bytes[second.offset + 10] ^= 1;
    await writeFile(second.path, bytes);
    const again = await open();
    expect((await collect(again.keys())).map(String)).toEqual([blocks[0].cid.toString()]);
  });

  it('deletes survive a reopen, and a mostly deleted pack is rewritten and removed', async () => {
    let store = await open({ packBytes: 32 * 1024 });
    const blocks = Array.from({ length: 24 }, (_, i) => block(400 + i, 3000));
    await collect(store.putMany(blocks));
    await store.close();
    store = await open({ packBytes: 32 * 1024 });
    const before = await packFiles();
    const first = (await store.locate(blocks[0].cid))!.path;
    const inFirst: typeof blocks = [];
    for (const b of blocks) if ((await store.locate(b.cid))!.path === first) inFirst.push(b);
    expect(inFirst.length).toBeGreaterThan(3);
    // Delete all but one of the first pack's blocks: it is rewritten (its survivor moves) and removed.
    for (const b of inFirst.slice(1)) await store.delete(b.cid);
    expect(await packFiles()).not.toContain(first.split('/').pop());
    expect((await store.locate(inFirst[0].cid))!.path).not.toBe(first);
    await store.delete(blocks[blocks.length - 1].cid);
    await store.close();
    store = await open({ packBytes: 32 * 1024 });
    const gone = new Set([...inFirst.slice(1), blocks[blocks.length - 1]].map((b) => b.cid.toString()));
    const kept = blocks.filter((b) => !gone.has(b.cid.toString()));
    expect((await collect(store.keys())).map(String).sort()).toEqual(kept.map((b) => b.cid.toString()).sort());
    for (const b of kept) expectBytes(await store.get(b.cid), b.bytes);
    for (const b of blocks.filter((x) => gone.has(x.cid.toString()))) expect(await store.has(b.cid)).toBe(false);
    expect((await packFiles()).length).toBeLessThanOrEqual(before.length);
    // A deleted block stored again is back, and stays back.
    const back = inFirst[1];
    await store.put(back.cid, back.bytes);
    await store.close();
    store = await open({ packBytes: 32 * 1024 });
    expectBytes(await store.get(back.cid), back.bytes);
  });

  it('quarantines a packed block into its own file', async () => {
    const store = await open();
    const b = block(500, 777);
    await store.put(b.cid, b.bytes);
    const where = await store.quarantine(b.cid);
    expect(where).toBe(join(dir, 'quarantine', b.cid.toString()));
    expectBytes(new Uint8Array(await readFile(where)), b.bytes);
    expect(await store.has(b.cid)).toBe(false);
    await store.close();
    const again = await open();
    expect(await again.has(b.cid)).toBe(false);
  });

  it('a failed pack write fails only the blocks not yet durable, and later puts go to a new pack', async () => {
    const { open: fsOpen } = await import('node:fs/promises');
    let fail = false;
    const store = await open({
      fs: {
        open: (async (path: string, flags: string) => {
          const fh = await fsOpen(path, flags);
          const write = fh.write.bind(fh);
          fh.write = (async (...args: Parameters<typeof fh.write>) => {
            if (fail) throw Object.assign(new Error('EIO: simulated'), { code: 'EIO' });
            return write(...args);
          }) as typeof fh.write;
          return fh;
        }) as typeof fsOpen,
      },
    });
    const a = block(600, 1000);
    await store.put(a.cid, a.bytes);
    fail = true;
    const b = block(601, 1000);
    const err = await store.put(b.cid, b.bytes).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('EIO');
    expect(await store.has(b.cid)).toBe(false);
    fail = false;
    const c = block(602, 1000);
    await store.put(c.cid, c.bytes);
    await store.put(b.cid, b.bytes);
    expect(await packFiles()).toHaveLength(2);
    await store.close();
    const again = await open();
    for (const x of [a, b, c]) expectBytes(await again.get(x.cid), x.bytes);
  });

  it('a second store opened while the first is writing does not seal its pack', async () => {
    const first = await open();
    const a = block(700, 1000);
    await first.put(a.cid, a.bytes);
    const second = await open();
    expectBytes(await second.get(a.cid), a.bytes);
    await second.close();
    const b = block(701, 1000);
    await first.put(b.cid, b.bytes);
    await first.close();
    const third = await open();
    for (const x of [a, b]) expectBytes(await third.get(x.cid), x.bytes);
  });
});

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of source) out.push(x);
  return out;
}
