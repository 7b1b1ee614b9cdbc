/**
 * A Box's small durable key-value state (the KvStore port) as one file per key.
 *
 * Layout under the store's directory:
 *   data/<name>   one entry; `<name>` encodes the key (see `fileNameOf`)
 *   tmp/          in-flight writes; cleared by `open()`
 *   batch.wal     a committed batch not yet fully applied; replayed by `open()`
 *
 * File names. A key is any JS string (UTF-16 code units, lone surrogates included). Its file name is 'k' followed
 * by the key with every code unit outside [a-z0-9._-] escaped as %xx (below 0x100) or %uxxxx: no '/', no NUL, no
 * leading '.', and distinct keys stay distinct even on case-insensitive file systems ('A' is %41). A name that
 * would pass 200 bytes becomes 'h' + sha256 of the key instead. Each file starts with a header holding the key
 * itself, so a hashed name still lists under its key and a name that does not round-trip is recognised as foreign.
 *
 * Atomicity. `put` writes a temp file, fsyncs it, renames it over the entry and fsyncs data/: after a crash the key
 * holds its old or its new value. `batch` first commits a write-ahead log (encoded ops + sha256, written to tmp/,
 * fsynced, renamed to batch.wal, directory fsynced), then applies the ops the same way, fsyncs, and deletes the
 * log. A crash before the rename leaves none of the batch; after it, `open()` replays the whole log (applying is
 * idempotent). If applying fails in a running process (a full disk), the store refuses every further operation
 * with KvRecoveryNeededError until it is reopened, so no later write can be undone by the replay. Writes are serialised; reads wait for writes issued before them, so a read sees every write that
 * resolved before it was issued and never a batch half applied.
 *
 * One process should own a directory at a time.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import type { KvOp, KvStore } from '../../core/kv.ts';
import type { AbortOptions } from '../../core/ports.ts';
import { StorageFullError } from '../../core/blocks/blockstore.ts';
import { ReserveError } from '../../core/errors.ts';
import { forEachLimit, isNoSpace, isNotFound, KvFormatError, StoreClosedError, throwIfAborted } from './support.ts';

/**
 * A batch passed its commit point but could not be applied (for instance the disk filled up). Its log is on disk;
 * the store refuses further operations until it is reopened, which finishes the batch.
 */
export class KvRecoveryNeededError extends ReserveError {
  static override readonly name = 'KvRecoveryNeededError';
  constructor(dir: string, cause: unknown) {
    super(`key-value store ${dir} has a committed batch it could not apply; reopen it to finish the batch`, { cause });
  }
}

export interface FsKvStoreOptions {
  /** fsync files and directories so resolved writes survive power loss. Default true. */
  fsync?: boolean;
}

const DATA_MAGIC = Buffer.from('rkv1');
const WAL_MAGIC = Buffer.from('rkw1');
const WAL_NAME = 'batch.wal';
const MAX_PLAIN_NAME = 200;
const APPLY_CONCURRENCY = 16;
const OP_PUT = 1;
const OP_DELETE = 2;

const HEX = '0123456789abcdef';

/** The file name (under data/) that holds `key`. */
export function fileNameOf(key: string): string {
  let out = 'k';
  for (let i = 0; i < key.length && out.length <= MAX_PLAIN_NAME; i++) {
    const c = key.charCodeAt(i);
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f) out += key[i];
    else if (c < 0x100) out += `%${HEX[c >> 4]}${HEX[c & 15]}`;
    else out += `%u${HEX[c >> 12]}${HEX[(c >> 8) & 15]}${HEX[(c >> 4) & 15]}${HEX[c & 15]}`;
  }
  if (out.length > MAX_PLAIN_NAME) return `h${createHash('sha256').update(keyBytes(key)).digest('hex')}`;
  return out;
}

/** The key a plain ('k...') file name encodes; undefined for hashed names and for names this code never writes. */
export function keyOfFileName(name: string): string | undefined {
  if (!name.startsWith('k')) return undefined;
  let key = '';
  for (let i = 1; i < name.length; ) {
    if (name[i] !== '%') {
      key += name[i];
      i += 1;
      continue;
    }
    const wide = name[i + 1] === 'u';
    const digits = wide ? name.slice(i + 2, i + 6) : name.slice(i + 1, i + 3);
    if (!/^[0-9a-f]+$/.test(digits) || digits.length !== (wide ? 4 : 2)) return undefined;
    key += String.fromCharCode(parseInt(digits, 16));
    i += wide ? 6 : 3;
  }
  return fileNameOf(key) === name ? key : undefined;
}

