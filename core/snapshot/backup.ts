/**
 * The backup engine: walks a SourceTree, splits files into content-defined chunks, stores every chunk and
 * manifest node in a Blockstore, and returns the new snapshot's root CID.
 *
 * Order of writes makes a crash harmless: chunks first, then the nodes that reference them, the snapshot node
 * last. A crash at any point leaves only unreferenced blocks (garbage), never a snapshot pointing at a missing
 * block. Files whose size, mtime, mode, inode and ctime match the parent snapshot's entry are not read again, and a
 * directory in which nothing changed keeps the parent snapshot's node as it is (not encoded, hashed or stored
 * again); new chunks are stored once (dedup within and across files and snapshots). Chunking and hashing run behind
 * the ChunkingService port, which the CLI backs with worker threads; a whole file smaller than the minimum chunk is
 * hashed here (one chunk, no round trip). Large windows come from a small buffer pool, and the walk keeps at most
 * MAX_BRANCHES subtrees in parallel, so memory stays flat as the tree grows.
 */
import { CID } from 'multiformats/cid';
import type { Blockstore } from '../blocks/blockstore.ts';
import { RAW_CODE, cidFromSha256, equalBytes } from '../blocks/cid.ts';
import { ReserveError } from '../errors.ts';
import type { Clock, Progress } from '../ports.ts';
import { DEFAULT_CHUNKER, type ChunkerParams } from '../chunker/fastcdc.ts';
import { ByteBudget, Semaphore, mapLimit } from '../util/limit.ts';
import { digestSync } from './inline.ts';
import { discard } from '../util/buffers.ts';
import { putNode, readChunkRefs, readDir, readSnapshot, writeChunkRefs, writeDir, type Chunk } from './manifest-io.ts';
import { MANIFEST_VERSION, compareBytes, nsToTime, type ChunkRefs, type DirEntry, type SnapshotNode, type Time } from './model.ts';
import { nameKey, showPath } from './names.ts';
import type { ChunkingService, SourceEntry, SourceStat, SourceTree, TreePath, Warning } from './ports.ts';

/**
 * Window and budget sizes: a large file holds at most a window and a maximal chunk, so 4 MiB windows within a 24 MiB
 * budget keep about four large files in flight (enough to keep both chunking workers fed on the 1 GiB reference
 * set) with peak memory flat whatever the tree holds.
 */
const DEFAULT_WINDOW = 4 * 1024 * 1024;
const DEFAULT_BYTES_IN_FLIGHT = 24 * 1024 * 1024;
/**
 * Directory subtrees walked in parallel at most. A directory's subdirectories start once its own files are read and
 * stored, so with a few small files in each of thousands of directories the walk is a chain of waits (a listing, the
 * files' reads, a group commit) per directory: 16 branches left the reference set's 2,400 directories of small files
 * waiting on that chain (3.1 s for them alone; 2.3-2.6 s with 64). More than 64 only held more directories open.
 */
const MAX_BRANCHES = 64;
/** Entries of one directory handled at once (a file waiting for its blocks to be durable holds no file slot). */
const LEAVES_AT_ONCE = 32;
/**
 * Small files in flight at most, read or waiting for their block to be durable: enough to fill several group
 * commits, few enough that their state stays small (it is what lives long enough to reach the old generation).
 */
const PENDING_SMALL = 256;
/** Small files are read into slabs of this many bytes (one allocation for many files; 8 or more files each). */
const SLAB_BYTES = 2 * 1024 * 1024;
/** Windows of at least this many bytes come from the pool (smaller ones are cheap to allocate). */
const POOLED_WINDOW = 1024 * 1024;

export class SourceNotADirectoryError extends ReserveError {
  static override readonly name = 'SourceNotADirectoryError';
}

