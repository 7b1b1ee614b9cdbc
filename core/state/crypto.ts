/**
 * The deterministic cryptography behind shared state, in one place:
 *
 * - Ed25519 signatures. A Box signs with a `Signer` (its private key stays in an adapter); anyone verifies with the
 *   public key inside the Box's id (a libp2p peer id embeds an Ed25519 key). Verification keys are cached.
 * - The reserve's shared secret, by generation. From each generation's secret we derive a *join key* (an Ed25519
 *   key pair): a Box proves it holds the secret by signing its join with that key, and every member can check
 *   the proof with the join key's public half, which the state publishes (generation 0: the reserve id commits to
 *   it; later generations: the rotation event carries it). So a Box without the secret can verify joins as well
 *   as a Box with it, and all replicas reach the same verdict. What no verifier can tell is whether the rotation
 *   author sealed the same secret it derived the join key from; recipients check that when they open it.
 * - Sealing: a new secret is delivered to each member with X25519 (a fresh ephemeral key per recipient, from the
 *   injected Random) + HKDF-SHA256 + AES-256-GCM, bound to (reserve, generation, recipient) as associated data.
 *
 * Everything here is a pure function of its inputs; randomness only enters through `Random` arguments.
 */
import { createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, diffieHellman, hkdfSync, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import { base32 } from 'multiformats/bases/base32';
import { ReserveError } from '../errors.ts';
import type { BoxId } from '../net.ts';
import type { Random } from '../ports.ts';

/** Signs for one Box. `id` is the Box's libp2p peer id string; `publicKey` its raw 32-byte Ed25519 key. */
export interface Signer {
  readonly id: BoxId;
  readonly publicKey: Uint8Array;
  sign(data: Uint8Array): Uint8Array;
}

/** Opens secrets sealed to this Box's X25519 key (published in its join event). */
export interface Unsealer {
  /** Raw 32-byte X25519 public key. */
  readonly publicKey: Uint8Array;
  /** Throws UnsealError when `sealed` was not sealed to this key with this associated data. */
  unseal(sealed: Uint8Array, aad: Uint8Array): Uint8Array;
}

/** A box id that is not an Ed25519 libp2p peer id. */
export class InvalidBoxIdError extends ReserveError {
  static override readonly name = 'InvalidBoxIdError';
}

/** A sealed secret could not be opened (not for us, tampered with, or wrong context). */
export class UnsealError extends ReserveError {
  static override readonly name = 'UnsealError';
}

export const SECRET_BYTES = 32;
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const utf8 = new TextEncoder();

function bytes32(name: string, value: Uint8Array): Buffer {
  if (!(value instanceof Uint8Array) || value.byteLength !== 32) throw new TypeError(`${name} must be 32 bytes`);
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

// ------------------------------------------------------------------------------------------------ ed25519

const verifyKeys = new Map<string, KeyObject>();
const boxKeys = new Map<BoxId, Uint8Array>();
const CACHE_LIMIT = 4096;

function cachePut<K, V>(cache: Map<K, V>, key: K, value: V): V {
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value as K);
  cache.set(key, value);
  return value;
}

function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  const hex = Buffer.from(publicKey).toString('hex');
  const hit = verifyKeys.get(hex);
  if (hit) return hit;
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI, bytes32('public key', publicKey)]), format: 'der', type: 'spki' });
  return cachePut(verifyKeys, hex, key);
}

/** True when `signature` is a valid Ed25519 signature of `data` by `publicKey` (raw 32 bytes). */
export function verifyEd25519(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.byteLength !== 64 || publicKey.byteLength !== 32) return false;
  try {
    return verify(null, data, ed25519PublicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

/** The raw Ed25519 public key inside a Box id. Throws InvalidBoxIdError for anything else. */
export function publicKeyOfBox(id: BoxId): Uint8Array {
  const hit = boxKeys.get(id);
  if (hit) return hit;
  let raw: Uint8Array;
  try {
    const peer = peerIdFromString(id);
    if (peer.type !== 'Ed25519' || peer.publicKey === undefined) throw new Error(`a ${peer.type} peer id`);
    raw = peer.publicKey.raw;
    if (peer.toString() !== id) throw new Error('not in canonical form');
  } catch (cause) {
    throw new InvalidBoxIdError(`${JSON.stringify(id.slice(0, 80))} is not an Ed25519 peer id`, { cause });
  }
  return cachePut(boxKeys, id, raw);
}

/** The Box id (peer id string) of a raw Ed25519 public key. */
export function boxIdOf(publicKey: Uint8Array): BoxId {
  return peerIdFromPublicKey(publicKeyFromRaw(bytes32('public key', publicKey)) as Parameters<typeof peerIdFromPublicKey>[0]).toString();
}

/** A Signer from a 32-byte Ed25519 seed (the simulator's and the join key's way; Boxes use adapters/crdt/keys.ts). */
export function signerFromSeed(seed: Uint8Array): Signer {
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, bytes32('seed', seed)]), format: 'der', type: 'pkcs8' });
  const publicKey = new Uint8Array(createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).subarray(12));
  return {
    id: boxIdOf(publicKey),
    publicKey,
    sign: (data) => new Uint8Array(sign(null, data, privateKey)),
  };
}

