/**
 * Resumable restore: a restore interrupted at any point (a crash, Ctrl-C, a lost network) and run again with the
 * same target completes byte-identical, and fetches only what the first run had not finished: a file the first run
 * completed is verified in place (read back and hashed against its chunks' CIDs) and kept.
 *
 *   - property (seeded, fast-check): random trees restored through LocalTargetTree from a store that fails (or an
 *     AbortSignal that fires) at a random chunk fetch; the second run ends identical to the source, fetches exactly
 *     the chunks of the files that were not complete after the first run, and keeps the others;
 *   - fixed examples: a damaged kept file (right size, wrong bytes) is fetched again; a target holding another
 *     restore's leftovers, or a finished restore, is refused;
 *   - a real process: `reserve restore` (bundle, worker threads, FsBlockstore) killed with SIGKILL or SIGINT at seeded
 *     moments, then run again to completion (seeded; RESERVE_SEED overrides);
 *   - the Box restore (core/box, through the simulated network): aborted part-way on a factory-new Box, then run
 *     again into the same target.
 */
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import { RAW_CODE } from '../core/blocks/cid.ts';
import type { Blockstore } from '../core/blocks/blockstore.ts';
import type { ChunkerParams } from '../core/chunker/fastcdc.ts';
import { backup, type BackupResult } from '../core/snapshot/backup.ts';
import { inlineChunking } from '../core/snapshot/inline.ts';
import { readChunkRefs, readDir, readSnapshot } from '../core/snapshot/manifest-io.ts';
import type { DirEntry } from '../core/snapshot/model.ts';
import { nameKey as memKey } from '../core/snapshot/names.ts';
import { restore, type RestoreResult } from '../core/snapshot/restore.ts';
import type { EntryMeta, FileReader, SourceStat, TargetTree, TreePath } from '../core/snapshot/ports.ts';
import { MemoryBlockstore } from '../adapters/storage/memory-blockstore.ts';
import { LocalTargetTree, RESTORE_MARKER, TargetNotEmptyError } from '../adapters/fs/local-tree.ts';
import { compareTrees } from '../adapters/fs/compare.ts';
import { backupDirectory } from '../adapters/repo/ops.ts';
import { SimWorld } from '../simulations/sim/world.ts';
import { ReserveSim } from '../simulations/reserve/harness.ts';
import { MemTargetTree, compareMemTrees, generateTree, type MemNode } from '../simulations/reserve/memtree.ts';
import { propertyOptions, runsFor, seedFor, seedOf } from './support/fc.ts';
import { enc, treeArb } from './support/snapshot-arbitraries.ts';
import { fingerprint, localBackup, pathJoin, prng, removeTree, runCli, seededBytes, spawnCli, withTemp, writeTree } from './support/snapshot-fixtures.ts';

const SMALL: ChunkerParams = { minSize: 64, avgSize: 256, maxSize: 1024 };

class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

/** A store that counts chunk fetches and, optionally, fails (or fires an abort) at the k-th one. */
class FlakyStore implements Blockstore {
  fetched: string[] = [];
  constructor(
    readonly inner: Blockstore,
    readonly failAt = Infinity,
    readonly abort?: AbortController,
  ) {}
  put: Blockstore['put'] = (c, b, o) => this.inner.put(c, b, o);
  putMany: Blockstore['putMany'] = (s, o) => this.inner.putMany(s, o);
  has: Blockstore['has'] = (c, o) => this.inner.has(c, o);
  delete: Blockstore['delete'] = (c, o) => this.inner.delete(c, o);
  keys: Blockstore['keys'] = (o) => this.inner.keys(o);
  close: Blockstore['close'] = () => this.inner.close();
  async get(cid: CID, options?: { signal?: AbortSignal }): Promise<Uint8Array> {
    if (cid.code === RAW_CODE) {
      if (this.fetched.length >= this.failAt) {
        if (!this.abort) throw new Interrupted('the store went away');
        this.abort.abort();
      }
      this.fetched.push(cid.toString());
    }
    return this.inner.get(cid, options);
  }
}


async function backupTree(src: string, store: Blockstore): Promise<BackupResult> {
  return backup(localBackup(src, store, SMALL));
}

