/**
 * The few IndexedDB shapes the IndexedDB stores use, typed structurally. The project compiles without the DOM
 * library (it would change global types for all Node code), so idb-keyval's `UseStore` callback receives an untyped
 * object store; `typed()` gives it these types back. Also quota-error recognition and a helper to delete a
 * database (tests, "forget this keeper").
 */
import { promisifyRequest, type UseStore } from 'idb-keyval';

export type IdbKey = string | number | ArrayBuffer | ArrayBufferView | IdbKey[];

export interface IdbRequest<T> {
  readonly result: T;
  readonly error: unknown;
  onsuccess: (() => void) | null;
  onerror: (() => void) | null;
}

export interface IdbTransaction {
  readonly db: { close(): void };
  readonly error: unknown;
  abort(): void;
}

export interface IdbKeyRange {
  readonly lower: unknown;
  readonly upper: unknown;
}

export interface IdbObjectStore {
  readonly transaction: IdbTransaction;
  get(key: IdbKey): IdbRequest<unknown>;
  getKey(key: IdbKey): IdbRequest<IdbKey | undefined>;
  put(value: unknown, key: IdbKey): IdbRequest<IdbKey>;
  delete(key: IdbKey): IdbRequest<undefined>;
  getAll(query?: IdbKeyRange | null, count?: number): IdbRequest<unknown[]>;
  getAllKeys(query?: IdbKeyRange | null, count?: number): IdbRequest<IdbKey[]>;
}

interface IdbKeyRangeStatic {
  lowerBound(lower: IdbKey, open?: boolean): IdbKeyRange;
}

interface IdbFactory {
  deleteDatabase(name: string): IdbRequest<undefined> & { onblocked: (() => void) | null };
}

export type TypedUseStore = <T>(mode: 'readonly' | 'readwrite', callback: (store: IdbObjectStore) => T | PromiseLike<T>) => Promise<T>;

/** The same idb-keyval store function, with the object store typed. */
export function typed(store: UseStore): TypedUseStore {
  return store as TypedUseStore;
}

/** Resolve with a request's result (or a transaction's completion), reject with its error. */
export function settle<T>(request: IdbRequest<T>): Promise<T>;
export function settle(transaction: IdbTransaction): Promise<void>;
export function settle(target: IdbRequest<unknown> | IdbTransaction): Promise<unknown> {
  return promisifyRequest(target as Parameters<typeof promisifyRequest>[0]);
}

/** IndexedDB's "out of room" (the origin's quota, or the disk under it). */
export function isQuotaExceeded(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'QuotaExceededError';
}

/** The environment's IDBKeyRange (a browser's, or fake-indexeddb's in tests). */
export function keyRange(): IdbKeyRangeStatic {
  const g = globalThis as unknown as { IDBKeyRange?: IdbKeyRangeStatic };
  if (g.IDBKeyRange === undefined) throw new Error('IndexedDB is not available in this environment (no IDBKeyRange)');
  return g.IDBKeyRange;
}

/** Delete a whole database. Close every store on it first, or this waits for them. */
export function deleteIdbDatabase(name: string): Promise<void> {
  const factory = (globalThis as unknown as { indexedDB?: IdbFactory }).indexedDB;
  if (factory === undefined) return Promise.reject(new Error('IndexedDB is not available in this environment'));
  return new Promise((resolve, reject) => {
    const req = factory.deleteDatabase(name);
    req.onsuccess = () => resolve();
    req.onerror = () => reject(req.error);
  });
}
