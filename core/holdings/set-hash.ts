/**
 * The order-independent set hash behind the holdings tree.
 *
 * Every held block is an *entry*: the 32 bytes of its sha2-256 digest followed by its codec as a little-endian
 * u32 (36 bytes, `ENTRY_KEY_BYTES`). Each entry has a 128-bit value V(entry), and a set of entries is summarised
 * by (count, sum of V mod 2^128). Chosen over XOR because:
 *  - XOR is linear over GF(2): any 129 values have a subset XORing to anything, so distinct sets collide by plain
 *    Gaussian elimination, and a value added twice cancels out. A sum mod 2^128 is a multiset hash (AdHash): a
 *    double-add is visible, and colliding distinct sets needs a lattice / generalised-birthday search, not
 *    linear algebra.
 *  - It is just as incremental: add and delete are one 128-bit add or subtract per tree level, so an update is
 *    O(depth), and a parent's summary is the sum of its children's (the tree needs no rehashing, and a summary
 *    over any subset of partitions is a sum of node summaries).
 *  - The root is the sum over all entries, so it does not depend on the tree's geometry: two Boxes that
 *    partition differently still agree on the root of equal sets.
 * For two different sets the sums agree by accident with probability 2^-128 (V is uniform, see below).
 *
 * V itself: the digest is already a sha2-256 output, so its eight 32-bit words are uniform. V folds them to four
 * lanes (word i with word i+4, rotated) and tweaks each lane with the codec, then applies the murmur3 32-bit
 * finaliser (a bijection, so each lane stays uniform). The same digest under two codecs gives unrelated values.
 * No extra hashing pass is needed, which keeps 1M adds well under a second.
 *
 * Threat model: the Boxes of one reserve belong to one person and share its secret; the set hash has to catch
 * accidents (bit rot, lost writes, bugs), not an adversary crafting CIDs. A peer that wants to lie can simply
 * report a false root; the keeper's checks against content (CIDs) are what defend against that.
 *
 * The mixing function is defined here, not borrowed from placement: V is persisted and sent between Boxes, so
 * its definition must not change when another module tunes its own hash.
 */

/** Bytes of an entry key: a 32-byte sha2-256 digest, then the codec as a little-endian u32. */
export const ENTRY_KEY_BYTES = 36;
/** Bytes of a node hash (the 128-bit sum). */
export const HASH_BYTES = 16;

function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function word(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function rotl(x: number, r: number): number {
  return ((x << r) | (x >>> (32 - r))) >>> 0;
}

/** V(entry) for the entry key at `key[off .. off + 36)`, written to `out[0..4)` (least significant lane first). */
export function entryValue(key: Uint8Array, off: number, out: Uint32Array): void {
  const codec = word(key, off + 32);
  const t = mix32(codec ^ 0x3c6ef372);
  out[0] = mix32(word(key, off) ^ rotl(word(key, off + 16), 5) ^ t);
  out[1] = mix32(word(key, off + 4) ^ rotl(word(key, off + 20), 11) ^ Math.imul(t, 0x9e3779b9));
  out[2] = mix32(word(key, off + 8) ^ rotl(word(key, off + 24), 17) ^ ((t + 0x6a09e667) | 0));
  out[3] = mix32(word(key, off + 12) ^ rotl(word(key, off + 28), 23) ^ rotl(t, 16));
}

/** dst[d .. d+4) += v[v0 .. v0+4) mod 2^128. */
export function add128(dst: Uint32Array, d: number, v: Uint32Array, v0 = 0): void {
  let carry = 0;
  for (let i = 0; i < 4; i++) {
    const s = dst[d + i]! + v[v0 + i]! + carry;
    if (s > 0xffffffff) {
      dst[d + i] = s - 0x100000000;
      carry = 1;
    } else {
      dst[d + i] = s;
      carry = 0;
    }
  }
}

/** dst[d .. d+4) -= v[v0 .. v0+4) mod 2^128. */
export function sub128(dst: Uint32Array, d: number, v: Uint32Array, v0 = 0): void {
  let borrow = 0;
  for (let i = 0; i < 4; i++) {
    const s = dst[d + i]! - v[v0 + i]! - borrow;
    if (s < 0) {
      dst[d + i] = s + 0x100000000;
      borrow = 1;
    } else {
      dst[d + i] = s;
      borrow = 0;
    }
  }
}

/**
 * A 128-bit value for a small whole-number tag (such as a serialised index's geometry), to add to a sum so the sum
 * checks the tag too. Distinct tags have distinct values: lane 0 is mix32 of the tag, and mix32 is a bijection.
 */
export function tagValue(tag: number): Uint32Array {
  return Uint32Array.of(mix32(tag), mix32(tag ^ 0x9e3779b9), mix32(tag ^ 0x7f4a7c15), mix32(tag ^ 0x94d049bb));
}

/** The 16 little-endian bytes of the 128-bit value at lanes[o .. o+4). */
export function hashBytes(lanes: Uint32Array, o = 0): Uint8Array {
  const out = new Uint8Array(HASH_BYTES);
  for (let i = 0; i < 4; i++) {
    const w = lanes[o + i]!;
    out[i * 4] = w & 0xff;
    out[i * 4 + 1] = (w >>> 8) & 0xff;
    out[i * 4 + 2] = (w >>> 16) & 0xff;
    out[i * 4 + 3] = w >>> 24;
  }
  return out;
}

/** True when lanes a[ao..ao+4) equal b[bo..bo+4). */
export function equal128(a: Uint32Array, ao: number, b: Uint32Array, bo: number): boolean {
  return a[ao] === b[bo] && a[ao + 1] === b[bo + 1] && a[ao + 2] === b[bo + 2] && a[ao + 3] === b[bo + 3];
}
