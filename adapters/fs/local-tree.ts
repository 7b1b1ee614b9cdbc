/**
 * SourceTree and TargetTree over the local file system. Paths are handled as Buffers end to end, so names are the
 * exact bytes the OS gives (no Unicode normalisation, invalid UTF-8 survives). Times use nanosecond lstat.
 */
import { constants as C } from 'node:fs';
import * as fsCb from 'node:fs';
import * as fs from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { StorageFullError } from '../../core/blocks/blockstore.ts';
import { ReserveError } from '../../core/errors.ts';
import type { EntryKind, EntryMeta, FileReader, FileWriter, SourceEntry, SourceStat, SourceTree, TargetTree, TreePath, WholeFile } from '../../core/snapshot/ports.ts';
import { Semaphore, mapLimit } from '../../core/util/limit.ts';
import { Worker } from 'node:worker_threads';
import { bundledSync } from '../../bin/bundle.mjs';
import { ENTRY_FIXED, type Listing, type WalkRequest, type WalkResponse } from './walk-format.ts';
import { type BatchFile, type WriteResponse, batchBytes, packBatch } from './write-format.ts';
import { writeBatch } from './write-worker.ts';

/** Where a launcher leaves the walk worker's bundle (see bin/reserve.mjs). */
export const WALK_WORKER_KEY = Symbol.for('reserve.walkWorkerBundle');
/** Where a launcher leaves the write worker's bundle (see bin/reserve.mjs). */
export const WRITE_WORKER_KEY = Symbol.for('reserve.writeWorkerBundle');
const KINDS: EntryKind[] = ['file', 'dir', 'symlink', 'other'];
const OTHER_KINDS = ['FIFO', 'socket', 'character device', 'block device', 'unknown file type'];

/** The walk worker's young generation (V8 sizes it as three semi-spaces). */
const WALKER_YOUNG_MIB = 3;

/** A listing, or the error it failed with. */
type Listed = { entries: SourceEntry[] } | { error: Error };

/**
 * Directory listings with lstat on a worker thread (walk-worker.ts), one per process, shared by every source tree.
 * Each request also brings back the listings of the directory's subdirectories (one message for a directory and
 * its children). It holds the process open only while a listing is pending.
 */
class Walker {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (r: { self: Listed; children: Map<string, Listing> }) => void; reject: (e: Error) => void }>();
  #next = 1;
  #dead: Error | undefined;

  constructor(script: string) {
    // A young generation of 1 MiB semi-spaces (3 MiB in all): the walker keeps little alive (each entry is written
    // into its listing as its lstat returns), and V8 otherwise grew it to 8 MiB semi-spaces over a long walk.
    this.#worker = new Worker(script, { workerData: { walker: true }, resourceLimits: { maxYoungGenerationSizeMb: WALKER_YOUNG_MIB } });
    this.#worker.unref();
    this.#worker.on('message', (res: WalkResponse) => {
      const p = this.#pending.get(res.id);
      if (!p) return;
      this.#pending.delete(res.id);
      if (this.#pending.size === 0) this.#worker.unref();
      const children = new Map<string, Listing>();
      for (const c of res.children ?? []) children.set(c.name, c.listing);
      p.resolve({ self: listed(res.listing), children });
    });
    const fail = (e: Error): void => {
      this.#dead = e;
      for (const p of this.#pending.values()) p.reject(e);
      this.#pending.clear();
    };
    this.#worker.on('error', fail);
    this.#worker.on('exit', (code) => fail(new Error(`the directory walker exited with code ${code}`)));
  }

  get alive(): boolean {
    return this.#dead === undefined;
  }

  /** `dir` and its subdirectories' listings (as they came, decoded when used), keyed by their names (latin1). */
  list(dir: Buffer): Promise<{ self: Listed; children: Map<string, Listing> }> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, path: dir.toString('latin1'), children: true } satisfies WalkRequest);
    });
  }
}

function listed(l: Listing): Listed {
  return l.ok ? { entries: decodeListing(l.buffer, l.count) } : { error: Object.assign(new Error(l.message), { code: l.code, syscall: l.syscall }) };
}

let walker: Walker | null | undefined;

/** The shared walker, started on first use; null where its script cannot be had (the walk then stays here). */
function getWalker(): Walker | null {
  if (walker === undefined || (walker && !walker.alive)) walker = startWorker(WALK_WORKER_KEY, 'walk-worker', (script) => new Walker(script));
  return walker;
}

