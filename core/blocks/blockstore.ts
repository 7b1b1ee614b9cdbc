/**
 * The one block-store interface every storage backend implements (shaped like interface-blockstore, trimmed to
 * what Reserve uses). Stores hold bytes under CIDs and do not interpret them; integrity checking is layered on top
 * by `VerifiedBlockstore`, so a corrupt block is never handed on whatever backend it came from.
 */
import type { CID } from 'multiformats/cid';
import type { AbortOptions } from '../ports.ts';
import { ReserveError } from '../errors.ts';

export interface Pair {
  cid: CID;
  bytes: Uint8Array;
}

export interface Blockstore {
  /** Store `bytes` under `cid`. Idempotent. When it resolves, the block is durable (for durable backends). */
  put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<CID>;
  /** Store many blocks; backends may batch durability work (one group of fsyncs). Yields each CID once stored. */
  putMany(source: Iterable<Pair> | AsyncIterable<Pair>, options?: AbortOptions): AsyncIterable<CID>;
  /** The stored bytes, unverified. Throws BlockNotFoundError when absent. */
  get(cid: CID, options?: AbortOptions): Promise<Uint8Array>;
  has(cid: CID, options?: AbortOptions): Promise<boolean>;
  /** Remove a block. Deleting an absent block is not an error. */
  delete(cid: CID, options?: AbortOptions): Promise<void>;
  /** Every stored CID, in no particular order. */
  keys(options?: AbortOptions): AsyncIterable<CID>;
  /** Release resources. The store is unusable afterwards. */
  close(): Promise<void>;
  /**
   * True when every block `get` returns has already been checked against its CID by the store itself (a store that
   * verifies on read, like the reserve-wide NetworkBlockstore): readers may then skip hashing it again. Absent for
   * plain stores, whose bytes are unverified.
   */
  readonly verifiesReads?: boolean;
  /**
   * True when every buffer `get` (and `readPacked`, where there is one) returns is the caller's alone: no other
   * reference to its memory, so the caller may free it at once (`discard`). Absent when reads may hand out the
   * store's own bytes (the simulator's disk).
   */
  readonly handsOverReads?: boolean;
}

/**
 * An optional capability of a store (FsBlockstore has it): read a block into a buffer the caller gives (a view of it
 * when the block is shorter than it), else into a buffer of its own that the caller owns. Readers that know about
 * how large their blocks are (restore, verify) reuse their buffers instead of allocating one per block.
 */
export interface ReadsInto {
  getInto(cid: CID, into: Uint8Array, options?: AbortOptions): Promise<Uint8Array>;
}

/** `store` when it can read into the caller's buffers, else null. */
export function readsInto(store: Blockstore): (Blockstore & ReadsInto) | null {
  return typeof (store as Partial<ReadsInto>).getInto === 'function' ? (store as Blockstore & ReadsInto) : null;
}

export class BlockNotFoundError extends ReserveError {
  static override readonly name = 'BlockNotFoundError';
  /** `neededBy` says what wanted the block (e.g. "file photos/a.jpg"), for a message a user can act on. */
  constructor(
    readonly cid: CID,
    neededBy?: string,
  ) {
    super(`block ${cid.toString()} is not in this store${neededBy ? ` (needed by ${neededBy})` : ''}`);
  }
}

export class BlockCorruptError extends ReserveError {
  static override readonly name = 'BlockCorruptError';
  constructor(
    readonly cid: CID,
    where: string,
  ) {
    super(`block ${cid.toString()} is corrupt in ${where}: its bytes do not hash to its content id`);
  }
}

export class StorageFullError extends ReserveError {
  static override readonly name = 'StorageFullError';
}
