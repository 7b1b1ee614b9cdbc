/**
 * Corruption: a stored block whose bytes no longer hash to its CID is found and refused.
 *   - a flipped byte in a chunk file: `reserve verify --json` (real CLI) names that block and exits 1;
 *     restore refuses with BlockCorruptError naming the file that needed it, and writes none of the bad bytes;
 *   - a flipped byte in a directory (manifest) block: `reserve verify` (human report) lists it corrupt and as an
 *     unreadable manifest block and exits 1, restore fails with BlockCorruptError naming the directory;
 *   - a flipped byte in a small file's packed block: restore (which reads small files in batches) refuses it the same way;
 *   - a deleted block: verify reports it missing for the snapshot, restore fails naming the file;
 *   - a manifest block that hashes right but is not a valid manifest: verify reports it unreadable, restore fails
 *     with MalformedManifestError;
 *   - the walk of a wide tree of two snapshots (its directories read in parallel) needs exactly the stored blocks,
 *     and reports each deleted block once, in the same order every time.
 */
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import * as dagCbor from '@ipld/dag-cbor';
import { describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import { DAG_CBOR_CODE, cidOf } from '../core/blocks/cid.ts';
import { inlineChunking } from '../core/snapshot/inline.ts';
import { putNode, readDir, readSnapshot } from '../core/snapshot/manifest-io.ts';
import { MANIFEST_VERSION, type DirEntry } from '../core/snapshot/model.ts';
import { restore } from '../core/snapshot/restore.ts';
import { walkSnapshots } from '../core/snapshot/verify.ts';
import { MemoryBlockstore } from '../adapters/storage/memory-blockstore.ts';
import { LocalTargetTree } from '../adapters/fs/local-tree.ts';
import { LocalRepo } from '../adapters/repo/local-repo.ts';
import { backupDirectory, restoreSnapshot, verifyRepository } from '../adapters/repo/ops.ts';
import { removeTree, runCli, seededBytes, tempDir } from './support/snapshot-fixtures.ts';

const chunking = inlineChunking();
const PHOTO = seededBytes(1, 5 * 1024 * 1024 + 77); // several chunks with the default chunker

async function withRepo<T>(fn: (ctx: { base: string; repo: string; snapshot: CID; entry: (path: string[]) => Promise<DirEntry> }) => Promise<T>): Promise<T> {
  const base = await tempDir('corrupt');
  try {
    const src = join(base, 'src');
    await fs.mkdir(join(src, 'photos'), { recursive: true });
    await fs.mkdir(join(src, 'docs', 'sub'), { recursive: true });
    await fs.writeFile(join(src, 'photos', 'a.jpg'), PHOTO);
    await fs.writeFile(join(src, 'docs', 'readme.txt'), 'hello\n');
    await fs.writeFile(join(src, 'docs', 'sub', 'deep.txt'), 'deeper\n');
    const repo = join(base, 'repo');
    const b = await backupDirectory({ source: src, repo, author: 'proofs', chunking });
    const entry = async (path: string[]): Promise<DirEntry> => {
      const r = await LocalRepo.open(repo);
      try {
        let dir = (await readSnapshot(r.blocks, b.cid, 'test')).tree;
        let found: DirEntry | undefined;
        for (const part of path) {
          found = (await readDir(r.blocks, dir, 'test')).entries.find((e) => Buffer.from(e.n).toString() === part);
          if (!found) throw new Error(`no ${part}`);
          if (found.d) dir = found.d;
        }
        return found!;
      } finally {
        await r.close();
      }
    };
    return await fn({ base, repo, snapshot: b.cid, entry });
  } finally {
    await removeTree(base);
  }
}

/** Flip one byte of the block where it is stored (its own file, or its range of a pack file), as bit rot would. */
async function flipByte(repo: string, cid: CID, at: (size: number) => number): Promise<void> {
  const r = await LocalRepo.open(repo);
  const where = await r.blocks.locate(cid);
  await r.close();
  if (!where) throw new Error(`${cid} is not stored`);
  const bytes = await fs.readFile(where.path);
  const i = where.offset + at(where.length);
  bytes[i] ^= 0x01;
  await fs.writeFile(where.path, bytes);
}

describe('a corrupt chunk', () => {
  it('`reserve verify` names it and exits 1; restore refuses it, naming the file, writing none of it', async () => {
    await withRepo(async ({ base, repo, entry }) => {
      const photo = await entry(['photos', 'a.jpg']);
      expect(photo.c!.length).toBeGreaterThanOrEqual(3);
      const bad = photo.c![1];
      await flipByte(repo, bad, (n) => Math.floor(n / 2));

      // The CLI runs and the in-process restore only read the repository: run them together.
      const target = join(base, 'restored');
      const [json, cli, err] = await Promise.all([
        runCli(['verify', '--repo', repo, '--json']),
        runCli(['restore', 'latest', join(base, 'restored-cli'), '--repo', repo]),
        restoreSnapshot({ repo, ref: 'latest', target, chunking }).then(
          () => null,
          (e: Error) => e,
        ),
      ]);
      expect(json.code).toBe(1);
      const report = JSON.parse(json.stdout);
      expect(report).toMatchObject({ ok: false, corrupt: [bad.toString()], missing: [], unreadable: [], snapshots: 1 });

      // In process: the named error, the file that needed the block in its message.
      expect(err?.name).toBe('BlockCorruptError');
      expect(err?.message).toContain(bad.toString());
      expect(err?.message).toContain('photos/a.jpg');
      // Nothing from the corrupt chunk (or after it) reached the file.
      const partial = await fs.readFile(join(target, 'photos', 'a.jpg')).catch(() => Buffer.alloc(0));
      expect(partial.length).toBeLessThanOrEqual(photo.z![0]);
      expect(Buffer.from(PHOTO.subarray(0, partial.length)).equals(partial)).toBe(true);

      // Through the CLI: one clear line, non-zero exit.
      expect(cli.code).not.toBe(0);
      const lines = cli.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^reserve: block \S+ is corrupt/);
      expect(lines[0]).toContain(bad.toString());
      expect(lines[0]).toContain('photos/a.jpg');
    });
  });
});