/**
 * A worker-backed helper over the script a launcher left under `key` (bin/reserve.mjs), else over a bundle built
 * here (bin/bundle.mjs); null where there is no script or the worker cannot start.
 */
function startWorker<T>(key: symbol, name: string, start: (script: string) => T): T | null {
  try {
    const given = (globalThis as Record<symbol, unknown>)[key];
    const script = typeof given === 'string' ? given : bundledSync(name, `adapters/fs/${name}.ts`, true);
    return script ? start(script) : null;
  } catch {
    return null;
  }
}

/** A write worker's young generation: it keeps nothing alive beyond the batch it is writing. */
const WRITER_YOUNG_MIB = 3;
/**
 * Batches sent to the writer and not answered yet, at most: enough that it always has the next one, few enough that
 * their copies stay few (the batches waiting behind them hold only their blocks, within the restore's budget).
 * Unbounded, every batch read so far was copied and queued: about 60 MiB more peak RSS on the reference set. One
 * writer is enough: two measured no faster.
 */
const QUEUED = 4;
/**
 * Batches' contents go to the writer in reused shared buffers of this size (a restore's batches are at most 1 MiB),
 * not in a new buffer moved with each batch, which is a new allocation every time and freed only when the worker
 * collects garbage.
 */
const SHARED_BYTES = 1024 * 1024;

/**
 * Small whole files written on a worker thread (write-worker.ts), one per process, shared by every target tree. It
 * holds the process open only while a batch is pending; if it dies, its pending batches fail and the next batch
 * starts a new one.
 */
class Writer {
  readonly #script: string;
  #worker: Worker | undefined;
  readonly #pending = new Map<number, { resolve: (r: WriteResponse) => void; reject: (e: Error) => void }>();
  readonly #queued = new Semaphore(QUEUED);
  readonly #free: SharedArrayBuffer[] = [];
  #next = 1;

  constructor(script: string) {
    this.#script = script;
  }

  write(files: ReadonlyArray<BatchFile>): Promise<WriteResponse> {
    return this.#queued.run(() => this.#send(files));
  }

