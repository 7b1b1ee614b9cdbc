/**
 * What the snapshot engine needs from the world, as narrow ports. adapters/fs implements the trees over the local
 * file system; adapters/workers implements chunking/hashing on worker threads; the simulator and tests use the
 * in-process implementations in core/snapshot/inline.ts and in-memory trees.
 */

/** A path inside a tree: its components, each the name bytes exactly as the OS gave them. */
export type TreePath = readonly Uint8Array[];

export const EntryKind = { file: 'file', dir: 'dir', symlink: 'symlink', other: 'other' } as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

/** What lstat says of one entry. Times are nanoseconds since the epoch. */
export interface SourceStat {
  kind: EntryKind;
  /** Permission bits and set-id/sticky bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  dev: bigint;
  ino: bigint;
  nlink: number;
  /** For kind 'other': what it is (fifo, socket, char device, block device), for the warning. */
  otherKind?: string;
  /**
   * Optional, the same facts precomputed by a source that has them cheaply: mtime and ctime as [seconds,
   * nanoseconds] (nanoseconds in [0, 1e9)), and the inode number as a number when it is a safe integer. They spare
   * the engine BigInt arithmetic on every entry of an incremental walk.
   */
  mtime?: readonly [number, number];
  ctime?: readonly [number, number];
  inode?: number | bigint;
}

export interface SourceEntry extends SourceStat {
  name: Uint8Array;
}

export interface FileReader {
  /** Read up to `length` bytes at `position` into `buf` at `offset`; returns the count (0 at end of file). */
  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

/** A tree to back up, read-only. */
export interface SourceTree {
  /** A printable description of the root (for the snapshot record and messages). */
  readonly description: string;
  stat(path: TreePath): Promise<SourceStat>;
  /** Entries of a directory with their lstat, in any order. */
  list(path: TreePath): Promise<SourceEntry[]>;
  readlink(path: TreePath): Promise<Uint8Array>;
  open(path: TreePath): Promise<FileReader>;
}

export interface FileWriter {
  write(data: Uint8Array, position: number): Promise<void>;
  close(): Promise<void>;
  /** Optional: apply the file's metadata through the open file, then close it (fewer calls than close + setMeta). */
  finish?(meta: EntryMeta): Promise<void>;
}

/** A file to create whole: its content and the metadata to give it. */
export interface WholeFile {
  path: TreePath;
  data: Uint8Array;
  meta: EntryMeta;
}

/** Metadata a restore applies to an entry. */
export interface EntryMeta {
  kind: EntryKind;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
}

/**
 * A tree to restore into. Paths are relative to the restore target.
 *
 * Resumable restores: a target that implements `begin` learns which restore is about to run (the snapshot id and
 * subpath) and answers whether it holds an interrupted run of that same restore. If it does, the engine keeps what
 * is already there and verified (it then needs `stat`, `open` and `remove`), and calls `finish` once everything is
 * in place, before the target root's own metadata.
 */
export interface TargetTree {
  readonly description: string;
  mkdir(path: TreePath): Promise<void>;
  /**
   * Create a regular file of `size` bytes for writing. `mode` is the mode it will end with: a target may create it
   * so (and then skip setting it in `finish`), but must still let this call's writer write.
   */
  create(path: TreePath, size: number, mode?: number): Promise<FileWriter>;
  symlink(path: TreePath, target: Uint8Array): Promise<void>;
  /**
   * Optional: create several whole files at once (small files whose bytes are all at hand and verified), each as
   * `create` + `write` + `finish` would, metadata included. Many small files then cost far fewer round trips.
   */
  writeFiles?(files: ReadonlyArray<WholeFile>): Promise<void>;
  /** Make `path` a hard link to the already restored `existing`. */
  link(existing: TreePath, path: TreePath): Promise<void>;
  /** Apply metadata after content. For symlinks, only times (and owner) are applied. */
  setMeta(path: TreePath, meta: EntryMeta): Promise<void>;
  /** Start (or pick up) restore `id`; `resuming` when the target holds an interrupted run of the same restore. */
  begin?(id: string): Promise<{ resuming: boolean }>;
  /** The restore is complete but for the target root's metadata. */
  finish?(): Promise<void>;
  /** Resuming: what is at `path` now (not following symlinks), or null. */
  stat?(path: TreePath): Promise<SourceStat | null>;
  /** Resuming: read a file already there, to verify it. */
  open?(path: TreePath): Promise<FileReader>;
  /** Resuming: remove a file or symlink an interrupted run left (absent is not an error). */
  remove?(path: TreePath): Promise<void>;
}

/** One window of file data split into chunks and hashed. */
export interface ChunkedWindow {
  /** The window, handed back (it may have travelled to a worker and back). */
  data: Uint8Array;
  /** End offset of each complete chunk in `data`. Bytes after the last one are the tail to carry over. */
  ends: number[];
  /** sha2-256 digest of each chunk, in order. */
  digests: Uint8Array[];
}

/** Chunking and hashing, the CPU-heavy part of a backup: in-process, or spread over worker threads. */
export interface ChunkingService {
  /**
   * Split a window into chunks and hash them. With `owned`, the caller hands over the whole ArrayBuffer under
   * `data` (a worker pool may move it to another thread rather than copy it): it must not touch any view of that
   * buffer until the call resolves, and then uses the returned `data` (a view of the same memory).
   */
  chunk(data: Uint8Array, eof: boolean, owned?: boolean): Promise<ChunkedWindow>;
  /** sha2-256 of each buffer (for verifying blocks on restore and in integrity sweeps). */
  digest(blocks: Uint8Array[]): Promise<Uint8Array[]>;
  /**
   * Optional: `digest` for buffers the caller hands over for the duration (a worker pool may move them to another
   * thread instead of copying them). Use the returned `blocks`, not the ones passed: those may be detached.
   */
  digestOwned?(blocks: Uint8Array[]): Promise<{ digests: Uint8Array[]; blocks: Uint8Array[] }>;
  close(): Promise<void>;
}

/** A non-fatal problem met during a backup or restore (an unsupported file type, a file that changed). */
export interface Warning {
  path: string;
  message: string;
}