/**
 * Every file the restore writes as a file (the first of each hard-link group, in the order the restore meets
 * them: a directory's own entries, then its subdirectories), with its chunks.
 */
async function restoredFiles(store: Blockstore, root: CID): Promise<Array<{ path: TreePath; entry: DirEntry; chunks: string[] }>> {
  const out: Array<{ path: TreePath; entry: DirEntry; chunks: string[] }> = [];
  const groups = new Set<string>();
  const stack: Array<{ path: TreePath; dir: CID }> = [{ path: [], dir: (await readSnapshot(store, root, 'test')).tree }];
  while (stack.length > 0) {
    const { path, dir } = stack.pop()!;
    const subdirs: Array<{ path: TreePath; dir: CID }> = [];
    for (const e of (await readDir(store, dir, 'test')).entries) {
      const p = [...path, e.n];
      if (e.k === 'd') subdirs.push({ path: p, dir: e.d! });
      else if (e.k === 'f') {
        if (e.h !== undefined) {
          if (groups.has(e.h)) continue;
          groups.add(e.h);
        }
        const chunks: string[] = [];
        for await (const c of readChunkRefs(store, e, 'test')) chunks.push(c.cid.toString());
        out.push({ path: p, entry: e, chunks });
      }
    }
    stack.push(...subdirs.reverse());
  }
  return out;
}

const joinPath = (root: string, path: TreePath): Buffer => path.reduce<Buffer>((acc, n) => pathJoin(acc, n), Buffer.from(root));

/** The file at `path` in the target holds exactly the source's bytes. */
async function complete(src: string, dst: string, path: TreePath): Promise<boolean> {
  const [a, b] = await Promise.all([fs.readFile(joinPath(src, path)), fs.readFile(joinPath(dst, path)).catch(() => null)]);
  return b !== null && a.equals(b);
}

async function restoreInto(dst: string, store: Blockstore, snapshot: CID, signal?: AbortSignal, fileConcurrency = 4): Promise<RestoreResult> {
  return restore({ store, target: await LocalTargetTree.prepare(dst), chunking: inlineChunking(SMALL), snapshot, signal, fileConcurrency, bytesInFlight: 4096 });
}