  #send(files: ReadonlyArray<BatchFile>): Promise<WriteResponse> {
    const worker = this.#worker ?? this.#start();
    const id = this.#next++;
    const shared = batchBytes(files) <= SHARED_BYTES ? (this.#free.pop() ?? new SharedArrayBuffer(SHARED_BYTES)) : undefined;
    const { req, transfer } = packBatch(id, files, shared);
    const done = new Promise<WriteResponse>((resolve, reject) => {
      if (this.#pending.size === 0) worker.ref();
      this.#pending.set(id, { resolve, reject });
      worker.postMessage(req, transfer);
    });
    // Reusable once answered (at most one per queued batch); a dead worker may still hold it: left to the collector.
    if (shared) void done.then(() => this.#free.push(shared), () => undefined);
    return done;
  }

  #start(): Worker {
    const worker = new Worker(this.#script, { workerData: { writer: true }, resourceLimits: { maxYoungGenerationSizeMb: WRITER_YOUNG_MIB } });
    worker.unref();
    worker.on('message', (res: WriteResponse) => {
      const p = this.#pending.get(res.id);
      if (!p) return;
      this.#pending.delete(res.id);
      if (this.#pending.size === 0) worker.unref();
      p.resolve(res);
    });
    const fail = (e: Error): void => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      for (const p of this.#pending.values()) p.reject(e);
      this.#pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the file writer exited with code ${code}`)));
    this.#worker = worker;
    return worker;
  }
}

let writer: Writer | null | undefined;

/** The shared writer; null where its script cannot be had (small files are then written on this thread). */
function getWriter(): Writer | null {
  if (writer === undefined) writer = startWorker(WRITE_WORKER_KEY, 'write-worker', (script) => new Writer(script));
  return writer;
}

/**
 * An entry of a listing, read from its buffer: the BigInt facts (times in nanoseconds, device and inode numbers)
 * are made only if asked for; the engine uses the precomputed `mtime`, `ctime` and `inode` instead.
 */
class ListedEntry implements SourceEntry {
  readonly name: Uint8Array;
  readonly kind: EntryKind;
  readonly otherKind?: string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  readonly size: number;
  readonly mtime: readonly [number, number];
  readonly ctime: readonly [number, number];
  readonly inode: number | bigint;
  readonly #view: DataView;
  readonly #at: number;

  constructor(view: DataView, name: Uint8Array, at: number) {
    this.#view = view;
    this.#at = at;
    this.name = name;
    this.kind = KINDS[view.getUint8(at)];
    if (this.kind === 'other') this.otherKind = OTHER_KINDS[view.getUint8(at + 1)];
    this.mode = view.getUint32(at + 2, true);
    this.uid = view.getUint32(at + 6, true);
    this.gid = view.getUint32(at + 10, true);
    this.nlink = view.getUint32(at + 14, true);
    this.size = view.getFloat64(at + 18, true);
    this.mtime = [view.getFloat64(at + 58, true), view.getUint32(at + 66, true)];
    this.ctime = [view.getFloat64(at + 70, true), view.getUint32(at + 78, true)];
    const ino = view.getFloat64(at + 82, true);
    this.inode = ino >= 0 ? ino : view.getBigUint64(at + 50, true);
  }

  get mtimeNs(): bigint {
    return this.#view.getBigInt64(this.#at + 26, true);
  }
  get ctimeNs(): bigint {
    return this.#view.getBigInt64(this.#at + 34, true);
  }
  get dev(): bigint {
    return this.#view.getBigUint64(this.#at + 42, true);
  }
  get ino(): bigint {
    return this.#view.getBigUint64(this.#at + 50, true);
  }
}

function decodeListing(buffer: ArrayBuffer, count: number): SourceEntry[] {
  const view = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  const out: SourceEntry[] = new Array(count);
  let p = 0;
  for (let i = 0; i < count; i++) {
    const n = view.getUint16(p, true);
    out[i] = new ListedEntry(view, bytes.subarray(p + 2, p + 2 + n), p + 2 + n);
    p += ENTRY_FIXED + n;
  }
  return out;
}

export class SourceNotFoundError extends ReserveError {
  static override readonly name = 'SourceNotFoundError';
}

export class TargetNotEmptyError extends ReserveError {
  static override readonly name = 'TargetNotEmptyError';
}

const SLASH = Buffer.from('/');

function join(root: Buffer, path: TreePath): Buffer {
  if (path.length === 0) return root;
  const parts: Buffer[] = [root];
  for (const p of path) parts.push(SLASH, Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  return Buffer.concat(parts);
}

function kindOf(st: BigIntStats): { kind: EntryKind; otherKind?: string } {
  if (st.isFile()) return { kind: 'file' };
  if (st.isDirectory()) return { kind: 'dir' };
  if (st.isSymbolicLink()) return { kind: 'symlink' };
  const otherKind = st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : st.isCharacterDevice() ? 'character device' : st.isBlockDevice() ? 'block device' : 'unknown file type';
  return { kind: 'other', otherKind };
}

function toStat(st: BigIntStats): SourceStat {
  return {
    ...kindOf(st),
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    dev: st.dev,
    ino: st.ino,
    nlink: Number(st.nlink),
  };
}

export class LocalSourceTree implements SourceTree {
  readonly description: string;
  readonly #root: Buffer;
  /**
   * Subdirectory listings that came with their parent's, by path (latin1), until the walk reaches them: kept as the
   * buffers they came in and decoded only then, so the entries of directories waiting their turn are not objects
   * that live long enough to reach V8's old generation.
   */
  readonly #listed = new Map<string, Listing>();

  constructor(root: string) {
    this.description = root;
    this.#root = Buffer.from(root);
  }

  async stat(path: TreePath): Promise<SourceStat> {
    try {
      return toStat(await fs.lstat(join(this.#root, path), { bigint: true }));
    } catch (e) {
      if (path.length === 0 && (e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new SourceNotFoundError(`${this.description} does not exist`);
      }
      throw e;
    }
  }

  async list(path: TreePath): Promise<SourceEntry[]> {
    const dir = join(this.#root, path);
    const walker = getWalker();
    if (walker) {
      // Listed already, with its parent (each listing is used once; a later walk lists again).
      const key = dir.toString('latin1');
      const early = this.#listed.get(key);
      let got: Listed;
      if (early) {
        this.#listed.delete(key);
        got = listed(early);
      } else {
        const r = await walker.list(dir);
        for (const [name, l] of r.children) this.#listed.set(`${key}/${name}`, l);
        got = r.self;
      }
      if ('error' in got) throw got.error;
      return got.entries;
    }
    const names = await cb<Buffer[]>((k) => fsCb.readdir(dir, { encoding: 'buffer' }, k));
    const out = await mapLimit(names, 32, async (name): Promise<SourceEntry | null> => {
      try {
        const st = await cb<BigIntStats>((k) => fsCb.lstat(Buffer.concat([dir, SLASH, name]), { bigint: true }, k as (err: NodeJS.ErrnoException | null, s: BigIntStats) => void));
        return { name: new Uint8Array(name.buffer, name.byteOffset, name.byteLength), ...toStat(st) };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; // vanished between readdir and lstat
        throw e;
      }
    });
    return out.filter((e): e is SourceEntry => e !== null);
  }

  async readlink(path: TreePath): Promise<Uint8Array> {
    const target = await fs.readlink(join(this.#root, path), { encoding: 'buffer' });
    return new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
  }

  async open(path: TreePath): Promise<FileReader> {
    // Plain descriptors and callbacks: lighter than FileHandle promises, which shows over many small files.
    const p = join(this.#root, path);
    const fd = await openFd(p, C.O_RDONLY | (C.O_NOATIME ?? 0)).catch(async (e) => {
      if ((e as NodeJS.ErrnoException).code === 'EPERM') return openFd(p, C.O_RDONLY); // O_NOATIME needs ownership
      throw e;
    });
    return fdReader(fd);
  }
}

/** A callback-style fs call as a promise. */
function cb<T>(call: (done: (err: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, value) => (err ? reject(err) : resolve(value as T))));
}

function openFd(path: Buffer, flags: number, mode?: number): Promise<number> {
  return new Promise((resolve, reject) => fsCb.open(path, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
}

function fdReader(fd: number): FileReader {
  return {
    read: (buf, offset, length, position) =>
      new Promise((resolve, reject) => fsCb.read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)))),
    close: () => new Promise((resolve, reject) => fsCb.close(fd, (err) => (err ? reject(err) : resolve()))),
  };
}

function mapWriteError(e: unknown, where: string): never {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') throw new StorageFullError(`the disk holding ${where} is full`, { cause: e });
  throw e;
}

/** The file a restore in progress keeps in its target's root (removed when the restore completes). */
export const RESTORE_MARKER = '.reserve-restore';
const MARKER_BYTES = Buffer.from(RESTORE_MARKER);
const MARKER_TEMP = `${RESTORE_MARKER}.tmp`;
const S_ISGID = 0o2000;
/** The process umask, read once (files are created with their final mode when it lets them); unknown: all bits. */
const UMASK = (() => {
  try {
    return process.umask();
  } catch {
    return 0o777; // not readable here (a worker thread): always set modes explicitly
  }
})();

interface MarkerFile {
  format: 'reserve-restore';
  version: 1;
  id: string;
}

export class LocalTargetTree implements TargetTree {
  readonly description: string;
  readonly #root: Buffer;
  readonly #asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  readonly #uid = typeof process.geteuid === 'function' ? process.geteuid() : -1;
  readonly #gid = typeof process.getegid === 'function' ? process.getegid() : -1;
  /** The marker found by `prepare` (an interrupted restore), if any. */
  readonly #found: MarkerFile | null;
  #resuming = false;
  #marker = false;
  /** New entries take the root's group (a set-group-id root), so their owner must always be set explicitly. */
  #inheritsGroup = false;

  private constructor(root: string, found: MarkerFile | null) {
    this.description = root;
    this.#root = Buffer.from(root);
    this.#found = found;
  }

  /**
   * A restore target must not exist yet, or be an empty directory (a restore never overwrites anything), or hold an
   * interrupted restore (its marker file, RESTORE_MARKER); `begin` then checks that it is the same restore.
   */
  static async prepare(root: string): Promise<LocalTargetTree> {
    try {
      const st = await fs.lstat(root);
      if (!st.isDirectory()) throw new TargetNotEmptyError(`${root} exists and is not a directory`);
      let names = await fs.readdir(root);
      if (names.length === 1 && names[0] === MARKER_TEMP) {
        // A restore stopped while it wrote its marker, before anything else: the target is as good as empty.
        await fs.rm(join(Buffer.from(root), [Buffer.from(MARKER_TEMP)]), { force: true });
        names = [];
      }
      if (names.length > 0) {
        const marker = names.includes(RESTORE_MARKER) ? await readMarker(join(Buffer.from(root), [MARKER_BYTES])) : null;
        if (!marker) throw new TargetNotEmptyError(`${root} is not empty; restore into a new or empty directory`);
        return new LocalTargetTree(root, marker);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return new LocalTargetTree(root, null);
  }

  /** Start restore `id`, or pick up its interrupted run; a different restore's leftovers are refused. */
  async begin(id: string): Promise<{ resuming: boolean }> {
    const markerPath = join(this.#root, [MARKER_BYTES]);
    if (this.#found) {
      if (this.#found.id !== id) {
        throw new TargetNotEmptyError(
          `${this.description} holds an interrupted restore of ${this.#found.id}; run that restore again to finish it, or restore into a new or empty directory`,
        );
      }
      this.#resuming = true;
      this.#marker = true;
    } else {
      await this.mkdir([]);
      const marker: MarkerFile = { format: 'reserve-restore', version: 1, id };
      try {
        // Whole or absent: written aside, then renamed into place (a stop in between leaves only the temp file,
        // which `prepare` clears).
        const temp = join(this.#root, [Buffer.from(MARKER_TEMP)]);
        const fh = await fs.open(temp, 'w', 0o600);
        try {
          await fh.writeFile(JSON.stringify(marker) + '\n');
          await fh.sync();
        } finally {
          await fh.close();
        }
        await fs.rename(temp, markerPath);
        const dir = await fs.open(this.#root, 'r');
        await dir.sync().catch(() => undefined);
        await dir.close();
      } catch (e) {
        mapWriteError(e, this.description);
      }
      this.#marker = true;
    }
    const st = await fs.lstat(this.#root);
    this.#inheritsGroup = (st.mode & S_ISGID) !== 0;
    return { resuming: this.#resuming };
  }

  async finish(): Promise<void> {
    if (!this.#marker) return;
    await fs.rm(join(this.#root, [MARKER_BYTES]), { force: true });
    this.#marker = false;
  }

  /** An entry of the snapshot's root named like the marker replaces it (that restore is then not resumable). */
  async #claim(path: TreePath): Promise<void> {
    if (this.#marker && path.length === 1 && Buffer.compare(Buffer.from(path[0]), MARKER_BYTES) === 0) await this.finish();
  }

  async mkdir(path: TreePath): Promise<void> {
    await this.#claim(path);
    const p = join(this.#root, path);
    try {
      await fs.mkdir(p, { recursive: path.length === 0, mode: 0o700 });
    } catch (e) {
      if (this.#resuming && (e as NodeJS.ErrnoException).code === 'EEXIST' && (await fs.lstat(p)).isDirectory()) {
        // Left by the interrupted run, perhaps with its final (read-only) mode: writable again until pass 3.
        await fs.chmod(p, 0o700);
        return;
      }
      mapWriteError(e, this.description);
    }
  }

  async create(path: TreePath, _size: number, mode?: number): Promise<FileWriter> {
    await this.#claim(path);
    const where = this.description;
    // Created with its final permission bits when they survive the umask (the descriptor is writable whatever
    // they are), so `finish` need not set them again.
    const createMode = mode === undefined ? 0o600 : mode & 0o777;
    const fd = await openFd(join(this.#root, path), C.O_WRONLY | C.O_CREAT | C.O_EXCL, createMode).catch((e) => mapWriteError(e, where));
    const chown = this.#needsChown.bind(this);
    const created = createMode & ~UMASK;
    const close = () => cb<void>((done) => fsCb.close(fd, done));
    return {
      async write(data, position) {
        let done = 0;
        while (done < data.length) {
          const n = await cb<number>((k) => fsCb.write(fd, data, done, data.length - done, position + done, k)).catch((e) => mapWriteError(e, where));
          done += n;
        }
      },
      close,
      // Owner, mode and times through the open file: no path lookups, and no chown when the owner is already right.
      async finish(meta) {
        try {
          const chowned = chown(meta);
          if (chowned) await cb<void>((k) => fsCb.fchown(fd, meta.uid, meta.gid, k)).catch(() => undefined);
          // After chown, which clears set-id bits; not needed when the file was created with exactly this mode.
          if (chowned || meta.mode !== created) await cb<void>((k) => fsCb.fchmod(fd, meta.mode, k));
          const t = utimeArg(meta.mtimeNs);
          await cb<void>((k) => fsCb.futimes(fd, t, t, k));
        } finally {
          await close();
        }
      },
    };
  }

  /**
   * Small whole files, a batch at once with synchronous calls: on the write worker (write-worker.ts) where there
   * is one, else here. Each file is an open that creates it, a write, a futimes (and an fchmod or fchown only when
   * needed) and a close: far less than the round trips through the libuv pool and the promises that asynchronous
   * calls cost per file, and off the main thread, since the create alone (the kernel's search for a free inode)
   * can cost more than everything else a restore does with the file.
   */
  async writeFiles(files: ReadonlyArray<WholeFile>): Promise<void> {
    const where = this.description;
    const batch: BatchFile[] = [];
    for (const { path, data, meta } of files) {
      if (this.#marker && path.length === 1 && Buffer.compare(Buffer.from(path[0]), MARKER_BYTES) === 0) await this.finish();
      const createMode = meta.mode & 0o777;
      const chown = this.#needsChown(meta);
      batch.push({
        path: join(this.#root, path),
        data,
        createMode,
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        chown,
        // After chown, which clears set-id bits; not needed when the file was created with exactly this mode.
        chmod: chown || meta.mode !== (createMode & ~UMASK),
        time: utimeArg(meta.mtimeNs),
      });
    }
    // Without a worker the same code runs here, one batch at a time.
    const w = getWriter();
    const res = w ? await w.write(batch) : writeBatch(packBatch(0, batch).req);
    if (res.error) mapWriteError(Object.assign(new Error(res.error.message), { code: res.error.code, syscall: res.error.syscall, errno: res.error.errno }), where);
  }

  /** Owners are set only as root, and only when a new entry would not already have them. */
  #needsChown(meta: EntryMeta): boolean {
    return this.#asRoot && (this.#inheritsGroup || meta.uid !== this.#uid || meta.gid !== this.#gid);
  }

  async symlink(path: TreePath, target: Uint8Array): Promise<void> {
    await this.#claim(path);
    await fs.symlink(Buffer.from(target.buffer, target.byteOffset, target.byteLength), join(this.#root, path)).catch((e) => mapWriteError(e, this.description));
  }

  async link(existing: TreePath, path: TreePath): Promise<void> {
    await this.#claim(path);
    await fs.link(join(this.#root, existing), join(this.#root, path)).catch((e) => mapWriteError(e, this.description));
  }

  async setMeta(path: TreePath, meta: EntryMeta): Promise<void> {
    const p = join(this.#root, path);
    const mtime = utimeArg(meta.mtimeNs);
    if (this.#needsChown(meta) || (this.#asRoot && path.length === 0)) await fs.lchown(p, meta.uid, meta.gid).catch(() => undefined);
    if (meta.kind === 'symlink') {
      await fs.lutimes(p, mtime, mtime);
      return;
    }
    await fs.chmod(p, meta.mode);
    await fs.utimes(p, mtime, mtime);
  }

  async stat(path: TreePath): Promise<SourceStat | null> {
    try {
      return toStat(await fs.lstat(join(this.#root, path), { bigint: true }));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async open(path: TreePath): Promise<FileReader> {
    return fdReader(await openFd(join(this.#root, path), C.O_RDONLY));
  }

  async remove(path: TreePath): Promise<void> {
    await fs.rm(join(this.#root, path), { force: true });
  }
}

/**
 * An mtime for utimes. Seconds as a double carry ~0.24 us of precision and libuv truncates toward zero to the
 * microsecond: aim at the middle of the microsecond (below it for negative times) so it lands on the right one.
 * Node turns a negative number of seconds into "now", so pre-1970 times go as a numeric string, which it takes as
 * given. (Sub-microsecond digits are not settable through utimes.)
 */
function utimeArg(mtimeNs: bigint): number | string {
  const us = mtimeNs / 1000n;
  const secs = (Number(us) + (us < 0n ? -0.5 : 0.5)) / 1e6;
  return secs < 0 ? String(secs) : secs;
}

async function readMarker(path: Buffer): Promise<MarkerFile | null> {
  try {
    const m = JSON.parse(await fs.readFile(path, 'utf8')) as MarkerFile;
    return m && m.format === 'reserve-restore' && typeof m.id === 'string' ? m : null;
  } catch {
    return null;
  }
}
