/**
 * Incremental backups: the second backup of an unchanged tree reads nothing and stores no chunk (its manifest is
 * the same tree of blocks); after one file changes, only that file is read again and only the chunks that really
 * changed are stored; identical content is stored once within a run, across files and across snapshots; and each
 * snapshot links to its parent, so history is a chain.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import { FastCdc, type ChunkerParams } from '../core/chunker/fastcdc.ts';
import { RAW_CODE, cidFromSha256 } from '../core/blocks/cid.ts';
import type { Blockstore } from '../core/blocks/blockstore.ts';
import { backup, type BackupResult } from '../core/snapshot/backup.ts';
import { inlineChunking } from '../core/snapshot/inline.ts';
import { readSnapshot } from '../core/snapshot/manifest-io.ts';
import { restore } from '../core/snapshot/restore.ts';
import { MemoryBlockstore } from '../adapters/storage/memory-blockstore.ts';
import { LocalSourceTree, LocalTargetTree } from '../adapters/fs/local-tree.ts';
import { compareTrees } from '../adapters/fs/compare.ts';
import { backupDirectory } from '../adapters/repo/ops.ts';
import { LocalRepo } from '../adapters/repo/local-repo.ts';
import { propertyOptions } from './support/fc.ts';
import { enc, treeArb } from './support/snapshot-arbitraries.ts';
import { fixedClock, pathJoin, seededBytes, setTimesUs, withTemp, writeTree, type Node, type TreeSpec } from './support/snapshot-fixtures.ts';

const SMALL: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024 };

async function backupTree(src: string, store: Blockstore, parent: BackupResult | null, now = 1_700_000_000_000): Promise<BackupResult> {
  return backup({
    source: new LocalSourceTree(src),
    store,
    chunking: inlineChunking(SMALL),
    clock: fixedClock(now),
    author: 'proofs',
    host: 'proofs-host',
    chunker: SMALL,
    parent: parent?.cid ?? null,
  });
}


async function keys(store: Blockstore): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const cid of store.keys()) out.add(cid.toString());
  return out;
}

const rawCount = async (store: Blockstore) => {
  let n = 0;
  for await (const cid of store.keys()) if (cid.code === RAW_CODE) n++;
  return n;
};

/** The distinct chunk CIDs of `bytes` under `params`, with their sizes: what a backup of it must reference. */
function chunksOf(bytes: Uint8Array, params: ChunkerParams): Map<string, number> {
  const out = new Map<string, number>();
  let prev = 0;
  for (const end of new FastCdc(params).boundaries(bytes, true)) {
    const digest = createHash('sha256').update(bytes.subarray(prev, end)).digest();
    out.set(cidFromSha256(RAW_CODE, new Uint8Array(digest)).toString(), end - prev);
    prev = end;
  }
  return out;
}

/** Every regular-file path in the spec. */
function filePaths(spec: TreeSpec): Uint8Array[][] {
  const out: Uint8Array[][] = [];
  const walk = (prefix: Uint8Array[], nodes: Node[]) => {
    for (const n of nodes) {
      if (n.kind === 'file') out.push([...prefix, n.name]);
      else if (n.kind === 'dir') walk([...prefix, n.name], n.children);
    }
  };
  walk([], spec.root.children);
  return out;
}

const joinPath = (root: string, path: Uint8Array[]): Buffer => path.reduce<Buffer>((acc, n) => pathJoin(acc, n), Buffer.from(root));

