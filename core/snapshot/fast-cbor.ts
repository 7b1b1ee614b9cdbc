/**
 * A fast path for the dag-cbor the manifest is made of. An incremental backup decodes every directory node of the
 * parent snapshot and encodes every directory that changed; through the generic codec (a token stream, then
 * objects) that was a sixth of its main-thread time. These functions cover exactly the values manifest nodes hold
 * (safe integers, 64-bit bigints, ASCII text, byte strings, CIDs, null, arrays and string-keyed maps) in canonical
 * DAG-CBOR, byte for byte what @ipld/dag-cbor produces and accepts (a property test compares them). Anything else
 * (floats, booleans, non-ASCII text, non-canonical forms, trailing bytes) gets `null`, and the caller uses the
 * generic codec, which then encodes, decodes or rejects it as it always did.
 */
import { CID } from 'multiformats/cid';

// ---- encoding -----------------------------------------------------------------------------------------------------

class Writer {
  buf = new Uint8Array(4096);
  len = 0;

  #room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }

  /** A CBOR head: major type and argument, in the shortest form. */
  head(major: number, n: number): void {
    const m = major << 5;
    this.#room(9);
    const b = this.buf;
    if (n < 24) b[this.len++] = m | n;
    else if (n < 0x100) {
      b[this.len++] = m | 24;
      b[this.len++] = n;
    } else if (n < 0x10000) {
      b[this.len++] = m | 25;
      b[this.len++] = n >>> 8;
      b[this.len++] = n & 0xff;
    } else if (n < 0x100000000) {
      b[this.len++] = m | 26;
      b[this.len++] = n >>> 24;
      b[this.len++] = (n >>> 16) & 0xff;
      b[this.len++] = (n >>> 8) & 0xff;
      b[this.len++] = n & 0xff;
    } else this.head64(major, BigInt(n));
  }

  head64(major: number, n: bigint): void {
    if (n < 0x100000000n) return this.head(major, Number(n));
    this.#room(9);
    this.buf[this.len++] = (major << 5) | 27;
    for (let shift = 56n; shift >= 0n; shift -= 8n) this.buf[this.len++] = Number((n >> shift) & 0xffn);
  }

