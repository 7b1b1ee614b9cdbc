/**
 * In-memory KvStore for tests and the simulator. Values are copied in and out (into plain Uint8Arrays: a Node
 * Buffer's slice() would not copy), so callers cannot alias them. Nothing is durable; `close()` drops the contents.
 */
import type { KvOp, KvStore } from '../../core/kv.ts';
import type { AbortOptions } from '../../core/ports.ts';
import { StoreClosedError, throwIfAborted } from './support.ts';

export class MemoryKvStore implements KvStore {
  #data: Map<string, Uint8Array> | undefined = new Map();

  #open(options?: AbortOptions): Map<string, Uint8Array> {
    if (this.#data === undefined) throw new StoreClosedError('memory key-value store');
    throwIfAborted(options);
    return this.#data;
  }

  async get(key: string, options?: AbortOptions): Promise<Uint8Array | undefined> {
    const v = this.#open(options).get(key);
    return v === undefined ? undefined : new Uint8Array(v);
  }

  async put(key: string, value: Uint8Array, options?: AbortOptions): Promise<void> {
    this.#open(options).set(key, new Uint8Array(value));
  }

  async delete(key: string, options?: AbortOptions): Promise<void> {
    this.#open(options).delete(key);
  }

  async batch(ops: readonly KvOp[], options?: AbortOptions): Promise<void> {
    const data = this.#open(options);
    for (const op of ops) {
      if (op.type === 'put') data.set(op.key, new Uint8Array(op.value));
      else data.delete(op.key);
    }
  }

  async *list(prefix: string, options?: AbortOptions): AsyncIterable<[string, Uint8Array]> {
    const data = this.#open(options);
    const keys = [...data.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (const k of keys) {
      throwIfAborted(options);
      const v = data.get(k);
      if (v !== undefined) yield [k, new Uint8Array(v)];
    }
  }

  async close(): Promise<void> {
    this.#data = undefined;
  }
}
