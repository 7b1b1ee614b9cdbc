/**
 * FsBlockstore: the shared Blockstore acceptance suite (with real fsyncs, as a durable store), then the parts only
 * a file-system store has: on-disk layout and sharding, leftover temp files, foreign files, quarantine, stat and
 * full-disk errors.
 */
import { mkdtemp, readdir, rm, writeFile, mkdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockNotFoundError, StorageFullError } from '../../core/blocks/blockstore.ts';
import { block, runBlockstoreAcceptance } from './blockstore-acceptance.ts';
import { FsBlockstore } from './fs-blockstore.ts';

async function fixtureDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'reserve-fs-blockstore-'));
}

runBlockstoreAcceptance(
  'FsBlockstore',
  async () => {
    const dir = await fixtureDir();
    const opened: FsBlockstore[] = [];
    const open = async (): Promise<FsBlockstore> => {
      const store = await FsBlockstore.open(dir);
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
  { durable: true, numRuns: 40 },
);

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)).split(sep).join('/'));
  }
  return out.sort();
}

describe('FsBlockstore on disk', () => {
  let dir: string;
  let store: FsBlockstore;

  beforeEach(async () => {
    dir = await fixtureDir();
    store = await FsBlockstore.open(dir);
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
    store = await FsBlockstore.open(dir);
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
    store = await FsBlockstore.open(dir, { concurrency: 1, fsync: false });
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

  it('turns ENOSPC while writing into StorageFullError naming the dir and size, and leaves no temp file', async () => {
    const { open } = await import('node:fs/promises');
    const store = await FsBlockstore.open(dir, {
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

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of source) out.push(x);
  return out;
}