describe('incremental backup', () => {
  it('snapshot: a second backup of an unchanged tree reads nothing and stores no chunk', async () => {
    await fc.assert(
      fc.asyncProperty(treeArb(SMALL), async (spec) =>
        withTemp('incr-same', async (base) => {
          const src = join(base, 'src');
          await writeTree(src, spec);
          const store = new MemoryBlockstore();
          const first = await backupTree(src, store, null);
          const before = await keys(store);
          const second = await backupTree(src, store, first, 1_700_000_060_000);
          const s = second.stats;
          expect(s.bytesRead).toBe(0);
          expect(s.filesUnchanged).toBe(s.files);
          expect(s.files).toBe(first.stats.files);
          expect(s.chunksNew).toBe(0);
          expect(s.bytesNew).toBe(0);
          expect(s.chunks).toBe(first.stats.chunks);
          expect(s.bytes).toBe(first.stats.bytes);
          // The same manifest: only the new snapshot node is a new block.
          expect(second.snapshot.tree.toString()).toBe(first.snapshot.tree.toString());
          const after = await keys(store);
          expect([...after].filter((k) => !before.has(k))).toEqual([second.cid.toString()]);
          expect(second.snapshot.parent?.toString()).toBe(first.cid.toString());
        }),
      ),
      propertyOptions('snapshot: a second backup of an unchanged tree reads nothing and stores no chunk', { numRuns: 30 }),
    );
  });

  it('snapshot: after one file changes, only it is re-read and only its changed chunks are new', async () => {
    const editArb = fc.record({
      pick: fc.nat(),
      at: fc.double({ min: 0, max: 1, noNaN: true }),
      del: fc.nat({ max: 2000 }),
      insert: fc.tuple(fc.nat(), fc.nat({ max: 2000 })),
      mtimeUs: fc.bigInt({ min: -1_000_000_000_000_000n, max: 2_000_000_000_000_000n }),
    });
    const withFiles = treeArb(SMALL).filter((s) => filePaths(s).length > 0);
    await fc.assert(
      fc.asyncProperty(withFiles, editArb, async (spec, edit) =>
        withTemp('incr-edit', async (base) => {
          const src = join(base, 'src');
          const dst = join(base, 'dst');
          await writeTree(src, spec);
          const store = new MemoryBlockstore();
          const first = await backupTree(src, store, null);

          // Edit one file in place (all its hard links see it), keep its mode, set a new mtime.
          const paths = filePaths(spec);
          const target = joinPath(src, paths[edit.pick % paths.length]);
          const st = await fs.stat(target);
          const old = new Uint8Array(await fs.readFile(target));
          const at = Math.floor(edit.at * old.length);
          const del = Math.min(edit.del, old.length - at);
          const ins = seededBytes(edit.insert[0], edit.insert[1] || (del === 0 ? 1 : 0));
          const next = new Uint8Array(old.length - del + ins.length);
          next.set(old.subarray(0, at), 0);
          next.set(ins, at);
          next.set(old.subarray(at + del), at + ins.length);
          await fs.chmod(target, 0o600);
          await fs.writeFile(target, next);
          await fs.chmod(target, st.mode & 0o7777);
          await setTimesUs(target, edit.mtimeUs);

          const expectedNew = chunksOf(next, SMALL);
          const storedBefore = await keys(store);
          for (const cid of [...expectedNew.keys()]) if (storedBefore.has(cid)) expectedNew.delete(cid);
          const rawBefore = await rawCount(store);

          const second = await backupTree(src, store, first, 1_700_000_060_000);
          const s = second.stats;
          expect(s.bytesRead).toBe(next.length); // that file only (once, however many names it has)
          expect(s.filesUnchanged).toBe(s.files - st.nlink);
          expect(s.chunksNew).toBe(expectedNew.size);
          expect(s.bytesNew).toBe([...expectedNew.values()].reduce((a, b) => a + b, 0));
          expect((await rawCount(store)) - rawBefore).toBe(expectedNew.size);
          for (const cid of expectedNew.keys()) expect(storedBefore.has(cid)).toBe(false);
          // And the new snapshot is right.
          await restore({ store, target: await LocalTargetTree.prepare(dst), chunking: inlineChunking(SMALL), snapshot: second.cid });
          expect(await compareTrees(src, dst)).toEqual([]);
        }),
      ),
      propertyOptions('snapshot: after one file changes, only it is re-read and only its changed chunks are new', { numRuns: 30 }),
    );
  });

  // Regression (found by the property above): an unchanged file behind a ChunkList block was counted with
  // `stats.chunks += await countChunks(...)`, which read the total before the await and lost the counts other
  // files added meanwhile, so the second snapshot recorded fewer chunks than the first.
  it('an unchanged tree with ChunkList files among others counts the same chunks again', async () => {
    await withTemp('incr-count', async (base) => {
      const src = join(base, 'src');
      const children: Node[] = Array.from({ length: 12 }, (_, i) => ({
        kind: 'file',
        name: enc(`f${i}`),
        content: { kind: 'random', seed: i, size: i % 3 === 0 ? 30_000 : 3_000 },
        mode: 0o644,
        mtimeUs: 1n,
      }));
      await writeTree(src, { root: { mode: 0o755, mtimeUs: 0n, children } });
      const store = new MemoryBlockstore();
      const first = await backupTree(src, store, null);
      const second = await backupTree(src, store, first);
      expect(second.stats.chunks).toBe(first.stats.chunks);
      expect(second.snapshot.stats).toEqual(first.snapshot.stats);
    });
  });

  it('a one-byte insertion in a 200-chunk file stores only a few new chunks', async () => {
    await withTemp('incr-insert', async (base) => {
      const src = join(base, 'src');
      const data = seededBytes(77, 60_000);
      const other = seededBytes(78, 20_000);
      await writeTree(src, {
        root: {
          mode: 0o755,
          mtimeUs: 0n,
          children: [
            { kind: 'file', name: enc('big'), content: { kind: 'bytes', bytes: data }, mode: 0o644, mtimeUs: 1n },
            { kind: 'file', name: enc('other'), content: { kind: 'bytes', bytes: other }, mode: 0o644, mtimeUs: 1n },
          ],
        },
      });
      const store = new MemoryBlockstore();
      const first = await backupTree(src, store, null);
      const edited = new Uint8Array(data.length + 1);
      edited.set(data.subarray(0, 30_000), 0);
      edited[30_000] = 0x42;
      edited.set(data.subarray(30_000), 30_001);
      await fs.writeFile(join(src, 'big'), edited);
      await setTimesUs(join(src, 'big'), 2n);
      const second = await backupTree(src, store, first);
      expect(second.stats.bytesRead).toBe(edited.length);
      expect(second.stats.filesUnchanged).toBe(1);
      expect(second.stats.chunksNew).toBeGreaterThanOrEqual(1);
      expect(second.stats.chunksNew).toBeLessThanOrEqual(6);
      expect(second.stats.chunksDedup).toBeGreaterThan(150);
      expect(second.stats.bytesNew).toBeLessThan(6 * SMALL.maxSize);
    });
  });

  it('a file whose content, size and mtime are unchanged but whose inode changed is read again', async () => {
    await withTemp('incr-inode', async (base) => {
      const src = join(base, 'src');
      await writeTree(src, { root: { mode: 0o755, mtimeUs: 0n, children: [{ kind: 'file', name: enc('f'), content: { kind: 'random', seed: 1, size: 5000 }, mode: 0o644, mtimeUs: 7n }] } });
      const store = new MemoryBlockstore();
      const first = await backupTree(src, store, null);
      // Replace it by a copy with identical bytes, mode and mtime (a new inode, as `cp -p` + `mv` would leave).
      await fs.copyFile(join(src, 'f'), join(src, 'f.new'));
      await fs.chmod(join(src, 'f.new'), 0o644);
      await setTimesUs(join(src, 'f.new'), 7n);
      await fs.rename(join(src, 'f.new'), join(src, 'f'));
      const second = await backupTree(src, store, first);
      expect(second.stats.bytesRead).toBe(5000);
      expect(second.stats.filesUnchanged).toBe(0);
      expect(second.stats.chunksNew).toBe(0); // same bytes: all deduplicated
    });
  });
});

