/**
 * The Box's block store: one file per block on the local file system.
 *
 * Layout under the store's directory:
 *   blocks/<xx>/<cid-string>        a stored block, named by its CID string
 *   tmp/                            in-flight writes; whatever is left here after a crash is deleted by `open()`
 *   quarantine/                     blocks set aside by `quarantine()` (no longer served, kept for inspection)
 *
 * Sharding. `<xx>` is the first byte of the CID's multihash *digest*, in hex (256 shard directories). The leading
 * characters of a CID string are the same for every block of a kind ("bafkrei..." is CIDv1 + raw + sha2-256 + 32
 * bytes), so sharding on them would pile everything into one directory; the digest is a uniform hash, so every
 * shard fills at the same rate (about 4,000 entries each at a million blocks, which ext4's hashed directories
 * handle without effort). All 256 shards are created when the store is opened, so a put never creates a
 * directory or syncs a parent: one level was measured to matter, since with 65,536 leaves nearly every put of a
 * young store paid a mkdir and an extra fsync.
 *
 * Crash safety. A block becomes visible only by a rename of a fully written, fsynced temporary file, so at any
 * crash point a name under blocks/ either does not exist or holds the whole block. The shard directory is fsynced
 * after the rename so the name itself survives power loss (a newly created shard directory has its parent synced
 * too). `putMany` keeps up to `concurrency` writes in flight; every `concurrency` finished writes form a batch
 * whose touched shard directories are fsynced once each (while further writes proceed) before the batch's CIDs are
 * yielded: a yielded CID is durable. CIDs come out in completion order, not input order.
 *
 * Callers must not mutate a buffer handed to `put`/`putMany` until the put resolves or its CID is yielded (the
 * bytes go to disk from the caller's memory without a copy); after that, stored bytes are independent of it.
 * One process should own a store directory at a time: `open()` deletes every file under tmp/.
 */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CID } from 'multiformats/cid';
import type { AbortOptions } from '../../core/ports.ts';
import { BlockNotFoundError, StorageFullError, type Blockstore, type Pair } from '../../core/blocks/blockstore.ts';
import { errnoCode, isNoSpace, isNotFound, plainBytes, StoreClosedError, throwIfAborted } from './support.ts';

/** The node:fs/promises calls a fault-injection test may replace (see `FsBlockstoreOptions.fs`). */
export interface FsBlockstoreIo {
  open: typeof fsp.open;
  rename: typeof fsp.rename;
  mkdir: typeof fsp.mkdir;
}

export interface FsBlockstoreOptions {
  /** fsync files and directories so a resolved put survives power loss. Default true; false only for scratch data. */
  fsync?: boolean;
  /** Most block writes `putMany` keeps in flight (each one a libuv pool job). Default 16. */
  concurrency?: number;
  /** Test seam: replacements for some node:fs/promises functions, to inject faults such as ENOSPC. */
  fs?: Partial<FsBlockstoreIo>;
}

export interface FsBlockstoreStat {
  blocks: number;
  bytes: number;
}

/**
 * Writes in flight in putMany. Measured with fs-blockstore.bench.ts on the 2-core development VM (libuv pool of
 * 16): 16 had the best or a within-noise median for 1 MiB and 32 KiB blocks, fresh and warm stores; 4 was clearly
 * slower, 32 no faster.
 */
const DEFAULT_CONCURRENCY = 16;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Where a block lives relative to the store's directory: blocks/<xx>/<yy>/<cid-string>. */
export function blockPath(cid: CID): string {
  const d = cid.multihash.digest;
  return join('blocks', HEX[d[0] ?? 0], cid.toString());
}

export class FsBlockstore implements Blockstore {
  readonly dir: string;
  readonly #blocksDir: string;
  readonly #tmpDir: string;
  readonly #quarantineDir: string;
  readonly #fsync: boolean;
  readonly #concurrency: number;
  readonly #io: FsBlockstoreIo;
  /** Shard directories known to exist durably (or being created), so each is created and synced once. */
  readonly #dirs = new Map<string, Promise<void>>();
  #tmpCounter = 0;
  readonly #tmpPrefix = randomBytes(6).toString('hex');
  #closed = false;

