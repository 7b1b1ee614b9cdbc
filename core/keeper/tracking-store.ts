/**
 * A Blockstore wrapper that keeps an in-memory set of what is stored, so the keeper can ask "do I hold this?"
 * without a disk round trip, and learns of every block the backup engine or the network writes.
 */
import type { CID } from 'multiformats/cid';
import type { Blockstore, Pair } from '../blocks/blockstore.ts';
import type { AbortOptions } from '../ports.ts';

export class TrackingBlockstore implements Blockstore {
  readonly inner: Blockstore;
  readonly #held = new Set<string>();
  #loaded = false;
  /** Bumped on every change to the held set (lets callers skip work when nothing changed). */
  version = 0;

  constructor(inner: Blockstore) {
    this.inner = inner;
  }

  /** Read the inner store's keys once (at start). */
  async load(): Promise<void> {
    if (this.#loaded) return;
    for await (const cid of this.inner.keys()) this.#held.add(cid.toString());
    this.#loaded = true;
  }

  holds(cid: CID | string): boolean {
    return this.#held.has(typeof cid === 'string' ? cid : cid.toString());
  }

  get count(): number {
    return this.#held.size;
  }

  heldKeys(): IterableIterator<string> {
    return this.#held.values();
  }

  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<CID> {
    const r = await this.inner.put(cid, bytes, options);
    this.#held.add(cid.toString());
    this.version++;
    return r;
  }

  async *putMany(source: Iterable<Pair> | AsyncIterable<Pair>, options?: AbortOptions): AsyncIterable<CID> {
    for await (const cid of this.inner.putMany(source, options)) {
      this.#held.add(cid.toString());
      this.version++;
      yield cid;
    }
  }

  get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    return this.inner.get(cid, options);
  }

  async has(cid: CID, options?: AbortOptions): Promise<boolean> {
    if (this.#loaded) return this.#held.has(cid.toString());
    return this.inner.has(cid, options);
  }

  async delete(cid: CID, options?: AbortOptions): Promise<void> {
    await this.inner.delete(cid, options);
    this.#held.delete(cid.toString());
    this.version++;
  }

  /** Forget a block the caller removed from the inner store by other means (e.g. quarantine). */
  forget(cid: CID): void {
    this.#held.delete(cid.toString());
    this.version++;
  }

  keys(options?: AbortOptions): AsyncIterable<CID> {
    return this.inner.keys(options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
