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

/**
 * The gear loop as a tiny WebAssembly function (hand-assembled below, about 170 bytes): V8 runs it about four times
 * faster than the same loop in JS (~2 GB/s against ~0.45 GB/s per core here), and it was most of a backup's CPU
 * time. Its memory holds the gear table at 0 and the bytes to scan from DATA_AT on. `scan(i, endS, endL, maskS,
 * maskL)` runs the two normalized-chunking loops of `cut` over memory[DATA_AT + i ..] and returns the index just
 * after the boundary byte, or 0 when there is none before endL. Where WebAssembly is missing, the JS loop runs.
 */
const DATA_AT = 1024;
/**
 * Bytes of a window copied into the scanner's memory at once (a larger scan copies what it needs). Every scan needs
 * at most max - min bytes (1.75 MiB by default), so a 3 MiB segment usually serves two or three cuts: about one
 * copy of each byte, while the scanner's memory (one per thread, never shrunk) stays at 3 MiB.
 */
const SCAN_SEGMENT = 3 * 1024 * 1024;

type ScanFn = (i: number, endS: number, endL: number, maskS: number, maskL: number) => number;

/** The little of the WebAssembly API used here (the project's type libraries do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

interface Scanner {
  scan: ScanFn;
  memory: WasmMemory;
  /** A view of the data area, renewed when the memory grows. */
  data: Uint8Array;
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

/** The module's bytes. Locals: 0 i, 1 endS, 2 endL, 3 maskS, 4 maskL (parameters), 5 h. */
function scannerModule(): Uint8Array {
  const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
  // block { if i >= end: break; loop { h = (h << 1) + gear[mem[DATA_AT + i]]; i++; if !(h & mask) return i;
  //   if i < end: continue } }
  const loop = (end: number, mask: number): number[] => [
    0x02, 0x40, 0x20, 0, 0x20, end, 0x4f, 0x0d, 0, // block; local.get i; local.get end; i32.ge_u; br_if 0
    0x03, 0x40, // loop
    0x20, 5, 0x41, 1, 0x74, // h << 1
    0x20, 0, 0x2d, 0, ...uleb(DATA_AT), // i32.load8_u offset=DATA_AT (i)
    0x41, 2, 0x74, 0x28, 2, 0, // i32.load align=4 offset=0 (byte << 2): the gear word
    0x6a, 0x22, 5, // i32.add; local.tee h
    0x20, 0, 0x41, 1, 0x6a, 0x21, 0, // i = i + 1
    0x20, mask, 0x71, 0x45, 0x04, 0x40, 0x20, 0, 0x0f, 0x0b, // if (h & mask) == 0: return i
    0x20, 0, 0x20, end, 0x49, 0x0d, 0, // br_if 0 (continue) when i < end
    0x0b, 0x0b, // end loop; end block
  ];
  const body = [1, 1, 0x7f, ...loop(1, 3), ...loop(2, 4), 0x41, 0, 0x0b];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 5, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f]), // type: (i32 x5) -> i32
    ...section(3, [1, 0]), // one function of type 0
    ...section(5, [1, 0, 1]), // one memory, 1 page to start
    ...section(7, [2, 3, 0x6d, 0x65, 0x6d, 2, 0, 4, 0x73, 0x63, 0x61, 0x6e, 0, 0]), // export "mem", "scan"
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

let scanner: Scanner | null | undefined;

/** The thread's scanner (one per thread: scans are synchronous, so every FastCdc of a thread can share it). */
function getScanner(): Scanner | null {
  if (scanner !== undefined) return scanner;
  scanner = null;
  const wasm = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (typeof wasm !== 'object') return scanner;
  try {
    const instance = new wasm.Instance(new wasm.Module(scannerModule()), {});
    const memory = instance.exports.mem as WasmMemory;
    const gear = new DataView(memory.buffer, 0, DATA_AT);
    for (let b = 0; b < 256; b++) gear.setInt32(b * 4, GEAR_I32[b], true);
    scanner = { scan: instance.exports.scan as ScanFn, memory, data: new Uint8Array(memory.buffer, DATA_AT) };
  } catch {
    scanner = null; // WebAssembly present but refused (a strict content security policy): the JS loop runs
  }
  return scanner;
}

/** Room for `n` bytes of data in the scanner's memory. */
function reserve(s: Scanner, n: number): void {
  if (s.data.length >= n) return;
  s.memory.grow(Math.ceil((n - s.data.length) / 65536));
  s.data = new Uint8Array(s.memory.buffer, DATA_AT);
}

/** A chunker bound to its parameters, with the masks precomputed. */
export class FastCdc {
  readonly params: ChunkerParams;
  readonly #maskS: number;
  readonly #maskL: number;
  readonly #scanner: Scanner | null;
  /** The part of a buffer in the scanner's memory during one `boundaries` call: buf[#segFrom, #segTo). */
  #seg: Uint8Array | undefined;
  #segFrom = 0;
  #segTo = 0;
  #inBoundaries = false;

  constructor(params: ChunkerParams = DEFAULT_CHUNKER, options: { wasm?: boolean } = {}) {
    validateParams(params);
    this.params = params;
    const bits = Math.round(Math.log2(params.avgSize));
    this.#maskS = highMask(bits + 2);
    this.#maskL = highMask(bits - 2);
    this.#scanner = options.wasm === false ? null : getScanner();
  }

  /** Whether the gear loop runs as WebAssembly (else in JS; both give the same boundaries). */
  get wasm(): boolean {
    return this.#scanner !== null;
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
    const from = start + minSize;
    const endS = start + normal;
    const endL = start + limit;
    const s = this.#scanner;
    let at: number;
    if (s === null) at = scanJs(buf, from, endS, endL, this.#maskS | 0, this.#maskL | 0);
    else {
      // Bring buf[from, endL) into the scanner's memory unless this call's segment already holds it.
      if (this.#seg !== buf || from < this.#segFrom || endL > this.#segTo) {
        const to = Math.min(buf.length, Math.max(endL, from + SCAN_SEGMENT));
        reserve(s, to - from);
        s.data.set(buf.subarray(from, to), 0);
        this.#segFrom = from;
        this.#segTo = to;
        this.#seg = this.#inBoundaries ? buf : undefined;
      }
      const base = this.#segFrom;
      const r = s.scan(from - base, endS - base, endL - base, this.#maskS | 0, this.#maskL | 0);
      at = r === 0 ? 0 : r + base;
    }
    if (at !== 0) return at - start;
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
    // Within this call the buffer cannot change, so a segment copied into the scanner serves several cuts.
    this.#inBoundaries = true;
    try {
      while (pos < buf.length) {
        const n = this.cut(buf, pos, buf.length, eof);
        if (n === 0) break;
        pos += n;
        out.push(pos);
      }
    } finally {
      this.#inBoundaries = false;
      this.#seg = undefined;
    }
    return out;
  }
}

/** The gear loop in JS: the index just after the boundary byte, or 0 when there is none before endL. */
function scanJs(buf: Uint8Array, from: number, endS: number, endL: number, maskS: number, maskL: number): number {
  const gear = GEAR_I32;
  let h = 0;
  let i = from;
  for (; i < endS; i++) {
    h = ((h << 1) + gear[buf[i]]) | 0;
    if ((h & maskS) === 0) return i + 1;
  }
  for (; i < endL; i++) {
    h = ((h << 1) + gear[buf[i]]) | 0;
    if ((h & maskL) === 0) return i + 1;
  }
  return 0;
}