export interface BackupParams {
  source: SourceTree;
  store: Blockstore;
  chunking: ChunkingService;
  clock: Clock;
  author: string;
  host: string;
  /** The previous snapshot of this source: the chain link, and the cache that lets unchanged files be skipped. */
  parent?: CID | null;
  chunker?: ChunkerParams;
  progress?: Progress;
  onWarning?: (w: Warning) => void;
  signal?: AbortSignal;
  /** Most files read at once (default 32); also bounded by `bytesInFlight`. */
  fileConcurrency?: number;
  /** Window bytes all files being read may hold at once (default 24 MiB): many small files overlap their I/O
   * and fsyncs, a few large ones do not blow up memory. */
  bytesInFlight?: number;
  /** Bytes read per window (default 4 MiB). */
  windowBytes?: number;
}

export interface BackupStats {
  files: number;
  dirs: number;
  symlinks: number;
  hardlinks: number;
  skipped: number;
  /** Sum of file sizes in the snapshot. */
  bytes: number;
  /** Bytes actually read from the source (unchanged files are not read). */
  bytesRead: number;
  /** Bytes of chunks that were not stored before. */
  bytesNew: number;
  /** Chunk references in the snapshot. */
  chunks: number;
  chunksNew: number;
  chunksDedup: number;
  filesUnchanged: number;
}

export interface BackupResult {
  cid: CID;
  snapshot: SnapshotNode;
  stats: BackupStats;
  warnings: Warning[];
}

export async function backup(params: BackupParams): Promise<BackupResult> {
  const run = new BackupRun(params);
  return run.execute();
}

class BackupRun {
  readonly #p: BackupParams;
  readonly #chunker: ChunkerParams;
  readonly #files: Semaphore;
  /** Small files read and not yet durable (each keeps its state on the heap until then). */
  readonly #pending = new Semaphore(PENDING_SMALL);
  /** Directory subtrees being walked in parallel (see #dir). */
  #branches = 0;
  readonly #bytes: ByteBudget;
  readonly #window: number;
  readonly #pool: WindowPool;
  readonly #slabs: Slabs;
  readonly #known = new Set<string>();
  readonly #inflight = new Map<string, Promise<boolean>>();
  readonly #hardlinks = new Map<string, Promise<{ refs: ChunkRefs; size: number; count: number } | null>>();
  readonly warnings: Warning[] = [];
  readonly stats: BackupStats = {
    files: 0,
    dirs: 0,
    symlinks: 0,
    hardlinks: 0,
    skipped: 0,
    bytes: 0,
    bytesRead: 0,
    bytesNew: 0,
    chunks: 0,
    chunksNew: 0,
    chunksDedup: 0,
    filesUnchanged: 0,
  };

  constructor(p: BackupParams) {
    this.#p = p;
    this.#chunker = p.chunker ?? DEFAULT_CHUNKER;
    this.#files = new Semaphore(p.fileConcurrency ?? 32);
    const budget = p.bytesInFlight ?? DEFAULT_BYTES_IN_FLIGHT;
    this.#bytes = new ByteBudget(budget);
    this.#window = p.windowBytes ?? DEFAULT_WINDOW;
    // Windows in flight are bounded by the byte budget: keep about that many buffers.
    const capacity = this.#window + this.#chunker.maxSize;
    this.#pool = new WindowPool(capacity, Math.ceil(budget / capacity));
    // Small files' space in flight is bounded by the budget too; a few free slabs cover the usual turnover.
    this.#slabs = new Slabs(SLAB_BYTES, 2);
  }

  async execute(): Promise<BackupResult> {
    const { source, store, clock, parent } = this.#p;
    const root = await source.stat([]);
    if (root.kind !== 'dir') throw new SourceNotADirectoryError(`${source.description} is not a directory`);
    let prevRoot: DirEntry[] | undefined;
    let prevTree: CID | undefined;
    if (parent) {
      const prev = await readSnapshot(store, parent, 'the parent snapshot');
      prevTree = prev.tree;
      prevRoot = (await readDir(store, prev.tree, 'the parent snapshot')).entries;
    }
    const tree = await this.#dir([], prevRoot, prevRoot ? prevTree : undefined);
    const s = this.stats;
    const snapshot: SnapshotNode = {
      v: MANIFEST_VERSION,
      type: 'reserve/snapshot',
      tree,
      root: { m: root.mode, u: root.uid, g: root.gid, t: nsToTime(root.mtimeNs) },
      parent: parent ?? null,
      time: Math.floor(clock.now()),
      author: this.#p.author,
      host: this.#p.host,
      source: source.description,
      stats: { files: s.files, dirs: s.dirs, symlinks: s.symlinks, bytes: s.bytes, chunks: s.chunks, skipped: s.skipped },
    };
    const cid = await putNode(store, snapshot);
    return { cid, snapshot, stats: this.stats, warnings: this.warnings };
  }

