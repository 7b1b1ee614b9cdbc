/** In-memory KvStore for tests and the simulator. Values are copied in and out, so callers cannot alias them. */
import type { KvOp, KvStore } from '../../core/kv.ts';

export class MemoryKvStore implements KvStore {
  readonly #data = new Map<string, Uint8Array>();

  async get(key: string): Promise<Uint8Array | undefined> {
    const v = this.#data.get(key);
    return v === undefined ? undefined : v.slice();
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    this.#data.set(key, value.slice());
  }

  async delete(key: string): Promise<void> {
    this.#data.delete(key);
  }

  async batch(ops: readonly KvOp[]): Promise<void> {
    for (const op of ops) {
      if (op.type === 'put') this.#data.set(op.key, op.value.slice());
      else this.#data.delete(op.key);
    }
  }

  async *list(prefix: string): AsyncIterable<[string, Uint8Array]> {
    const keys = [...this.#data.keys()].filter((k) => k.startsWith(prefix)).sort();
    for (const k of keys) {
      const v = this.#data.get(k);
      if (v !== undefined) yield [k, v.slice()];
    }
  }

  async close(): Promise<void> {}
}
