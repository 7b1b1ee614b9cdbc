/**
 * Content addresses. Every chunk and every manifest node is a block named by a CIDv1 over sha2-256 (the IPFS
 * default), so blocks are valid IPFS blocks. Chunks use the raw codec, manifest nodes dag-cbor.
 */
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import * as Digest from 'multiformats/hashes/digest';
import { sha256 } from 'multiformats/hashes/sha2';
import { InvalidInputError } from '../errors.ts';

export { CID };
export const RAW_CODE = raw.code; // 0x55
export const DAG_CBOR_CODE = 0x71;
export const SHA256_CODE = sha256.code; // 0x12

/** CID of a block whose sha2-256 digest is already known (e.g. computed in a worker). */
export function cidFromSha256(codec: number, digest: Uint8Array): CID {
  return CID.createV1(codec, Digest.create(SHA256_CODE, digest));
}

/** Hash `bytes` (synchronously, node:crypto underneath) and return its CIDv1. */
export function cidOf(codec: number, bytes: Uint8Array): CID {
  const d = sha256.digest(bytes);
  if (d instanceof Promise) throw new Error('sha256 must be synchronous on Node');
  return CID.createV1(codec, d);
}

/** True when `bytes` hash to the digest inside `cid`. Only sha2-256 CIDs are accepted. */
export function matchesCid(cid: CID, bytes: Uint8Array): boolean {
  if (cid.multihash.code !== SHA256_CODE) return false;
  const d = sha256.digest(bytes) as Digest.Digest<number, number>;
  return equalBytes(d.digest, cid.multihash.digest);
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Parse a CID string given by a user or a peer, with a clear error. */
export function parseCid(text: string): CID {
  try {
    return CID.parse(text.trim());
  } catch (cause) {
    throw new InvalidInputError(`not a valid content id: ${JSON.stringify(text)}`, { cause });
  }
}
