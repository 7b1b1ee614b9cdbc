/** Integrity on read: a block whose bytes do not hash to its CID is rejected with BlockCorruptError. */
import type { CID } from 'multiformats/cid';
import type { AbortOptions } from '../ports.ts';
import { BlockCorruptError, BlockNotFoundError, type Blockstore } from './blockstore.ts';
import { matchesCid } from './cid.ts';

/** Fetch a block and check it against its CID before handing it on (unless the store checked it already). */
export async function getVerified(store: Blockstore, cid: CID, where: string, options?: AbortOptions): Promise<Uint8Array> {
  const bytes = await store.get(cid, options).catch((e: unknown) => {
    throw e instanceof BlockNotFoundError ? new BlockNotFoundError(cid, where) : e;
  });
  if (!store.verifiesReads && !matchesCid(cid, bytes)) throw new BlockCorruptError(cid, where);
  return bytes;
}