describe('deduplication', () => {
  it('identical files, and repeats inside a file, are stored once within a run', async () => {
    await withTemp('dedup-run', async (base) => {
      const src = join(base, 'src');
      const a = seededBytes(5, 30_000);
      await writeTree(src, {
        root: {
          mode: 0o755,
          mtimeUs: 0n,
          children: [
            { kind: 'file', name: enc('a'), content: { kind: 'bytes', bytes: a }, mode: 0o644, mtimeUs: 1n },
            { kind: 'dir', name: enc('d'), mode: 0o755, mtimeUs: 1n, children: [{ kind: 'file', name: enc('copy of a'), content: { kind: 'bytes', bytes: a }, mode: 0o600, mtimeUs: 2n }] },
            { kind: 'file', name: enc('zeros'), content: { kind: 'zeros', size: 10 * SMALL.maxSize }, mode: 0o644, mtimeUs: 1n },
          ],
        },
      });
      const store = new MemoryBlockstore();
      const r = await backupTree(src, store, null);
      const distinctA = chunksOf(a, SMALL);
      const refsA = new FastCdc(SMALL).boundaries(a, true).length;
      // a: its distinct chunks; its copy: all deduplicated; zeros: 10 references to one 1 KiB block.
      expect(r.stats.chunks).toBe(2 * refsA + 10);
      expect(r.stats.chunksNew).toBe(distinctA.size + 1);
      expect(r.stats.chunksDedup).toBe(r.stats.chunks - r.stats.chunksNew);
      expect(r.stats.bytesNew).toBe([...distinctA.values()].reduce((x, y) => x + y, 0) + SMALL.maxSize);
      expect(r.stats.bytesRead).toBe(2 * a.length + 10 * SMALL.maxSize);
      expect(await rawCount(store)).toBe(distinctA.size + 1);
    });
  });

  it('content already stored by another snapshot is not stored again (real FsBlockstore repo)', async () => {
    await withTemp('dedup-across', async (base) => {
      const one = join(base, 'one');
      const two = join(base, 'two');
      const repo = join(base, 'repo');
      const shared = seededBytes(9, 3 * 1024 * 1024 + 5);
      await writeTree(one, { root: { mode: 0o755, mtimeUs: 0n, children: [{ kind: 'file', name: enc('photo.raw'), content: { kind: 'bytes', bytes: shared }, mode: 0o644, mtimeUs: 1n }] } });
      await writeTree(two, {
        root: {
          mode: 0o755,
          mtimeUs: 0n,
          children: [
            { kind: 'file', name: enc('same photo, other name'), content: { kind: 'bytes', bytes: shared }, mode: 0o644, mtimeUs: 9n },
            { kind: 'file', name: enc('new'), content: { kind: 'random', seed: 10, size: 1000 }, mode: 0o644, mtimeUs: 9n },
          ],
        },
      });
      const chunking = inlineChunking(); // the repo's chunker is the default one
      const a = await backupDirectory({ source: one, repo, author: 'proofs', chunking });
      expect(a.stats.bytesNew).toBe(shared.length);
      const b = await backupDirectory({ source: two, repo, author: 'proofs', chunking });
      expect(b.parent).toBeNull(); // a different source: no parent, so everything is read...
      expect(b.stats.bytesRead).toBe(shared.length + 1000);
      expect(b.stats.bytesNew).toBe(1000); // ...but only the new file's bytes are stored
      expect(b.stats.chunksNew).toBe(1);
      expect(b.stats.chunksDedup).toBe(a.stats.chunks);
    });
  });
});