describe('a corrupt block of a small file', () => {
  it('restore (small files in batches, read together from their pack) refuses it, naming the file, creating none of it', async () => {
    await withRepo(async ({ base, repo, entry }) => {
      const readme = await entry(['docs', 'readme.txt']);
      expect(readme.c).toHaveLength(1);
      const bad = readme.c![0];
      await flipByte(repo, bad, () => 0);
      const target = join(base, 'restored');
      const err = await restoreSnapshot({ repo, ref: 'latest', target, chunking }).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.name).toBe('BlockCorruptError');
      expect(err?.message).toContain(bad.toString());
      expect(err?.message).toContain('docs/readme.txt');
      await expect(fs.access(join(target, 'docs', 'readme.txt'))).rejects.toThrow();
    });
  });
});

describe('a corrupt directory block', () => {
  it('verify reports it corrupt and unreadable and exits 1; restore fails naming the directory', async () => {
    await withRepo(async ({ base, repo, snapshot, entry }) => {
      const docs = await entry(['docs']);
      const dirCid = docs.d!;
      await flipByte(repo, dirCid, (n) => n - 2);

      const [human, err, report] = await Promise.all([
        runCli(['verify', '--repo', repo]), // the human report this time
        restoreSnapshot({ repo, ref: 'latest', target: join(base, 'restored'), chunking }).then(
          () => null,
          (e: Error) => e,
        ),
        verifyRepository({ repo, chunking }),
      ]);
      expect(human.code).toBe(1);
      expect(human.stdout).toMatch(/^PROBLEMS FOUND: /);
      const lines = human.stdout.trimEnd().split('\n').slice(1);
      expect(lines).toEqual([`  corrupt block ${dirCid}`, expect.stringMatching(new RegExp(`^  unreadable manifest block ${dirCid} \\(snapshot ${snapshot}\\): .*corrupt`))]);
      expect(report.ok).toBe(false);
      expect(report.corrupt).toEqual([dirCid.toString()]);
      expect(report.unreadable).toEqual([{ cid: dirCid.toString(), snapshot: snapshot.toString(), reason: expect.stringMatching(/corrupt/) }]);

      expect(err?.name).toBe('BlockCorruptError');
      expect(err?.message).toContain(dirCid.toString());
      expect(err?.message).toContain('directory docs');
      // A subtree that does not go through the bad block still restores.
      const ok = await restoreSnapshot({ repo, ref: 'latest', target: join(base, 'photos-only'), subpath: 'photos', chunking });
      expect(ok.stats.files).toBe(1);
    });
  });
});

