/**
 * A Box's keys (adapters/crdt/keys.ts): generated from the OS, saved and loaded as bytes, the Box id is the libp2p
 * peer id, signatures verify with the key inside that id, and secrets sealed to the Box open with its X25519 key.
 */
import { describe, expect, it } from 'vitest';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { boxKeysFromBytes, boxKeysToBytes, generateBoxKeys, InvalidKeyFileError } from '../adapters/crdt/keys.ts';
import { systemRandom } from '../adapters/system.ts';
import { boxIdOf, createReserveSecret, joinKeySigner, publicKeyOfBox, reserveIdOf, seal, verifyEd25519 } from '../core/state/crypto.ts';
import { createEvent, decodeEvent, joinProofInput } from '../core/state/events.ts';

describe('Box keys', () => {
  it('generate, save, load: same identity, working signer and unsealer', async () => {
    const keys = await generateBoxKeys();
    expect(keys.signer.id).toBe(peerIdFromPrivateKey(keys.privateKey).toString());
    expect(keys.signer.id).toBe(boxIdOf(keys.signer.publicKey));
    expect(publicKeyOfBox(keys.signer.id)).toEqual(keys.signer.publicKey);
    const msg = new TextEncoder().encode('hello');
    expect(verifyEd25519(keys.signer.publicKey, msg, keys.signer.sign(msg))).toBe(true);
    expect(verifyEd25519(keys.signer.publicKey, new TextEncoder().encode('hellp'), keys.signer.sign(msg))).toBe(false);

    const loaded = boxKeysFromBytes(boxKeysToBytes(keys));
    expect(loaded.signer.id).toBe(keys.signer.id);
    expect(loaded.unsealer.publicKey).toEqual(keys.unsealer.publicKey);
    const aad = new Uint8Array([1, 2, 3]);
    const sealed = seal(keys.unsealer.publicKey, new Uint8Array([9, 9, 9]), aad, systemRandom);
    expect(loaded.unsealer.unseal(sealed, aad)).toEqual(new Uint8Array([9, 9, 9]));
  });

  it('a real Box founds a reserve and signs its join with its libp2p key', async () => {
    const keys = await generateBoxKeys();
    const { secret, reserveId } = createReserveSecret(systemRandom);
    expect(reserveId).toBe(reserveIdOf(secret));
    expect(reserveId).toMatch(/^r[a-z2-7]{32}$/);
    const jk = joinKeySigner(secret, 0);
    const ev = createEvent(keys.signer, { reserveId }, { seq: 1, at: { wall: 1, logical: 0 } }, 'box-joined', {
      generation: 0,
      joinKey: jk.publicKey,
      proof: jk.sign(joinProofInput(reserveId, keys.signer.id, 0, keys.unsealer.publicKey)),
      xpub: keys.unsealer.publicKey,
      capacity: 1,
      addresses: [],
    });
    expect(decodeEvent(ev.bytes, { reserveId }).author).toBe(keys.signer.id);
  });

  it('refuses bytes that are not a key file (InvalidKeyFileError)', () => {
    for (const bad of [new Uint8Array([1, 2, 3]), new Uint8Array([0xa0]), new TextEncoder().encode('{"v":1}')]) {
      expect(() => boxKeysFromBytes(bad)).toThrow(InvalidKeyFileError);
    }
  });
});