describe('resumable restore', () => {
  const NAME = 'snapshot: an interrupted restore, run again, completes byte-identical and fetches only what was missing';
  it(NAME, async () => {
    let interruptedRuns = 0;
    let keptFiles = 0;
    await fc.assert(
      fc.asyncProperty(treeArb(SMALL), fc.integer({ min: 0, max: 999 }), fc.boolean(), async (spec, permille, viaAbort) =>
        withTemp('resume', async (base) => {
          const src = join(base, 'src');
          const dst = join(base, 'dst');
          await writeTree(src, spec);
          const store = new MemoryBlockstore();
          const b = await backupTree(src, store);
          const files = await restoredFiles(store, b.cid);
          const refs = files.reduce((n, f) => n + f.chunks.length, 0);

          // First run: the store fails (or the restore is aborted) at a random chunk fetch.
          const abort = viaAbort ? new AbortController() : undefined;
          const first = new FlakyStore(store, Math.floor((permille / 1000) * refs), abort);
          const r1 = await restoreInto(dst, first, b.cid, abort?.signal).then(
            (r) => r,
            (e: unknown) => e as Error,
          );
          if (!(r1 instanceof Error)) {
            // Nothing was left to interrupt (no chunk to fetch): the restore is simply complete.
            expect(refs).toBe(0);
            expect(await compareTrees(src, dst)).toEqual([]);
            return;
          }
          expect(viaAbort ? ['AbortError', 'AbortedError'] : ['Interrupted']).toContain(r1.name);
          interruptedRuns++;
          const done = new Set<string>();
          for (const f of files) if (await complete(src, dst, f.path)) done.add(f.path.map((p) => Buffer.from(p).toString('hex')).join('/'));
          const missing = files.filter((f) => !done.has(f.path.map((p) => Buffer.from(p).toString('hex')).join('/')));

          // Second run, same target: completes, identical, and fetches exactly the chunks of the unfinished files.
          const second = new FlakyStore(store);
          const r2 = await restoreInto(dst, second, b.cid);
          expect(r2.resumed).toBe(true);
          expect(await compareTrees(src, dst)).toEqual([]);
          expect(await fingerprint(dst)).toEqual(await fingerprint(src));
          await expect(fs.access(join(dst, RESTORE_MARKER))).rejects.toMatchObject({ code: 'ENOENT' });
          expect(second.fetched.sort()).toEqual(missing.flatMap((f) => f.chunks).sort());
          expect(r2.stats.chunks).toBe(second.fetched.length);
          expect(r2.stats.filesResumed).toBe(files.length - missing.length);
          keptFiles += r2.stats.filesResumed;
        }),
      ),
      propertyOptions(NAME, { numRuns: 40 }),
    );
    // The property means something only if runs were interrupted and files kept.
    expect(interruptedRuns).toBeGreaterThan(10);
    expect(keptFiles).toBeGreaterThan(0);
  });

  it('a kept file damaged after the interruption (same size, other bytes) is fetched again', async () => {
    await withTemp('resume-damaged', async (base) => {
      const src = join(base, 'src');
      const dst = join(base, 'dst');
      const node = (name: string, seed: number, size: number) => ({ kind: 'file' as const, name: enc(name), content: { kind: 'random' as const, seed, size }, mode: 0o644, mtimeUs: 1_000n });
      await writeTree(src, { root: { mode: 0o755, mtimeUs: 5n, children: [node('a', 1, 3000), node('b', 2, 4000), node('c', 3, 5000)] } });
      const store = new MemoryBlockstore();
      const b = await backupTree(src, store);
      const files = await restoredFiles(store, b.cid);
      // Interrupted right after the first two files (one file at a time).
      const err = await restoreInto(dst, new FlakyStore(store, files[0].chunks.length + files[1].chunks.length), b.cid, undefined, 1).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Interrupted);
      expect(await complete(src, dst, [enc('a')])).toBe(true);
      const bytes = await fs.readFile(join(dst, 'a'));
      bytes[1234] ^= 0xff;
      await fs.writeFile(join(dst, 'a'), bytes);
      const second = new FlakyStore(store);
      const r = await restoreInto(dst, second, b.cid);
      expect(await compareTrees(src, dst)).toEqual([]);
      expect(r.stats.filesResumed).toBe(1); // b only
      expect(second.fetched.sort()).toEqual([...files[0].chunks, ...files[2].chunks].sort());
    });
  });

  it('a target holding another restore, or a finished one, is refused', async () => {
    await withTemp('resume-refused', async (base) => {
      const src = join(base, 'src');
      await writeTree(src, { root: { mode: 0o755, mtimeUs: 5n, children: [{ kind: 'file', name: enc('f'), content: { kind: 'random', seed: 9, size: 5000 }, mode: 0o644, mtimeUs: 7n }] } });
      const store = new MemoryBlockstore();
      const one = await backupTree(src, store);
      await fs.writeFile(join(src, 'g'), 'more');
      const two = await backupTree(src, store);
      const dst = join(base, 'dst');
      await expect(restoreInto(dst, new FlakyStore(store, 2), one.cid)).rejects.toBeInstanceOf(Interrupted);
      // Another snapshot into the leftovers of the first: refused, and nothing there is touched.
      const before = await fingerprint(dst);
      const err = await restoreInto(dst, store, two.cid).then(
        () => new Error('restored'),
        (e: Error) => e,
      );
      expect(err).toBeInstanceOf(TargetNotEmptyError);
      expect(err.message).toContain(one.cid.toString());
      expect(await fingerprint(dst)).toEqual(before);
      // The same one finishes; after that the target is an ordinary non-empty directory.
      await restoreInto(dst, store, one.cid);
      await expect(LocalTargetTree.prepare(dst)).rejects.toBeInstanceOf(TargetNotEmptyError);
    });
  });
});

// ---- a real process, killed -------------------------------------------------------------------------------------------

