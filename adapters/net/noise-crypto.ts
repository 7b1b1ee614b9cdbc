/**
 * The ChaCha20-Poly1305 that noise uses for every transport message, without a copy per message.
 *
 * @chainsafe/libp2p-noise's default (node:crypto above 1200 bytes) returns `Buffer.concat([ciphertext, final, tag])`:
 * every message of up to 64 KiB is allocated twice and copied once more before it leaves, and noise then appends
 * it to a list anyway. This returns that list directly (ciphertext, then the 16-byte tag): the same bytes on the
 * wire, one allocation per message instead of two. The PSK layer below (psk.ts) gathers what noise hands it into
 * one buffer per batch regardless, so nothing downstream needs the message contiguous. Small messages (the
 * handshake, short frames) keep the default path, which is faster below 1200 bytes.
 * Measured on the 2-core machine: a bare libp2p stream without PSK (512 MiB, 3 interleaved runs, machine loaded by
 * other work) went from 2.21 to 1.76 sender CPU ms per MiB (medians); on the whole block path with PSK (bench:net's
 * blocks+psk, quiet machine, two A/B rounds together with framed-stream.ts's fewer wake-ups) the gain is within the
 * noise: sender 4.17-4.31 -> 3.95-4.23 ms/MiB, receiver 4.52-5.00 -> 4.46-4.76.
 */
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';
import { createCipheriv } from 'node:crypto';
import { Uint8ArrayList } from 'uint8arraylist';

const SMALL = 1200;
const TAG_BYTES = 16;

export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt(plaintext, nonce, ad, k) {
    if (plaintext.byteLength < SMALL) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k);
    const cipher = createCipheriv('chacha20-poly1305', k, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(ad, { plaintextLength: plaintext.byteLength });
    const out = new Uint8ArrayList();
    if (plaintext instanceof Uint8Array) out.append(cipher.update(plaintext));
    else for (const buf of plaintext) out.append(cipher.update(buf));
    const final = cipher.final(); // empty for a stream cipher, kept for form
    if (final.byteLength > 0) out.append(final);
    out.append(cipher.getAuthTag());
    // noise is built against uint8arraylist 2, whose declared type differs from version 3's by a unique symbol
    // only; both mark their lists with the same Symbol.for key, so noise takes this list as its own
    return out as unknown as ReturnType<ICryptoInterface['chaCha20Poly1305Encrypt']>;
  },
};
