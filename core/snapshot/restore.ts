/**
 * The restore engine: writes a snapshot (or one subtree of it) into a TargetTree, byte-identical, with modes,
 * times, symlinks and hard links. Every block is verified against its CID before a single byte of it is written;
 * a corrupt or missing block stops the restore with a named error that says which file needed it.
 *
 * Throughput: directories are walked depth first in name order (the order the backup stored them, so a packed
 * store is read mostly sequentially) while up to `fileConcurrency` files are written at once, each fetching a few
 * blocks ahead of what it writes; every block fetched but not yet written counts against one byte budget, so
 * memory stays bounded whatever the files' sizes. Blocks of a file are written in order, each only after it and
 * every block before it verified. Small files (one block below the chunker's minimum) go in batches: their blocks
 * fetched together (a store with `getBatch` reads neighbours in a pack with one read), all verified, then created
 * whole (a target with `writeFiles` does that without a round trip per call). A store with `getInto` reads larger
 * blocks into reused buffers, hashed on this thread; nothing the restore keeps grows with the number of files but
 * the directories' metadata for pass 3 (and hard links), a few dozen bytes each.
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
import { BlockCorruptError, BlockNotFoundError, readsInto, type Blockstore } from '../blocks/blockstore.ts';
import { SHA256_CODE, equalBytes } from '../blocks/cid.ts';
import { ReserveError } from '../errors.ts';
import type { Progress } from '../ports.ts';
import { ByteBudget, Semaphore, mapLimit } from '../util/limit.ts';
import { discard } from '../util/buffers.ts';
import { digestSync } from './inline.ts';
import { readChunkRefs, readDir, readSnapshot, type Chunk } from './manifest-io.ts';
import { compareBytes, timeToNs, type DirEntry, type SnapshotNode } from './model.ts';
import { showPath } from './names.ts';
import type { ChunkingService, EntryMeta, TargetTree, TreePath, Warning, WholeFile } from './ports.ts';

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
  /** Bytes of blocks fetched and not yet written, over all files (default 16 MiB). */
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

const EMPTY: Uint8Array = new Uint8Array(0);
/**
 * From a store without `getInto`: blocks smaller than this are hashed on the calling thread, larger ones go to the
 * chunking service (moved to a worker and back). Blocks read through `getInto` are all hashed here.
 */
const HASH_INLINE_BELOW = 128 * 1024;
/** Directories the walk reads ahead of the one it is in. */
const DIRS_AHEAD = 16;
/** Blocks one file keeps fetched ahead of its writes, at most. */
const AHEAD_BLOCKS = 8;
/**
 * Files of one block smaller than this (the chunker's minimum chunk: whole small files) are restored in batches of
 * up to SMALL_BATCH_BYTES / SMALL_BATCH_FILES: their blocks fetched together (a packed store reads neighbours with
 * one read), hashed here, and created whole.
 */
const SMALL_FILE = 256 * 1024;
const SMALL_BATCH_BYTES = 1024 * 1024;
const SMALL_BATCH_FILES = 64;

/**
 * A store that fetches several blocks at once (FsBlockstore: neighbours in a pack with one read), into buffers of
 * their own that the caller owns (it may free them once it is done).
 */
interface BatchStore {
  getBatch(cids: readonly CID[], options?: { signal?: AbortSignal }): Promise<Uint8Array[]>;
}

/** Capacities of reused block buffers are multiples of this. */
const BUFFER_CLASS = 256 * 1024;

/**
 * Block buffers, reused: a block of n bytes is read into a buffer of more than n bytes (so the read sees where the
 * block ends). A block takes the smallest free buffer that fits it, whatever its size; only when none fits is a new
 * one made, in capacity classes of BUFFER_CLASS. A restore then allocates about as many buffers as it has blocks
 * in flight, instead of one per block that lingers as garbage until a full collection (memory that grew with the
 * size of the restore). Reusing across sizes matters as much: with a free list per size class, a run of large
 * files kept making buffers of one class while those of others sat free, and each one made and freed beyond the
 * kept bytes left the C heap more fragmented, so the peak memory grew with the number of large files.
 */
class BlockBuffers {
  /** Free buffers, smallest first. */
  readonly #free: ArrayBuffer[] = [];
  #kept = 0;
  constructor(readonly keep: number) {}

