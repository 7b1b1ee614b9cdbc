/**
 * A Box's key material: its libp2p Ed25519 identity (the peer id is the Box id; it signs shared-state events) and
 * an X25519 key that rotated reserve secrets are sealed to. Core only ever sees a `Signer` and an `Unsealer`.
 *
 * Stored as bytes (the caller writes them to the key file with owner-only permissions):
 *   dag-cbor { v: 1, ed25519: libp2p protobuf private key, x25519: 32-byte seed }
 */
import * as dagCbor from '@ipld/dag-cbor';
import { randomBytes } from 'node:crypto';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { Ed25519PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { ReserveError } from '../../core/errors.ts';
import { signerFromSeed, unsealerFromSeed } from '../../core/state/crypto.ts';
import type { Signer, Unsealer } from '../../core/state/crypto.ts';

const FORMAT_VERSION = 1;

/** Key file bytes that do not hold a Box's keys. */
export class InvalidKeyFileError extends ReserveError {
  static override readonly name = 'InvalidKeyFileError';
}

export interface BoxKeys {
  /** The libp2p private key (for the network layer: `createLibp2p({ privateKey })`). */
  readonly privateKey: Ed25519PrivateKey;
  readonly signer: Signer;
  readonly unsealer: Unsealer;
  /** The X25519 seed (kept only to serialise the keys). */
  readonly x25519Seed: Uint8Array;
}

/** A Signer backed by a libp2p Ed25519 private key (signing goes through node:crypto, synchronously). */
export function signerFromPrivateKey(privateKey: Ed25519PrivateKey): Signer {
  if (privateKey.type !== 'Ed25519') throw new InvalidKeyFileError(`a Box key must be Ed25519, not ${String(privateKey.type)}`);
  const signer = signerFromSeed(privateKey.raw.subarray(0, 32));
  const expected = peerIdFromPrivateKey(privateKey).toString();
  if (signer.id !== expected) throw new InvalidKeyFileError('the private key does not match its public key');
  return signer;
}

export function boxKeysFrom(privateKey: Ed25519PrivateKey, x25519Seed: Uint8Array): BoxKeys {
  if (x25519Seed.byteLength !== 32) throw new InvalidKeyFileError('the X25519 seed must be 32 bytes');
  return { privateKey, signer: signerFromPrivateKey(privateKey), unsealer: unsealerFromSeed(x25519Seed), x25519Seed };
}

/** Fresh keys for a new Box (operating-system randomness). */
export async function generateBoxKeys(): Promise<BoxKeys> {
  const privateKey = await generateKeyPair('Ed25519');
  return boxKeysFrom(privateKey, new Uint8Array(randomBytes(32)));
}

export function boxKeysToBytes(keys: BoxKeys): Uint8Array {
  return dagCbor.encode({ v: FORMAT_VERSION, ed25519: privateKeyToProtobuf(keys.privateKey), x25519: keys.x25519Seed });
}

/** Load keys saved by boxKeysToBytes. Throws InvalidKeyFileError. */
export function boxKeysFromBytes(bytes: Uint8Array): BoxKeys {
  let value: unknown;
  try {
    value = dagCbor.decode(bytes);
  } catch (cause) {
    throw new InvalidKeyFileError('the key file is not dag-cbor', { cause });
  }
  const v = value as { v?: unknown; ed25519?: unknown; x25519?: unknown } | null;
  if (v === null || typeof v !== 'object' || v.v !== FORMAT_VERSION || !(v.ed25519 instanceof Uint8Array) || !(v.x25519 instanceof Uint8Array)) {
    throw new InvalidKeyFileError(`the key file is not a version ${FORMAT_VERSION} Box key file`);
  }
  let privateKey;
  try {
    privateKey = privateKeyFromProtobuf(v.ed25519);
  } catch (cause) {
    throw new InvalidKeyFileError('the key file holds no valid libp2p private key', { cause });
  }
  if (privateKey.type !== 'Ed25519') throw new InvalidKeyFileError(`a Box key must be Ed25519, not ${privateKey.type}`);
  return boxKeysFrom(privateKey, v.x25519);
}
