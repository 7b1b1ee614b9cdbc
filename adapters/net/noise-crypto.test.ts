/**
 * noiseCrypto puts the same bytes on the wire as noise's default crypto, for every message size around the
 * switch-over, and what it seals the default opens (and the other way round).
 */
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { noiseCrypto } from './noise-crypto.ts';

const flat = (x: Uint8Array | { subarray(): Uint8Array }): Uint8Array => (x instanceof Uint8Array ? x : x.subarray());

describe('noise crypto without the copy per message', () => {
  it('seals byte-identically to the default and interoperates both ways', () => {
    const k = new Uint8Array(randomBytes(32));
    const ad = new Uint8Array(randomBytes(32));
    for (const size of [0, 1, 1199, 1200, 1201, 4096, 65519]) {
      const nonce = new Uint8Array(12);
      nonce[4] = size & 0xff;
      const plain = new Uint8Array(randomBytes(size));
      const ours = flat(noiseCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k));
      const theirs = flat(defaultCrypto.chaCha20Poly1305Encrypt(plain, nonce, ad, k));
      expect(Buffer.compare(ours, theirs), `size ${size}`).toBe(0);
      expect(ours.byteLength).toBe(size + 16);
      expect(Buffer.compare(flat(defaultCrypto.chaCha20Poly1305Decrypt(ours, nonce, ad, k)), plain)).toBe(0);
      expect(Buffer.compare(flat(noiseCrypto.chaCha20Poly1305Decrypt(theirs, nonce, ad, k)), plain)).toBe(0);
    }
  });

  it('a flipped bit fails authentication', () => {
    const k = new Uint8Array(randomBytes(32));
    const nonce = new Uint8Array(12);
    const sealed = new Uint8Array(flat(noiseCrypto.chaCha20Poly1305Encrypt(new Uint8Array(randomBytes(5000)), nonce, new Uint8Array(0), k)));
    sealed[100] ^= 1;
    expect(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, new Uint8Array(0), k)).toThrow();
  });
});