describe('a missing block', () => {
  it('verify reports it missing for the snapshot; restore fails naming the file', async () => {
    await withRepo(async ({ base, repo, snapshot, entry }) => {
      const photo = await entry(['photos', 'a.jpg']);
      const gone = photo.c![2];
      const r = await LocalRepo.open(repo);
      await fs.rm(r.blocks.pathOf(gone));
      await r.close();
      const report = await verifyRepository({ repo, chunking });
      expect(report).toMatchObject({ ok: false, corrupt: [], missing: [{ cid: gone.toString(), snapshot: snapshot.toString() }] });
      const err = await restoreSnapshot({ repo, ref: 'latest', target: join(base, 'restored'), chunking }).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.name).toBe('BlockNotFoundError');
      expect(err?.message).toContain(gone.toString());
      expect(err?.message).toContain('photos/a.jpg');
    });
  });
});

describe('the walk of a wide tree (directories read in parallel)', () => {
  it('needs every stored block, reports each missing block once for a snapshot that needs it, in a stable order', async () => {
    const base = await tempDir('walk');
    try {
      // 4 + 16 + 64 directories, a small file in each and a 3-chunk file in a few; a second snapshot changes one
      // file, so the two share all but one branch.
      const src = join(base, 'src');
      const dirs: string[] = [];
      for (let a = 0; a < 4; a++) for (let b = -1; b < 4; b++) for (let c = -1; c < 4; c++) {
        if (b < 0 && c >= 0) continue;
        dirs.push(join(src, `a${a}`, ...(b >= 0 ? [`b${b}`] : []), ...(c >= 0 ? [`c${c}`] : [])));
      }
      for (const [i, d] of dirs.entries()) {
        await fs.mkdir(d, { recursive: true });
        await fs.writeFile(join(d, 'note.txt'), `note ${i}\n`);
        if (i % 20 === 7) await fs.writeFile(join(d, 'photo.jpg'), seededBytes(100 + i, 2 * 1024 * 1024 + i));
      }
      const repo = join(base, 'repo');
      const first = await backupDirectory({ source: src, repo, author: 'proofs', chunking });
      await fs.writeFile(join(dirs[30], 'note.txt'), 'changed\n');
      const second = await backupDirectory({ source: src, repo, author: 'proofs', chunking });
      const r = await LocalRepo.open(repo);
      try {
        const stored: string[] = [];
        for await (const cid of r.blocks.keys()) stored.push(cid.toString());
        const whole = await walkSnapshots(r.blocks, [first.cid, second.cid]);
        expect([...whole.needed.keys()].sort()).toEqual(stored.sort());
        expect(whole.missing).toEqual([]);
        // Three small files' blocks, in different branches, deleted.
        const noteCid = async (d: string): Promise<CID> => {
          const parts = d.slice(src.length + 1).split('/');
          let dir = (await readSnapshot(r.blocks, first.cid, 'test')).tree;
          for (const part of parts) dir = (await readDir(r.blocks, dir, 'test')).entries.find((e) => Buffer.from(e.n).toString() === part)!.d!;
          return (await readDir(r.blocks, dir, 'test')).entries.find((e) => Buffer.from(e.n).toString() === 'note.txt')!.c![0];
        };
        const gone = await Promise.all([dirs[3], dirs[41], dirs[77]].map(noteCid));
        for (const cid of gone) await r.blocks.delete(cid);
        const walks = [await walkSnapshots(r.blocks, [first.cid, second.cid]), await walkSnapshots(r.blocks, [first.cid, second.cid])];
        for (const walk of walks) {
          expect(walk.missing.map((m) => m.cid.toString())).toEqual(gone.map(String).sort());
          for (const m of walk.missing) expect([first.cid.toString(), second.cid.toString()]).toContain(m.snapshot.toString());
          expect(walk.unreadable).toEqual([]);
        }
        expect(walks[1].missing).toEqual(walks[0].missing);
      } finally {
        await r.close();
      }
    } finally {
      await removeTree(base);
    }
  });
});