  take(size: number): Uint8Array<ArrayBuffer> {
    const free = this.#free;
    for (let i = 0; i < free.length; i++) {
      if (free[i].byteLength > size) {
        const [reused] = free.splice(i, 1);
        this.#kept -= reused.byteLength;
        return new Uint8Array(reused);
      }
    }
    return new Uint8Array(new ArrayBuffer(Math.ceil((size + 1) / BUFFER_CLASS) * BUFFER_CLASS));
  }

  /**
   * Return a buffer `take` gave (once written): kept while all kept ones hold at most `keep` bytes, the larger
   * ones rather (they fit any block).
   */
  give(buffer: ArrayBuffer): void {
    const capacity = buffer.byteLength;
    const free = this.#free;
    while (this.#kept + capacity > this.keep && free.length > 0 && free[0].byteLength < capacity) {
      const smallest = free.shift()!;
      this.#kept -= smallest.byteLength;
      discard(new Uint8Array(smallest));
    }
    if (this.#kept + capacity > this.keep) {
      discard(new Uint8Array(buffer));
      return;
    }
    let at = free.length;
    while (at > 0 && free[at - 1].byteLength > capacity) at--;
    free.splice(at, 0, buffer);
    this.#kept += capacity;
  }
}

/** A name copied out of the directory block it was decoded from (so keeping it does not keep the block). */
function copyName(name: Uint8Array): Uint8Array {
  return new Uint8Array(name);
}

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
  /**
   * Directories whose metadata pass 3 applies, each by its parent's index (-1: the restore's root), its name copied
   * out of its directory block and its metadata: a few dozen bytes each, no manifest block kept alive.
   */
  const dirs: Array<{ parent: number; name: Uint8Array; depth: number; meta: EntryMeta }> = [];
  const budgetBytes = params.bytesInFlight ?? 16 * 1024 * 1024;
  const budget = new ByteBudget(budgetBytes);
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
  const intoStore = readsInto(store);
  const buffers = new BlockBuffers(Math.max(BUFFER_CLASS, budgetBytes));
  /** A verified block; `moved`: it went to a worker and back (no one else holds it); `pooled`: its buffer to reuse. */
  type Fetched = { bytes: Uint8Array; moved: boolean; pooled: ArrayBuffer | null };
  const matches = (c: Chunk, digest: Uint8Array, size: number): boolean =>
    size === c.size && c.cid.multihash.code === SHA256_CODE && equalBytes(digest, c.cid.multihash.digest);

  /**
   * Fetch a chunk and verify it; the caller holds its bytes in the budget. `moved`: the bytes went to a worker and
   * back (so no one else can be holding them).
   */
  const fetchVerified = async (c: Chunk, where: string): Promise<Fetched> => {
    const notFound = (e: unknown): never => {
      throw e instanceof BlockNotFoundError ? new BlockNotFoundError(c.cid, where) : e;
    };
    if (intoStore) {
      // Read into a reused buffer and hashed here: sha2-256 with the CPU's SHA extensions costs less than handing
      // the block to a worker and back.
      const into = buffers.take(c.size);
      const bytes = await intoStore.getInto(c.cid, into, { signal }).catch(notFound);
      const inPool = bytes.buffer === into.buffer;
      if (!inPool) buffers.give(into.buffer); // came in a buffer of its own (a packed block): `into` is free again
      if (!matches(c, digestSync(bytes), bytes.byteLength)) throw new BlockCorruptError(c.cid, `the store (needed by ${where})`);
      return { bytes, moved: false, pooled: inPool ? into.buffer : null };
    }
    const got = await store.get(c.cid, { signal }).catch(notFound);
    if (store.verifiesReads) {
      // the store checked it against its CID already (a Box restoring from the reserve): only the size is left
      if (got.byteLength !== c.size) throw new BlockCorruptError(c.cid, `the store (needed by ${where})`);
      return { bytes: got, moved: false, pooled: null };
    }
    const { digest, bytes } = await digestOf(got);
    if (!matches(c, digest, bytes.byteLength)) throw new BlockCorruptError(c.cid, `the store (needed by ${where})`);
    return { bytes, moved: bytes !== got, pooled: null };
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
    const ahead: Array<{ held: number; bytes: Promise<Fetched> }> = [];
    let aheadSize = 0;
    let position = 0;
    let done = false;
    const writeNext = async (): Promise<void> => {
      const a = ahead.shift()!;
      try {
        const { bytes, moved, pooled } = await a.bytes;
        await w.write(bytes, position);
        position += bytes.byteLength;
        aheadSize -= bytes.byteLength;
        stats.chunks++;
        progress?.advance(bytes.byteLength);
        // A block that went to a worker and back is this restore's alone: free its memory now.
        if (moved) discard(bytes);
        else if (pooled) buffers.give(pooled);
        else if (intoStore) discard(bytes); // a block of its own (see ReadsInto)
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

  /** The block of a file restored in a batch (null: an empty file), or undefined when it is not such a file. */
  const smallBlock = (e: DirEntry): Chunk | null | undefined => {
    if (resuming || e.cl !== undefined) return undefined;
    const n = e.c?.length ?? 0;
    if (n === 0) return (e.s ?? 0) === 0 ? null : undefined;
    return n === 1 && e.z![0] < SMALL_FILE && e.z![0] === e.s ? { cid: e.c![0], size: e.z![0] } : undefined;
  };
  const batchStore = typeof (store as Partial<BatchStore>).getBatch === 'function' ? (store as Blockstore & BatchStore) : null;
  const batchLimit = Math.max(1, Math.min(SMALL_BATCH_BYTES, Math.floor(budgetBytes / 4)));

  /** Small files, whole: their blocks fetched together and verified, then every file created at once. */
  const writeSmall = async (files: Array<{ path: TreePath; e: DirEntry; c: Chunk | null }>): Promise<void> => {
    signal?.throwIfAborted();
    const wanted = files.filter((f) => f.c !== null);
    const held = await budget.acquire(wanted.reduce((a, f) => a + f.c!.size, 0));
    try {
      const cids = wanted.map((f) => f.c!.cid);
      // Without getBatch (a reserve-wide store fetching from other Boxes), as many gets at once as one large file
      // keeps ahead.
      const got = await (batchStore ? batchStore.getBatch(cids, { signal }) : mapLimit(cids, AHEAD_BLOCKS, (cid) => store.get(cid, { signal }))).catch((e: unknown) => {
        if (!(e instanceof BlockNotFoundError)) throw e;
        const f = wanted.find((w) => w.c!.cid.equals(e.cid));
        throw new BlockNotFoundError(e.cid, f ? `file ${showPath(f.path)}` : undefined);
      });
      const out: WholeFile[] = [];
      let k = 0;
      for (const f of files) {
        let data = EMPTY;
        if (f.c !== null) {
          data = got[k++];
          const ok = store.verifiesReads && !batchStore ? data.byteLength === f.c.size : matches(f.c, digestSync(data), data.byteLength);
          if (!ok) throw new BlockCorruptError(f.c.cid, `the store (needed by file ${showPath(f.path)})`);
        }
        out.push({ path: f.path, data, meta: metaOf(f.e, 'file') });
      }
      if (target.writeFiles) await target.writeFiles(out);
      else {
        for (const f of out) {
          const w = await target.create(f.path, f.data.byteLength, f.meta.mode);
          try {
            if (f.data.byteLength > 0) await w.write(f.data, 0);
          } catch (e) {
            await w.close();
            throw e;
          }
          if (w.finish) await w.finish(f.meta);
          else {
            await w.close();
            await target.setMeta(f.path, f.meta);
          }
        }
      }
      for (const f of out) {
        stats.files++;
        stats.bytes += f.data.byteLength;
        if (f.data.byteLength > 0) stats.chunks++;
        progress?.advance(f.data.byteLength);
      }
      if (batchStore) {
        // Its buffers are this restore's alone (a few blocks share one): hand their memory back now, not at the
        // next full collection.
        const seen = new Set<ArrayBufferLike>();
        for (const b of got) {
          if (seen.has(b.buffer)) continue;
          seen.add(b.buffer);
          discard(new Uint8Array(b.buffer));
        }
      }
    } finally {
      budget.release(held);
    }
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
  const launch = async (run: () => Promise<void>): Promise<void> => {
    await fileSlots.acquire();
    if (failure) {
      fileSlots.release();
      return;
    }
    const job: Promise<void> = run()
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
      else await launch(() => writeFile(p, single));
    } else {
      // Depth first, in name order; a directory's files start before its subdirectories are walked.
      // The next directories to visit (the top of the stack) are read ahead: on a cold disk each directory block
      // is a read of its own, and a walk that waited for each in turn would leave the file pipeline idle.
      type Frame = { path: TreePath; cid: CID; index: number; listing?: Promise<{ entries: DirEntry[] }> };
      const listingOf = (f: Frame): Promise<{ entries: DirEntry[] }> => (f.listing ??= readDir(store, f.cid, `directory ${showPath(f.path)}`));
      const readAhead = (): void => {
        for (let i = stack.length - 1; i >= 0 && i >= stack.length - DIRS_AHEAD; i--) listingOf(stack[i]).catch(() => undefined); // surfaces when visited
      };
      const stack: Frame[] = [{ path: [], cid: dirCid!, index: -1 }];
      while (stack.length > 0 && !failure) {
        signal?.throwIfAborted();
        const frame = stack.pop()!;
        const { path, index } = frame;
        const { entries } = await listingOf(frame);
        const subdirs: Array<{ path: TreePath; cid: CID; e: DirEntry; index: number }> = [];
        const symlinks: Array<{ path: TreePath; e: DirEntry }> = [];
        const files: Array<{ path: TreePath; e: DirEntry }> = [];
        for (const e of entries) {
          const p = [...path, e.n];
          if (e.k === 'd') subdirs.push({ path: p, cid: e.d!, e, index: -1 });
          else if (e.k === 'l') symlinks.push({ path: p, e });
          else if (e.h !== undefined && linkTargets.has(e.h)) links.push({ group: e.h, path: p.map(copyName) });
          else {
            if (e.h !== undefined) linkTargets.set(e.h, p.map(copyName));
            files.push({ path: p, e });
          }
        }
        // Siblings do not depend on each other: their directories and symlinks are made together.
        await mapLimit(subdirs, 32, async (d) => {
          await target.mkdir(d.path);
          stats.dirs++;
        });
        await mapLimit(symlinks, 16, (l) => symlink(l.path, l.e));
        // Files in name order; runs of small ones go in batches.
        let batch: Array<{ path: TreePath; e: DirEntry; c: Chunk | null }> = [];
        let batchBytes = 0;
        const flush = async (): Promise<void> => {
          if (batch.length === 0) return;
          const b = batch;
          batch = [];
          batchBytes = 0;
          await launch(() => writeSmall(b));
        };
        for (const f of files) {
          if (failure) break;
          const c = smallBlock(f.e);
          if (c === undefined) {
            await flush();
            await launch(() => writeFile(f.path, f.e));
            continue;
          }
          const size = c?.size ?? 0;
          if (batch.length >= SMALL_BATCH_FILES || (batch.length > 0 && batchBytes + size > batchLimit)) await flush();
          batch.push({ ...f, c });
          batchBytes += size;
        }
        if (!failure) await flush();
        for (const d of subdirs) d.index = dirs.push({ parent: index, name: copyName(d.e.n), depth: d.path.length, meta: metaOf(d.e, 'dir') }) - 1;
        for (let i = subdirs.length - 1; i >= 0; i--) stack.push({ path: subdirs[i].path, cid: subdirs[i].cid, index: subdirs[i].index });
        readAhead();
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
  const byDepth: number[][] = [];
  dirs.forEach((d, i) => (byDepth[d.depth] ??= []).push(i));
  const pathOf = (i: number): TreePath => {
    const out: Uint8Array[] = [];
    for (let at = i; at >= 0; at = dirs[at].parent) out.push(dirs[at].name);
    return out.reverse();
  };
  for (let depth = byDepth.length - 1; depth > 0; depth--) {
    await mapLimit(byDepth[depth] ?? [], 32, (i) => target.setMeta(pathOf(i), dirs[i].meta));
  }
  signal?.throwIfAborted(); // an aborted restore never reports itself complete
  await target.finish?.();
  if (!single) await target.setMeta([], metaOf(rootEntry, 'dir'));
  return { snapshot, stats, warnings, resumed: resuming };
}