  bytes(b: Uint8Array): void {
    this.#room(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }

  /** An ASCII string's bytes (the caller checked it is ASCII). */
  ascii(s: string): void {
    this.#room(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.len++] = s.charCodeAt(i);
  }
}

/** DAG-CBOR map key order: shorter keys first, then by bytes. */
function keyOrder(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

const MAX_U64 = (1n << 64n) - 1n;

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Encode `v`; false when it holds something this fast path does not cover. */
function put(w: Writer, v: unknown): boolean {
  switch (typeof v) {
    case 'number':
      if (!Number.isSafeInteger(v) || Object.is(v, -0)) return false;
      if (v >= 0) w.head(0, v);
      else w.head(1, -1 - v);
      return true;
    case 'bigint':
      if (v >= 0n) {
        if (v > MAX_U64) return false;
        w.head64(0, v);
      } else {
        if (-1n - v > MAX_U64) return false;
        w.head64(1, -1n - v);
      }
      return true;
    case 'string':
      if (!isAscii(v)) return false;
      w.head(3, v.length);
      w.ascii(v);
      return true;
    case 'object': {
      if (v === null) {
        w.head(7, 22);
        return true;
      }
      if (v instanceof Uint8Array) {
        w.head(2, v.length);
        w.bytes(v);
        return true;
      }
      if (Array.isArray(v)) {
        w.head(4, v.length);
        for (const x of v) if (!put(w, x)) return false;
        return true;
      }
      const proto0 = Object.getPrototypeOf(v);
      const cid = proto0 === Object.prototype || proto0 === null ? null : v instanceof CID ? v : CID.asCID(v);
      if (cid) {
        const b = cid.bytes;
        w.head(6, 42);
        w.head(2, b.length + 1);
        w.bytes(ZERO);
        w.bytes(b);
        return true;
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return false;
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o);
      for (const k of keys) if (o[k] === undefined || !isAscii(k)) return false;
      keys.sort(keyOrder);
      w.head(5, keys.length);
      for (const k of keys) {
        w.head(3, k.length);
        w.ascii(k);
        if (!put(w, o[k])) return false;
      }
      return true;
    }
    default:
      return false;
  }
}
const ZERO = new Uint8Array([0]);

/** The DAG-CBOR encoding of `value`, or null when this fast path does not cover it. */
export function encodeFast(value: unknown): Uint8Array | null {
  const w = new Writer();
  if (!put(w, value)) return null;
  return w.buf.slice(0, w.len);
}

// ---- decoding -----------------------------------------------------------------------------------------------------

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** Thrown inside the decoder when the input is outside the fast path (never escapes decodeFast). */
const OUT = Symbol('outside the fast path');

class Reader {
  pos = 0;
  /** Major type of the head `head` read last (kept here, not returned in a tuple: no allocation per item). */
  major = 0;
  constructor(readonly b: Uint8Array) {}

  /** The argument of the next head, in its shortest form (its major type in `major`), or OUT. */
  head(): number | bigint {
    const b = this.b;
    if (this.pos >= b.length) throw OUT;
    const first = b[this.pos++];
    this.major = first >> 5;
    const info = first & 31;
    if (info < 24) return info;
    if (info === 24) {
      if (this.pos + 1 > b.length) throw OUT;
      const n = b[this.pos++];
      if (n < 24) throw OUT;
      return n;
    }
    if (info === 25) {
      if (this.pos + 2 > b.length) throw OUT;
      const n = (b[this.pos] << 8) | b[this.pos + 1];
      this.pos += 2;
      if (n < 0x100) throw OUT;
      return n;
    }
    if (info === 26) {
      if (this.pos + 4 > b.length) throw OUT;
      const n = ((b[this.pos] << 24) >>> 0) + ((b[this.pos + 1] << 16) | (b[this.pos + 2] << 8) | b[this.pos + 3]);
      this.pos += 4;
      if (n < 0x10000) throw OUT;
      return n;
    }
    if (info === 27) {
      if (this.pos + 8 > b.length) throw OUT;
      let n = 0n;
      for (let i = 0; i < 8; i++) n = (n << 8n) | BigInt(b[this.pos + i]);
      this.pos += 8;
      if (n < 0x100000000n) throw OUT;
      return n <= MAX_SAFE ? Number(n) : n;
    }
    throw OUT; // indefinite lengths and reserved values
  }

  length(n: number | bigint): number {
    if (typeof n !== 'number' || n > this.b.length - this.pos) throw OUT;
    return n;
  }

  value(depth: number): unknown {
    if (depth > 64) throw OUT;
    const n = this.head();
    switch (this.major) {
      case 0:
        return n;
      case 1:
        if (typeof n === 'number') {
          const v = -1 - n;
          return Number.isSafeInteger(v) ? v : -1n - BigInt(n);
        }
        return -1n - n;
      case 2: {
        const len = this.length(n);
        const out = new Uint8Array(len); // a plain copy, as the generic decoder gives (even from a Buffer)
        out.set(this.b.subarray(this.pos, this.pos + len));
        this.pos += len;
        return out;
      }
      case 3: {
        const len = this.length(n);
        let s = '';
        for (let i = 0; i < len; i++) {
          const c = this.b[this.pos + i];
          if (c > 0x7f) throw OUT;
          s += String.fromCharCode(c);
        }
        this.pos += len;
        return s;
      }
      case 4: {
        const len = this.length(n);
        const out = new Array<unknown>(len);
        for (let i = 0; i < len; i++) out[i] = this.value(depth + 1);
        return out;
      }
      case 5: {
        const len = this.length(n);
        const out: Record<string, unknown> = {};
        let last: string | undefined;
        for (let i = 0; i < len; i++) {
          const key = this.value(depth + 1);
          if (typeof key !== 'string') throw OUT;
          // Canonical order, no duplicates; anything else is left to the generic decoder.
          if (last !== undefined && keyOrder(last, key) >= 0) throw OUT;
          if (key === '__proto__') throw OUT;
          last = key;
          out[key] = this.value(depth + 1);
        }
        return out;
      }
      case 6: {
        if (n !== 42) throw OUT;
        const len0 = this.head();
        const m: number = this.major; // (the switch narrowed `this.major` to 6; `head` just changed it)
        if (m !== 2) throw OUT;
        const len = this.length(len0);
        if (len < 1 || this.b[this.pos] !== 0) throw OUT;
        let cid: CID;
        try {
          cid = CID.decode(this.b.subarray(this.pos + 1, this.pos + len));
        } catch {
          throw OUT;
        }
        this.pos += len;
        return cid;
      }
      case 7:
        if (n === 22) return null;
        throw OUT;
      default:
        throw OUT;
    }
  }
}

/** The value DAG-CBOR `bytes` decode to, or null when this fast path does not cover them. */
export function decodeFast(bytes: Uint8Array): { value: unknown } | null {
  try {
    const r = new Reader(bytes);
    const value = r.value(0);
    if (r.pos !== bytes.length) return null;
    return { value };
  } catch (e) {
    if (e === OUT) return null;
    throw e;
  }
}