function keyBytes(key: string): Buffer {
  return Buffer.from(key, 'utf16le');
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** An entry file: magic, key length, key (UTF-16LE), value. */
function encodeEntry(key: string, value: Uint8Array): Buffer {
  const k = keyBytes(key);
  return Buffer.concat([DATA_MAGIC, u32(k.byteLength), k, value]);
}

function decodeEntry(buf: Buffer, where: string): { key: string; value: Uint8Array } {
  if (buf.byteLength < 8 || !buf.subarray(0, 4).equals(DATA_MAGIC)) throw new KvFormatError(`${where} is not a Reserve key-value entry`);
  const klen = buf.readUInt32BE(4);
  if (8 + klen > buf.byteLength || klen % 2 !== 0) throw new KvFormatError(`${where} is a damaged key-value entry (bad key length)`);
  const key = buf.subarray(8, 8 + klen).toString('utf16le');
  const value = new Uint8Array(buf.subarray(8 + klen)); // a copy: never a view into a possibly shared buffer
  return { key, value };
}

/** The write-ahead log of one batch: magic, op count, ops, then sha256 of everything before it. */
export function encodeBatchLog(ops: readonly KvOp[]): Buffer {
  const parts: Buffer[] = [WAL_MAGIC, u32(ops.length)];
  for (const op of ops) {
    const k = keyBytes(op.key);
    parts.push(Buffer.from([op.type === 'put' ? OP_PUT : OP_DELETE]), u32(k.byteLength), k);
    if (op.type === 'put') parts.push(u32(op.value.byteLength), Buffer.from(op.value.buffer, op.value.byteOffset, op.value.byteLength));
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

export function decodeBatchLog(buf: Buffer, where: string): KvOp[] {
  const bad = (why: string): KvFormatError => new KvFormatError(`${where} is a damaged batch log (${why}); refusing to guess which writes it held`);
  if (buf.byteLength < 8 + 32 || !buf.subarray(0, 4).equals(WAL_MAGIC)) throw bad('bad header');
  const body = buf.subarray(0, buf.byteLength - 32);
  if (!createHash('sha256').update(body).digest().equals(buf.subarray(buf.byteLength - 32))) throw bad('checksum mismatch');
  const count = body.readUInt32BE(4);
  const ops: KvOp[] = [];
  let at = 8;
  const need = (n: number): void => {
    if (at + n > body.byteLength) throw bad('truncated op');
  };
  for (let i = 0; i < count; i++) {
    need(5);
    const type = body[at];
    const klen = body.readUInt32BE(at + 1);
    at += 5;
    need(klen);
    const key = body.subarray(at, at + klen).toString('utf16le');
    at += klen;
    if (type === OP_PUT) {
      need(4);
      const vlen = body.readUInt32BE(at);
      at += 4;
      need(vlen);
      ops.push({ type: 'put', key, value: new Uint8Array(body.subarray(at, at + vlen)) });
      at += vlen;
    } else if (type === OP_DELETE) {
      ops.push({ type: 'delete', key });
    } else throw bad(`unknown op type ${type}`);
  }
  if (at !== body.byteLength) throw bad('trailing bytes');
  return ops;
}

/** The last op per key: what applying `ops` in order leaves behind. */
function finalOps(ops: readonly KvOp[]): KvOp[] {
  const last = new Map<string, KvOp>();
  for (const op of ops) {
    last.delete(op.key); // keep insertion order = order of each key's final op
    last.set(op.key, op);
  }
  return [...last.values()];
}

/** The directory-level operations; shared by the store and by `simulateBatchCrash`. */
class KvDisk {
  readonly dataDir: string;
  readonly tmpDir: string;
  readonly walPath: string;
  #counter = 0;
  readonly #prefix = randomBytes(6).toString('hex');

  constructor(
    readonly dir: string,
    readonly fsync: boolean,
  ) {
    this.dataDir = join(dir, 'data');
    this.tmpDir = join(dir, 'tmp');
    this.walPath = join(dir, WAL_NAME);
  }

  tmpPath(): string {
    return join(this.tmpDir, `${this.#prefix}-${(this.#counter++).toString(36)}`);
  }

  async syncDir(dir: string): Promise<void> {
    if (!this.fsync) return;
    const fh = await fsp.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** Write `content` to a temp file and fsync it; returns the temp path. */
  async writeTemp(content: Uint8Array): Promise<string> {
    const tmp = this.tmpPath();
    try {
      const fh = await fsp.open(tmp, 'wx');
      try {
        await fh.writeFile(content);
        if (this.fsync) await fh.datasync();
      } finally {
        await fh.close();
      }
      return tmp;
    } catch (err) {
      await fsp.unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  /** Replace an entry atomically (data/ still to be fsynced by the caller). */
  async writeEntry(key: string, value: Uint8Array): Promise<void> {
    const tmp = await this.writeTemp(encodeEntry(key, value));
    try {
      await fsp.rename(tmp, join(this.dataDir, fileNameOf(key)));
    } catch (err) {
      await fsp.unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  async removeEntry(key: string): Promise<void> {
    try {
      await fsp.unlink(join(this.dataDir, fileNameOf(key)));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async apply(op: KvOp): Promise<void> {
    if (op.type === 'put') await this.writeEntry(op.key, op.value);
    else await this.removeEntry(op.key);
  }

  /** Apply the final op of every key (idempotent), then make it durable. */
  async applyAll(ops: readonly KvOp[]): Promise<void> {
    await forEachLimit(finalOps(ops), APPLY_CONCURRENCY, (op) => this.apply(op));
    await this.syncDir(this.dataDir);
  }

  /**
   * The commit point of a batch: after this resolves the whole batch survives a crash. `onRename` is called just
   * before the log is renamed into place: from then on the batch may be committed even if this rejects.
   */
  async commitLog(ops: readonly KvOp[], onRename: () => void = () => undefined): Promise<void> {
    const tmp = await this.writeTemp(encodeBatchLog(ops));
    onRename();
    try {
      await fsp.rename(tmp, this.walPath);
    } catch (err) {
      await fsp.unlink(tmp).catch(() => undefined);
      throw err;
    }
    await this.syncDir(this.dir);
  }

  async readLog(): Promise<KvOp[] | undefined> {
    let buf: Buffer;
    try {
      buf = await fsp.readFile(this.walPath);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    return decodeBatchLog(buf, this.walPath);
  }

  async removeLog(): Promise<void> {
    try {
      await fsp.unlink(this.walPath);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await this.syncDir(this.dir);
  }
}

export class FsKvStore implements KvStore {
  readonly dir: string;
  readonly #disk: KvDisk;
  #tail: Promise<void> = Promise.resolve();
  #closed = false;
  /** Why the store stopped accepting operations (a committed batch failed to apply), if it did. */
  #broken: unknown;

  private constructor(dir: string, options: FsKvStoreOptions) {
    this.dir = dir;
    this.#disk = new KvDisk(dir, options.fsync ?? true);
  }

  /** Open (creating if needed) the store in `dir`: clears interrupted writes and replays a committed batch. */
  static async open(dir: string, options: FsKvStoreOptions = {}): Promise<FsKvStore> {
    const store = new FsKvStore(dir, options);
    const disk = store.#disk;
    try {
      const created = await fsp.mkdir(dir, { recursive: true });
      await fsp.mkdir(disk.dataDir, { recursive: true });
      await fsp.mkdir(disk.tmpDir, { recursive: true });
      await disk.syncDir(dir);
      if (created !== undefined) await disk.syncDir(join(dir, '..'));
      for (const name of await fsp.readdir(disk.tmpDir)) await fsp.rm(join(disk.tmpDir, name), { recursive: true, force: true });
      const pending = await disk.readLog();
      if (pending !== undefined) {
        await disk.applyAll(pending);
        await disk.removeLog();
      }
    } catch (cause) {
      throw store.#translate(cause, 0);
    }
    return store;
  }

  async get(key: string, options?: AbortOptions): Promise<Uint8Array | undefined> {
    this.#check();
    throwIfAborted(options);
    await this.#tail;
    this.#checkBroken();
    return (await this.#read(fileNameOf(key), key))?.value;
  }

  async put(key: string, value: Uint8Array, options?: AbortOptions): Promise<void> {
    this.#check();
    throwIfAborted(options);
    const copy = new Uint8Array(value); // the caller may reuse its buffer while this waits its turn
    await this.#exclusive(async () => {
      await this.#disk.writeEntry(key, copy);
      await this.#disk.syncDir(this.#disk.dataDir);
    }, copy.byteLength);
  }

  async delete(key: string, options?: AbortOptions): Promise<void> {
    this.#check();
    throwIfAborted(options);
    await this.#exclusive(async () => {
      await this.#disk.removeEntry(key);
      await this.#disk.syncDir(this.#disk.dataDir);
    }, 0);
  }

  async batch(ops: readonly KvOp[], options?: AbortOptions): Promise<void> {
    this.#check();
    throwIfAborted(options);
    const copied = ops.map((op): KvOp => (op.type === 'put' ? { type: 'put', key: op.key, value: new Uint8Array(op.value) } : { ...op }));
    const size = copied.reduce((n, op) => n + (op.type === 'put' ? op.value.byteLength : 0), 0);
    await this.#exclusive(async () => {
      const final = finalOps(copied);
      if (final.length === 0) return;
      if (final.length === 1) {
        // One put or one delete is atomic by itself: no log needed.
        await this.#disk.applyAll(final);
        return;
      }
      let committed = false;
      try {
        await this.#disk.commitLog(final, () => (committed = true));
        await this.#disk.applyAll(final);
        await this.#disk.removeLog();
      } catch (cause) {
        // Past the commit point the log will be replayed by the next open(). Any write accepted meanwhile could
        // be overwritten by that replay, and reads could see the batch half applied: refuse both until reopened.
        if (committed) this.#broken = cause;
        throw cause;
      }
    }, size);
  }

  async *list(prefix: string, options?: AbortOptions): AsyncIterable<[string, Uint8Array]> {
    this.#check();
    throwIfAborted(options);
    await this.#tail;
    this.#checkBroken();
    const found: Array<{ key: string; name: string; value?: Uint8Array }> = [];
    for (const name of await fsp.readdir(this.#disk.dataDir)) {
      throwIfAborted(options);
      const key = keyOfFileName(name);
      if (key !== undefined) {
        if (key.startsWith(prefix)) found.push({ key, name });
      } else if (/^h[0-9a-f]{64}$/.test(name)) {
        // A long key: its name is a hash, the key is in the file.
        const entry = await this.#read(name);
        if (entry !== undefined && entry.key.startsWith(prefix) && fileNameOf(entry.key) === name) found.push({ key: entry.key, name, value: entry.value });
      }
    }
    found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const f of found) {
      throwIfAborted(options);
      const value = f.value ?? (await this.#read(f.name, f.key))?.value;
      if (value !== undefined) yield [f.key, value]; // deleted meanwhile: skip
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#tail;
  }

  #check(): void {
    if (this.#closed) throw new StoreClosedError(`key-value store ${this.dir}`);
    this.#checkBroken();
  }

  #checkBroken(): void {
    if (this.#broken !== undefined) throw new KvRecoveryNeededError(this.dir, this.#broken);
  }

  /** Serialise writes; a failed write does not poison the ones after it. */
  #exclusive(fn: () => Promise<void>, bytes: number): Promise<void> {
    const run = this.#tail
      .then(() => {
        this.#checkBroken(); // queued behind a batch that broke the store
        return fn();
      })
      .catch((cause: unknown) => {
        throw this.#translate(cause, bytes);
      });
    this.#tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  #translate(cause: unknown, bytes: number): unknown {
    if (isNoSpace(cause)) {
      return new StorageFullError(`no space left in ${this.dir}: could not write ${bytes} bytes of key-value state`, { cause });
    }
    return cause;
  }

  async #read(name: string, expectKey?: string): Promise<{ key: string; value: Uint8Array } | undefined> {
    const path = join(this.#disk.dataDir, name);
    let buf: Buffer;
    try {
      buf = await fsp.readFile(path);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
    const entry = decodeEntry(buf, path);
    if (expectKey !== undefined && entry.key !== expectKey) throw new KvFormatError(`${path} holds key ${JSON.stringify(entry.key)}, not ${JSON.stringify(expectKey)}`);
    return entry;
  }
}

/**
 * For crash tests: leave `dir` exactly as a `batch(ops)` would if the process died at `stage` (the store must be
 * closed). 'before-commit': the log was being written to tmp/ and never renamed (half of it is there).
 * 'after-commit': the log is committed and the first `applied` of its (per-key final) ops reached data/.
 */
export async function simulateBatchCrash(
  dir: string,
  ops: readonly KvOp[],
  crash: { stage: 'before-commit' } | { stage: 'after-commit'; applied: number },
): Promise<void> {
  const disk = new KvDisk(dir, false);
  const final = finalOps(ops);
  if (crash.stage === 'before-commit') {
    const log = encodeBatchLog(final);
    await fsp.writeFile(disk.tmpPath(), log.subarray(0, log.byteLength >> 1));
    return;
  }
  await disk.commitLog(final);
  for (const op of final.slice(0, crash.applied)) await disk.apply(op);
}
