/**
 * Pack files: FsBlockstore's home for small blocks (whole small files, file tails, manifest nodes).
 *
 * A file per block costs a create, an fsync, a rename and a directory fsync, about half a millisecond on the
 * development VM: more than writing a 64 KiB block takes, and most of a backup of many small files. So blocks below
 * a size threshold are appended to pack files instead, and one fdatasync makes every record written before it
 * durable at once (group commit). Manifest nodes (dag-cbor) and file data (raw) are appended to separate packs, so a
 * snapshot's directories lie together on disk: an incremental backup or a restore walks them with a few
 * sequential reads, not one seek each.
 *
 *   packs/<id>.pack   "RSVPACK1" u32 writer-pid u32 0, then records: "RB" u8 cid-length u8 0 u32 data-length,
 *                     the CID's bytes, the block's bytes (little-endian integers)
 *   packs/<id>.idx    written once a pack is full (sealed): "RSVIDX01" u32 count u32 pack-size, per record u8
 *                     cid-length, CID bytes, u32 data offset, u32 data length; then the sha2-256 of all that
 *   packs/deleted     tombstones, appended: "D" u8 id-length, id, u32 data offset (one deleted record each)
 *
 * Crash safety. Records of one pack are written by a single writer loop, in offset order, so at any moment the
 * completed writes form a prefix of the file; a put resolves only after an fdatasync that started after its write
 * completed. After a crash the durable records are therefore a prefix, and a pack without an index is recovered by
 * reading records from the start, checking each against its CID, up to the first that is torn or wrong. The index
 * is only a shortcut (checksummed, written by temp + fsync + rename); without it, or when it is damaged, the pack
 * is scanned. Writes that fail (a full disk) end their pack: its unacknowledged records fail, later ones go to a
 * new pack.
 *
 * Deleting a packed block appends a tombstone naming its pack and offset (durable before delete resolves); a sealed
 * pack whose live bytes drop below half is rewritten: its live records are appended to the current pack (durable),
 * then the old pack is unlinked. A crash between the two leaves both copies, which is harmless (the same bytes).
 * Tombstones of packs that no longer exist are dropped when the store is opened.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import * as fsCb from 'node:fs';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { RAW_CODE, matchesCid } from '../../core/blocks/cid.ts';
import { PackTruncatedError, isNotFound } from './support.ts';

const PACK_MAGIC = Buffer.from('RSVPACK1', 'latin1');
const IDX_MAGIC = Buffer.from('RSVIDX01', 'latin1');
export const PACK_HEADER = 16;
const REC_HEADER = 8;
/** Largest write the writer loop makes at once (records are coalesced up to this). */
const WRITE_BATCH = 1024 * 1024;
/** Read handles kept open for reads. */
const READ_HANDLES = 64;

export interface PackIo {
  open: typeof fsp.open;
  rename: typeof fsp.rename;
}

/** Where a packed block's bytes are. */
export interface PackLoc {
  pack: Pack;
  offset: number;
  length: number;
}

/**
 * The index's key for a CID: its bytes as a latin1 string (no base32 encoding; 36 characters for a CIDv1 over
 * sha2-256).
 */
export function packKey(cid: CID): string {
  return latin1(cid.bytes);
}

/**
 * Bytes as a latin1 string, read element by element: asking a small typed array for its `.buffer` (as Buffer.from
 * does) moves its bytes off the V8 heap into an ArrayBuffer of their own, about half a KiB of native memory and GC
 * tracking for each CID the index keeps.
 */
function latin1(b: Uint8Array): string {
  return String.fromCharCode.apply(null, b as unknown as number[]);
}

/** A packed block in the index. Its CID is decoded from its bytes only when asked for (most never are). */
export class PackEntry implements PackLoc {
  #cid: CID | undefined;
  /** Until the record is durable: settles when it is (rejects if its write failed). */
  ready?: Promise<void>;
  /** Other copies of the same block (left by an interrupted rewrite); deleted with it. */
  dups?: PackLoc[];

  constructor(
    /** The index's key: the CID's bytes as latin1 (see packKey). Kept instead of the bytes: the index holds the
     * string anyway, and a small typed array per block (with its ArrayBuffer) would be most of an entry's memory. */
    readonly key: string,
    public pack: Pack,
    public offset: number,
    public length: number,
    cid?: CID,
  ) {
    this.#cid = cid;
  }

  /** The CID's bytes (a new buffer each call). */
  get cidBytes(): Uint8Array {
    return Buffer.from(this.key, 'latin1');
  }

