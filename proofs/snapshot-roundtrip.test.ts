/**
 * Round trip: a real directory tree backed up and restored is byte-identical, with modes, mtimes, symlinks, hard
 * links and empty directories, whatever the names are (raw bytes: spaces, quotes, newlines, backslashes, invalid
 * UTF-8, NFC next to NFD, 255 bytes). Random trees come from fast-check, are written to a temp directory, backed
 * up through the real LocalSourceTree into a MemoryBlockstore, restored through the real LocalTargetTree and
 * compared with compareTrees (and, independently, with a fingerprint of both trees).
 *
 * Also: the whole local path on the default chunker (FsBlockstore, worker threads, backupDirectory and
 * restoreSnapshot); files behind nested ChunkList blocks; a paged directory; restoring a subtree or a single
 * entry gives exactly that; FIFOs and sockets are skipped with a warning; files that vanish, grow or shrink between
 * their directory's listing and their read are skipped or kept as read, each with a warning.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CHUNKER, type ChunkerParams } from '../core/chunker/fastcdc.ts';
import { backup, type BackupResult } from '../core/snapshot/backup.ts';
import { restore } from '../core/snapshot/restore.ts';
import { inlineChunking } from '../core/snapshot/inline.ts';
import { readDir, readSnapshot } from '../core/snapshot/manifest-io.ts';
import { decodeChunkList, INLINE_CHUNKS, LIST_FANOUT, type DirEntry } from '../core/snapshot/model.ts';
import type { SourceTree, TreePath, Warning } from '../core/snapshot/ports.ts';
import type { Blockstore } from '../core/blocks/blockstore.ts';
import { MemoryBlockstore } from '../adapters/storage/memory-blockstore.ts';
import { LocalTargetTree } from '../adapters/fs/local-tree.ts';
import { compareTrees } from '../adapters/fs/compare.ts';
import { backupDirectory, restoreSnapshot, verifyRepository } from '../adapters/repo/ops.ts';
import { LocalRepo } from '../adapters/repo/local-repo.ts';
import { WorkerChunking } from '../adapters/workers/chunk-pool.ts';
import { propertyOptions } from './support/fc.ts';
import { NFC, NFD, SPECIAL_NAMES, enc, treeArb } from './support/snapshot-arbitraries.ts';
import {
  fingerprint,
  localBackup,
  pathJoin,
  withTemp,
  writeTree,
  type Node,
  type TreeSpec,
} from './support/snapshot-fixtures.ts';

const SMALL: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024 };
/** About the smallest chunks the chunker allows: many chunk references from few bytes. */
const PAGE_CHUNKER: ChunkerParams = { minSize: 64, avgSize: 128, maxSize: 129 };

// ---- helpers ------------------------------------------------------------------------------------------------------

async function backupTree(src: string, store: Blockstore, chunker: ChunkerParams): Promise<BackupResult & { warned: Warning[] }> {
  const warned: Warning[] = [];
  const r = await backup({ ...localBackup(src, store, chunker), onWarning: (w) => warned.push(w) });
  return { ...r, warned };
}

async function restoreTo(dst: string, store: Blockstore, b: BackupResult, subpath?: TreePath) {
  return restore({ store, target: await LocalTargetTree.prepare(dst), chunking: inlineChunking(SMALL), snapshot: b.cid, subpath });
}


/** Every path in the spec (not the root), with its kind. */
function pathsOf(spec: TreeSpec): Array<{ path: Uint8Array[]; kind: Node['kind'] }> {
  const out: Array<{ path: Uint8Array[]; kind: Node['kind'] }> = [];
  const walk = (prefix: Uint8Array[], nodes: Node[]) => {
    for (const n of nodes) {
      out.push({ path: [...prefix, n.name], kind: n.kind });
      if (n.kind === 'dir') walk([...prefix, n.name], n.children);
    }
  };
  walk([], spec.root.children);
  return out;
}

const joinPath = (root: string, path: Uint8Array[]): Buffer => path.reduce<Buffer>((acc, n) => pathJoin(acc, n), Buffer.from(root));
/** compareTrees hands its arguments to Buffer.from, so a raw-byte (non-UTF-8) Buffer path goes through intact. */
const asPath = (p: Buffer): string => p as unknown as string;

