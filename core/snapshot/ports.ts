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
}

/** A tree to restore into. Paths are relative to the restore target. */
export interface TargetTree {
  readonly description: string;
  mkdir(path: TreePath): Promise<void>;
  /** Create (or truncate) a regular file of `size` bytes for writing. */
  create(path: TreePath, size: number): Promise<FileWriter>;
  symlink(path: TreePath, target: Uint8Array): Promise<void>;
  /** Make `path` a hard link to the already restored `existing`. */
  link(existing: TreePath, path: TreePath): Promise<void>;
  /** Apply metadata after content. For symlinks, only times (and owner) are applied. */
  setMeta(path: TreePath, meta: { kind: EntryKind; mode: number; uid: number; gid: number; mtimeNs: bigint }): Promise<void>;
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
  chunk(data: Uint8Array, eof: boolean): Promise<ChunkedWindow>;
  /** sha2-256 of each buffer (for verifying blocks on restore and in integrity sweeps). */
  digest(blocks: Uint8Array[]): Promise<Uint8Array[]>;
  close(): Promise<void>;
}

/** A non-fatal problem met during a backup or restore (an unsupported file type, a file that changed). */
export interface Warning {
  path: string;
  message: string;
}