  get cid(): CID {
    return (this.#cid ??= CID.decode(this.cidBytes));
  }
}

interface PendingRecord {
  entry: PackEntry;
  key: string;
  bytes: Uint8Array;
  start: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** A read-only descriptor of a pack (plain fd and callbacks: lighter than FileHandle for many small reads). */
class ReadHandle {
  refs = 0;
  closing = false;
  constructor(readonly fd: number) {}
  close(): void {
    fsCb.close(this.fd, () => undefined);
  }
}

export class Pack {
  /** Bytes reserved in the file so far (header included). */
  size = PACK_HEADER;
  /** Data bytes of live records, and of records deleted or superseded. */
  live = 0;
  dead = 0;
  /** Keys of the live records in this pack. */
  readonly keys = new Set<string>();
  sealed: boolean;
  // Writer state (the pack this process appends to).
  fh: FileHandle | undefined;
  readonly queue: PendingRecord[] = [];
  unsynced: PendingRecord[] = [];
  writing = false;
  syncing = false;
  broken: unknown = undefined;
  dirSynced = false;
  reader: ReadHandle | undefined;
  opening: Promise<void> | undefined;
  wbuf: Buffer | undefined;
  /** The writer-side waiters for "everything queued is durable" (used when rotating). */
  idle: Array<() => void> = [];

  constructor(
    readonly id: string,
    readonly path: string,
    sealed: boolean,
  ) {
    this.sealed = sealed;
  }

  get busy(): boolean {
    return this.writing || this.syncing || this.queue.length > 0 || this.unsynced.length > 0;
  }
}

export interface PackSetOptions {
  dir: string;
  fsync: boolean;
  /** A pack is sealed once it holds this many bytes. */
  target: number;
  io: PackIo;
  /** Turns a write error into the error a put reports (e.g. StorageFullError naming the block). */
  mapError: (cause: unknown, cid: CID, size: number) => unknown;
}

/** Every pack of one store directory, the in-memory index of their blocks, and the pack this process appends to. */
export class PackSet {
  readonly #o: PackSetOptions;
  readonly #index = new Map<string, PackEntry>();
  readonly #packs = new Map<string, Pack>();
  /**
   * The packs this process appends to, one per class: manifest nodes ('meta') apart from file data ('data'), so a
   * snapshot's directories lie together on disk and a cold walk of them (an incremental backup, a restore) reads a
   * few contiguous megabytes instead of seeking through the data.
   */
  readonly #active = new Map<PackClass, Pack>();
  readonly #rotated = new Set<Promise<void>>();
  readonly #readers: Pack[] = [];
  #tomb: FileHandle | undefined;
  #tombSize = 0;
  #tombChain: Promise<void> = Promise.resolve();
  /** Deletes and rewrites run one at a time. */
  #maint: Promise<void> = Promise.resolve();
  readonly #prefix = randomBytes(6).toString('hex');
  #counter = 0;

  constructor(o: PackSetOptions) {
    this.#o = o;
  }

  get count(): number {
    return this.#index.size;
  }

  // ---- opening ---------------------------------------------------------------------------------------------

