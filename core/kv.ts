/**
 * A Box's small local durable state (event outbox, resume progress, caches) lives behind this key-value port.
 * Keys are '/'-separated strings; values are raw bytes (each user owns its encoding). `put` is atomic: after a
 * crash a key holds either its old or its new value, never a mix. `batch` applies several changes atomically.
 */
import type { AbortOptions } from './ports.ts';

export type KvOp = { type: 'put'; key: string; value: Uint8Array } | { type: 'delete'; key: string };

export interface KvStore {
  get(key: string, options?: AbortOptions): Promise<Uint8Array | undefined>;
  put(key: string, value: Uint8Array, options?: AbortOptions): Promise<void>;
  delete(key: string, options?: AbortOptions): Promise<void>;
  /** All atomically, or none. */
  batch(ops: readonly KvOp[], options?: AbortOptions): Promise<void>;
  /** Entries whose key starts with `prefix`, in ascending key order (UTF-16 code unit order). */
  list(prefix: string, options?: AbortOptions): AsyncIterable<[string, Uint8Array]>;
  close(): Promise<void>;
}
