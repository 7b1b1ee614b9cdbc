/**
 * The Box's block store on the local file system: small blocks in pack files, large ones one file each.
 *
 * Layout under the store's directory:
 *   packs/<id>.pack, .idx, deleted   blocks smaller than `packBelow` (default 256 KiB, the chunker's minimum: whole
 *                                    small files, file tails, manifest nodes), appended to pack files; see fs-packs.ts
 *   blocks/<xx>/<cid-string>         a larger block, one file named by its CID string
 *   tmp/                             in-flight writes; whatever is left here after a crash is deleted by `open()`
 *   quarantine/                      blocks set aside by `quarantine()` (no longer served, kept for inspection)
 *
 * Why two homes. A file per block costs a create, an fsync, a rename and a directory fsync: about half a
 * millisecond on the development VM, more than writing a 64 KiB block takes. Packing small blocks lets one
 * fdatasync cover every block written before it (group commit), which is what made backups of many small files
 * fast. Large blocks (photos and video, the bulk of the bytes) keep a file each, so deleting one frees its space
 * at once instead of leaving a hole for a pack rewrite to reclaim.
 *
 * Sharding. `<xx>` is the first byte of the CID's multihash *digest*, in hex (256 shard directories). The leading
 * characters of a CID string are the same for every block of a kind ("bafkrei..." is CIDv1 + raw + sha2-256 + 32
 * bytes), so sharding on them would pile everything into one directory; the digest is a uniform hash, so every
 * shard fills at the same rate. All 256 shards are created when the store is opened, so a put never creates a
 * directory.
 *
 * Crash safety. A file block becomes visible only by a rename of a fully written, fsynced temporary file, so at
 * any crash point a name under blocks/ either does not exist or holds the whole block; the shard directory is
 * fsynced after the rename (concurrent puts into one shard share one directory fsync) before the put resolves.
 * A packed block's put resolves after an fdatasync of its pack that began after its record was written, and a pack
 * is recovered after a crash up to its first torn record (fs-packs.ts). Either way: a resolved put (a yielded
 * putMany CID) is durable. `putMany` keeps up to `concurrency` puts in flight and yields CIDs in completion order.
 *
 * Callers must not mutate a buffer handed to `put`/`putMany` until the put resolves or its CID is yielded (the
 * bytes go to disk from the caller's memory without a copy); after that, stored bytes are independent of it.
 * One process should own a store directory at a time: `open()` deletes every file under tmp/, and packs written
 * by another process after this one opened the store are seen only by a later open.
 */
import { randomBytes } from 'node:crypto';
import * as fsCb from 'node:fs';
import * as fsp from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CID } from 'multiformats/cid';
import type { AbortOptions } from '../../core/ports.ts';
import { BlockNotFoundError, StorageFullError, type Blockstore, type Pair } from '../../core/blocks/blockstore.ts';
import { errnoCode, isNoSpace, isNotFound, plainBytes, StoreClosedError, throwIfAborted } from './support.ts';
import { PackSet, packKey, syncDir } from './fs-packs.ts';
import { RAW_CODE } from '../../core/blocks/cid.ts';

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
  /** Blocks smaller than this many bytes go into pack files (default 256 KiB; 0 = every block a file). */
  packBelow?: number;
  /** A pack file is sealed and a new one started once it holds this many bytes (default 16 MiB). */
  packBytes?: number;
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
/** Most block file names `has` keeps listed in memory (about 100 bytes each). */
const SHARD_NAMES_MAX = 65_536;
export const DEFAULT_PACK_BELOW = 256 * 1024;
const DEFAULT_PACK_BYTES = 16 * 1024 * 1024;
/** Packs address records with 32-bit offsets: a pack stays below 2 x this. */
const MAX_PACK_BYTES = 1024 * 1024 * 1024;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Where a block lives relative to the store's directory: blocks/<xx>/<yy>/<cid-string>. */
export function blockPath(cid: CID): string {
  const d = cid.multihash.digest;
  return join('blocks', HEX[d[0] ?? 0], cid.toString());
}

