/**
 * In-memory Blockstore for the simulator and tests. Blocks are keyed by their CID string and copied on the way
 * in and on the way out (into plain Uint8Arrays: a Node Buffer's slice() would not copy), so neither the caller's
 * buffer nor a returned buffer can alias stored bytes. Nothing is durable; `close()` drops the contents.
 */
import type { CID } from 'multiformats/cid';
import type { AbortOptions } from '../../core/ports.ts';
import { BlockNotFoundError, type Blockstore, type Pair } from '../../core/blocks/blockstore.ts';
import { StoreClosedError, throwIfAborted } from './support.ts';

export class MemoryBlockstore implements Blockstore {
  #blocks: Map<string, { cid: CID; bytes: Uint8Array }> | undefined = new Map();

  #open(): Map<string, { cid: CID; bytes: Uint8Array }> {
    if (this.#blocks === undefined) throw new StoreClosedError('memory blockstore');
    return this.#blocks;
  }

  /** Number of blocks held (for tests and simulator metrics). */
  get size(): number {
    return this.#open().size;
  }

  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<CID> {
    throwIfAborted(options);
    const blocks = this.#open();
    const key = cid.toString();
    if (!blocks.has(key)) blocks.set(key, { cid, bytes: new Uint8Array(bytes) });
    return cid;
  }

  async *putMany(source: Iterable<Pair> | AsyncIterable<Pair>, options?: AbortOptions): AsyncIterable<CID> {
    for await (const { cid, bytes } of source) yield await this.put(cid, bytes, options);
  }

  async get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options);
    const found = this.#open().get(cid.toString());
    if (found === undefined) throw new BlockNotFoundError(cid);
    return new Uint8Array(found.bytes);
  }

  async has(cid: CID, options?: AbortOptions): Promise<boolean> {
    throwIfAborted(options);
    return this.#open().has(cid.toString());
  }

  async delete(cid: CID, options?: AbortOptions): Promise<void> {
    throwIfAborted(options);
    this.#open().delete(cid.toString());
  }

  async *keys(options?: AbortOptions): AsyncIterable<CID> {
    // Snapshot first: deleting while iterating must neither skip nor repeat keys.
    const cids = [...this.#open().values()].map((b) => b.cid);
    for (const cid of cids) {
      throwIfAborted(options);
      yield cid;
    }
  }

  async close(): Promise<void> {
    this.#blocks = undefined;
  }
}
