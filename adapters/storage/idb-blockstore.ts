/**
 * Block store for browser keepers, on IndexedDB through idb-keyval. One object store (`createStore(db, store)`)
 * holds blocks as Uint8Array values under their CID strings. IndexedDB's structured clone copies values on write
 * and on read, so stored bytes never alias the caller's. `putMany` writes batches of up to `batchSize` blocks, one
 * transaction each (a completed transaction is as durable as the browser makes it), cutting a batch short rather
 * than waiting on a slow source, and yields a batch's CIDs after it commits. Give every store its own database
 * name: idb-keyval creates the object store only when it creates the database.
 */
import { createStore, setMany, type UseStore } from 'idb-keyval';
import { CID } from 'multiformats/cid';
import type { AbortOptions } from '../../core/ports.ts';
import { BlockNotFoundError, StorageFullError, type Blockstore, type Pair } from '../../core/blocks/blockstore.ts';
import { isQuotaExceeded, settle, typed, type TypedUseStore } from './idb-types.ts';
import { readyBatches, StoreClosedError, throwIfAborted } from './support.ts';

export interface IdbBlockstoreOptions {
  /** Blocks per transaction in `putMany`. Default 64. */
  batchSize?: number;
}

export class IdbBlockstore implements Blockstore {
  readonly dbName: string;
  readonly storeName: string;
  readonly #raw: UseStore;
  readonly #store: TypedUseStore;
  readonly #batchSize: number;
  #closed = false;

  constructor(dbName: string, storeName = 'blocks', options: IdbBlockstoreOptions = {}) {
    this.dbName = dbName;
    this.storeName = storeName;
    this.#raw = createStore(dbName, storeName);
    this.#store = typed(this.#raw);
    this.#batchSize = options.batchSize ?? 64;
  }

  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<CID> {
    this.#check();
    throwIfAborted(options);
    const key = cid.toString();
    const value = copy(bytes); // now, not when the transaction gets to it
    // Read-check-write in one transaction: an existing block is left as it is (idempotent, no rewrite).
    await this.#full(
      this.#store('readwrite', (s) => {
        const req = s.getKey(key);
        req.onsuccess = () => {
          if (req.result === undefined) s.put(value, key);
        };
        return settle(s.transaction);
      }),
      bytes.byteLength,
    );
    return cid;
  }

  async *putMany(source: Iterable<Pair> | AsyncIterable<Pair>, options?: AbortOptions): AsyncIterable<CID> {
    this.#check();
    for await (const batch of readyBatches(source, this.#batchSize)) {
      throwIfAborted(options);
      this.#check();
      await this.#full(
        setMany(
          batch.map(({ cid, bytes }): [string, Uint8Array] => [cid.toString(), copy(bytes)]),
          this.#raw,
        ),
        batch.reduce((n, b) => n + b.bytes.byteLength, 0),
      );
      for (const { cid } of batch) yield cid;
    }
  }

  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    this.#check();
    throwIfAborted(options);
    const value = await this.#store('readonly', (s) => settle(s.get(cid.toString())));
    if (!(value instanceof Uint8Array)) throw new BlockNotFoundError(cid);
    return value;
  }

  async has(cid: CID, options?: AbortOptions): Promise<boolean> {
    this.#check();
    throwIfAborted(options);
    const key = await this.#store('readonly', (s) => settle(s.getKey(cid.toString())));
    return key !== undefined;
  }

  async delete(cid: CID, options?: AbortOptions): Promise<void> {
    this.#check();
    throwIfAborted(options);
    await this.#store('readwrite', (s) => {
      s.delete(cid.toString());
      return settle(s.transaction);
    });
  }

  async *keys(options?: AbortOptions): AsyncIterable<CID> {
    this.#check();
    const all = await this.#store('readonly', (s) => settle(s.getAllKeys()));
    for (const key of all) {
      throwIfAborted(options);
      if (typeof key !== 'string') continue;
      try {
        yield CID.parse(key);
      } catch {
        // A foreign key in our object store: not a block.
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // idb-keyval has no close; reach the connection through a transaction and close it (pending ones finish).
    await this.#store('readonly', (s) => s.transaction.db.close());
  }

  /** IndexedDB's quota error becomes StorageFullError, like a full disk under FsBlockstore. */
  async #full<T>(op: Promise<T>, bytes: number): Promise<T> {
    try {
      return await op;
    } catch (cause) {
      if (isQuotaExceeded(cause)) {
        throw new StorageFullError(`IndexedDB quota exceeded in ${this.dbName}/${this.storeName}: could not write ${bytes} bytes of blocks`, { cause });
      }
      throw cause;
    }
  }

  #check(): void {
    if (this.#closed) throw new StoreClosedError(`IndexedDB block store ${this.dbName}/${this.storeName}`);
  }
}

/**
 * A plain Uint8Array holding exactly these bytes. Structured clone of a view copies its whole underlying buffer
 * (a pooled Node Buffer would drag 8 KiB along), and Buffer#slice does not copy at all.
 */
function copy(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}
