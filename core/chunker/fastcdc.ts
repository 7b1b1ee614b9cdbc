/**
 * Content-defined chunking: FastCDC (Xia et al., 2016/2020) with normalized chunking, level 2.
 *
 * A gear rolling hash `h = (h << 1) + GEAR[byte]` runs over the data; a boundary falls where the hash has zeros
 * in all bits of a mask. Because the hash depends only on the last 32 bytes, an insertion changes the boundaries
 * around it and they re-synchronise right after, so an edit to a file re-stores only the chunks it touches.
 * Normalized chunking uses a harder mask (more bits) before the average size and an easier one after, which
 * narrows the size distribution around the average.
 *
 * Sizes (see ARCHITECTURE.md for the reasoning): min 256 KiB, average 1 MiB, max 2 MiB. Photos and video are
 * large and incompressible, so small chunks buy little dedup and cost per-block overhead (a file, an fsync, a
 * placement decision, a network round trip each); 1 MiB is the IPFS UnixFS default block size and 2 MiB stays
 * within bitswap's block size limit, so every chunk is a valid IPFS block.
 */

export interface ChunkerParams {
  readonly minSize: number;
  readonly avgSize: number;
  readonly maxSize: number;
}

export const DEFAULT_CHUNKER: ChunkerParams = Object.freeze({
  minSize: 256 * 1024,
  avgSize: 1024 * 1024,
  maxSize: 2 * 1024 * 1024,
});

/** The gear table: 256 pseudo-random 32-bit words from a fixed splitmix32 sequence, so every Box agrees. */
export const GEAR: Uint32Array = (() => {
  const table = new Uint32Array(256);
  let state = 0x9e3779b9;
  for (let i = 0; i < 256; i++) {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    table[i] = (z ^ (z >>> 16)) >>> 0;
  }
  return table;
})();

/** GEAR as signed 32-bit words (the same bits): the hash loop then stays in int32 arithmetic, ~25% faster in V8. */
const GEAR_I32 = new Int32Array(GEAR.buffer.slice(0));

/** A mask with `bits` one-bits in the high end of the word (the bits that depend on the most window bytes). */
function highMask(bits: number): number {
  return bits >= 32 ? 0xffffffff : ((0xffffffff << (32 - bits)) >>> 0);
}

export function validateParams(p: ChunkerParams): void {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!pow2(p.avgSize)) throw new RangeError(`average chunk size must be a power of two, got ${p.avgSize}`);
  if (!(p.minSize >= 64 && p.minSize < p.avgSize && p.avgSize < p.maxSize)) {
    throw new RangeError(`chunk sizes must satisfy 64 <= min < avg < max, got ${p.minSize}/${p.avgSize}/${p.maxSize}`);
  }
}

/** A chunker bound to its parameters, with the masks precomputed. */
export class FastCdc {
  readonly params: ChunkerParams;
  readonly #maskS: number;
  readonly #maskL: number;

  constructor(params: ChunkerParams = DEFAULT_CHUNKER) {
    validateParams(params);
    this.params = params;
    const bits = Math.round(Math.log2(params.avgSize));
    this.#maskS = highMask(bits + 2);
    this.#maskL = highMask(bits - 2);
  }

  /**
   * Length of the chunk starting at `start`, looking at `buf[start..end)`. When fewer than `maxSize` bytes are
   * available and no boundary is found, returns `end - start` only if `eof`; otherwise returns 0, meaning "give me
   * more data" (the caller carries the tail into the next window).
   */
  cut(buf: Uint8Array, start: number, end: number, eof: boolean): number {
    const { minSize, avgSize, maxSize } = this.params;
    const available = end - start;
    if (available <= minSize) return eof ? available : 0;
    const limit = Math.min(available, maxSize);
    const normal = Math.min(avgSize, limit);
    const maskS = this.#maskS | 0;
    const maskL = this.#maskL | 0;
    const gear = GEAR_I32;
    let h = 0;
    let i = start + minSize;
    const endS = start + normal;
    const endL = start + limit;
    for (; i < endS; i++) {
      h = ((h << 1) + gear[buf[i]]) | 0;
      if ((h & maskS) === 0) return i + 1 - start;
    }
    for (; i < endL; i++) {
      h = ((h << 1) + gear[buf[i]]) | 0;
      if ((h & maskL) === 0) return i + 1 - start;
    }
    if (limit === maxSize) return maxSize;
    return eof ? available : 0;
  }

  /**
   * Every boundary in `buf` (offsets where a chunk ends). If `eof` is false, the bytes after the last boundary
   * are not a complete chunk yet: the caller keeps them and prepends them to the next window.
   */
  boundaries(buf: Uint8Array, eof: boolean): number[] {
    const out: number[] = [];
    let pos = 0;
    while (pos < buf.length) {
      const n = this.cut(buf, pos, buf.length, eof);
      if (n === 0) break;
      pos += n;
      out.push(pos);
    }
    return out;
  }
}
