/**
 * The restore engine: writes a snapshot (or one subtree of it) into a TargetTree, byte-identical, with modes,
 * times, symlinks and hard links. Every block is verified against its CID before a single byte of it is written;
 * a corrupt or missing block stops the restore with a named error that says which file needed it.
 *
 * Three passes keep metadata right: (1) directories, files and symlinks, each file's mode and mtime set as soon
 * as it is complete; (2) hard links, made once every link target exists; (3) directory modes and mtimes,
 * deepest first, because creating children changes a directory's mtime and a read-only directory accepts none.
 */
import type { CID } from 'multiformats/cid';
import { BlockCorruptError, BlockNotFoundError, type Blockstore } from '../blocks/blockstore.ts';
import { equalBytes } from '../blocks/cid.ts';
import { ReserveError } from '../errors.ts';
import type { Progress } from '../ports.ts';
import { mapLimit } from '../util/limit.ts';
import { readChunkRefs, readDir, readSnapshot, type Chunk } from './manifest-io.ts';
import { compareBytes, timeToNs, type DirEntry, type SnapshotNode } from './model.ts';
import { nameKey, showPath } from './names.ts';
import type { ChunkingService, TargetTree, TreePath, Warning } from './ports.ts';

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
  /** Files written at once (default 4). */
  fileConcurrency?: number;
  /** Bytes of chunks fetched and verified per batch within a file (default 8 MiB). */
  batchBytes?: number;
}

export interface RestoreStats {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  bytes: number;
  chunks: number;
}

export interface RestoreResult {
  snapshot: SnapshotNode;
  stats: RestoreStats;
  warnings: Warning[];
}

export async function restore(params: RestoreParams): Promise<RestoreResult> {
  const { store, target } = params;
  const snapshot = await readSnapshot(store, params.snapshot, 'the snapshot');
  const stats: RestoreStats = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, bytes: 0, chunks: 0 };
  const warnings: Warning[] = [];
  const links: Array<{ group: string; path: TreePath }> = [];
  const linkTargets = new Map<string, TreePath>();
  const dirMeta: Array<{ path: TreePath; e: Pick<DirEntry, 'm' | 'u' | 'g' | 't'> }> = [];
  const concurrency = params.fileConcurrency ?? 4;
  const batchBytes = params.batchBytes ?? 8 * 1024 * 1024;

  const writeFile = async (path: TreePath, e: DirEntry): Promise<void> => {
    params.signal?.throwIfAborted();
    const where = `file ${showPath(path)}`;
    const w = await target.create(path, e.s ?? 0);
    try {
      let position = 0;
      let batch: Chunk[] = [];
      let batchSize = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        const blocks = await Promise.all(
          batch.map((c) =>
            store.get(c.cid).catch((e: unknown) => {
              throw e instanceof BlockNotFoundError ? new BlockNotFoundError(c.cid, where) : e;
            }),
          ),
        );
        const digests = await params.chunking.digest(blocks);
        for (let i = 0; i < batch.length; i++) {
          const c = batch[i];
          if (!equalBytes(digests[i], c.cid.multihash.digest) || blocks[i].length !== c.size) throw new BlockCorruptError(c.cid, `the store (needed by ${where})`);
        }
        for (const b of blocks) {
          await w.write(b, position);
          position += b.length;
          params.progress?.advance(b.length);
        }
        stats.chunks += batch.length;
        batch = [];
        batchSize = 0;
      };
      for await (const c of readChunkRefs(store, e, where)) {
        batch.push(c);
        batchSize += c.size;
        if (batchSize >= batchBytes) await flush();
      }
      await flush();
      stats.bytes += position;
    } finally {
      await w.close();
    }
    await target.setMeta(path, { kind: 'file', mode: e.m, uid: e.u, gid: e.g, mtimeNs: timeToNs(e.t) });
    stats.files++;
  };

  const restoreDir = async (path: TreePath, dirCid: CID): Promise<void> => {
    params.signal?.throwIfAborted();
    const { entries } = await readDir(store, dirCid, `directory ${showPath(path)}`);
    const files: Array<[TreePath, DirEntry]> = [];
    const subdirs: Array<[TreePath, DirEntry]> = [];
    for (const e of entries) {
      const p = [...path, e.n];
      if (e.k === 'd') {
        await target.mkdir(p);
        subdirs.push([p, e]);
      } else if (e.k === 'l') {
        await target.symlink(p, e.y!);
        await target.setMeta(p, { kind: 'symlink', mode: e.m, uid: e.u, gid: e.g, mtimeNs: timeToNs(e.t) });
        stats.symlinks++;
      } else if (e.h !== undefined && linkTargets.has(e.h)) {
        links.push({ group: e.h, path: p });
      } else {
        if (e.h !== undefined) linkTargets.set(e.h, p);
        files.push([p, e]);
      }
    }
    await mapLimit(files, concurrency, ([p, e]) => writeFile(p, e));
    for (const [p, e] of subdirs) {
      await restoreDir(p, e.d!);
      dirMeta.push({ path: p, e });
      stats.dirs++;
    }
  };

  // Find what to restore.
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

  await target.mkdir([]);
  if (single) {
    const p = [single.n];
    if (single.k === 'l') {
      await target.symlink(p, single.y!);
      await target.setMeta(p, { kind: 'symlink', mode: single.m, uid: single.u, gid: single.g, mtimeNs: timeToNs(single.t) });
      stats.symlinks++;
    } else await writeFile(p, single);
  } else {
    await restoreDir([], dirCid!);
  }
  for (const l of links) {
    await target.link(linkTargets.get(l.group)!, l.path);
    stats.hardlinks++;
  }
  for (const d of dirMeta) {
    await target.setMeta(d.path, { kind: 'dir', mode: d.e.m, uid: d.e.u, gid: d.e.g, mtimeNs: timeToNs(d.e.t) });
  }
  if (!single) await target.setMeta([], { kind: 'dir', mode: rootEntry.m, uid: rootEntry.u, gid: rootEntry.g, mtimeNs: timeToNs(rootEntry.t) });
  return { snapshot, stats, warnings };
}