// ------------------------------------------------------------------------------------------------ secrets

/** HKDF-SHA256 of `secret` for a named purpose (join key, network pre-shared key, ...). */
export function deriveKey(secret: Uint8Array, purpose: string, length = 32): Uint8Array {
  if (secret.byteLength < 16) throw new TypeError('a reserve secret has at least 16 bytes');
  return new Uint8Array(hkdfSync('sha256', secret, utf8.encode('reserve/v1'), utf8.encode(purpose), length));
}

/** The join key of one secret generation (the signer that proves possession of the secret). */
export function joinKeySigner(secret: Uint8Array, generation: number): Signer {
  return signerFromSeed(deriveKey(secret, `join-key/${generation}`));
}

/** The reserve id: a commitment to generation 0's join public key ('r' + base32 of 20 bytes of its hash). */
export function reserveIdFromJoinKey(joinPublicKey: Uint8Array): string {
  const h = createHash('sha256').update(utf8.encode('reserve/id/v1\n')).update(joinPublicKey).digest();
  return 'r' + base32.baseEncode(h.subarray(0, 20));
}

/** The reserve id that a generation-0 secret founds. */
export function reserveIdOf(secret: Uint8Array): string {
  return reserveIdFromJoinKey(joinKeySigner(secret, 0).publicKey);
}

/** A new reserve: a fresh secret (from `random`) and the id it commits to. */
export function createReserveSecret(random: Random): { secret: Uint8Array; reserveId: string } {
  const secret = random.bytes(SECRET_BYTES);
  return { secret, reserveId: reserveIdOf(secret) };
}

// ------------------------------------------------------------------------------------------------ sealing

function x25519Private(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8, bytes32('x25519 seed', seed)]), format: 'der', type: 'pkcs8' });
}

function x25519Public(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: Buffer.concat([X25519_SPKI, bytes32('x25519 public key', raw)]), format: 'der', type: 'spki' });
}

function rawPublic(priv: KeyObject): Uint8Array {
  return new Uint8Array(createPublicKey(priv).export({ type: 'spki', format: 'der' }).subarray(12));
}

function sealKey(shared: Uint8Array, ephemeral: Uint8Array, recipient: Uint8Array): Buffer {
  const salt = Buffer.concat([ephemeral, recipient]);
  return Buffer.from(hkdfSync('sha256', shared, salt, utf8.encode('reserve/seal/v1'), 32));
}

const NONCE = Buffer.alloc(12); // every key is used once (fresh ephemeral key per message)
export const SEALED_BYTES = 32 + 16; // plus the plaintext length

/** Seal `plaintext` to an X25519 public key. The result is ephemeral public key || ciphertext || tag. */
export function seal(recipient: Uint8Array, plaintext: Uint8Array, aad: Uint8Array, random: Random): Uint8Array {
  const ephemeral = x25519Private(random.bytes(32));
  const ephemeralPublic = rawPublic(ephemeral);
  const shared = diffieHellman({ privateKey: ephemeral, publicKey: x25519Public(recipient) });
  const cipher = createCipheriv('aes-256-gcm', sealKey(shared, ephemeralPublic, recipient), NONCE);
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return new Uint8Array(Buffer.concat([ephemeralPublic, body, cipher.getAuthTag()]));
}

/** An Unsealer over a 32-byte X25519 seed (stored by adapters/crdt/keys.ts next to the Box's Ed25519 key). */
export function unsealerFromSeed(seed: Uint8Array): Unsealer {
  const priv = x25519Private(seed);
  const publicKey = rawPublic(priv);
  return {
    publicKey,
    unseal(sealed, aad) {
      if (sealed.byteLength < 32 + 16) throw new UnsealError('sealed data is too short');
      try {
        const ephemeral = sealed.subarray(0, 32);
        const shared = diffieHellman({ privateKey: priv, publicKey: x25519Public(ephemeral) });
        const decipher = createDecipheriv('aes-256-gcm', sealKey(shared, ephemeral, publicKey), NONCE);
        decipher.setAAD(aad);
        decipher.setAuthTag(sealed.subarray(sealed.byteLength - 16));
        return new Uint8Array(Buffer.concat([decipher.update(sealed.subarray(32, sealed.byteLength - 16)), decipher.final()]));
      } catch (cause) {
        throw new UnsealError('the sealed secret is not for this Box or was altered', { cause });
      }
    },
  };
}