describe('history', () => {
  it('each snapshot records its parent, time, author and host: a chain', async () => {
    await withTemp('chain', async (base) => {
      const src = join(base, 'src');
      await writeTree(src, { root: { mode: 0o755, mtimeUs: 0n, children: [{ kind: 'file', name: enc('f'), content: { kind: 'random', seed: 1, size: 100 }, mode: 0o644, mtimeUs: 1n }] } });
      const store = new MemoryBlockstore();
      const chain: BackupResult[] = [];
      for (let i = 0; i < 4; i++) {
        if (i > 0) await fs.appendFile(join(src, 'f'), `change ${i}`);
        chain.push(await backupTree(src, store, chain[i - 1] ?? null, 1_700_000_000_000 + i * 1000));
      }
      // Walk back from the newest through the stored blocks.
      const seen: string[] = [];
      let at: CID | null = chain[3].cid;
      while (at) {
        const node = await readSnapshot(store, at, 'test');
        seen.push(at.toString());
        expect(node.author).toBe('proofs');
        expect(node.host).toBe('proofs-host');
        expect(node.time).toBe(1_700_000_000_000 + (3 - (seen.length - 1)) * 1000);
        expect(node.source).toBe(src);
        at = node.parent;
      }
      expect(seen).toEqual(chain.map((c) => c.cid.toString()).reverse());
      expect(chain[0].snapshot.parent).toBeNull();
    });
  });

  it('a repository picks the newest snapshot of the same source and author as the parent', async () => {
    await withTemp('chain-repo', async (base) => {
      const src = join(base, 'src');
      const other = join(base, 'other');
      const repo = join(base, 'repo');
      const file = (seed: number): TreeSpec => ({ root: { mode: 0o755, mtimeUs: 0n, children: [{ kind: 'file', name: enc('f'), content: { kind: 'random', seed, size: 100 }, mode: 0o644, mtimeUs: 1n }] } });
      await writeTree(src, file(1));
      await writeTree(other, file(2));
      const chunking = inlineChunking();
      const a = await backupDirectory({ source: src, repo, author: 'alice', chunking });
      const x = await backupDirectory({ source: other, repo, author: 'alice', chunking });
      const b = await backupDirectory({ source: src, repo, author: 'alice', chunking });
      const c = await backupDirectory({ source: src, repo, author: 'bob', chunking });
      expect(a.parent).toBeNull();
      expect(x.parent).toBeNull();
      expect(b.parent?.toString()).toBe(a.cid.toString());
      expect(b.stats.bytesRead).toBe(0);
      expect(c.parent).toBeNull(); // another author's history is not this one's
      const opened = await LocalRepo.open(repo);
      try {
        const listed = await opened.snapshots();
        expect(listed.map((s) => s.id).sort()).toEqual([a, x, b, c].map((r) => r.cid.toString()).sort());
        expect(listed.find((s) => s.id === b.cid.toString())!.node.parent?.toString()).toBe(a.cid.toString());
      } finally {
        await opened.close();
      }
    });
  });
});
