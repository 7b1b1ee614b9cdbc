/**
 * The pre-flight scan of a backup: walk the source tree's metadata (SourceTree.list gives every entry with its
 * lstat, so no file is opened or read) and measure what the backup is about to store, so the limits can be checked
 * before a single block is written (limits.ts).
 *
 * What it measures:
 * - every file's size (the largest ones, and those over the file size limit), every directory's entry count;
 * - the snapshot size: the sum of file sizes, hard links counted per link, exactly as the snapshot's stats count
 *   them;
 * - the bytes the backup may newly store on this Box: the sizes of files that are not in the parent snapshot with
 *   the same size and mtime (each hard-linked inode once). The backup stores only chunks it does not hold yet, so
 *   this is an upper bound that ignores deduplication: a file with the parent's size and mtime has, as far as
 *   anyone can tell without reading it, the parent's chunks, which this Box holds.
 *
 * Entries the backup would skip (special files, directories it cannot list) are skipped here too.
 */
import type { CID } from 'multiformats/cid';
import type { Blockstore } from '../blocks/blockstore.ts';
import { readDir, readSnapshot } from '../snapshot/manifest-io.ts';
import { nsToTime, type DirEntry } from '../snapshot/model.ts';
import { nameKey, showPath } from '../snapshot/names.ts';
import type { SourceEntry, SourceTree, TreePath } from '../snapshot/ports.ts';
import { Semaphore } from '../util/limit.ts';
import type { Limits, PlannedBackup } from './limits.ts';

export interface PrescanOptions {
  /** Only files/directories over these limits are listed individually. */
  limits?: Pick<Limits, 'maxFileBytes' | 'maxFilesPerDirectory'>;
  /** The parent snapshot (its manifest blocks in `store`): files unchanged since it do not count as new bytes. */
  parent?: { store: Blockstore; root: CID };
  /** Most directories listed at once. Default 16. */
  concurrency?: number;
  /** Most violations of each kind listed (the rest are counted). Default 100. */
  maxListed?: number;
  signal?: AbortSignal;
}

export interface PrescanResult {
  files: number;
  dirs: number;
  /** Sum of file sizes, hard links counted per link (the snapshot's size). */
  snapshotBytes: number;
  /** Sizes of files new or changed since the parent (each inode once): at most what the backup stores anew. */
  newBytes: number;
  largestFile: { path: string; bytes: number } | null;
  largestDirectory: { path: string; entries: number } | null;
  /** Files over `limits.maxFileBytes` (at most `maxListed`; `oversizeFiles` counts them all). */
  oversize: Array<{ path: string; bytes: number }>;
  oversizeFiles: number;
  /** Directories over `limits.maxFilesPerDirectory` (at most `maxListed`). */
  crowded: Array<{ path: string; entries: number }>;
  crowdedDirectories: number;
  /** Directories that could not be listed (the backup skips them too). */
  unreadable: number;
}

/** An error from the OS that the backup engine turns into a "skipped" warning. */
function isSkippable(err: unknown): boolean {
  if (!(err instanceof Error) || !('code' in err) || typeof (err as { syscall?: unknown }).syscall !== 'string') return false;
  const code = (err as { code?: unknown }).code;
  return code === 'EACCES' || code === 'EPERM' || code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP';
}

/** Walk `source` and measure it; see the module comment. */
export async function prescanSource(source: SourceTree, options: PrescanOptions = {}): Promise<PrescanResult> {
  const maxFile = options.limits?.maxFileBytes;
  const maxEntries = options.limits?.maxFilesPerDirectory;
  const maxListed = Math.max(0, options.maxListed ?? 100);
  const slots = new Semaphore(Math.max(1, options.concurrency ?? 16));
  const signal = options.signal;
  const r: PrescanResult = {
    files: 0,
    dirs: 0,
    snapshotBytes: 0,
    newBytes: 0,
    largestFile: null,
    largestDirectory: null,
    oversize: [],
    oversizeFiles: 0,
    crowded: [],
    crowdedDirectories: 0,
    unreadable: 0,
  };
  const inodes = new Set<string>();

  const root = await source.stat([]);
  if (root.kind !== 'dir') return r; // the backup itself reports that
  let parentRoot: DirEntry[] | undefined;
  if (options.parent) {
    const snap = await readSnapshot(options.parent.store, options.parent.root, 'the parent snapshot');
    parentRoot = (await readDir(options.parent.store, snap.tree, 'the parent snapshot')).entries;
  }

  const file = (path: TreePath, e: SourceEntry, prev: DirEntry | undefined): void => {
    r.files++;
    r.snapshotBytes += e.size;
    if (r.largestFile === null || e.size > r.largestFile.bytes) r.largestFile = { path: showPath(path), bytes: e.size };
    if (maxFile !== undefined && e.size > maxFile) {
      r.oversizeFiles++;
      if (r.oversize.length < maxListed) r.oversize.push({ path: showPath(path), bytes: e.size });
    }
    if (e.nlink > 1) {
      const inode = `${e.dev}:${e.ino}`;
      if (inodes.has(inode)) return;
      inodes.add(inode);
    }
    const t = nsToTime(e.mtimeNs);
    const same = prev !== undefined && prev.k === 'f' && prev.s === e.size && prev.t[0] === t[0] && prev.t[1] === t[1];
    if (!same) r.newBytes += e.size;
  };

  const dir = async (path: TreePath, prev: DirEntry[] | undefined): Promise<void> => {
    signal?.throwIfAborted();
    let listed: SourceEntry[];
    try {
      listed = await slots.run(() => source.list(path));
    } catch (err) {
      if (!isSkippable(err) || path.length === 0) throw err;
      r.unreadable++;
      return;
    }
    r.dirs++;
    const shown = showPath(path);
    if (r.largestDirectory === null || listed.length > r.largestDirectory.entries) r.largestDirectory = { path: shown, entries: listed.length };
    if (maxEntries !== undefined && listed.length > maxEntries) {
      r.crowdedDirectories++;
      if (r.crowded.length < maxListed) r.crowded.push({ path: shown, entries: listed.length });
    }
    const byName = new Map<string, DirEntry>();
    for (const e of prev ?? []) byName.set(nameKey(e.n), e);
    const subdirs: Array<Promise<void>> = [];
    for (const e of listed) {
      const p = [...path, e.name];
      const before = byName.get(nameKey(e.name));
      if (e.kind === 'file') file(p, e, before);
      else if (e.kind === 'dir') {
        subdirs.push(
          (async () => {
            let sub: DirEntry[] | undefined;
            const parent = options.parent;
            if (before?.k === 'd' && before.d && parent) {
              const d = before.d;
              sub = (await slots.run(() => readDir(parent.store, d, 'the parent snapshot'))).entries;
            }
            await dir(p, sub);
          })(),
        );
      }
    }
    // Every subdirectory is awaited even when one fails, so no listing is left running after a rejection.
    const settled = await Promise.allSettled(subdirs);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
  };

  await dir([], parentRoot);
  return r;
}

/** What limits.ts checks, from a scan (`keepers` and `keeperDemand` come from the reserve, not the tree). */
export function plannedFromScan(scan: PrescanResult, extra: Pick<PlannedBackup, 'keepers' | 'keeperDemand'> = {}): PlannedBackup {
  return {
    files: scan.oversize,
    directories: scan.crowded,
    snapshotBytes: scan.snapshotBytes,
    ...extra,
  };
}