  #warn(path: TreePath, message: string): void {
    const w = { path: showPath(path), message };
    this.warnings.push(w);
    this.#p.onWarning?.(w);
  }

  async #dir(path: TreePath, prev: DirEntry[] | undefined, prevCid?: CID): Promise<CID> {
    this.#p.signal?.throwIfAborted();
    const listed = await this.#p.source.list(path);
    listed.sort((a, b) => compareBytes(a.name, b.name));
    const prevByName = new Map<string, DirEntry>();
    for (const e of prev ?? []) prevByName.set(nameKey(e.n), e);
    const slots: Array<DirEntry | null> = new Array(listed.length).fill(null);
    const leaves: number[] = [];
    const subdirs: number[] = [];
    listed.forEach((e, i) => (e.kind === 'dir' ? subdirs : leaves).push(i));
    const visit = async (i: number): Promise<void> => {
      slots[i] = await this.#entry([...path, listed[i].name], listed[i], prevByName.get(nameKey(listed[i].name)));
    };
    await mapLimit(leaves, LEAVES_AT_ONCE, visit);
    // Subdirectories run in parallel while the run has branches to spare, else one after another in this branch:
    // enough parallel I/O for a cold walk, while the directories held open at once (each keeps its listing and
    // its parent-snapshot entries until its subdirectories are done) stay bounded, not the whole tree.
    const branches: Array<Promise<void>> = [];
    for (const i of subdirs) {
      if (this.#branches < MAX_BRANCHES) {
        this.#branches++;
        const b = visit(i).finally(() => this.#branches--);
        b.catch(() => undefined); // awaited below
        branches.push(b);
      } else await visit(i);
    }
    await Promise.all(branches);
    const entries = slots.filter((e): e is DirEntry => e !== null);
    // Nothing in it changed: the node would be the parent snapshot's, byte for byte (same entries, same encoding,
    // same paging). Reuse it instead of encoding, hashing and storing it again.
    if (prevCid && prev && prev.length === entries.length && entries.every((e, i) => sameValue(e, prev[i]))) return prevCid;
    return writeDir(this.#p.store, entries);
  }

  async #entry(path: TreePath, st: SourceEntry, prev: DirEntry | undefined): Promise<DirEntry | null> {
    const base = { n: st.name, m: st.mode, u: st.uid, g: st.gid, t: timeOf(st.mtime, st.mtimeNs) };
    try {
      switch (st.kind) {
        case 'dir': {
          let prevSub: DirEntry[] | undefined;
          if (prev?.k === 'd' && prev.d) prevSub = (await readDir(this.#p.store, prev.d, 'the parent snapshot')).entries;
          const d = await this.#dir(path, prevSub, prevSub ? prev!.d : undefined);
          this.stats.dirs++;
          if (prev?.k === 'd' && prev.d === d && sameMeta(prev, base)) return prev; // reused node, same metadata
          return { ...base, k: 'd', d };
        }
        case 'symlink': {
          const y = await this.#p.source.readlink(path);
          this.stats.symlinks++;
          return { ...base, k: 'l', y };
        }
        case 'file':
          return await this.#file(path, st, prev, base);
        default:
          this.stats.skipped++;
          this.#warn(path, `skipped: ${st.otherKind ?? 'special file'} (only files, directories and symlinks are backed up)`);
          return null;
      }
    } catch (err) {
      if (err instanceof Error && 'code' in err && typeof (err as NodeJS.ErrnoException).syscall === 'string') {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EACCES' || code === 'EPERM' || code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') {
          this.stats.skipped++;
          this.#warn(path, `skipped: ${code === 'ENOENT' ? 'it vanished during the backup' : `cannot read it (${code})`}`);
          return null;
        }
      }
      throw err;
    }
  }

  async #file(path: TreePath, st: SourceEntry, prev: DirEntry | undefined, base: Omit<DirEntry, 'k'>): Promise<DirEntry | null> {
    const ctime = timeOf(st.ctime, st.ctimeNs);
    const x: [number | bigint, number, number] = [st.inode ?? safeInt(st.ino), ctime[0], ctime[1]];
    if (prev && unchanged(prev, st, base.t, x)) {
      this.stats.files++;
      this.stats.filesUnchanged++;
      this.stats.bytes += st.size;
      // Count first, add after: `x += await y` would read x before the await and lose concurrent updates.
      const count = prev.z ? prev.z.length : await countChunks(this.#p.store, prev);
      this.stats.chunks += count;
      this.#p.progress?.advance(st.size);
      const h = st.nlink > 1 ? `${st.dev}:${st.ino}` : undefined;
      // The parent's entry as it is when nothing about the file changed (the common case: no new object, and the
      // directory's comparison with its parent node is then an identity check).
      if (prev.u === base.u && prev.g === base.g && prev.h === h) return prev;
      const refs: ChunkRefs = prev.cl ? { cl: prev.cl } : { c: prev.c, z: prev.z };
      return { ...base, k: 'f', s: prev.s, ...refs, ...(h !== undefined ? { h } : {}), x };
    }
    let result: { refs: ChunkRefs; size: number; count: number } | null;
    let h: string | undefined;
    if (st.nlink > 1) {
      h = `${st.dev}:${st.ino}`;
      let shared = this.#hardlinks.get(h);
      if (shared) this.stats.hardlinks++;
      else {
        shared = this.#read(path, st);
        this.#hardlinks.set(h, shared);
      }
      result = await shared;
    } else {
      result = await this.#read(path, st);
    }
    if (!result) return null;
    this.stats.files++;
    this.stats.chunks += result.count;
    this.stats.bytes += result.size;
    return { ...base, k: 'f', s: result.size, ...result.refs, ...(h ? { h } : {}), x };
  }

  /**
   * Read a file within the concurrency limits, then wait until its chunks are durable and write its chunk list.
   * The file slot is held only while the file is read; the bytes it holds count against the byte budget until
   * its chunks are durable, so many small files overlap their group-committed syncs while memory stays bounded.
   */
  async #read(path: TreePath, st: SourceStat): Promise<{ refs: ChunkRefs; size: number; count: number }> {
    let got: Ingested | null = null;
    if (st.size <= this.#chunker.minSize) got = await this.#small(path, st);
    if (got === null) {
      // A file read in pooled windows holds a whole pooled buffer; a smaller one its own window and a tail.
      const capacity = this.#window + this.#chunker.maxSize;
      const need = st.size + 1 >= POOLED_WINDOW ? capacity : Math.min(st.size, this.#window) + this.#chunker.maxSize;
      got = await this.#bytes.run(need, async () => {
        const g = await this.#files.run(() => this.#ingest(path, st));
        await g.durable;
        return g;
      });
    } else await got.durable;
    const { chunks, size } = got;
    if (size !== st.size) this.#warn(path, `changed while it was read (${st.size} bytes at stat, ${size} read); the bytes read were kept`);
    const refs = await writeChunkRefs(this.#p.store, chunks);
    return { refs, size, count: chunks.length };
  }

  /**
   * A file no larger than the minimum chunk is one chunk (FastCDC cuts nothing below the minimum): read it whole
   * into slab space and hash it here, cheaper than a round trip to a worker for the small files most trees are
   * full of. Returns null when the file grew past its stat size (it is then read as a large file).
   */
  async #small(path: TreePath, st: SourceStat): Promise<Ingested | null> {
    const { source, signal, progress } = this.#p;
    // One byte more than the stat size, to see the end in the same read.
    const length = st.size + 1;
    await this.#pending.acquire();
    let held: number;
    try {
      held = await this.#bytes.acquire(length);
    } catch (e) {
      this.#pending.release();
      throw e;
    }
    let space: SlabSpace | undefined;
    let durable: Promise<void> | undefined;
    try {
      const got = await this.#files.run(async () => {
        signal?.throwIfAborted();
        const reader = await source.open(path);
        try {
          space = this.#slabs.take(length);
          const buf = space.bytes;
          let filled = 0;
          while (filled < length) {
            const n = await reader.read(buf, filled, length - filled, filled);
            if (n === 0) break;
            filled += n;
            // A short read at or past the stat size is the end of the file (a regular file reads short only there):
            // no second read to learn it.
            if (filled >= st.size && filled < length) break;
          }
          return filled < length ? buf.subarray(0, filled) : null;
        } finally {
          await reader.close();
        }
      });
      if (got === null) return null; // grew since its stat
      this.stats.bytesRead += got.length;
      const chunks: Chunk[] = [];
      if (got.length > 0) {
        const cid = cidFromSha256(RAW_CODE, digestSync(got));
        chunks.push({ cid, size: got.length });
        durable = this.#store(cid, got);
      } else durable = Promise.resolve();
      progress?.advance(got.length);
      return { chunks, size: got.length, durable };
    } finally {
      // The bytes are stored (or failed) once `durable` settles: only then may their space be reused.
      const release = (): void => {
        if (space) this.#slabs.give(space);
        this.#bytes.release(held);
        this.#pending.release();
      };
      if (durable) durable.then(release, release);
      else release();
    }
  }

  /** Read one file, chunk and hash it, and start storing its new chunks; `durable` settles once they are stored. */
  async #ingest(path: TreePath, st: SourceStat): Promise<Ingested> {
    const { source, chunking, signal, progress } = this.#p;
    const reader = await source.open(path);
    const chunks: Chunk[] = [];
    let size = 0;
    /**
     * The pooled buffer this file reads into, from its first large window to its end: each window's chunks are
     * stored before the next is read, so the next window moves the tail to the front of the same buffer (a window
     * and a tail always fit: capacity is a window plus a maximal chunk). Taking a new buffer per window held two at
     * once, so the pool ran dry and made buffers beyond the ones it keeps; those became garbage, and shared memory
     * is freed only once every thread that saw it (the chunking workers, which rarely collect) let go of it, so the
     * windows' memory grew with the number of large files (about 15 MiB more at peak on the 1 GiB reference set
     * than on the 256 MiB one).
     */
    let held: ArrayBufferLike | undefined;
    try {
      let tail: Uint8Array = new Uint8Array(0);
      let position = 0;
      let eof = false;
      while (!eof) {
        signal?.throwIfAborted();
        // Size the window to what is left of the file (+1 byte to see the end in the same pass), so small files
        // do not each allocate and ship a full window; large windows come from the pool.
        // (A file that grew since its stat is read on in windows of at least 64 KiB.)
        const left = position < st.size ? st.size - position + 1 : 64 * 1024;
        const length = tail.length + Math.min(this.#window, left);
        let buf: Uint8Array;
        if (held) {
          const whole = new Uint8Array(held);
          if (tail.length > 0 && tail.byteOffset !== 0) whole.copyWithin(0, tail.byteOffset, tail.byteOffset + tail.length);
          buf = whole.subarray(0, length);
        } else {
          buf = length >= POOLED_WINDOW ? this.#pool.take(length) : new Uint8Array(length);
          buf.set(tail, 0);
          if (length >= POOLED_WINDOW) held = buf.buffer;
        }
        const pooled = held !== undefined;
        let filled = tail.length;
        while (filled < buf.length) {
          const n = await reader.read(buf, filled, buf.length - filled, position);
          if (n === 0) {
            eof = true;
            break;
          }
          filled += n;
          position += n;
          // A short read at or past the stat size is the end of the file: no extra read to learn it.
          if (position >= st.size && filled < buf.length) {
            eof = true;
            break;
          }
        }
        const readNow = filled - tail.length;
        this.stats.bytesRead += readNow;
        // A window no larger than the minimum chunk at the end of the file is one chunk: hash it here.
        const win =
          eof && filled <= this.#chunker.minSize
            ? { data: buf.subarray(0, filled), ends: filled > 0 ? [filled] : [], digests: filled > 0 ? [digestSync(buf.subarray(0, filled))] : [] }
            : await chunking.chunk(buf.subarray(0, filled), eof, true);
        const data = win.data;
        // (A buffer moved to a worker and back is the same memory under a new object.)
        if (pooled) held = data.buffer;
        let prevEnd = 0;
        const pending: Array<Promise<void>> = [];
        for (let i = 0; i < win.ends.length; i++) {
          const end = win.ends[i];
          const cid = cidFromSha256(RAW_CODE, win.digests[i]);
          const bytes = data.subarray(prevEnd, end);
          chunks.push({ cid, size: bytes.length });
          pending.push(this.#store(cid, bytes));
          prevEnd = end;
        }
        await Promise.all(pending);
        size += prevEnd;
        tail = data.subarray(prevEnd);
        progress?.advance(readNow);
        // A small file's window is stored (stores copy or write out what they are given): free it now. A window
        // that ended at a boundary before the end of the file leaves an empty tail, which must not be a view of the
        // freed buffer: copying from a detached buffer throws, even nothing.
        if (!pooled && tail.length === 0) {
          discard(data);
          tail = new Uint8Array(0);
        }
        if (eof && tail.length > 0) throw new Error('chunker left a tail at end of file');
      }
    } finally {
      await reader.close();
      if (held) this.#pool.give(held);
    }
    return { chunks, size, durable: Promise.resolve() };
  }

  /** Store a chunk unless it is already stored; counts new vs deduplicated. */
  async #store(cid: CID, bytes: Uint8Array): Promise<void> {
    // The CID's bytes as a latin1 string: cheaper than its base32 form, and a flat string (base32 is built by
    // concatenation, a chain of dozens of small strings that the set of known chunks would keep for every chunk).
    const key = String.fromCharCode.apply(null, cid.bytes as unknown as number[]);
    if (this.#known.has(key)) {
      this.stats.chunksDedup++;
      return;
    }
    let p = this.#inflight.get(key);
    if (p) {
      await p;
      this.stats.chunksDedup++;
      return;
    }
    const store = this.#p.store;
    // The store gets a CID object of its own: what a store caches on it (its printed form) then goes with it once
    // the block is stored, instead of living on with the manifest entry that keeps `cid` until its directory is
    // written (by then old enough to be garbage only a full collection frees).
    const given = CID.createV1(cid.code, cid.multihash);
    p = (async () => {
      if (await store.has(given)) return false;
      await store.put(given, bytes);
      return true;
    })();
    this.#inflight.set(key, p);
    try {
      const isNew = await p;
      this.#known.add(key);
      if (isNew) {
        this.stats.chunksNew++;
        this.stats.bytesNew += bytes.length;
      } else this.stats.chunksDedup++;
    } finally {
      this.#inflight.delete(key);
    }
  }
}

