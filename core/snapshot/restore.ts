/**
 * The restore engine: writes a snapshot (or one subtree of it) into a TargetTree, byte-identical, with modes,
 * times, symlinks and hard links. Every block is verified against its CID before a single byte of it is written;
 * a corrupt or missing block stops the restore with a named error that says which file needed it.
 *
 * Throughput: directories are walked depth first in name order (the order the backup stored them, so a packed
 * store is read mostly sequentially) while up to `fileConcurrency` files are written at once, each fetching a few
 * blocks ahead of what it writes; every block fetched but not yet written counts against one byte budget, so
 * memory stays bounded whatever the files' sizes. Blocks of a file are written in order, each only after it and
 * every block before it verified.
 *
 * Three passes keep metadata right: (1) directories, files and symlinks, each file's mode and mtime set as soon
 * as it is complete; (2) hard links, made once every link target exists; (3) directory modes and mtimes,
 * deepest first, because creating children changes a directory's mtime and a read-only directory accepts none.
 *
 * Resuming: a target that implements `begin` is told which restore runs (snapshot id and subpath). When it holds
 * an interrupted run of the same restore, a file already there with the right size is read back and checked
 * against its chunks' CIDs: if every chunk matches, it is kept (its metadata applied again) and none of its blocks
 * is fetched; otherwise it is removed and restored. Symlinks and hard links are made again. So a restore killed at
 * any point and run again fetches only what is missing, and ends byte-identical.
 */
import type { CID } from 'multiformats/cid';
import { BlockCorruptError, BlockNotFoundError, type Blockstore } from '../blocks/blockstore.ts';
import { SHA256_CODE, equalBytes } from '../blocks/cid.ts';
import { ReserveError } from '../errors.ts';
import type { Progress } from '../ports.ts';
import { ByteBudget, Semaphore, mapLimit } from '../util/limit.ts';
import { discard } from '../util/buffers.ts';
import { digestSync } from './inline.ts';
import { readChunkRefs, readDir, readSnapshot, type Chunk } from './manifest-io.ts';
import { compareBytes, timeToNs, type DirEntry, type SnapshotNode } from './model.ts';
import { showPath } from './names.ts';
import type { ChunkingService, EntryMeta, TargetTree, TreePath, Warning } from './ports.ts';

export class PathNotInSnapshotError extends ReserveError {
  static override readonly name = 'PathNotInSnapshotError';
}

export interface RestoreParams {
  store: Blockstore;
  target: TargetTree;
  /** Used to hash blocks for verification (worker threads in the CLI). */
  chunking: ChunkingService;
  snapshot: CID;
  /** Restore only this part of the snapshot (a directory's contents, or one file). */
  subpath?: TreePath;
  progress?: Progress;
  onWarning?: (w: Warning) => void;
  signal?: AbortSignal;
  /** Files written at once (default 16). */
  fileConcurrency?: number;
  /** Bytes of blocks fetched and not yet written, over all files (default 32 MiB). */
  bytesInFlight?: number;
  /** Bytes of blocks one file fetches ahead of what it has written (default 8 MiB). */
  batchBytes?: number;
}

export interface RestoreStats {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  /** Bytes of file content in the restored tree (kept from an interrupted run included). */
  bytes: number;
  /** Chunks fetched, verified and written. */
  chunks: number;
  /** Files an interrupted run had already restored, verified in place and kept (none of their blocks fetched). */
  filesResumed: number;
  bytesResumed: number;
}

export interface RestoreResult {
  snapshot: SnapshotNode;
  stats: RestoreStats;
  warnings: Warning[];
  /** True when the target held an interrupted run of this restore, which this one completed. */
  resumed: boolean;
}

/** Blocks smaller than this are hashed on the calling thread; larger ones go to the chunking service. */
const HASH_INLINE_BELOW = 128 * 1024;
/** Blocks one file keeps fetched ahead of its writes, at most. */
const AHEAD_BLOCKS = 8;