// ---- the round-trip property ------------------------------------------------------------------------------------

describe('snapshot round trip', () => {
  it('snapshot: random trees back up and restore byte-identical with modes, mtimes, links', async () => {
    await fc.assert(
      fc.asyncProperty(treeArb(SMALL), async (spec) =>
        withTemp('roundtrip', async (base) => {
          const src = join(base, 'src');
          const dst = join(base, 'dst');
          const counts = await writeTree(src, spec);
          const store = new MemoryBlockstore();
          const b = await backupTree(src, store, SMALL);
          expect(b.warned).toEqual([]);
          expect(b.snapshot.stats).toMatchObject({ files: counts.files + counts.hardlinks, dirs: counts.dirs, symlinks: counts.symlinks, skipped: 0 });
          const r = await restoreTo(dst, store, b);
          expect(await compareTrees(src, dst)).toEqual([]);
          expect(await fingerprint(dst)).toEqual(await fingerprint(src));
          expect(r.stats.files + r.stats.hardlinks).toBe(counts.files + counts.hardlinks);
          expect(r.stats.symlinks).toBe(counts.symlinks);
          expect(r.stats.dirs).toBe(counts.dirs);
        }),
      ),
      propertyOptions('snapshot: random trees back up and restore byte-identical with modes, mtimes, links', { numRuns: 40 }),
    );
  });

  it('snapshot: restoring a subpath gives exactly that subtree (or that one entry)', async () => {
    const specWithPaths = treeArb(SMALL)
      .filter((s) => pathsOf(s).length > 0)
      .chain((s) => fc.tuple(fc.constant(s), fc.nat({ max: pathsOf(s).length - 1 })));
    await fc.assert(
      fc.asyncProperty(specWithPaths, async ([spec, pick]) =>
        withTemp('subtree', async (base) => {
          const src = join(base, 'src');
          const dst = join(base, 'dst');
          await writeTree(src, spec);
          const store = new MemoryBlockstore();
          const b = await backupTree(src, store, SMALL);
          const { path, kind } = pathsOf(spec)[pick];
          await restoreTo(dst, store, b, path);
          const from = asPath(joinPath(src, path));
          if (kind === 'dir') {
            expect(await compareTrees(from, dst)).toEqual([]);
          } else {
            // A single file or symlink lands in the target under its own name, and nothing else does.
            const names = await fs.readdir(dst, { encoding: 'buffer' });
            expect(names.map((n) => n.toString('hex'))).toEqual([Buffer.from(path[path.length - 1]).toString('hex')]);
            const to = pathJoin(Buffer.from(dst), path[path.length - 1]);
            expect(await compareTrees(from, asPath(to))).toEqual([]);
          }
        }),
      ),
      propertyOptions('snapshot: restoring a subpath gives exactly that subtree (or that one entry)', { numRuns: 30 }),
    );
  });

  it('restoring a path that is not in the snapshot fails with PathNotInSnapshotError', async () => {
    await withTemp('subtree-missing', async (base) => {
      const src = join(base, 'src');
      await writeTree(src, { root: { mode: 0o755, mtimeUs: 0n, children: [{ kind: 'file', name: enc('f'), content: { kind: 'zeros', size: 3 }, mode: 0o644, mtimeUs: 0n }] } });
      const store = new MemoryBlockstore();
      const b = await backupTree(src, store, SMALL);
      await expect(restoreTo(join(base, 'a'), store, b, [enc('nope')])).rejects.toMatchObject({ name: 'PathNotInSnapshotError' });
      await expect(restoreTo(join(base, 'b'), store, b, [enc('f'), enc('below-a-file')])).rejects.toMatchObject({ name: 'PathNotInSnapshotError' });
    });
  });
});

// ---- fixed examples -------------------------------------------------------------------------------------------------