export class FsBlockstore implements Blockstore {
  /** Every read is into a buffer of its own (or a view of one shared only by blocks of the same `readPacked`). */
  readonly handsOverReads = true;
  readonly dir: string;
  readonly #blocksDir: string;
  readonly #tmpDir: string;
  readonly #quarantineDir: string;
  readonly #fsync: boolean;
  readonly #concurrency: number;
  readonly #io: FsBlockstoreIo;
  readonly #packBelow: number;
  readonly #packs: PackSet;
  /** Shard directories known to exist durably (or being created), so each is created and synced once. */
  readonly #dirs = new Map<string, Promise<void>>();
  /** Group commit of directory fsyncs: per directory, the sync that will start next (joined by later renames). */
  readonly #dirSync = new Map<string, { next: Promise<void> | undefined; running: Promise<void> | undefined }>();
  /** Puts in flight, by CID string: a second put of the same block waits for the first. */
  readonly #inflight = new Map<string, Promise<void>>();
  /**
   * Block file names of a shard, listed once, so `has` answers "absent" without a syscall (the common answer in a
   * backup). Kept up to date with this store's own writes and deletes; "present" is always checked on disk. Only
   * while the listings are small (a store with more block files falls back to one access() per call).
   */
  readonly #shardNames = new Map<string, Promise<Set<string> | null>>();
  #shardNamesCount = 0;
  /**
   * Block files per shard directory, for `stat()`: each shard is walked once (count and bytes of its files), then kept
   * current by this store's own writes; a delete or quarantine from a shard sends it back to be walked. `ops` counts
   * the renames and unlinks in flight in a shard and `gen` changes with each one, so a walk that overlapped one is
   * not trusted (it may have counted a file whose tally update was still to come).
   */
  readonly #fileTally = new Map<string, { walked: { blocks: number; bytes: number } | undefined; ops: number; gen: number }>();
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
    const packBelow = options.packBelow ?? DEFAULT_PACK_BELOW;
    const packBytes = options.packBytes ?? DEFAULT_PACK_BYTES;
    // A pack may pass packBytes by its last record: both bounds keep every offset within 32 bits.
    if (!(packBelow >= 0 && packBelow <= MAX_PACK_BYTES && packBytes >= 1 && packBytes <= MAX_PACK_BYTES)) {
      throw new RangeError(`need 0 <= packBelow <= ${MAX_PACK_BYTES} and 1 <= packBytes <= ${MAX_PACK_BYTES}, got ${packBelow} and ${packBytes}`);
    }
    this.#packBelow = packBelow;
    this.#packs = new PackSet({
      dir: join(dir, 'packs'),
      fsync: this.#fsync,
      target: packBytes,
      io: this.#io,
      mapError: (cause, cid, size) => (isNoSpace(cause) ? this.#full(cid, size, cause) : cause),
    });
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
      for (const sub of [this.#blocksDir, this.#tmpDir, this.#quarantineDir, join(this.dir, 'packs')]) await this.#io.mkdir(sub, { recursive: true });
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
    await this.#packs.load();
  }

  /** Where the block `cid` lives (whether or not it is stored). */
  pathOf(cid: CID): string {
    return join(this.dir, blockPath(cid));
  }

  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<CID> {
    this.#check();
    throwIfAborted(options);
    const key = cid.toString();
    for (;;) {
      const running = this.#inflight.get(key);
      if (running === undefined) break;
      await running.catch(() => undefined);
      if (await this.#packs.has(packKey(cid))) return cid;
    }
    const work = this.#put(cid, bytes);
    this.#inflight.set(key, work);
    try {
      await work;
    } finally {
      if (this.#inflight.get(key) === work) this.#inflight.delete(key);
    }
    return cid;
  }

  async #put(cid: CID, bytes: Uint8Array): Promise<void> {
    const key = packKey(cid);
    const e = this.#packs.entry(key);
    if (e) {
      if (e.ready) await e.ready;
      return;
    }
    if (bytes.byteLength < this.#packBelow) {
      // Manifest nodes (dag-cbor) get packs of their own: a snapshot's directories then lie together on disk.
      const entry = this.#packs.append(key, cid, bytes, cid.code === RAW_CODE ? 'data' : 'meta');
      await entry.ready;
      return;
    }
    const dir = await this.#write(cid, bytes);
    if (dir !== undefined && this.#fsync) await this.#syncDirFull(dir, cid, bytes.byteLength);
  }

  async *putMany(source: Iterable<Pair> | AsyncIterable<Pair>, options?: AbortOptions): AsyncIterable<CID> {
    this.#check();
    const iter: Iterator<Pair> | AsyncIterator<Pair> =
      Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
    type Next = { item: IteratorResult<Pair> } | { error: unknown };
    // Up to `concurrency` puts in flight (packed ones share their pack's fdatasync, file ones their shard's
    // directory fsync); each CID is yielded once its put resolved, that is once it is durable.
    const writing = new Set<Promise<void>>();
    const ready: CID[] = [];
    let failure: { error: unknown } | undefined;
    let next: Promise<Next> | undefined;
    let sourceDone = false;
    const startPut = (pair: Pair): void => {
      const p: Promise<void> = this.put(pair.cid, pair.bytes)
        .then(
          () => void ready.push(pair.cid),
          (error: unknown) => void (failure ??= { error }),
        )
        .finally(() => writing.delete(p));
      writing.add(p);
    };
    try {
      for (;;) {
        while (ready.length > 0) yield ready.shift() as CID;
        if (failure !== undefined) break;
        if (sourceDone && writing.size === 0) break;
        if (!sourceDone && next === undefined && writing.size < this.#concurrency) {
          next = Promise.resolve(iter.next()).then(
            (item): Next => ({ item }),
            (error: unknown): Next => ({ error }),
          );
        }
        const waits: Array<Promise<Next | undefined>> = [];
        if (next !== undefined) waits.push(next);
        if (writing.size > 0) waits.push(Promise.race(writing).then(() => undefined));
        const got = waits.length > 0 ? await Promise.race(waits) : undefined;
        if (got !== undefined) {
          next = undefined;
          if ('error' in got) throw got.error;
          if (got.item.done === true) sourceDone = true;
          else {
            throwIfAborted(options);
            this.#check();
            startPut(got.item.value);
          }
        }
      }
      if (failure !== undefined) {
        // Report what did become durable, then the failure.
        await Promise.allSettled([...writing]);
        while (ready.length > 0) yield ready.shift() as CID;
        throw failure.error;
      }
    } finally {
      await Promise.allSettled([...writing]);
      if (!sourceDone && next === undefined) void Promise.resolve(iter.return?.()).catch(() => undefined);
    }
  }

  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    this.#check();
    throwIfAborted(options);
    const packed = await this.#packs.get(packKey(cid));
    if (packed !== undefined) return packed;
    try {
      const path = this.pathOf(cid);
      return plainBytes(await new Promise<Buffer>((resolve, reject) => fsCb.readFile(path, (err, data) => (err ? reject(err) : resolve(data)))));
    } catch (err) {
      if (isNotFound(err)) throw new BlockNotFoundError(cid);
      throw err;
    }
  }

  /**
   * Several blocks, in the order asked, for restores of many small files: the packed ones as `readPacked` reads
   * them, the others as `get` does. The buffers are the caller's (blocks of one read share one: free it only once
   * done with all of them). Unverified, like `get`; a block not stored throws BlockNotFoundError.
   */
  async getBatch(cids: readonly CID[], options?: AbortOptions): Promise<Uint8Array[]> {
    const packed = await this.readPacked(cids, options);
    return Promise.all(packed.map((bytes, i) => bytes ?? this.get(cids[i], options)));
  }

  /**
   * The packed blocks among `cids` (undefined for a block with a file of its own, or not stored), with one read per
   * run of neighbouring records of a pack (PackSet.getMany) instead of one read each: what pushing a snapshot's
   * many small blocks reads. Blocks of one read are views of one buffer. Unverified, like `get`.
   */
  async readPacked(cids: readonly CID[], options?: AbortOptions): Promise<Array<Uint8Array | undefined>> {
    this.#check();
    throwIfAborted(options);
    return this.#packs.getMany(cids.map(packKey));
  }

  /**
   * A block read into `into` when it is shorter than `into` (returns a view of `into`), else into a buffer of its
   * own: a reader that knows about how large its blocks are (a restore, from the manifest) reuses its buffers instead
   * of allocating one per block. A block file is read with one read when it fits (a short read of a regular file
   * is its end). Unverified, like `get`.
   */
  async getInto(cid: CID, into: Uint8Array, options?: AbortOptions): Promise<Uint8Array> {
    this.#check();
    throwIfAborted(options);
    const packed = await this.#packs.get(packKey(cid));
    if (packed !== undefined) return packed;
    const fd = await new Promise<number>((resolve, reject) => fsCb.open(this.pathOf(cid), 'r', (err, fd) => (err ? reject(err) : resolve(fd)))).catch((err: unknown) => {
      throw isNotFound(err) ? new BlockNotFoundError(cid) : err;
    });
    let got = 0;
    try {
      for (;;) {
        const want = into.byteLength - got;
        const n = await new Promise<number>((resolve, reject) => fsCb.read(fd, into, got, want, got, (err, n) => (err ? reject(err) : resolve(n))));
        got += n;
        if (n < want || got === into.byteLength) break;
      }
    } finally {
      fsCb.close(fd, () => undefined);
    }
    return got < into.byteLength ? into.subarray(0, got) : this.get(cid, options);
  }

  async has(cid: CID, options?: AbortOptions): Promise<boolean> {
    this.#check();
    throwIfAborted(options);
    const key = cid.toString();
    const running = this.#inflight.get(key);
    if (running !== undefined) await running.catch(() => undefined);
    if (await this.#packs.has(packKey(cid))) return true;
    const path = this.pathOf(cid);
    const names = await this.#namesOf(dirname(path));
    if (names !== null && !names.has(key)) return false;
    return exists(path);
  }

  #namesOf(shard: string): Promise<Set<string> | null> {
    let p = this.#shardNames.get(shard);
    if (p === undefined) {
      p =
        this.#shardNamesCount >= SHARD_NAMES_MAX
          ? Promise.resolve(null)
          : fsp.readdir(shard).then(
              (names) => {
                this.#shardNamesCount += names.length;
                return new Set(names);
              },
              () => null,
            );
      this.#shardNames.set(shard, p);
    }
    return p;
  }

  /** Keep a listed shard's names current with this store's own changes. */
  #noteName(path: string, present: boolean): void {
    const p = this.#shardNames.get(dirname(path));
    if (p === undefined) return;
    const name = path.slice(dirname(path).length + 1);
    void p.then((names) => {
      if (names === null) return;
      if (present) names.add(name);
      else names.delete(name);
    });
  }

  /** Where a block's bytes are on disk: its own file, or a range of a pack file. Null when it is not stored. */
  async locate(cid: CID): Promise<{ path: string; offset: number; length: number } | null> {
    this.#check();
    const packed = this.#packs.locate(packKey(cid));
    if (packed) return packed;
    try {
      const st = await fsp.lstat(this.pathOf(cid));
      return { path: this.pathOf(cid), offset: 0, length: st.size };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async delete(cid: CID, options?: AbortOptions): Promise<void> {
    this.#check();
    throwIfAborted(options);
    await this.#packs.delete(packKey(cid));
    const path = this.pathOf(cid);
    this.#fileOpBegin(dirname(path));
    try {
      await fsp.unlink(path);
      this.#fileOpEnd(dirname(path), 'removed');
      this.#noteName(path, false);
    } catch (err) {
      this.#fileOpEnd(dirname(path), 'none');
      if (isNotFound(err)) return;
      throw err;
    }
    if (this.#fsync) await this.#syncDir(dirname(path));
  }

  async *keys(options?: AbortOptions): AsyncIterable<CID> {
    this.#check();
    for (const [key, e] of this.#packs.entries()) {
      throwIfAborted(options);
      if (await this.#packs.has(key)) yield e.cid;
    }
    for await (const { cid } of this.#walk(options)) if (this.#packs.entry(packKey(cid)) === undefined) yield cid;
  }

  /**
   * Count and total size of the stored blocks (quarantined ones excluded). Packed blocks are summed from the pack
   * index; block files are walked once per shard and then tallied as this store writes them (a shard where a block
   * was deleted or quarantined is walked again), so asking often costs no directory walk.
   */
  async stat(options?: AbortOptions): Promise<FsBlockstoreStat> {
    this.#check();
    let blocks = 0;
    let bytes = 0;
    for (const [key, e] of this.#packs.entries()) {
      if (e.ready !== undefined && !(await this.#packs.has(key))) continue; // not durable yet: counted once it is
      blocks += 1;
      bytes += e.length;
    }
    for (const xx of await listDirs(this.#blocksDir)) {
      const s = await this.#statShard(xx, options);
      blocks += s.blocks;
      bytes += s.bytes;
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
      const packed = await this.#packs.get(packKey(cid));
      if (packed !== undefined) {
        // Copy the record out (durably), then delete it from its pack.
        const fh = await this.#io.open(to, 'wx');
        try {
          let off = 0;
          while (off < packed.byteLength) off += (await fh.write(packed, off, packed.byteLength - off, off)).bytesWritten;
          if (this.#fsync) await fh.datasync();
        } finally {
          await fh.close();
        }
        if (this.#fsync) await this.#syncDir(this.#quarantineDir);
        await this.#packs.delete(packKey(cid));
        return to;
      }
      this.#fileOpBegin(dirname(from));
      try {
        await this.#io.rename(from, to);
        this.#fileOpEnd(dirname(from), 'removed');
        this.#noteName(from, false);
      } catch (err) {
        this.#fileOpEnd(dirname(from), 'none');
        if (isNotFound(err)) throw new BlockNotFoundError(cid);
        throw err;
      }
      if (this.#fsync) await Promise.all([this.#syncDir(dirname(from)), this.#syncDir(this.#quarantineDir)]);
      return to;
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inflight.values()]);
    await this.#packs.close();
  }

  #check(): void {
    if (this.#closed) throw new StoreClosedError(`block store ${this.dir}`);
  }

  #tallyOf(shard: string): { walked: { blocks: number; bytes: number } | undefined; ops: number; gen: number } {
    let t = this.#fileTally.get(shard);
    if (t === undefined) this.#fileTally.set(shard, (t = { walked: undefined, ops: 0, gen: 0 }));
    return t;
  }

  /** A rename into or out of, or an unlink in, `shard` is starting. */
  #fileOpBegin(shard: string): void {
    const t = this.#tallyOf(shard);
    t.ops++;
    t.gen++;
  }

  /** It ended: a new block file of `added` bytes (kept in the tally), or a file gone (the shard is walked again). */
  #fileOpEnd(shard: string, change: { added: number } | 'removed' | 'none'): void {
    const t = this.#tallyOf(shard);
    t.ops--;
    t.gen++;
    if (change === 'removed') t.walked = undefined;
    else if (change !== 'none' && t.walked) {
      t.walked.blocks += 1;
      t.walked.bytes += change.added;
    }
  }

  /** Count and bytes of one shard's block files: its tally, or a walk of it (kept when nothing changed meanwhile). */
  async #statShard(xx: string, options?: AbortOptions): Promise<{ blocks: number; bytes: number }> {
    const shard = join(this.#blocksDir, xx);
    const t = this.#tallyOf(shard);
    if (t.walked) return { ...t.walked };
    const gen = t.gen;
    const quiet = t.ops === 0;
    let blocks = 0;
    let bytes = 0;
    for await (const { cid, path } of this.#shardFiles(shard, options)) {
      if (this.#packs.entry(packKey(cid)) !== undefined) continue;
      try {
        const st = await fsp.lstat(path);
        blocks += 1;
        bytes += st.size;
      } catch (err) {
        if (!isNotFound(err)) throw err; // deleted while we walked
      }
    }
    if (quiet && t.gen === gen && t.ops === 0) t.walked = { blocks, bytes };
    return { blocks, bytes };
  }

  /**
   * Write one block: temp file, fsync, rename into its shard. Returns the shard directory (still to be fsynced
   * by the caller), or undefined when the block was already stored.
   */
  async #write(cid: CID, bytes: Uint8Array): Promise<string | undefined> {
    const path = this.pathOf(cid);
    const dir = dirname(path);
    const names = await this.#namesOf(dir);
    if ((names === null || names.has(cid.toString())) && (await exists(path))) return undefined;
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
      this.#fileOpBegin(dir);
      try {
        await this.#io.rename(tmp, path);
      } catch (e) {
        this.#fileOpEnd(dir, 'none');
        throw e;
      }
      this.#fileOpEnd(dir, { added: bytes.byteLength });
      this.#noteName(path, true);
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
    await syncDir(dir);
  }

  /**
   * fsync a directory after a rename into it. Renames that complete while a sync of the same directory is running
   * join the next one, which starts when it ends: one fsync covers every rename before it.
   */
  #syncDirGrouped(dir: string): Promise<void> {
    let s = this.#dirSync.get(dir);
    if (!s) {
      s = { next: undefined, running: undefined };
      this.#dirSync.set(dir, s);
    }
    const state = s;
    if (state.next) return state.next;
    const before = state.running;
    const next = (async () => {
      // Always yields first, so `state.next` is set before it is cleared below.
      await before?.catch(() => undefined);
      state.next = undefined; // later renames join the sync after this one
      const run = this.#syncDir(dir);
      state.running = run;
      try {
        await run;
      } finally {
        if (state.running === run) state.running = undefined;
        if (state.next === undefined && state.running === undefined) this.#dirSync.delete(dir);
      }
    })();
    state.next = next;
    return next;
  }

  async #syncDirFull(dir: string, cid: CID, size: number): Promise<void> {
    try {
      await this.#syncDirGrouped(dir);
    } catch (cause) {
      if (isNoSpace(cause)) throw this.#full(cid, size, cause);
      throw cause;
    }
  }

  /** Every stored block file, skipping anything that is not a CID in its right shard (foreign files). */
  async *#walk(options?: AbortOptions): AsyncIterable<{ cid: CID; path: string }> {
    for (const xx of await listDirs(this.#blocksDir)) yield* this.#shardFiles(join(this.#blocksDir, xx), options);
  }

  /** The block files of one shard (none when it does not exist), skipping anything that is not a CID in its right shard. */
  async *#shardFiles(shard: string, options?: AbortOptions): AsyncIterable<{ cid: CID; path: string }> {
    let names: string[];
    try {
      names = await fsp.readdir(shard);
    } catch (err) {
      if (isNotFound(err)) return;
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