  /** Load every pack: from its index when sealed, else by scanning it; apply tombstones. */
  async load(): Promise<void> {
    const dir = this.#o.dir;
    await fsp.mkdir(dir, { recursive: true });
    const names = await fsp.readdir(dir);
    const have = new Set(names);
    for (const n of names) if (n.endsWith('.tmp')) await fsp.rm(join(dir, n), { force: true });
    const offsets = new Map<Pack, Map<number, string>>();
    // Read the packs' indexes (or scan them) in parallel, then index them in name order (deterministic duplicates).
    const ids = names.filter((n) => n.endsWith('.pack')).sort().map((n) => n.slice(0, -'.pack'.length));
    const loaded = new Array<{ pack: Pack; records: Rec[] } | null>(ids.length).fill(null);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(16, ids.length) }, async () => {
        while (next < ids.length) {
          const i = next++;
          loaded[i] = await this.#readPack(ids[i], have.has(`${ids[i]}.idx`));
        }
      }),
    );
    for (const l of loaded) if (l) this.#addPack(l.pack, l.records, offsets);
    await this.#loadTombstones(offsets);
  }

  /** A pack's records, from its index or by scanning it (null: not a pack, or nothing in it). */
  async #readPack(id: string, hasIdx: boolean): Promise<{ pack: Pack; records: Rec[] } | null> {
    const path = join(this.#o.dir, `${id}.pack`);
    const pack = new Pack(id, path, true);
    let records: Rec[] | null = null;
    if (hasIdx) {
      // The index holds only if the pack has not grown since it was written (nothing appends to a sealed pack,
      // but a second writer that ignored the one-owner rule could have).
      const idx = await this.#readIdx(id);
      const size = await fsp.stat(path).then((s) => s.size, () => -1);
      if (idx && idx.size === size) {
        records = idx.records;
        pack.size = idx.size;
      }
    }
    if (records === null) {
      const scanned = await this.#scan(path);
      if (scanned === null) {
        // No valid header: a pack whose first write never completed, so nothing in it was ever acknowledged.
        // Removed unless it is new enough that a writer may be about to fill it.
        const st = await fsp.stat(path).catch(() => null);
        if (st && !writerAlive(0, path) && Date.now() - st.mtimeMs > 60_000) await fsp.rm(path, { force: true });
        return null;
      }
      records = scanned.records;
      pack.size = scanned.end;
      if (!writerAlive(scanned.pid, path)) {
        // Its writer is gone: cut a torn tail and seal it, so the next open need not scan it (best effort: the
        // index is only a shortcut).
        try {
          if (scanned.end < scanned.size) await fsp.truncate(path, scanned.end);
          await this.#writeIdx(pack, records);
        } catch {
          // scanned again next time
        }
      }
    }
    return { pack, records };
  }

  #addPack(pack: Pack, records: Rec[], offsets: Map<Pack, Map<number, string>>): void {
    this.#packs.set(pack.id, pack);
    const byOffset = new Map<number, string>();
    offsets.set(pack, byOffset);
    for (const r of records) {
      const key = r.key;
      byOffset.set(r.offset, key);
      const had = this.#index.get(key);
      if (had) {
        (had.dups ??= []).push({ pack, offset: r.offset, length: r.length });
        pack.dead += r.length;
        continue;
      }
      this.#index.set(key, new PackEntry(key, pack, r.offset, r.length, r.cid));
      pack.keys.add(key);
      pack.live += r.length;
    }
  }

  async #readIdx(id: string): Promise<{ size: number; records: Rec[] } | null> {
    let buf: Buffer;
    try {
      buf = await fsp.readFile(join(this.#o.dir, `${id}.idx`));
    } catch {
      return null;
    }
    if (buf.length < 16 + 32 || !buf.subarray(0, 8).equals(IDX_MAGIC)) return null;
    const body = buf.subarray(0, buf.length - 32);
    if (!createHash('sha256').update(body).digest().equals(buf.subarray(buf.length - 32))) return null;
    const count = buf.readUInt32LE(8);
    const out: Rec[] = [];
    let p = 16;
    // CIDs stay bytes (checked by the index's checksum); they are decoded only if someone asks for them.
    for (let i = 0; i < count; i++) {
      const n = buf[p];
      if (n === undefined || p + 1 + n + 8 > body.length) return null;
      out.push({ key: buf.toString('latin1', p + 1, p + 1 + n), cidBytes: new Uint8Array(buf.buffer, buf.byteOffset + p + 1, n), offset: buf.readUInt32LE(p + 1 + n), length: buf.readUInt32LE(p + 5 + n) });
      p += 1 + n + 8;
    }
    return p === body.length ? { size: buf.readUInt32LE(12), records: out } : null;
  }

  /** Read a pack's records from the start, each checked against its CID, up to the first torn or wrong one. */
  async #scan(path: string): Promise<{ pid: number; end: number; size: number; records: Rec[] } | null> {
    let fh: FileHandle;
    try {
      fh = await fsp.open(path, 'r');
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
    try {
      const size = (await fh.stat()).size;
      if (size < PACK_HEADER) return null;
      const all = Buffer.allocUnsafe(size);
      let got = 0;
      while (got < size) {
        const { bytesRead } = await fh.read(all, got, size - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const buf = all.subarray(0, got);
      if (!buf.subarray(0, 8).equals(PACK_MAGIC)) return null;
      const pid = buf.readUInt32LE(8);
      const records: Rec[] = [];
      let p = PACK_HEADER;
      while (p + REC_HEADER <= buf.length) {
        if (buf[p] !== 0x52 || buf[p + 1] !== 0x42) break;
        const n = buf[p + 2];
        const len = buf.readUInt32LE(p + 4);
        const dataAt = p + REC_HEADER + n;
        if (dataAt + len > buf.length) break;
        let cid: CID;
        try {
          cid = CID.decode(new Uint8Array(buf.buffer, buf.byteOffset + p + REC_HEADER, n).slice());
        } catch {
          break;
        }
        if (!matchesCid(cid, new Uint8Array(buf.buffer, buf.byteOffset + dataAt, len))) break;
        records.push({ key: packKey(cid), cidBytes: cid.bytes, cid, offset: dataAt, length: len });
        p = dataAt + len;
      }
      return { pid, end: p, size: got, records };
    } finally {
      await fh.close();
    }
  }

  async #writeIdx(pack: Pack, records: Array<{ cidBytes: Uint8Array; offset: number; length: number }>): Promise<void> {
    const parts: Buffer[] = [IDX_MAGIC, Buffer.alloc(8)];
    parts[1].writeUInt32LE(records.length, 0);
    parts[1].writeUInt32LE(pack.size, 4);
    for (const r of records) {
      const b = r.cidBytes;
      const rec = Buffer.allocUnsafe(1 + b.length + 8);
      rec[0] = b.length;
      rec.set(b, 1);
      rec.writeUInt32LE(r.offset, 1 + b.length);
      rec.writeUInt32LE(r.length, 5 + b.length);
      parts.push(rec);
    }
    const body = Buffer.concat(parts);
    const out = Buffer.concat([body, createHash('sha256').update(body).digest()]);
    const final = join(this.#o.dir, `${pack.id}.idx`);
    const tmp = `${final}.tmp`;
    const fh = await this.#o.io.open(tmp, 'w');
    try {
      await writeAll(fh, out, 0);
      if (this.#o.fsync) await fh.datasync();
    } finally {
      await fh.close();
    }
    await this.#o.io.rename(tmp, final);
  }

  async #loadTombstones(offsets: Map<Pack, Map<number, string>>): Promise<void> {
    const path = join(this.#o.dir, 'deleted');
    let buf: Buffer;
    try {
      buf = await fsp.readFile(path);
    } catch (e) {
      if (isNotFound(e)) return;
      throw e;
    }
    let p = 0;
    const keep: Buffer[] = [];
    let stale = false;
    while (p + 2 <= buf.length && buf[p] === 0x44) {
      const n = buf[p + 1];
      if (p + 2 + n + 4 > buf.length) break; // torn tail
      const id = buf.toString('latin1', p + 2, p + 2 + n);
      const offset = buf.readUInt32LE(p + 2 + n);
      const rec = buf.subarray(p, p + 2 + n + 4);
      p += 2 + n + 4;
      const pack = this.#packs.get(id);
      if (!pack) {
        stale = true;
        continue;
      }
      keep.push(rec);
      const key = offsets.get(pack)?.get(offset);
      if (key === undefined) continue;
      const e = this.#index.get(key);
      if (!e) continue;
      if (e.pack === pack && e.offset === offset) {
        // The chosen copy is deleted: another copy (if any) takes over only if it is not deleted too; the
        // remaining tombstones are applied as they come, so promote and let them strike it as well.
        pack.keys.delete(key);
        pack.live -= e.length;
        pack.dead += e.length;
        const next = e.dups?.shift();
        if (next) {
          const promoted = new PackEntry(e.key, next.pack, next.offset, next.length);
          if (e.dups && e.dups.length) promoted.dups = e.dups;
          this.#index.set(key, promoted);
          next.pack.keys.add(key);
          next.pack.live += next.length;
          next.pack.dead -= next.length;
        } else this.#index.delete(key);
      } else if (e.dups) {
        e.dups = e.dups.filter((d) => !(d.pack === pack && d.offset === offset));
        if (e.dups.length === 0) delete e.dups;
      }
    }
    if (stale || p !== buf.length) {
      // Rewrite without tombstones of vanished packs (and without a torn tail).
      const body = Buffer.concat(keep);
      const tmp = `${path}.tmp`;
      const fh = await this.#o.io.open(tmp, 'w');
      try {
        await writeAll(fh, body, 0);
        if (this.#o.fsync) await fh.datasync();
      } finally {
        await fh.close();
      }
      await this.#o.io.rename(tmp, path);
      if (this.#o.fsync) await syncDir(this.#o.dir);
    }
  }

  // ---- lookups ---------------------------------------------------------------------------------------------

  entry(key: string): PackEntry | undefined {
    return this.#index.get(key);
  }

  /** True when the block is packed and durable. */
  async has(key: string): Promise<boolean> {
    const e = this.#index.get(key);
    if (!e) return false;
    if (e.ready) {
      try {
        await e.ready;
      } catch {
        return false;
      }
    }
    return this.#index.get(key) !== undefined;
  }

  /** The block's bytes, or undefined when it is not packed. */
  async get(key: string): Promise<Uint8Array | undefined> {
    for (;;) {
      const e = this.#index.get(key);
      if (!e) return undefined;
      if (e.ready) {
        try {
          await e.ready;
        } catch {
          return undefined;
        }
      }
      const { pack, offset, length } = e;
      const h = await this.#acquire(pack).catch((err: unknown) => {
        if (isNotFound(err)) return undefined; // rewritten and unlinked meanwhile: look again
        throw err;
      });
      if (!h) continue;
      try {
        const out = new Uint8Array(length);
        let got = 0;
        while (got < length) {
          const n = await readAt(h.fd, out, got, length - got, offset + got);
          if (n === 0) throw new PackTruncatedError(pack.path, offset + got);
          got += n;
        }
        return out;
      } finally {
        this.#release(h);
      }
    }
  }

  /** Every packed block (durable or not yet), with its index key. */
  *entries(): Iterable<[string, PackEntry]> {
    yield* [...this.#index.entries()];
  }

  /** Where a packed block is (for tests and tools that look at the bytes on disk). */
  locate(key: string): { path: string; offset: number; length: number } | undefined {
    const e = this.#index.get(key);
    return e ? { path: e.pack.path, offset: e.offset, length: e.length } : undefined;
  }

  async #acquire(pack: Pack): Promise<ReadHandle> {
    for (;;) {
      const h = pack.reader;
      if (h) {
        h.refs++;
        return h;
      }
      pack.opening ??= new Promise<number>((resolve, reject) => fsCb.open(pack.path, 'r', (err, fd) => (err ? reject(err) : resolve(fd)))).then(
        (fd) => {
          pack.opening = undefined;
          pack.reader = new ReadHandle(fd);
          this.#readers.push(pack);
          while (this.#readers.length > READ_HANDLES) this.#dropReader(this.#readers.shift()!);
        },
        (e: unknown) => {
          pack.opening = undefined;
          throw e;
        },
      );
      await pack.opening;
    }
  }

  #dropReader(pack: Pack): void {
    const h = pack.reader;
    if (!h) return;
    pack.reader = undefined;
    h.closing = true;
    if (h.refs === 0) h.close();
  }

  #release(h: ReadHandle): void {
    h.refs--;
    if (h.closing && h.refs === 0) h.close();
  }

  // ---- writing ---------------------------------------------------------------------------------------------

  /** Append a block; resolves once it is durable. The caller has checked it is not stored yet. */
  append(key: string, cid: CID, bytes: Uint8Array, cls: PackClass = 'data'): PackEntry {
    const recLen = REC_HEADER + cid.bytes.length + bytes.byteLength;
    let pack = this.#active.get(cls);
    if (!pack || pack.broken !== undefined || (pack.size > PACK_HEADER && pack.size + recLen > this.#o.target)) pack = this.#rotate(cls);
    const start = pack.size;
    pack.size += recLen;
    let resolve!: () => void;
    let reject!: (e: unknown) => void;
    const ready = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    ready.catch(() => undefined);
    // The index keeps the key, not the CID: a CID object (with its digest, and its string form once printed) costs
    // the index several times as much per block, and the index grows with the store.
    const entry = new PackEntry(key, pack, start + REC_HEADER + cid.bytes.length, bytes.byteLength);
    entry.ready = ready;
    this.#index.set(key, entry);
    pack.keys.add(key);
    pack.live += bytes.byteLength;
    pack.queue.push({ entry, key, bytes, start, resolve, reject });
    void this.#pump(pack);
    return entry;
  }

  #rotate(cls: PackClass): Pack {
    const old = this.#active.get(cls);
    const id = `${this.#prefix}${(this.#counter++).toString(36).padStart(4, '0')}`;
    const pack = new Pack(id, join(this.#o.dir, `${id}.pack`), false);
    this.#packs.set(id, pack);
    this.#active.set(cls, pack);
    WRITING.add(pack.path);
    if (old) {
      const done = this.#finish(old);
      this.#rotated.add(done);
      void done.finally(() => this.#rotated.delete(done));
    }
    return pack;
  }

  /** Wait until everything queued in `pack` is durable, then seal it and close its write handle. */
  async #finish(pack: Pack): Promise<void> {
    if (pack.busy) await new Promise<void>((resolve) => pack.idle.push(resolve));
    WRITING.delete(pack.path);
    if (pack.fh) {
      await pack.fh.close().catch(() => undefined);
      pack.fh = undefined;
    }
    pack.wbuf = undefined;
    if (pack.size <= PACK_HEADER && pack.keys.size === 0 && pack.dead === 0) {
      // Never written to: remove the empty file.
      this.#packs.delete(pack.id);
      await fsp.rm(pack.path, { force: true });
      return;
    }
    const records = [...pack.keys]
      .map((k) => this.#index.get(k))
      .filter((e): e is PackEntry => e !== undefined && e.pack === pack && e.ready === undefined)
      .sort((a, b) => a.offset - b.offset);
    if (pack.broken === undefined) await this.#writeIdx(pack, records).catch(() => undefined);
    pack.sealed = true;
  }

  async #pump(pack: Pack): Promise<void> {
    if (pack.writing) return;
    pack.writing = true;
    try {
      if (!pack.fh && pack.broken === undefined) {
        try {
          pack.fh = await this.#o.io.open(pack.path, 'wx+');
        } catch (e) {
          this.#break(pack, e, pack.queue.splice(0));
          return;
        }
        const head = Buffer.alloc(PACK_HEADER);
        PACK_MAGIC.copy(head, 0);
        head.writeUInt32LE(process.pid >>> 0, 8);
        pack.queue.unshift({ entry: undefined as never, key: '', bytes: head, start: 0, resolve: () => undefined, reject: () => undefined });
      }
      while (pack.queue.length > 0 && pack.broken === undefined) {
        const batch: PendingRecord[] = [];
        let bytes = 0;
        while (pack.queue.length > 0 && (batch.length === 0 || bytes + recordSize(pack.queue[0]) <= WRITE_BATCH)) {
          const r = pack.queue.shift()!;
          batch.push(r);
          bytes += recordSize(r);
        }
        // One write buffer per pack, reused (its writes go one at a time).
        if (!pack.wbuf || pack.wbuf.length < bytes) pack.wbuf = Buffer.allocUnsafe(Math.max(bytes, WRITE_BATCH));
        const buf = pack.wbuf.subarray(0, bytes);
        let p = 0;
        for (const r of batch) {
          if (r.key === '') {
            buf.set(r.bytes, p);
            p += r.bytes.byteLength;
            continue;
          }
          const c = r.key; // the CID's bytes as latin1
          buf[p] = 0x52;
          buf[p + 1] = 0x42;
          buf[p + 2] = c.length;
          buf[p + 3] = 0;
          buf.writeUInt32LE(r.bytes.byteLength, p + 4);
          buf.write(c, p + REC_HEADER, c.length, 'latin1');
          buf.set(r.bytes, p + REC_HEADER + c.length);
          p += recordSize(r);
        }
        let written = 0;
        try {
          while (written < buf.length) written += (await pack.fh!.write(buf, written, buf.length - written, batch[0].start + written)).bytesWritten;
        } catch (e) {
          // Records wholly written before the failure (a short write, then a full disk) can still be kept.
          const base = batch[0].start;
          const whole = batch.filter((r) => r.key !== '' && r.start - base + recordSize(r) <= written);
          const prefix = [...pack.unsynced.splice(0), ...whole];
          let kept = prefix.length > 0;
          if (kept && this.#o.fsync) kept = await pack.fh!.datasync().then(() => true, () => false);
          if (kept) this.#settle(prefix);
          const rest = batch.filter((r) => !whole.includes(r));
          this.#break(pack, e, [...(kept ? rest : [...prefix, ...rest]), ...pack.queue.splice(0)]);
          return;
        }
        for (const r of batch) if (r.key !== '') pack.unsynced.push(r);
        if (!this.#o.fsync) this.#settle(pack.unsynced.splice(0));
        else void this.#syncLoop(pack);
      }
    } finally {
      pack.writing = false;
      this.#maybeIdle(pack);
    }
  }

  async #syncLoop(pack: Pack): Promise<void> {
    if (pack.syncing) return;
    pack.syncing = true;
    try {
      while (pack.unsynced.length > 0 && pack.broken === undefined) {
        const batch = pack.unsynced;
        pack.unsynced = [];
        try {
          if (!pack.dirSynced) {
            await syncDir(this.#o.dir);
            pack.dirSynced = true;
          }
          await pack.fh!.datasync();
        } catch (e) {
          this.#break(pack, e, [...batch, ...pack.unsynced.splice(0), ...pack.queue.splice(0)]);
          return;
        }
        this.#settle(batch);
      }
    } finally {
      pack.syncing = false;
      this.#maybeIdle(pack);
    }
  }

  #settle(batch: PendingRecord[]): void {
    for (const r of batch) {
      r.entry.ready = undefined; // not delete: that would turn every settled entry into a slow dictionary-mode object
      r.resolve();
    }
  }

  /** A write or sync failed: the pack takes no more records, and its records not yet durable fail. */
  #break(pack: Pack, error: unknown, failed: PendingRecord[]): void {
    pack.broken ??= error;
    for (const r of [...failed, ...pack.unsynced.splice(0)]) {
      if (r.key === '') continue;
      if (this.#index.get(r.key) === r.entry) this.#index.delete(r.key);
      pack.keys.delete(r.key);
      pack.live -= r.bytes.byteLength;
      pack.dead += r.bytes.byteLength;
      r.reject(this.#o.mapError(error, r.entry.cid, r.bytes.byteLength));
    }
    for (const [cls, p] of this.#active) if (p === pack) this.#active.delete(cls);
    this.#maybeIdle(pack);
  }

  #maybeIdle(pack: Pack): void {
    if (pack.busy) return;
    for (const w of pack.idle.splice(0)) w();
  }

  // ---- deleting --------------------------------------------------------------------------------------------

  /** Delete a packed block (every copy of it). Returns false when it was not packed. */
  delete(key: string): Promise<boolean> {
    return this.#serial(async () => {
      const e = this.#index.get(key);
      if (!e) return false;
      if (e.ready) await e.ready.catch(() => undefined);
      if (this.#index.get(key) !== e) return false;
      const locs: PackLoc[] = [e, ...(e.dups ?? [])];
      await this.#tombstone(locs);
      this.#index.delete(key);
      e.pack.keys.delete(key);
      e.pack.live -= e.length;
      e.pack.dead += e.length;
      for (const loc of locs) if (loc.pack.sealed && loc.pack.live < loc.pack.dead) await this.#rewrite(loc.pack);
      return true;
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#maint.then(fn);
    this.#maint = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #tombstone(locs: PackLoc[]): Promise<void> {
    const parts = locs.map((l) => {
      const id = Buffer.from(l.pack.id, 'latin1');
      const b = Buffer.allocUnsafe(2 + id.length + 4);
      b[0] = 0x44;
      b[1] = id.length;
      id.copy(b, 2);
      b.writeUInt32LE(l.offset, 2 + id.length);
      return b;
    });
    const buf = Buffer.concat(parts);
    const run = this.#tombChain.then(async () => {
      if (!this.#tomb) {
        const path = join(this.#o.dir, 'deleted');
        this.#tomb = await this.#o.io.open(path, 'a');
        this.#tombSize = (await this.#tomb.stat()).size;
        if (this.#o.fsync) await syncDir(this.#o.dir);
      }
      await writeAll(this.#tomb, buf, this.#tombSize);
      this.#tombSize += buf.length;
      if (this.#o.fsync) await this.#tomb.datasync();
    });
    this.#tombChain = run.catch(() => undefined);
    await run;
  }

  /** Move a sealed pack's live records into the current pack, then remove it. */
  async #rewrite(pack: Pack): Promise<void> {
    if (!this.#packs.has(pack.id)) return;
    const moved: Array<{ e: PackEntry; next: PackEntry }> = [];
    for (const key of [...pack.keys]) {
      const e = this.#index.get(key);
      if (!e || e.pack !== pack) continue;
      const bytes = await this.get(key);
      if (!bytes) continue;
      // Appended under the same key: the index now points at the new copy (the old one is dropped below).
      const next = this.append(key, e.cid, bytes, e.cid.code === RAW_CODE ? 'data' : 'meta');
      if (e.dups) next.dups = e.dups;
      moved.push({ e, next });
    }
    try {
      await Promise.all(moved.map((m) => m.next.ready));
    } catch (err) {
      // Put the old copies back where the new ones failed; keep the pack.
      for (const m of moved) if (this.#index.get(packKey(m.e.cid)) === undefined) this.#index.set(packKey(m.e.cid), m.e);
      throw err;
    }
    this.#packs.delete(pack.id);
    pack.keys.clear();
    this.#dropReader(pack);
    await fsp.rm(join(this.#o.dir, `${pack.id}.idx`), { force: true });
    await fsp.rm(pack.path, { force: true });
    if (this.#o.fsync) await syncDir(this.#o.dir);
    // Other blocks' duplicate locations in the removed pack are gone too.
    for (const e of this.#index.values()) {
      if (e.dups) {
        e.dups = e.dups.filter((d) => d.pack !== pack);
        if (e.dups.length === 0) delete e.dups;
      }
    }
  }

  // ---- closing ---------------------------------------------------------------------------------------------

  /** Wait for every write, seal the current pack, close every handle. */
  async close(): Promise<void> {
    await this.#maint;
    const active = [...this.#active.values()];
    this.#active.clear();
    await Promise.all(active.map((p) => this.#finish(p)));
    await Promise.allSettled([...this.#rotated]);
    for (const pack of this.#packs.values()) this.#dropReader(pack);
    await this.#tombChain;
    await this.#tomb?.close().catch(() => undefined);
    this.#tomb = undefined;
  }

  // ---- batched reads ---------------------------------------------------------------------------------------

  /**
   * Many packed blocks at once, in the order asked (undefined for a key not packed). Records of one pack that lie
   * at most `gap` bytes apart are read with one read of at most `span` bytes: a backup appends a directory's small
   * files side by side, so their restore costs one read per few hundred files instead of one each. The blocks of one
   * read are views of one new buffer, the caller's (to free only once done with all of them). A record not yet
   * durable, or whose pack went away meanwhile (rewritten), is read as `get` reads it.
   */
  async getMany(keys: readonly string[], span = 4 * 1024 * 1024, gap = 64 * 1024): Promise<Array<Uint8Array | undefined>> {
    const out = new Array<Uint8Array | undefined>(keys.length).fill(undefined);
    const alone: number[] = [];
    const placed: Array<{ i: number; pack: Pack; offset: number; length: number }> = [];
    for (let i = 0; i < keys.length; i++) {
      const e = this.#index.get(keys[i]);
      if (!e) continue;
      if (e.ready) alone.push(i);
      else placed.push({ i, pack: e.pack, offset: e.offset, length: e.length });
    }
    placed.sort((a, b) => (a.pack === b.pack ? a.offset - b.offset : a.pack.id < b.pack.id ? -1 : 1));
    const runs: Array<typeof placed> = [];
    for (const p of placed) {
      const run = runs[runs.length - 1];
      const first = run?.[0];
      const last = run?.[run.length - 1];
      if (first && last && first.pack === p.pack && p.offset - (last.offset + last.length) <= gap && p.offset + p.length - first.offset <= span) run.push(p);
      else runs.push([p]);
    }
    const readRun = async (run: typeof placed): Promise<void> => {
      const pack = run[0].pack;
      const h = await this.#acquire(pack).catch((err: unknown) => {
        if (isNotFound(err)) return undefined; // rewritten and unlinked meanwhile
        throw err;
      });
      if (!h) {
        for (const p of run) alone.push(p.i);
        return;
      }
      try {
        const start = run[0].offset;
        const end = run.reduce((m, p) => Math.max(m, p.offset + p.length), start);
        const buf = new Uint8Array(end - start);
        let got = 0;
        while (got < buf.byteLength) {
          const n = await readAt(h.fd, buf, got, buf.byteLength - got, start + got);
          if (n === 0) throw new PackTruncatedError(pack.path, start + got);
          got += n;
        }
        for (const p of run) out[p.i] = buf.subarray(p.offset - start, p.offset - start + p.length);
      } finally {
        this.#release(h);
      }
    };
    await Promise.all(runs.map(readRun));
    await Promise.all(
      alone.map(async (i) => {
        out[i] = await this.get(keys[i]);
      }),
    );
    return out;
  }
}

function recordSize(r: PendingRecord): number {
  return r.key === '' ? r.bytes.byteLength : REC_HEADER + r.key.length + r.bytes.byteLength;
}

function readAt(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => fsCb.read(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

async function writeAll(fh: FileHandle, buf: Uint8Array, position: number): Promise<void> {
  let off = 0;
  while (off < buf.byteLength) {
    const { bytesWritten } = await fh.write(buf, off, buf.byteLength - off, position + off);
    off += bytesWritten;
  }
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Which stream of packs a block goes to: file data, or manifest nodes. */
export type PackClass = 'data' | 'meta';

/** A record as an index or a scan finds it. */
interface Rec {
  key: string;
  cidBytes: Uint8Array;
  cid?: CID;
  offset: number;
  length: number;
}

/** Packs this process is appending to (through any store instance). */
const WRITING = new Set<string>();

/** Whether the pack's writer may still be appending to it: this process, or a process with its pid alive. */
function writerAlive(pid: number, path: string): boolean {
  if (WRITING.has(path)) return true;
  if (pid === 0 || pid === process.pid) return false; // an earlier store of this process, closed without sealing
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