describe('a malformed manifest block', () => {
  it('hashes right but is not a directory: verify calls it unreadable, restore fails with MalformedManifestError', async () => {
    const base = await tempDir('malformed');
    try {
      const store = new MemoryBlockstore();
      // A "directory" whose single entry has a name with a slash in it: valid dag-cbor, correct CID, bad manifest.
      const evil = dagCbor.encode({ v: MANIFEST_VERSION, e: [{ n: new TextEncoder().encode('../escape'), k: 'f', m: 0o644, u: 0, g: 0, t: [0, 0], s: 0, c: [], z: [] }] });
      const evilCid = cidOf(DAG_CBOR_CODE, evil);
      await store.put(evilCid, evil);
      const snap = await putNode(store, {
        v: MANIFEST_VERSION,
        type: 'reserve/snapshot',
        tree: evilCid,
        root: { m: 0o755, u: 0, g: 0, t: [0, 0] },
        parent: null,
        time: 0,
        author: 'mallory',
        host: 'h',
        source: '/x',
        stats: { files: 1, dirs: 0, symlinks: 0, bytes: 0, chunks: 0, skipped: 0 },
      });
      const walk = await walkSnapshots(store, [snap]);
      expect(walk.unreadable).toEqual([{ cid: evilCid, snapshot: snap, reason: expect.stringMatching(/not a valid Reserve manifest block.*not a single path component/) }]);
      const target = join(base, 'restored');
      await expect(restore({ store, target: await LocalTargetTree.prepare(target), chunking, snapshot: snap })).rejects.toMatchObject({ name: 'MalformedManifestError' });
      // Nothing escaped the target.
      await expect(fs.access(join(base, 'escape'))).rejects.toThrow();
    } finally {
      await removeTree(base);
    }
  });
});

describe('a store that verifies its reads', () => {
  /** The repository's blocks behind a store that says it checked every block (as the reserve-wide view does). */
  class Vouching {
    readonly verifiesReads = true;
    gets = 0;
    constructor(
      readonly inner: MemoryBlockstore,
      readonly short: CID | null,
    ) {}
    put = (cid: CID, bytes: Uint8Array) => this.inner.put(cid, bytes);
    putMany = (source: Parameters<MemoryBlockstore['putMany']>[0]) => this.inner.putMany(source);
    async get(cid: CID): Promise<Uint8Array> {
      this.gets++;
      const bytes = await this.inner.get(cid);
      return this.short?.equals(cid) ? bytes.subarray(1) : bytes;
    }
    has = (cid: CID) => this.inner.has(cid);
    delete = (cid: CID) => this.inner.delete(cid);
    keys = () => this.inner.keys();
    close = () => this.inner.close();
  }

  it('is trusted for the content but not for the size: the tree comes back byte-identical, a short block is refused', async () => {
    await withRepo(async ({ base, repo, snapshot, entry }) => {
      const mem = new MemoryBlockstore();
      const r = await LocalRepo.open(repo);
      try {
        for await (const cid of r.blocks.keys()) await mem.put(cid, await r.blocks.get(cid));
      } finally {
        await r.close();
      }
      const good = new Vouching(mem, null);
      const target = join(base, 'restored-vouched');
      await restore({ store: good, target: await LocalTargetTree.prepare(target), chunking, snapshot });
      expect(good.gets).toBeGreaterThan(0);
      expect(Buffer.compare(await fs.readFile(join(target, 'photos', 'a.jpg')), PHOTO)).toBe(0);
      expect(await fs.readFile(join(target, 'docs', 'sub', 'deep.txt'), 'utf8')).toBe('deeper\n');

      for (const path of [['photos', 'a.jpg'], ['docs', 'readme.txt']]) {
        const bad = (await entry(path)).c![0];
        const err = await restore({ store: new Vouching(mem, bad), target: await LocalTargetTree.prepare(join(base, `short-${path[1]}`)), chunking, snapshot }).then(
          () => null,
          (e: Error) => e,
        );
        expect(err?.name).toBe('BlockCorruptError');
        expect(err?.message).toContain(bad.toString());
      }
    });
  });
});