async function countChunks(store: Blockstore, refs: ChunkRefs): Promise<number> {
  let n = 0;
  for await (const _ of readChunkRefs(store, refs, 'the parent snapshot')) n++;
  return n;
}

/** Deep equality of manifest values (numbers, bigints, strings, bytes, CIDs, arrays, plain objects). */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === 'bigint' || typeof b === 'bigint') return (typeof a === 'bigint' || typeof a === 'number') && (typeof b === 'bigint' || typeof b === 'number') && BigInt(a) === BigInt(b);
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Uint8Array || b instanceof Uint8Array) return a instanceof Uint8Array && b instanceof Uint8Array && equalBytes(a, b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => sameValue(x, bb[i]));
  }
  const ca = a instanceof CID ? a : CID.asCID(a);
  if (ca) return CID.asCID(b)?.equals(ca) ?? false;
  const ka = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** Same name, mode, owner and mtime. */
function sameMeta(e: DirEntry, base: Omit<DirEntry, 'k'>): boolean {
  return e.m === base.m && e.u === base.u && e.g === base.g && e.t[0] === base.t[0] && e.t[1] === base.t[1] && equalBytes(e.n, base.n);
}

function safeInt(n: bigint): number | bigint {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

function unchanged(prev: DirEntry, st: SourceStat, t: Time, x: [number | bigint, number, number]): boolean {
  if (prev.k !== 'f' || prev.s !== st.size || prev.m !== st.mode || !prev.x) return false;
  const ino = prev.x[0];
  return (
    prev.t[0] === t[0] &&
    prev.t[1] === t[1] &&
    (ino === x[0] || (typeof ino !== typeof x[0] && BigInt(ino) === BigInt(x[0]))) &&
    prev.x[1] === x[1] &&
    prev.x[2] === x[2]
  );
}

/** A time as [seconds, nanoseconds]: as the source gave it, else from nanoseconds. */
function timeOf(given: readonly [number, number] | undefined, ns: bigint): Time {
  return given ? [given[0], given[1]] : nsToTime(ns);
}

/** A file read and its chunks handed to the store: `durable` settles once every chunk is stored. */
interface Ingested {
  chunks: Chunk[];
  size: number;
  durable: Promise<void>;
}

interface Slab {
  buffer: ArrayBuffer;
  used: number;
  /** Views handed out and not given back yet. */
  refs: number;
}

/** Space for one small file: in a shared slab, or (larger files) a buffer of its own. */
interface SlabSpace {
  bytes: Uint8Array;
  slab: Slab | null;
}

/**
 * Bump allocation of small files' buffers in shared slabs: one allocation for many files instead of one each
 * (each a zero-filled allocation, external memory the garbage collector tracks, and a free). A slab is reused once
 * every file in it gave its space back, that is once its blocks were stored.
 */
class Slabs {
  #current: Slab | undefined;
  readonly #free: ArrayBuffer[] = [];

  constructor(
    readonly slabBytes: number,
    /** Most free slabs kept for reuse. */
    readonly keep: number,
  ) {}

  take(length: number): SlabSpace {
    if (length > this.slabBytes / 8) return { bytes: new Uint8Array(length), slab: null };
    let slab = this.#current;
    if (slab === undefined || slab.used + length > this.slabBytes) {
      if (slab !== undefined) this.#retire(slab);
      slab = { buffer: this.#free.pop() ?? new ArrayBuffer(this.slabBytes), used: 0, refs: 0 };
      this.#current = slab;
    }
    const bytes = new Uint8Array(slab.buffer, slab.used, length);
    // Keep every file's space 8-byte aligned.
    slab.used += (length + 7) & ~7;
    slab.refs++;
    return { bytes, slab };
  }

  give(space: SlabSpace): void {
    const slab = space.slab;
    if (slab === null) return;
    slab.refs--;
    if (slab.refs === 0 && slab !== this.#current) this.#retire(slab);
  }

  /** A slab no longer bump-allocated from: reusable once nothing in it is in use. */
  #retire(slab: Slab): void {
    if (slab === this.#current) this.#current = undefined;
    if (slab.refs === 0 && this.#free.length < this.keep) this.#free.push(slab.buffer);
  }
}

/**
 * Reusable window buffers of one capacity, shared memory where the platform has it: a worker then reads a window
 * where it lies instead of it being moved to the worker and back. A moved (transferred) buffer arrives as a new
 * external allocation each time, and tens of MiB of those made V8 run a full collection every few windows.
 * A window's contents are stale when taken.
 */
class WindowPool {
  readonly #free: ArrayBufferLike[] = [];
  readonly #shared = typeof SharedArrayBuffer === 'function';

  constructor(
    readonly capacity: number,
    /** Most free buffers kept; more are left to the garbage collector. */
    readonly keep: number,
  ) {}

  take(length: number): Uint8Array {
    if (length > this.capacity) throw new RangeError(`asked for ${length} bytes from a pool of ${this.capacity}-byte buffers`);
    const buffer = this.#free.pop() ?? (this.#shared ? new SharedArrayBuffer(this.capacity) : new ArrayBuffer(this.capacity));
    return new Uint8Array(buffer, 0, length);
  }

  /** Return a buffer; one of another size, or detached (transferred away), is ignored. */
  give(buffer: ArrayBufferLike): void {
    if (buffer.byteLength === this.capacity && this.#free.length < this.keep && !this.#free.includes(buffer)) this.#free.push(buffer);
  }
}
