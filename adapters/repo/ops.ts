/**
 * The local data path of one Box, wired: back up a directory into a repository, restore a snapshot, verify the
 * repository. The CLI, the demo, the benchmark and the tests all call these.
 */
import { hostname, userInfo } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import type { CID } from 'multiformats/cid';
import type { Progress } from '../../core/ports.ts';
import { backup, type BackupStats } from '../../core/snapshot/backup.ts';
import { restore, type RestoreStats } from '../../core/snapshot/restore.ts';
import type { ChunkingService, Warning } from '../../core/snapshot/ports.ts';
import { verifyBlocks, walkSnapshots } from '../../core/snapshot/verify.ts';
import { parsePath } from '../../core/snapshot/names.ts';
import type { SnapshotNode } from '../../core/snapshot/model.ts';
import { LocalSourceTree, LocalTargetTree } from '../fs/local-tree.ts';
import { WorkerChunking } from '../workers/chunk-pool.ts';
import { systemClock } from '../system.ts';
import { LocalRepo } from './local-repo.ts';

export function defaultAuthor(): string {
  let user = 'user';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (containers): keep the default
  }
  return `${user}@${hostname()}`;
}

export interface LocalBackupResult {
  cid: CID;
  snapshot: SnapshotNode;
  parent: CID | null;
  stats: BackupStats;
  warnings: Warning[];
  seconds: number;
}

async function withChunking<T>(given: ChunkingService | undefined, fn: (c: ChunkingService) => Promise<T>): Promise<T> {
  if (given) return fn(given);
  const pool = new WorkerChunking();
  try {
    return await fn(pool);
  } finally {
    await pool.close();
  }
}

export async function backupDirectory(opts: {
  source: string;
  repo: string;
  author?: string;
  progress?: Progress;
  onWarning?: (w: Warning) => void;
  chunking?: ChunkingService;
  signal?: AbortSignal;
}): Promise<LocalBackupResult> {
  const source = new LocalSourceTree(resolvePath(opts.source));
  await source.stat([]); // a missing source fails before the repository is created
  const repo = await LocalRepo.openOrCreate(opts.repo, systemClock.now());
  try {
    const author = opts.author ?? defaultAuthor();
    const parent = await repo.parentFor(source.description, author);
    const started = performance.now();
    const result = await withChunking(opts.chunking, (chunking) =>
      backup({
        source,
        store: repo.blocks,
        chunking,
        clock: systemClock,
        author,
        host: hostname(),
        parent: parent?.cid ?? null,
        chunker: repo.config.chunker,
        progress: opts.progress,
        onWarning: opts.onWarning,
        signal: opts.signal,
      }),
    );
    await repo.addSnapshot(result.cid);
    return { ...result, parent: parent?.cid ?? null, seconds: (performance.now() - started) / 1000 };
  } finally {
    await repo.close();
  }
}

export interface LocalRestoreResult {
  cid: CID;
  snapshot: SnapshotNode;
  stats: RestoreStats;
  warnings: Warning[];
  /** The target held an interrupted run of this restore, which this one completed (see core/snapshot/restore.ts). */
  resumed: boolean;
  seconds: number;
}

export async function restoreSnapshot(opts: {
  repo: string;
  ref: string;
  target: string;
  subpath?: string;
  progress?: Progress;
  chunking?: ChunkingService;
  signal?: AbortSignal;
}): Promise<LocalRestoreResult> {
  const repo = await LocalRepo.open(opts.repo);
  try {
    const snap = await repo.resolve(opts.ref);
    const target = await LocalTargetTree.prepare(opts.target);
    opts.progress?.total?.(snap.node.stats.bytes);
    const started = performance.now();
    const result = await withChunking(opts.chunking, (chunking) =>
      restore({
        store: repo.blocks,
        target,
        chunking,
        snapshot: snap.cid,
        subpath: opts.subpath ? parsePath(opts.subpath) : undefined,
        progress: opts.progress,
        signal: opts.signal,
      }),
    );
    return { cid: snap.cid, ...result, seconds: (performance.now() - started) / 1000 };
  } finally {
    await repo.close();
  }
}

export interface VerifyReport {
  blocks: number;
  bytes: number;
  corrupt: string[];
  missing: Array<{ cid: string; snapshot: string }>;
  unreadable: Array<{ cid: string; snapshot: string; reason: string }>;
  snapshots: number;
  seconds: number;
  ok: boolean;
}

export async function verifyRepository(opts: { repo: string; progress?: Progress; chunking?: ChunkingService; signal?: AbortSignal }): Promise<VerifyReport> {
  const repo = await LocalRepo.open(opts.repo);
  try {
    const started = performance.now();
    const stat = await repo.blocks.stat();
    opts.progress?.total?.(stat.bytes);
    const blocks = await withChunking(opts.chunking, (chunking) => verifyBlocks({ store: repo.blocks, chunking, progress: opts.progress, signal: opts.signal }));
    const names = await repo.snapshotIds();
    const walk = await walkSnapshots(repo.blocks, names, opts.signal);
    const corrupt = blocks.corrupt.map(String);
    return {
      blocks: blocks.checked,
      bytes: blocks.bytes,
      corrupt,
      missing: walk.missing.map((m) => ({ cid: String(m.cid), snapshot: String(m.snapshot) })),
      unreadable: walk.unreadable.map((u) => ({ cid: String(u.cid), snapshot: String(u.snapshot), reason: u.reason })),
      snapshots: names.length,
      seconds: (performance.now() - started) / 1000,
      ok: corrupt.length === 0 && walk.missing.length === 0 && walk.unreadable.length === 0,
    };
  } finally {
    await repo.close();
  }
}