describe('snapshot round trip: fixed examples', () => {
  it('every special name, NFC and NFD side by side, as files, directories and symlinks', async () => {
    await withTemp('names', async (base) => {
      const src = join(base, 'src');
      const dst = join(base, 'dst');
      const children: Node[] = SPECIAL_NAMES.map((name, i) => ({ kind: 'file', name, content: { kind: 'random', seed: i, size: i * 37 }, mode: 0o644, mtimeUs: BigInt(i) * 1_234_567n }));
      children.push({
        kind: 'dir',
        name: enc('dirs'),
        mode: 0o755,
        mtimeUs: -5n,
        children: SPECIAL_NAMES.map((name) => ({ kind: 'dir', name, mode: 0o700, mtimeUs: 12_345n, children: [] })),
      });
      children.push({
        kind: 'dir',
        name: enc('links'),
        mode: 0o755,
        mtimeUs: 77n,
        children: SPECIAL_NAMES.map((name) => ({ kind: 'symlink', name, target: name, mtimeUs: -77n })),
      });
      await writeTree(src, { root: { mode: 0o750, mtimeUs: 1n, children } });
      // The OS really holds the two spellings as two names.
      const names = (await fs.readdir(src, { encoding: 'buffer' })).map((n) => n.toString('hex'));
      expect(names).toContain(Buffer.from(NFC).toString('hex'));
      expect(names).toContain(Buffer.from(NFD).toString('hex'));
      const store = new MemoryBlockstore();
      const b = await backupTree(src, store, SMALL);
      await restoreTo(dst, store, b);
      expect(await compareTrees(src, dst)).toEqual([]);
      expect(await fingerprint(dst)).toEqual(await fingerprint(src));
    });
  });

  // Regression: LocalTargetTree.setMeta handed fs.utimes a negative number of seconds, which Node turns into
  // "now", so every pre-1970 mtime came back as the time of the restore.
  it('pre-1970 and sub-second mtimes restore to the microsecond, on files, directories and symlinks', async () => {
    await withTemp('old-times', async (base) => {
      const src = join(base, 'src');
      const dst = join(base, 'dst');
      const times = [-1n, -999_999n, -1_000_000n, -1_500_001n, -86_400_123_457n, -2_147_483_000_999_999n, 1n, 999_999n, 1_700_000_000_123_457n];
      const children: Node[] = times.flatMap((t, i): Node[] => [
        { kind: 'file', name: enc(`file ${i}`), content: { kind: 'random', seed: i, size: 10 }, mode: 0o644, mtimeUs: t },
        { kind: 'dir', name: enc(`dir ${i}`), mode: 0o755, mtimeUs: t, children: [] },
        { kind: 'symlink', name: enc(`link ${i}`), target: enc(`file ${i}`), mtimeUs: t },
      ]);
      await writeTree(src, { root: { mode: 0o755, mtimeUs: -31_536_000_000_001n, children } });
      const store = new MemoryBlockstore();
      const b = await backupTree(src, store, SMALL);
      await restoreTo(dst, store, b);
      expect(await compareTrees(src, dst)).toEqual([]);
      const st = await fs.lstat(join(dst, 'file 5'), { bigint: true });
      expect(st.mtimeNs).toBe(-2_147_483_000_999_999_000n);
    });
  });

  // Regression: restoring a single symlink (a subpath naming it) did not set its mtime.
  it('restoring just one symlink keeps its mtime', async () => {
    await withTemp('one-link', async (base) => {
      const src = join(base, 'src');
      await writeTree(src, { root: { mode: 0o755, mtimeUs: 0n, children: [{ kind: 'dir', name: enc('d'), mode: 0o755, mtimeUs: 5n, children: [{ kind: 'symlink', name: enc('l'), target: enc('/dangling'), mtimeUs: 123_456_789n }] }] } });
      const store = new MemoryBlockstore();
      const b = await backupTree(src, store, SMALL);
      await restoreTo(join(base, 'dst'), store, b, [enc('d'), enc('l')]);
      expect((await fs.lstat(join(base, 'dst', 'l'), { bigint: true })).mtimeNs).toBe(123_456_789_000n);
      expect(await compareTrees(join(src, 'd', 'l'), join(base, 'dst', 'l'))).toEqual([]);
    });
  });

  it('a file of more than LIST_FANOUT chunks goes behind nested ChunkList blocks and restores', async () => {
    await withTemp('chunklist', async (base) => {
      const src = join(base, 'src');
      const dst = join(base, 'dst');
      const size = 1_200_000; // 9,588 chunks of 65-129 bytes: more than LIST_FANOUT
      await writeTree(src, {
        root: {
          mode: 0o755,
          mtimeUs: 0n,
          children: [
            { kind: 'file', name: enc('big'), content: { kind: 'random', seed: 5, size }, mode: 0o640, mtimeUs: 1_600_000_000_000_001n },
            { kind: 'file', name: enc('mid'), content: { kind: 'random', seed: 6, size: 20_000 }, mode: 0o640, mtimeUs: 3n },
            { kind: 'file', name: enc('few'), content: { kind: 'random', seed: 7, size: 1_500 }, mode: 0o640, mtimeUs: 3n },
          ],
        },
      });
      const store = new MemoryBlockstore();
      const b = await backupTree(src, store, PAGE_CHUNKER);
      const { entries } = await readDir(store, b.snapshot.tree, 'test');
      const byName = new Map(entries.map((e) => [Buffer.from(e.n).toString(), e] as const));
      const big = byName.get('big')!;
      expect(big.cl).toBeDefined();
      expect(big.c).toBeUndefined();
      const top = decodeChunkList(await store.get(big.cl!));
      expect(top.l?.length).toBe(2); // two leaf lists under one interior node
      const leaves = await Promise.all(top.l!.map(async (cid) => decodeChunkList(await store.get(cid))));
      expect(leaves[0].c!.length).toBe(LIST_FANOUT);
      expect(top.ls!.reduce((a, s) => a + s, 0)).toBe(size);
      expect(byName.get('mid')!.cl).toBeDefined(); // > INLINE_CHUNKS: one flat ChunkList
      expect(byName.get('few')!.c!.length).toBeLessThanOrEqual(INLINE_CHUNKS);
      await restoreTo(dst, store, b);
      expect(await compareTrees(src, dst)).toEqual([]);
    });
  });

  it('a directory with more than DIR_PAGE_BYTES of entries is stored as pages and restores', async () => {
    await withTemp('paged', async (base) => {
      const src = join(base, 'src');
      const dst = join(base, 'dst');
      // With 129-byte chunks, 64 x 129 bytes of zeros is 64 chunks of one deduplicated block, listed inline:
      // ~2.8 KB per entry, so 220 entries pass 512 KiB without writing thousands of files (or many bytes).
      const files: Node[] = Array.from({ length: 220 }, (_, i) => ({
        kind: 'file',
        name: enc(`${String(i).padStart(4, '0')} ${'\u00e9'.repeat(100)}`),
        content: { kind: 'zeros', size: 64 * PAGE_CHUNKER.maxSize - (i % 5) },
        mode: 0o644,
        mtimeUs: BigInt(i) * 1_000_003n - 1_000_000_000n,
      }));
      await writeTree(src, {
        root: { mode: 0o755, mtimeUs: 1n, children: [{ kind: 'dir', name: enc('many'), mode: 0o750, mtimeUs: -123_456_789n, children: files }] },
        hardlinks: [{ file: 3, dir: 1, name: enc('a hard link') }],
      });
      const store = new MemoryBlockstore();
      const b = await backupTree(src, store, PAGE_CHUNKER);
      const root = await readDir(store, b.snapshot.tree, 'test');
      const paged = await readDir(store, root.entries[0].d!, 'test');
      expect(paged.entries.length).toBe(221);
      expect(paged.entries.every((e) => e.c === undefined || e.c.length <= INLINE_CHUNKS)).toBe(true);
      expect(paged.blocks.length).toBeGreaterThan(2); // the page index and at least two pages
      // Pages keep the entries in name order.
      const names = paged.entries.map((e) => Buffer.from(e.n));
      expect([...names].sort(Buffer.compare)).toEqual(names);
      await restoreTo(dst, store, b);
      expect(await compareTrees(src, dst)).toEqual([]);
    });
  });

  it('the default chunker end to end: FsBlockstore, worker threads, files past the 8 MiB read window', async () => {
    // One worker pool (what the CLI uses) for backup, verify and restore: each pool boots its threads anew.
    const chunking = new WorkerChunking({ threads: 2 });
    await withTemp('default', async (base) => {
      const src = join(base, 'src');
      const dst = join(base, 'dst');
      const repo = join(base, 'repo');
      const { minSize, maxSize } = DEFAULT_CHUNKER;
      await writeTree(src, {
        root: {
          mode: 0o755,
          mtimeUs: 1_700_000_000_654_321n,
          children: [
            // First file written, so hard links { file: 0 } point at it; 'sub' is directory 1 (0 is the root).
            { kind: 'file', name: enc('video.mp4'), content: { kind: 'random', seed: 1, size: 9 * 1024 * 1024 + 3 }, mode: 0o644, mtimeUs: -1_000_001n },
            { kind: 'dir', name: enc('sub'), mode: 0o2750, mtimeUs: -123_456_789n, children: [] },
            { kind: 'file', name: enc('exactly-max'), content: { kind: 'random', seed: 2, size: maxSize }, mode: 0o600, mtimeUs: 5n },
            { kind: 'file', name: enc('max+1 zeros'), content: { kind: 'zeros', size: maxSize + 1 }, mode: 0o600, mtimeUs: 5n },
            { kind: 'file', name: enc('min-1'), content: { kind: 'random', seed: 3, size: minSize - 1 }, mode: 0o2755, mtimeUs: 5n },
            { kind: 'file', name: enc('min+1'), content: { kind: 'random', seed: 4, size: minSize + 1 }, mode: 0o444, mtimeUs: 5n },
            { kind: 'file', name: enc('empty'), content: { kind: 'zeros', size: 0 }, mode: 0o644, mtimeUs: 5n },
            { kind: 'symlink', name: Uint8Array.from([0xff, 0x0a]), target: Uint8Array.from([0xfe, 0x2f, 0x0a]), mtimeUs: -9n },
            { kind: 'dir', name: enc('empty dir'), mode: 0o1777, mtimeUs: 9n, children: [] },
          ],
        },
        hardlinks: [
          { file: 0, dir: 0, name: enc('hardlink to video') },
          { file: 0, dir: 1, name: enc('another') },
        ],
      });
      const b = await backupDirectory({ source: src, repo, author: 'proofs', chunking });
      expect(b.warnings).toEqual([]);
      expect(b.stats.hardlinks).toBe(2);
      expect(b.stats.bytesRead).toBe(9 * 1024 * 1024 + 3 + maxSize + maxSize + 1 + 2 * minSize);
      const opened = await LocalRepo.open(repo);
      try {
        expect(opened.config.chunker).toEqual(DEFAULT_CHUNKER);
        const snap = await readSnapshot(opened.blocks, b.cid, 'test');
        const root = await readDir(opened.blocks, snap.tree, 'test');
        const video = root.entries.find((e: DirEntry) => Buffer.from(e.n).toString() === 'video.mp4')!;
        expect(video.c!.length).toBeGreaterThanOrEqual(5); // 9 MiB in chunks of at most 2 MiB
        expect(video.z!.every((z) => z <= maxSize)).toBe(true);
      } finally {
        await opened.close();
      }
      expect(await verifyRepository({ repo, chunking })).toMatchObject({ ok: true, corrupt: [], missing: [], unreadable: [] });
      const r = await restoreSnapshot({ repo, ref: 'latest', target: dst, chunking });
      expect(r.stats.hardlinks).toBe(2);
      expect(await compareTrees(src, dst)).toEqual([]);
      expect(await fingerprint(dst)).toEqual(await fingerprint(src));
    }).finally(() => chunking.close());
  });

  it('a tree that changes under the backup: a vanished file is skipped with a warning, one that grew or shrank is kept as read, with a warning', async () => {
    await withTemp('changing', async (base) => {
      const src = join(base, 'src');
      await fs.mkdir(join(src, 'sub'), { recursive: true });
      const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
      await fs.writeFile(join(src, 'sub', 'kept.txt'), bytes(40, 1));
      await fs.writeFile(join(src, 'sub', 'gone.txt'), bytes(40, 2));
      await fs.writeFile(join(src, 'sub', 'grows-small.txt'), bytes(30, 3)); // below the minimum chunk: one read
      await fs.writeFile(join(src, 'sub', 'grows-large.bin'), bytes(3000, 4)); // read in windows
      await fs.writeFile(join(src, 'sub', 'shrinks.bin'), bytes(3000, 5));
      // The directory is listed (sizes taken), then the files change before any is read.
      const local = localBackup(src, new MemoryBlockstore(), SMALL);
      const inner = local.source;
      const source: SourceTree = {
        description: inner.description,
        stat: (path) => inner.stat(path),
        readlink: (path) => inner.readlink(path),
        open: (path) => inner.open(path),
        list: async (path) => {
          const listed = await inner.list(path);
          if (path.length === 1) {
            await fs.rm(join(src, 'sub', 'gone.txt'));
            await fs.appendFile(join(src, 'sub', 'grows-small.txt'), bytes(20, 6));
            await fs.appendFile(join(src, 'sub', 'grows-large.bin'), bytes(500, 7));
            await fs.truncate(join(src, 'sub', 'shrinks.bin'), 1000);
          }
          return listed;
        },
      };
      const warned: Warning[] = [];
      const b = await backup({ ...local, source, onWarning: (w) => warned.push(w) });
      expect(warned.map((w) => `${w.path}: ${w.message}`).sort()).toEqual([
        'sub/gone.txt: skipped: it vanished during the backup',
        'sub/grows-large.bin: changed while it was read (3000 bytes at stat, 3500 read); the bytes read were kept',
        'sub/grows-small.txt: changed while it was read (30 bytes at stat, 50 read); the bytes read were kept',
        'sub/shrinks.bin: changed while it was read (3000 bytes at stat, 1000 read); the bytes read were kept',
      ]);
      expect(b.stats).toMatchObject({ files: 4, skipped: 1 });
      // What was kept is what the files held when read: the restore matches the tree as it is now.
      const dst = join(base, 'dst');
      await restoreTo(dst, local.store, b);
      for (const name of ['kept.txt', 'grows-small.txt', 'grows-large.bin', 'shrinks.bin']) {
        expect(Buffer.from(await fs.readFile(join(dst, 'sub', name))).equals(await fs.readFile(join(src, 'sub', name)))).toBe(true);
      }
      expect((await fs.readdir(join(dst, 'sub'))).sort()).toEqual(['grows-large.bin', 'grows-small.txt', 'kept.txt', 'shrinks.bin']);
    });
  });

  it('FIFOs and sockets are skipped with a warning, not a crash', async () => {
    await withTemp('special', async (base) => {
      const src = join(base, 'src');
      const dst = join(base, 'dst');
      await writeTree(src, {
        root: {
          mode: 0o755,
          mtimeUs: 0n,
          children: [
            { kind: 'file', name: enc('regular'), content: { kind: 'random', seed: 1, size: 5000 }, mode: 0o644, mtimeUs: 1n },
            { kind: 'dir', name: enc('sub'), mode: 0o755, mtimeUs: 1n, children: [] },
          ],
        },
      });
      execFileSync('mkfifo', [join(src, 'sub', 'a fifo')]);
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(join(src, 'sock'), resolve));
      try {
        const store = new MemoryBlockstore();
        const b = await backupTree(src, store, SMALL);
        expect(b.stats.skipped).toBe(2);
        expect(b.snapshot.stats.skipped).toBe(2);
        expect(b.warned.map((w) => w.path).sort()).toEqual(['sock', 'sub/a fifo']);
        expect(b.warned.find((w) => w.path === 'sock')!.message).toMatch(/skipped: socket/);
        expect(b.warned.find((w) => w.path === 'sub/a fifo')!.message).toMatch(/skipped: FIFO/);
        await restoreTo(dst, store, b);
        expect(await fs.readdir(join(dst, 'sub'))).toEqual([]);
        expect((await fs.readdir(dst)).sort()).toEqual(['regular', 'sub']);
        expect(await compareTrees(src, dst)).toEqual([]);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
  });
});