/** The id a target records for a restore, so a second run knows it is the same one. */
export function restoreId(snapshot: CID, subpath?: TreePath): string {
  return subpath && subpath.length > 0 ? `${snapshot.toString()}:${showPath(subpath)}` : snapshot.toString();
}

export async function restore(params: RestoreParams): Promise<RestoreResult> {
  const { store, target, chunking, signal, progress } = params;
  const snapshot = await readSnapshot(store, params.snapshot, 'the snapshot');
  const stats: RestoreStats = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, bytes: 0, chunks: 0, filesResumed: 0, bytesResumed: 0 };
  const warnings: Warning[] = [];
  const links: Array<{ group: string; path: TreePath }> = [];
  const linkTargets = new Map<string, TreePath>();
  const dirMeta: Array<{ path: TreePath; e: Pick<DirEntry, 'm' | 'u' | 'g' | 't'> }> = [];
  const budget = new ByteBudget(params.bytesInFlight ?? 32 * 1024 * 1024);
  const aheadBytes = params.batchBytes ?? 8 * 1024 * 1024;
  const fileSlots = new Semaphore(params.fileConcurrency ?? 16);

  // Resolve the subpath before touching the target: a wrong path leaves it as it was.
  let rootEntry: Pick<DirEntry, 'm' | 'u' | 'g' | 't'> = snapshot.root;
  let dirCid: CID | null = snapshot.tree;
  let single: DirEntry | null = null;
  for (const [i, part] of (params.subpath ?? []).entries()) {
    if (!dirCid) throw new PathNotInSnapshotError(`${showPath(params.subpath!.slice(0, i))} is not a directory in this snapshot`);
    const { entries } = await readDir(store, dirCid, 'the snapshot');
    const found = entries.find((e) => compareBytes(e.n, part) === 0);
    if (!found) throw new PathNotInSnapshotError(`${showPath(params.subpath!.slice(0, i + 1))} is not in this snapshot`);
    rootEntry = found;
    dirCid = found.k === 'd' ? found.d! : null;
    single = found.k === 'd' ? null : found;
  }

  const resuming = (await target.begin?.(restoreId(params.snapshot, params.subpath)))?.resuming ?? false;
  if (resuming && (!target.stat || !target.open || !target.remove)) throw new Error(`${target.description} resumes a restore but cannot stat, open and remove`);
  const metaOf = (e: Pick<DirEntry, 'm' | 'u' | 'g' | 't'>, kind: EntryMeta['kind']): EntryMeta => ({ kind, mode: e.m, uid: e.u, gid: e.g, mtimeNs: timeToNs(e.t) });

  /** sha2-256 of a block: small ones here, large ones on the chunking service (moved, not copied, when it can). */
  const digestOf = async (bytes: Uint8Array): Promise<{ digest: Uint8Array; bytes: Uint8Array }> => {
    if (bytes.byteLength < HASH_INLINE_BELOW) return { digest: digestSync(bytes), bytes };
    if (chunking.digestOwned) {
      const r = await chunking.digestOwned([bytes]);
      return { digest: r.digests[0], bytes: r.blocks[0] };
    }
    return { digest: (await chunking.digest([bytes]))[0], bytes };
  };
  const matches = (c: Chunk, digest: Uint8Array, size: number): boolean =>
    size === c.size && c.cid.multihash.code === SHA256_CODE && equalBytes(digest, c.cid.multihash.digest);

  /**
   * Fetch a chunk and verify it; the caller holds its bytes in the budget. `moved`: the bytes went to a worker and
   * back (so no one else can be holding them).
   */
  const fetchVerified = async (c: Chunk, where: string): Promise<{ bytes: Uint8Array; moved: boolean }> => {
    const got = await store.get(c.cid, { signal }).catch((e: unknown) => {
      throw e instanceof BlockNotFoundError ? new BlockNotFoundError(c.cid, where) : e;
    });
    const { digest, bytes } = await digestOf(got);
    if (!matches(c, digest, bytes.byteLength)) throw new BlockCorruptError(c.cid, `the store (needed by ${where})`);
    return { bytes, moved: bytes !== got };
  };

  /** Resuming: is the file at `path` already complete and intact? (Read back and hashed, chunk by chunk.) */
  const alreadyThere = async (path: TreePath, e: DirEntry, where: string): Promise<boolean> => {
    const st = await target.stat!(path);
    if (!st) return false;
    if (st.kind !== 'file' || st.size !== (e.s ?? 0)) {
      await target.remove!(path);
      return false;
    }
    const r = await target.open!(path).catch(() => null);
    if (!r) {
      // Cannot even read it back (its final mode forbids it): restore it again.
      await target.remove!(path);
      return false;
    }
    let intact = true;
    try {
      let position = 0;
      for await (const c of readChunkRefs(store, e, where)) {
        signal?.throwIfAborted();
        const held = await budget.acquire(c.size);
        try {
          const buf = new Uint8Array(c.size);
          let got = 0;
          while (got < c.size) {
            const n = await r.read(buf, got, c.size - got, position + got);
            if (n === 0) break;
            got += n;
          }
          const { digest } = await digestOf(got === c.size ? buf : buf.subarray(0, got));
          if (!matches(c, digest, got)) {
            intact = false;
            break;
          }
        } finally {
          budget.release(held);
        }
        position += c.size;
      }
    } finally {
      await r.close();
    }
    if (!intact) {
      await target.remove!(path);
      return false;
    }
    return true;
  };

  const writeFile = async (path: TreePath, e: DirEntry): Promise<void> => {
    signal?.throwIfAborted();
    const where = `file ${showPath(path)}`;
    const meta = metaOf(e, 'file');
    if (resuming && (await alreadyThere(path, e, where))) {
      await target.setMeta(path, meta);
      stats.files++;
      stats.filesResumed++;
      stats.bytesResumed += e.s ?? 0;
      stats.bytes += e.s ?? 0;
      progress?.advance(e.s ?? 0);
      return;
    }
    const w = await target.create(path, e.s ?? 0, e.m);
    const ahead: Array<{ held: number; bytes: Promise<{ bytes: Uint8Array; moved: boolean }> }> = [];
    let aheadSize = 0;
    let position = 0;
    let done = false;
    const writeNext = async (): Promise<void> => {
      const a = ahead.shift()!;
      try {
        const { bytes, moved } = await a.bytes;
        await w.write(bytes, position);
        position += bytes.byteLength;
        aheadSize -= bytes.byteLength;
        stats.chunks++;
        progress?.advance(bytes.byteLength);
        // A block that went to a worker and back is this restore's alone: free its memory now.
        if (moved) discard(bytes);
      } finally {
        budget.release(a.held);
      }
    };
    try {
      for await (const c of readChunkRefs(store, e, where)) {
        signal?.throwIfAborted();
        while (ahead.length > 0 && (ahead.length >= AHEAD_BLOCKS || aheadSize + c.size > aheadBytes)) await writeNext();
        // Never wait for budget while holding some: write what this file holds first (no circular wait).
        let held = budget.tryAcquire(c.size);
        while (held === null && ahead.length > 0) {
          await writeNext();
          held = budget.tryAcquire(c.size);
        }
        held ??= await budget.acquire(c.size);
        const bytes = fetchVerified(c, where);
        bytes.catch(() => undefined); // surfaces when written
        ahead.push({ held, bytes });
        aheadSize += c.size;
      }
      while (ahead.length > 0) await writeNext();
      done = true;
    } finally {
      if (!done) {
        // Let fetches in flight settle before their bytes leave the budget.
        for (const a of ahead.splice(0)) {
          await a.bytes.catch(() => undefined);
          budget.release(a.held);
        }
        await w.close();
      }
    }
    if (w.finish) await w.finish(meta);
    else {
      await w.close();
      await target.setMeta(path, meta);
    }
    stats.bytes += position;
    stats.files++;
  };

  const symlink = async (p: TreePath, e: DirEntry): Promise<void> => {
    if (resuming) await target.remove!(p);
    await target.symlink(p, e.y!);
    await target.setMeta(p, metaOf(e, 'symlink'));
    stats.symlinks++;
  };

  // Files run concurrently behind the walk; the first failure stops the walk, and every file in flight settles
  // before the restore reports it.
  const running = new Set<Promise<void>>();
  let failure: { error: unknown } | undefined;
  const launch = async (p: TreePath, e: DirEntry): Promise<void> => {
    await fileSlots.acquire();
    if (failure) {
      fileSlots.release();
      return;
    }
    const job: Promise<void> = writeFile(p, e)
      .catch((error: unknown) => void (failure ??= { error }))
      .finally(() => {
        fileSlots.release();
        running.delete(job);
      });
    running.add(job);
  };

  try {
    await target.mkdir([]);
    if (single) {
      const p = [single.n];
      if (single.k === 'l') await symlink(p, single);
      else await launch(p, single);
    } else {
      // Depth first, in name order; a directory's files start before its subdirectories are walked.
      const stack: Array<{ path: TreePath; cid: CID }> = [{ path: [], cid: dirCid! }];
      while (stack.length > 0 && !failure) {
        signal?.throwIfAborted();
        const { path, cid } = stack.pop()!;
        const { entries } = await readDir(store, cid, `directory ${showPath(path)}`);
        const subdirs: Array<{ path: TreePath; cid: CID; e: DirEntry }> = [];
        const symlinks: Array<{ path: TreePath; e: DirEntry }> = [];
        const files: Array<{ path: TreePath; e: DirEntry }> = [];
        for (const e of entries) {
          const p = [...path, e.n];
          if (e.k === 'd') subdirs.push({ path: p, cid: e.d!, e });
          else if (e.k === 'l') symlinks.push({ path: p, e });
          else if (e.h !== undefined && linkTargets.has(e.h)) links.push({ group: e.h, path: p });
          else {
            if (e.h !== undefined) linkTargets.set(e.h, p);
            files.push({ path: p, e });
          }
        }
        // Siblings do not depend on each other: their directories and symlinks are made together.
        await mapLimit(subdirs, 32, async (d) => {
          await target.mkdir(d.path);
          stats.dirs++;
        });
        await mapLimit(symlinks, 16, (l) => symlink(l.path, l.e));
        for (const f of files) {
          if (failure) break;
          await launch(f.path, f.e);
        }
        for (const d of subdirs) dirMeta.push({ path: d.path, e: d.e });
        for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]);
      }
    }
  } catch (error) {
    failure ??= { error };
  } finally {
    while (running.size > 0) await Promise.allSettled([...running]);
  }
  if (failure) throw failure.error;

  await mapLimit(links, 16, async (l) => {
    signal?.throwIfAborted();
    if (resuming) await target.remove!(l.path);
    await target.link(linkTargets.get(l.group)!, l.path);
    stats.hardlinks++;
  });
  // Directory metadata, deepest first (a parent's final mode may forbid reaching its children); directories at one
  // depth do not depend on each other.
  const byDepth: Array<typeof dirMeta> = [];
  for (const d of dirMeta) (byDepth[d.path.length] ??= []).push(d);
  for (let depth = byDepth.length - 1; depth > 0; depth--) {
    await mapLimit(byDepth[depth] ?? [], 32, (d) => target.setMeta(d.path, metaOf(d.e, 'dir')));
  }
  signal?.throwIfAborted(); // an aborted restore never reports itself complete
  await target.finish?.();
  if (!single) await target.setMeta([], metaOf(rootEntry, 'dir'));
  return { snapshot, stats, warnings, resumed: resuming };
}
