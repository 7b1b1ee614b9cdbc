/**
 * A read-only Blockstore over the whole reserve: a block comes from this Box's disk when held and intact, else
 * from whichever holder answers first (placement order, fastest first), verified against its CID. The restore
 * engine reads through it, so a factory-new Box restores straight from the others.
 */
import type { CID } from 'multiformats/cid';
import { BlockNotFoundError, type Blockstore, type Pair } from '../blocks/blockstore.ts';
import { matchesCid } from '../blocks/cid.ts';
import { ReserveError } from '../errors.ts';
import type { BoxId } from '../net.ts';
import type { BlockClient } from './block-client.ts';
import type { TrackingBlockstore } from './tracking-store.ts';

export class ReadOnlyStoreError extends ReserveError {
  static override readonly name = 'ReadOnlyStoreError';
}

export class NetworkBlockstore implements Blockstore {
  /** Every block `get` returns matched its CID (local copies are checked here, fetched ones by the BlockClient). */
  readonly verifiesReads = true;

  constructor(
    private readonly local: TrackingBlockstore,
    private readonly client: BlockClient,
    private readonly candidates: (cid: CID) => BoxId[],
    /** Keep fetched blocks on this Box (manifests, or blocks placement gives it). */
    private readonly keep: (cid: CID) => boolean = () => false,
  ) {}

  async get(cid: CID): Promise<Uint8Array> {
    if (this.local.holds(cid)) {
      const bytes = await this.local.get(cid).catch(() => undefined);
      if (bytes && matchesCid(cid, bytes)) return bytes;
    }
    const { bytes } = await this.client.fetch(cid, this.candidates(cid));
    if (this.keep(cid)) await this.local.put(cid, bytes);
    return bytes;
  }

  async has(cid: CID): Promise<boolean> {
    if (this.local.holds(cid)) return true;
    try {
      await this.get(cid);
      return true;
    } catch (e) {
      if (e instanceof BlockNotFoundError) return false;
      throw e;
    }
  }

  async put(): Promise<CID> {
    throw new ReadOnlyStoreError('the reserve-wide block view is read-only');
  }

  // eslint-disable-next-line require-yield
  async *putMany(_source: Iterable<Pair> | AsyncIterable<Pair>): AsyncIterable<CID> {
    throw new ReadOnlyStoreError('the reserve-wide block view is read-only');
  }

  async delete(): Promise<void> {
    throw new ReadOnlyStoreError('the reserve-wide block view is read-only');
  }

  keys(): AsyncIterable<CID> {
    return this.local.keys();
  }

  async close(): Promise<void> {}
}