  private constructor(dir: string, options: FsBlockstoreOptions) {
    this.dir = dir;
    this.#blocksDir = join(dir, 'blocks');
    this.#tmpDir = join(dir, 'tmp');
    this.#quarantineDir = join(dir, 'quarantine');
    this.#fsync = options.fsync ?? true;
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
    this.#concurrency = concurrency;
    this.#io = { open: fsp.open, rename: fsp.rename, mkdir: fsp.mkdir, ...options.fs };
  }

  /** Open (creating if needed) the store in `dir`, deleting any write a crash left half done. */
  static async open(dir: string, options: FsBlockstoreOptions = {}): Promise<FsBlockstore> {
    const store = new FsBlockstore(dir, options);
    await store.#init();
    return store;
  }

  async #init(): Promise<void> {
    try {
      const created = await this.#io.mkdir(this.dir, { recursive: true });
      for (const sub of [this.#blocksDir, this.#tmpDir, this.#quarantineDir]) await this.#io.mkdir(sub, { recursive: true });
      const shards = await listDirs(this.#blocksDir);
      if (shards.length < HEX.length) {
        const have = new Set(shards);
        await Promise.all(HEX.filter((h) => !have.has(h)).map((h) => this.#io.mkdir(join(this.#blocksDir, h), { recursive: true })));
        if (this.#fsync) await this.#syncDir(this.#blocksDir);
      }
      if (this.#fsync) {
        await this.#syncDir(this.dir);
        if (created !== undefined) await this.#syncDir(dirname(this.dir));
      }
    } catch (cause) {
      if (isNoSpace(cause)) throw new StorageFullError(`no space left to create the block store in ${this.dir}`, { cause });
      throw cause;
    }
    // Leftovers of writes a crash interrupted: never renamed into blocks/, so never visible; just delete them.
    for (const name of await fsp.readdir(this.#tmpDir)) await fsp.rm(join(this.#tmpDir, name), { recursive: true, force: true });
  }

  /** Where the block `cid` lives (whether or not it is stored). */
  pathOf(cid: CID): string {
    return join(this.dir, blockPath(cid));
  }

  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<CID> {
    this.#check();
    throwIfAborted(options);
    const dir = await this.#write(cid, bytes);
    if (dir !== undefined && this.#fsync) await this.#syncDirFull(dir, cid, bytes.byteLength);
    return cid;
  }

  async *putMany(source: Iterable<Pair> | AsyncIterable<Pair>, options?: AbortOptions): AsyncIterable<CID> {
    this.#check();
    const iter: Iterator<Pair> | AsyncIterator<Pair> =
      Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
    type Next = { item: IteratorResult<Pair> } | { error: unknown };
    // Pipeline: writes (temp file, fsync, rename) -> done -> a flush (fsync of the batch's shard directories)
    // -> ready -> yielded. Writes keep going while a batch is being flushed and while the consumer holds a yield.
    const writing = new Set<Promise<void>>();
    const flushing = new Set<Promise<void>>();
    let done: Array<{ cid: CID; dir: string | undefined; size: number }> = [];
    const ready: CID[] = [];
    let failure: { error: unknown } | undefined;
    let next: Promise<Next> | undefined;
    let sourceDone = false;

    const track = (set: Set<Promise<void>>, work: Promise<void>): void => {
      const p: Promise<void> = work
        .catch((error: unknown) => void (failure ??= { error }))
        .finally(() => set.delete(p));
      set.add(p);
    };
    const startWrite = (pair: Pair): void =>
      track(
        writing,
        this.#write(pair.cid, pair.bytes).then((dir) => void done.push({ cid: pair.cid, dir, size: pair.bytes.byteLength })),
      );
    const startFlush = (): void => {
      const batch = done;
      done = [];
      track(
        flushing,
        (async () => {
          if (this.#fsync) {
            const dirs = new Map<string, { cid: CID; size: number }>();
            for (const b of batch) if (b.dir !== undefined) dirs.set(b.dir, b);
            await Promise.all([...dirs].map(([dir, b]) => this.#syncDirFull(dir, b.cid, b.size)));
          }
          for (const b of batch) ready.push(b.cid);
        })(),
      );
    };

    try {
      for (;;) {
        while (ready.length > 0) yield ready.shift() as CID;
        if (failure !== undefined) break;
        if (sourceDone && writing.size === 0 && flushing.size === 0 && done.length === 0) break;
        if (!sourceDone && next === undefined && writing.size < this.#concurrency) {
          next = Promise.resolve(iter.next()).then(
            (item): Next => ({ item }),
            (error: unknown): Next => ({ error }),
          );
        }
        const waits: Array<Promise<Next | undefined>> = [];
        if (next !== undefined) waits.push(next);
        if (writing.size > 0) waits.push(Promise.race(writing).then(() => undefined));
        if (flushing.size > 0) waits.push(Promise.race(flushing).then(() => undefined));
        const got = waits.length > 0 ? await Promise.race(waits) : undefined;
        if (got !== undefined) {
          next = undefined;
          if ('error' in got) throw got.error;
          if (got.item.done === true) sourceDone = true;
          else {
            throwIfAborted(options);
            this.#check();
            startWrite(got.item.value);
          }
        }
        // A batch is `concurrency` finished writes, or whatever finished when no write is left in flight (the
        // source is slower than the disk, or it ended): finished work never waits on the source.
        if (done.length >= this.#concurrency || (done.length > 0 && writing.size === 0)) startFlush();
      }
      if (failure !== undefined) {
        // Report what did become durable, then the failure.
        await Promise.allSettled([...writing, ...flushing]);
        while (ready.length > 0) yield ready.shift() as CID;
        throw failure.error;
      }
    } finally {
      await Promise.allSettled([...writing, ...flushing]);
      if (!sourceDone && next === undefined) void Promise.resolve(iter.return?.()).catch(() => undefined);
    }
  }

  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    this.#check();
    throwIfAborted(options);
    try {
      return plainBytes(await fsp.readFile(this.pathOf(cid)));
    } catch (err) {
      if (isNotFound(err)) throw new BlockNotFoundError(cid);
      throw err;
    }
  }

  async has(cid: CID, options?: AbortOptions): Promise<boolean> {
    this.#check();
    throwIfAborted(options);
    return exists(this.pathOf(cid));
  }

  async delete(cid: CID, options?: AbortOptions): Promise<void> {
    this.#check();
    throwIfAborted(options);
    const path = this.pathOf(cid);
    try {
      await fsp.unlink(path);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (this.#fsync) await this.#syncDir(dirname(path));
  }

  async *keys(options?: AbortOptions): AsyncIterable<CID> {
    this.#check();
    for await (const { cid } of this.#walk(options)) yield cid;
  }

  /** Count and total size of the stored blocks (quarantined ones excluded). */
  async stat(options?: AbortOptions): Promise<FsBlockstoreStat> {
    this.#check();
    let blocks = 0;
    let bytes = 0;
    for await (const { path } of this.#walk(options)) {
      try {
        const s = await fsp.lstat(path);
        blocks += 1;
        bytes += s.size;
      } catch (err) {
        if (!isNotFound(err)) throw err; // deleted while we walked
      }
    }
    return { blocks, bytes };
  }

  /**
   * Move a block into quarantine/ so it is no longer served (get -> BlockNotFoundError), keeping its bytes for
   * inspection. Returns the path it was moved to; earlier quarantined copies of the same CID are kept.
   */
  async quarantine(cid: CID, options?: AbortOptions): Promise<string> {
    this.#check();
    throwIfAborted(options);
    const from = this.pathOf(cid);
    const base = join(this.#quarantineDir, cid.toString());
    for (let n = 0; ; n++) {
      const to = n === 0 ? base : `${base}.${n}`;
      if (await exists(to)) continue;
      try {
        await this.#io.rename(from, to);
      } catch (err) {
        if (isNotFound(err)) throw new BlockNotFoundError(cid);
        throw err;
      }
      if (this.#fsync) await Promise.all([this.#syncDir(dirname(from)), this.#syncDir(this.#quarantineDir)]);
      return to;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #check(): void {
    if (this.#closed) throw new StoreClosedError(`block store ${this.dir}`);
  }

  /**
   * Write one block: temp file, fsync, rename into its shard. Returns the shard directory (still to be fsynced
   * by the caller), or undefined when the block was already stored.
   */
  async #write(cid: CID, bytes: Uint8Array): Promise<string | undefined> {
    const path = this.pathOf(cid);
    if (await exists(path)) return undefined;
    const dir = dirname(path);
    const tmp = join(this.#tmpDir, `${this.#tmpPrefix}-${(this.#tmpCounter++).toString(36)}`);
    let created = false;
    try {
      const fh = await this.#io.open(tmp, 'wx');
      created = true;
      try {
        let off = 0;
        while (off < bytes.byteLength) {
          const { bytesWritten } = await fh.write(bytes, off, bytes.byteLength - off, off);
          off += bytesWritten;
        }
        if (this.#fsync) await fh.datasync();
      } finally {
        await fh.close();
      }
      await this.#ensureDir(dir);
      await this.#io.rename(tmp, path);
      return dir;
    } catch (cause) {
      if (created) await fsp.unlink(tmp).catch(() => undefined);
      if (isNoSpace(cause)) throw this.#full(cid, bytes.byteLength, cause);
      throw cause;
    }
  }

  #full(cid: CID, size: number, cause: unknown): StorageFullError {
    const why = errnoCode(cause) === 'EDQUOT' ? 'disk quota exceeded' : 'no space left on device';
    return new StorageFullError(`${why} in ${this.dir}: could not write ${size} bytes for block ${cid.toString()}`, { cause });
  }

  /** Create a shard directory once; a newly created directory is made durable by syncing its parents. */
  #ensureDir(dir: string): Promise<void> {
    let p = this.#dirs.get(dir);
    if (p === undefined) {
      p = (async () => {
        const first = await this.#io.mkdir(dir, { recursive: true });
        if (first === undefined || !this.#fsync) return;
        // Every directory from `first` down to `dir` is new: its name lives in its parent.
        const parents: string[] = [];
        for (let d = dir; ; d = dirname(d)) {
          parents.push(dirname(d));
          if (d === first || dirname(d) === d) break;
        }
        for (const parent of parents) await this.#syncDir(parent);
      })();
      this.#dirs.set(dir, p);
      p.catch(() => this.#dirs.delete(dir));
    }
    return p;
  }

  async #syncDir(dir: string): Promise<void> {
    const fh = await fsp.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async #syncDirFull(dir: string, cid: CID, size: number): Promise<void> {
    try {
      await this.#syncDir(dir);
    } catch (cause) {
      if (isNoSpace(cause)) throw this.#full(cid, size, cause);
      throw cause;
    }
  }

  /** Every stored block file, skipping anything that is not a CID in its right shard (foreign files). */
  async *#walk(options?: AbortOptions): AsyncIterable<{ cid: CID; path: string }> {
    for (const xx of await listDirs(this.#blocksDir)) {
      const shard = join(this.#blocksDir, xx);
      let names: string[];
      try {
        names = await fsp.readdir(shard);
      } catch (err) {
        if (isNotFound(err)) continue;
        throw err;
      }
      for (const name of names) {
        throwIfAborted(options);
        let cid: CID;
        try {
          cid = CID.parse(name);
        } catch {
          continue;
        }
        const path = join(shard, name);
        if (this.pathOf(cid) === path) yield { cid, path };
      }
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await fsp.access(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** Names of the two-hex-digit shard directories in `dir`. */
async function listDirs(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await fsp.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
  return entries.filter((e) => e.isDirectory() && /^[0-9a-f]{2}$/.test(e.name)).map((e) => e.name);
}
