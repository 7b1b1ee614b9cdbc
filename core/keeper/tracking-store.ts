/**
 * A Blockstore wrapper that keeps an in-memory set of what is stored, so the keeper can ask "do I hold this?"
 * without a disk round trip, and learns of every block the backup engine or the network writes. It also keeps the
 * Box's holdings summary (core/holdings: a Merkle index of the held blocks) up to date, which peers compare against
 * what they expect this Box to hold. Sizes of blocks found at start are not known (0) until written again.
 */
import { CID } from 'multiformats/cid';
import type { Blockstore, Pair } from '../blocks/blockstore.ts';
import type { AbortOptions } from '../ports.ts';
import { SHA256_CODE } from '../blocks/cid.ts';
import { HoldingsIndex } from '../holdings/holdings-index.ts';
import { UnsupportedCidError } from '../holdings/errors.ts';

/**
 * A CID that owns its bytes: one decoded from a message is a view into that message's buffer, and keeping it
 * would keep the whole message (a block's worth of bytes) alive for as long as the block is held. `CID.decode`
 * encodes the CID's own `bytes` afresh but leaves its multihash (and digest) a view into what it decoded, so all
 * three are checked: the held set once kept every pushed block's frame alive this way (700 MiB of a 1 GiB
 * replication on each receiving Box).
 */
function compact(cid: CID): CID {
  const b = cid.bytes;
  const small = (u: Uint8Array) => u.buffer.byteLength <= b.byteLength;
  return small(b) && small(cid.multihash.bytes) && small(cid.multihash.digest) ? cid : CID.decode(b.slice());
}

/**
 * A block store that can read many small blocks at once (FsBlockstore: one read per run of neighbouring records of a
 * pack). Blocks it does not keep that way come back undefined, for the caller to `get` one by one.
 */
export interface PackedReads {
  readPacked(cids: readonly CID[], options?: AbortOptions): Promise<Array<Uint8Array | undefined>>;
}

export class TrackingBlockstore implements Blockstore {
  readonly inner: Blockstore;
  /** Held blocks: CID string -> CID (kept parsed, so sweeps and rounds never re-parse strings). */
  readonly #held = new Map<string, CID>();
  #loaded = false;
  /** Bumped on every change to the held set (lets callers skip work when nothing changed). */
  version = 0;
  /** The held set as a holdings index (what the holdings protocol answers from). */
  readonly holdings = new HoldingsIndex();

  constructor(inner: Blockstore) {
    this.inner = inner;
  }

  /** Reads come straight from the inner store: its buffers are the caller's when its are. */
  get handsOverReads(): boolean {
    return this.inner.handsOverReads === true;
  }

  /** Read the inner store's keys once (at start). */
  async load(): Promise<void> {
    if (this.#loaded) return;
    for await (const cid of this.inner.keys()) {
      this.#held.set(cid.toString(), cid);
      this.#index(cid, 0);
    }
    this.#loaded = true;
  }

  holds(cid: CID | string): boolean {
    if (typeof cid === 'string') return this.#held.has(cid);
    // A CIDv1 sha2-256 (every block a Box writes) is looked up in the holdings index by its digest: no string built.
    if (cid.version === 1 && cid.multihash.code === SHA256_CODE && cid.multihash.digest.length === 32) return this.holdings.has(cid);
    return this.#held.has(cid.toString());
  }

  get count(): number {
    return this.#held.size;
  }

  heldKeys(): IterableIterator<string> {
    return this.#held.keys();
  }

  /** Held blocks as [CID string, CID] pairs. */
  held(): IterableIterator<[string, CID]> {
    return this.#held.entries();
  }

  async put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<CID> {
    const r = await this.inner.put(cid, bytes, options);
    this.#held.set(cid.toString(), compact(cid));
    this.#index(cid, bytes.byteLength);
    this.version++;
    return r;
  }

  async *putMany(source: Iterable<Pair> | AsyncIterable<Pair>, options?: AbortOptions): AsyncIterable<CID> {
    for await (const cid of this.inner.putMany(source, options)) {
      this.#held.set(cid.toString(), compact(cid));
      this.#index(cid, 0);
      this.version++;
      yield cid;
    }
  }

  get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    return this.inner.get(cid, options);
  }

  /** The inner store's packed blocks among `cids` in one go (undefined for the others, or when it cannot). */
  readPacked(cids: readonly CID[], options?: AbortOptions): Promise<Array<Uint8Array | undefined>> {
    const inner = this.inner as Blockstore & Partial<PackedReads>;
    if (typeof inner.readPacked === 'function') return inner.readPacked(cids, options);
    return Promise.resolve(new Array<Uint8Array | undefined>(cids.length));
  }

  async has(cid: CID, options?: AbortOptions): Promise<boolean> {
    if (this.#loaded) return this.#held.has(cid.toString());
    return this.inner.has(cid, options);
  }

  async delete(cid: CID, options?: AbortOptions): Promise<void> {
    await this.inner.delete(cid, options);
    this.#held.delete(cid.toString());
    this.#unindex(cid);
    this.version++;
  }

  /** Forget a block the caller removed from the inner store by other means (e.g. quarantine). */
  forget(cid: CID): void {
    this.#held.delete(cid.toString());
    this.#unindex(cid);
    this.version++;
  }

  /** Only CIDv1 sha2-256 blocks are summarised (every block a Box writes is one). */
  #index(cid: CID, size: number): void {
    try {
      this.holdings.add(cid, size);
    } catch (e) {
      if (!(e instanceof UnsupportedCidError)) throw e;
    }
  }

  #unindex(cid: CID): void {
    try {
      this.holdings.delete(cid);
    } catch (e) {
      if (!(e instanceof UnsupportedCidError)) throw e;
    }
  }

  keys(options?: AbortOptions): AsyncIterable<CID> {
    return this.inner.keys(options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** How many blocks `inOrderReader` asks the store for at once (small blocks: at most 64 x 256 KiB in memory). */
export const PACKED_READ_GROUP = 64;

/**
 * A reader for the blocks of `cids`, read in that order (as `BlockClient.putMany` reads them, a few ahead): the
 * packed ones come a group at a time from one `readPacked` call (a read per run of neighbouring records instead of a
 * read each, which was most of a push's reading), the others one `get` each as they are reached. A group's blocks
 * are let go as they are handed out. A failed group read falls back to `get` per block, so each block fails alone.
 */
export function inOrderReader(blocks: TrackingBlockstore, cids: readonly CID[], group = PACKED_READ_GROUP): (cid: CID, index: number) => Promise<Uint8Array> {
  const groups = new Map<number, { left: number; got: Promise<Array<Uint8Array | undefined>> }>();
  return async (cid, index) => {
    if (cids[index] !== cid) return blocks.get(cid); // not read through the list: plain get
    const g = Math.floor(index / group);
    let entry = groups.get(g);
    if (entry === undefined) {
      const part = cids.slice(g * group, (g + 1) * group);
      entry = { left: part.length, got: blocks.readPacked(part).catch(() => new Array<Uint8Array | undefined>(part.length)) };
      groups.set(g, entry);
    }
    const found = await entry.got;
    const at = index - g * group;
    const bytes = found[at];
    found[at] = undefined;
    if (--entry.left === 0) groups.delete(g);
    return bytes ?? blocks.get(cid);
  };
}