describe('resumable restore: `reserve restore` killed (SIGKILL, SIGINT) and run again', () => {
  const NAME = 'snapshot-resume: a killed reserve restore, run again, completes byte-identical';
  const SEED = seedOf(NAME);
  const ROUNDS = runsFor(4);

  it(`${NAME} (seed ${SEED}, ${ROUNDS} rounds)`, async () => {
    await withTemp('resume-cli', async (base) => {
      const random = prng(SEED);
      const src = join(base, 'src');
      await fs.mkdir(join(src, 'videos'), { recursive: true });
      await fs.mkdir(join(src, 'docs'), { recursive: true });
      for (let i = 0; i < 6; i++) await fs.writeFile(join(src, 'videos', `v${i}.mp4`), seededBytes(SEED + i, 3_000_000 + i * 77_777));
      for (let i = 0; i < 1000; i++) await fs.writeFile(join(src, 'docs', `d${i % 7}-${i}.txt`), seededBytes(SEED + 100 + i, 1000 + ((i * 7919) % 40_000)));
      const repo = join(base, 'repo');
      await backupDirectory({ source: src, repo, author: 'proofs' });
      let interrupted = 0;
      let resumedFiles = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const dst = join(base, `dst-${round}`);
        const signal = round % 2 === 0 ? 'SIGKILL' : 'SIGINT';
        const delay = 20 + (random() % 300);
        const where = `seed ${SEED}, round ${round}, ${signal} ${delay} ms after the restore began`;
        const run = spawnCli(['restore', 'latest', dst, '--repo', repo, '--json']);
        // Kill `delay` ms after the restore has visibly begun (its marker is in the target).
        let timer: NodeJS.Timeout | undefined;
        const started = (async () => {
          for (;;) {
            if (await fs.access(join(dst, RESTORE_MARKER)).then(() => true, () => false)) break;
            if (run.child.exitCode !== null) return;
            await new Promise((r) => setTimeout(r, 2));
          }
          timer = setTimeout(() => run.child.kill(signal), delay);
        })();
        const first = await run.done;
        await started;
        if (timer) clearTimeout(timer);
        if (first.code === 0) continue; // finished before the kill: nothing to resume this round
        interrupted++;
        const second = await runCli(['restore', 'latest', dst, '--repo', repo, '--json']);
        expect(second.code, `${where}: ${second.stderr}`).toBe(0);
        const report = JSON.parse(second.stdout) as { stats: { filesResumed: number; chunks: number; files: number } };
        resumedFiles += report.stats.filesResumed;
        expect(await compareTrees(src, dst), where).toEqual([]);
        await expect(fs.access(join(dst, RESTORE_MARKER))).rejects.toMatchObject({ code: 'ENOENT' });
        await removeTree(dst);
      }
      // Meaningful only if some rounds were interrupted and kept work.
      expect(interrupted).toBeGreaterThan(0);
      expect(resumedFiles).toBeGreaterThan(0);
      console.log(`restore kill rounds (seed ${SEED}): ${interrupted} of ${ROUNDS} interrupted, ${resumedFiles} files kept by the second runs`);
    });
    // Each round runs two restores of 19 MB (2.5 s on the development VM): more rounds (RESERVE_RUNS) get more time.
  }, Math.max(60_000, ROUNDS * 10_000));
});

// ---- the Box restore ------------------------------------------------------------------------------------------------

/** MemTargetTree that can resume: it remembers the restore it holds and answers stat/open/remove. */
class ResumableMemTarget extends MemTargetTree implements TargetTree {
  held: string | null = null;
  #resuming = false;
  writes = 0;
  onWrite: (() => void) | undefined;

