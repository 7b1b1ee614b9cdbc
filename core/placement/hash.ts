/**
 * The fast, non-cryptographic hashing behind placement: a 64-bit hash of a chunk key (its multihash digest
 * bytes), a 64-bit hash of a Box id (computed once per view), and a mix of the two into a 53-bit uniform value
 * per (chunk, Box) pair: x = fmix32(keyLo ^ boxLo), y = fmix32((keyHi ^ boxHi) + x * 0x9e3779b9), value = the
 * top 21 bits of y followed by the 32 bits of x ^ (y * 0x85ebca6b) (inlined in place.ts's hot loop).
 * Everything is 32-bit integer arithmetic through `Math.imul`, so it is fast and identical on every engine. The
 * constants are the well-known MurmurHash3 multipliers and the golden-ratio increment; the construction (two
 * lanes, cross-fed, finalised with the murmur3 avalanche step) is our own.
 *
 * Security note: chunk keys are sha2-256 digests, so a peer cannot aim a chunk at a chosen Box without breaking
 * sha2-256 preimage resistance first; this hash only has to spread well, not resist an adversary.
 */

/** The murmur3 32-bit finaliser: a bijection on 32-bit values with full avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function absorb(h: number, w: number): number {
  w = Math.imul(w, 0xcc9e2d51);
  w = (w << 15) | (w >>> 17);
  w = Math.imul(w, 0x1b873593);
  h ^= w;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** A 64-bit hash as two unsigned 32-bit halves. */
export interface Hash64 {
  hi: number;
  lo: number;
}

function finish(a: number, b: number, len: number, out: Hash64): Hash64 {
  a ^= len;
  b ^= Math.imul(len, 0x9e3779b9);
  a = fmix32(a + Math.imul(b, 0x9e3779b9));
  b = fmix32(b ^ a);
  a = fmix32(a + b);
  out.hi = a >>> 0;
  out.lo = b >>> 0;
  return out;
}

/** 64-bit hash of a byte string (a chunk key). Writes into `out` to avoid allocation on the hot path. */
export function hashBytes(bytes: Uint8Array, out: Hash64 = { hi: 0, lo: 0 }): Hash64 {
  let a = 0x243f6a88; // two lanes with different seeds (digits of pi)
  let b = 0x85a308d3;
  const n = bytes.length;
  const whole = n & ~3;
  let i = 0;
  for (; i < whole; i += 4) {
    const w = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    a = absorb(a, w);
    b = absorb(b, w ^ a);
  }
  if (i < n) {
    let w = 0;
    for (let s = 0; i < n; i++, s += 8) w |= bytes[i]! << s;
    a = absorb(a, w);
    b = absorb(b, w ^ a);
  }
  return finish(a, b, n, out);
}

/** 64-bit hash of a string (a Box id), over its UTF-16 code units. */
export function hashString(text: string, out: Hash64 = { hi: 0, lo: 0 }): Hash64 {
  let a = 0x13198a2e;
  let b = 0x03707344;
  const n = text.length;
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const w = text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16);
    a = absorb(a, w);
    b = absorb(b, w ^ a);
  }
  if (i < n) {
    const w = text.charCodeAt(i);
    a = absorb(a, w);
    b = absorb(b, w ^ a);
  }
  return finish(a, b, n, out);
}
