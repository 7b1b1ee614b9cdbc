/**
 * The KvStore port on IndexedDB (idb-keyval's `createStore(db, store)`), for browser keepers. Keys are the string
 * keys themselves; IndexedDB orders strings by UTF-16 code units, which is exactly the order `list` promises.
 * `batch` is one readwrite transaction, so it applies entirely or not at all. `list` reads in pages (one short
 * read-only transaction each) so a long listing neither holds a transaction open across the caller's awaits nor
 * loads everything at once. Give every store its own database name: idb-keyval creates the object store only
 * when it creates the database.
 */
import { createStore } from 'idb-keyval';
import type { KvOp, KvStore } from '../../core/kv.ts';
import type { AbortOptions } from '../../core/ports.ts';
import { StorageFullError } from '../../core/blocks/blockstore.ts';
import { isQuotaExceeded, keyRange, settle, typed, type TypedUseStore } from './idb-types.ts';
import { StoreClosedError, throwIfAborted } from './support.ts';

const PAGE = 256;

export class IdbKvStore implements KvStore {
  readonly dbName: string;
  readonly storeName: string;
  readonly #store: TypedUseStore;
  #closed = false;

  constructor(dbName: string, storeName = 'kv') {
    this.dbName = dbName;
    this.storeName = storeName;
    this.#store = typed(createStore(dbName, storeName));
  }

  async get(key: string, options?: AbortOptions): Promise<Uint8Array | undefined> {
    this.#check();
    throwIfAborted(options);
    const value = await this.#store('readonly', (s) => settle(s.get(key)));
    return value instanceof Uint8Array ? value : undefined;
  }

  async put(key: string, value: Uint8Array, options?: AbortOptions): Promise<void> {
    await this.batch([{ type: 'put', key, value }], options);
  }

  async delete(key: string, options?: AbortOptions): Promise<void> {
    await this.batch([{ type: 'delete', key }], options);
  }

  async batch(ops: readonly KvOp[], options?: AbortOptions): Promise<void> {
    this.#check();
    throwIfAborted(options);
    if (ops.length === 0) return;
    try {
      await this.#store('readwrite', (s) => {
        for (const op of ops) {
          // A plain copy: structured clone of a view would clone its whole underlying buffer.
          if (op.type === 'put') s.put(new Uint8Array(op.value), op.key);
          else s.delete(op.key);
        }
        return settle(s.transaction);
      });
    } catch (cause) {
      if (!isQuotaExceeded(cause)) throw cause;
      const bytes = ops.reduce((n, op) => n + (op.type === 'put' ? op.value.byteLength : 0), 0);
      throw new StorageFullError(`IndexedDB quota exceeded in ${this.dbName}/${this.storeName}: could not write ${bytes} bytes of key-value state`, { cause });
    }
  }

  async *list(prefix: string, options?: AbortOptions): AsyncIterable<[string, Uint8Array]> {
    this.#check();
    const range = keyRange();
    let from = range.lowerBound(prefix);
    for (;;) {
      throwIfAborted(options);
      const [keys, values] = await this.#store('readonly', (s) => Promise.all([settle(s.getAllKeys(from, PAGE)), settle(s.getAll(from, PAGE))]));
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i];
        // Strings sort after numbers and dates and before binary keys: the first non-match ends the listing.
        if (typeof key !== 'string' || !key.startsWith(prefix)) return;
        const value = values[i];
        if (value instanceof Uint8Array) yield [key, value];
      }
      if (keys.length < PAGE) return;
      from = range.lowerBound(keys[keys.length - 1], true);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#store('readonly', (s) => s.transaction.db.close());
  }

  #check(): void {
    if (this.#closed) throw new StoreClosedError(`IndexedDB key-value store ${this.dbName}/${this.storeName}`);
  }
}