  async begin(id: string): Promise<{ resuming: boolean }> {
    if (this.held !== null && this.held !== id) throw new Error(`holds ${this.held}`);
    this.#resuming = this.held === id;
    this.held = id;
    return { resuming: this.#resuming };
  }
  async finish(): Promise<void> {
    this.held = null;
  }
  #find(path: TreePath): { parent: Map<string, { name: Uint8Array; node: MemNode }>; node: MemNode | undefined } {
    let node: MemNode = this.root;
    for (const part of path.slice(0, -1)) {
      if (node.kind !== 'dir') throw new Error('not a dir');
      node = node.children.get(memKey(part))!.node;
    }
    if (node.kind !== 'dir') throw new Error('not a dir');
    return { parent: node.children, node: path.length ? node.children.get(memKey(path[path.length - 1]))?.node : this.root };
  }
  override async mkdir(path: TreePath): Promise<void> {
    if (this.#resuming && this.#find(path).node?.kind === 'dir') return;
    return super.mkdir(path);
  }
  override async create(path: TreePath, size: number) {
    const w = await super.create(path, size);
    return {
      write: async (data: Uint8Array, position: number) => {
        this.writes++;
        this.onWrite?.();
        await w.write(data, position);
      },
      close: () => w.close(),
    };
  }
  async stat(path: TreePath): Promise<SourceStat | null> {
    const n = this.#find(path).node;
    if (!n) return null;
    return { kind: n.kind, mode: n.mode, uid: n.uid, gid: n.gid, size: n.kind === 'file' ? n.data.length : 0, mtimeNs: n.mtimeNs, ctimeNs: n.mtimeNs, dev: 1n, ino: 0n, nlink: 1 };
  }
  async open(path: TreePath): Promise<FileReader> {
    const n = this.#find(path).node;
    if (n?.kind !== 'file') throw new Error('not a file');
    const data = n.data;
    return {
      read: async (buf, offset, length, position) => {
        const k = Math.max(0, Math.min(length, data.length - position));
        buf.set(data.subarray(position, position + k), offset);
        return k;
      },
      close: async () => undefined,
    };
  }
  async remove(path: TreePath): Promise<void> {
    this.#find(path).parent.delete(memKey(path[path.length - 1]));
  }
  override async setMeta(path: TreePath, meta: EntryMeta): Promise<void> {
    return super.setMeta(path, meta);
  }
}

describe('resumable restore on a Box (through the network)', () => {
  it('a factory-new Box whose restore was cut off part-way picks up where it stopped', async () => {
    const world = new SimWorld({ seed: seedFor('box restore resumes') });
    const sim = new ReserveSim(world, { boxes: 3, rf: 2, minimum: 1 });
    const [home] = await sim.found();
    const tree = generateTree(world.rng.fork('home'), { files: 60, meanBytes: 20_000 });
    const root = await sim.backup(home, tree);
    for (let t = 0; t < 60; t++) {
      if ((await sim.underReplicated()).below === 0 && sim.converged()) break;
      await sim.cluster.runFor(30_000);
    }
    const fresh = sim.addBox(sim.invite(home));
    await sim.cluster.runUntil(() => sim.converged() && sim.activeIds().includes(fresh), { maxMs: 600_000 });
    const box = sim.box(fresh);
    const target = new ResumableMemTarget();

    // First run: cut off (aborted) after a third of the file writes.
    const abort = new AbortController();
    const total = (await sim.chunksOf(root))!.length;
    const cutAt = Math.max(1, Math.floor(total / 3));
    target.onWrite = () => {
      if (target.writes >= cutAt) abort.abort();
    };
    const first = await sim.cluster.settle(box.restore(root, target, { signal: abort.signal }), { maxMs: 3_600_000, what: 'restore' }).then(
      () => null,
      (e: Error) => e,
    );
    target.onWrite = undefined;
    expect(['AbortError', 'AbortedError']).toContain(first?.name);
    expect(target.held).not.toBeNull();

    // Second run into the same target: resumes, ends identical, and writes (so fetches) less than a full restore.
    const writesBefore = target.writes;
    const r = await sim.cluster.settle(box.restore(root, target), { maxMs: 3_600_000, what: 'restore again' });
    expect(compareMemTrees(tree, target.root)).toEqual([]);
    expect(target.held).toBeNull();
    expect(r.stats.filesResumed).toBeGreaterThan(0);
    expect(target.writes - writesBefore).toBe(r.stats.chunks);
    const full = new ResumableMemTarget();
    const all = await sim.cluster.settle(box.restore(root, full), { maxMs: 3_600_000, what: 'full restore' });
    expect(compareMemTrees(tree, full.root)).toEqual([]);
    expect(r.stats.chunks).toBeLessThan(all.stats.chunks);
    expect(r.stats.bytes).toBe(all.stats.bytes);
  });
});
