/**
 * The block protocol's messages (protocol.ts), encoded and decoded without a general CBOR pass. Every block moved,
 * every `has` batch and every integrity repair goes through these four shapes, and a general dag-cbor encoder
 * builds a token list, sorts map keys and copies the payload twice on the way.
 *
 * The bytes are exactly what `dagCbor.encode` writes for the same message (keys in dag-cbor order: by length, then
 * bytewise; integers and lengths in their shortest form; CIDs as tag 42 over a 0x00-prefixed byte string), so the
 * wire format is unchanged. Decoding accepts only that exact layout and returns undefined for anything else; the
 * caller then runs the general decoder, which gives the same answer or the same named error. `bytes` fields come
 * back as views into the message (no copy); CIDs own their bytes (a held CID must not keep a message alive).
 */
import { CID } from 'multiformats/cid';
import type { BlockRequest, BlockResponse } from './protocol.ts';

const V = [0x61, 0x76, 0x01]; // "v": 1
const OP = [0x62, 0x6f, 0x70]; // "op"
const TEXT3 = 0x63;
const KEY_CID = [0x63, 0x63, 0x69, 0x64]; // "cid"
const KEY_CIDS = [0x64, 0x63, 0x69, 0x64, 0x73]; // "cids"
const KEY_BYTES = [0x65, 0x62, 0x79, 0x74, 0x65, 0x73]; // "bytes"
const KEY_BITS = [0x64, 0x62, 0x69, 0x74, 0x73]; // "bits"
const KEY_STORED = [0x66, 0x73, 0x74, 0x6f, 0x72, 0x65, 0x64]; // "stored"
const OPS = { get: [0x67, 0x65, 0x74], put: [0x70, 0x75, 0x74], has: [0x68, 0x61, 0x73] } as const;
type Op = keyof typeof OPS;

/** Bytes of a CBOR head (major type and length/value) in its shortest form. */
function headSize(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : n < 0x100000000 ? 5 : 9;
}

function cidSize(cid: CID): number {
  const n = cid.bytes.byteLength + 1;
  return 2 + headSize(n) + n;
}

class Writer {
  readonly out: Uint8Array;
  at = 0;

  constructor(size: number) {
    this.out = new Uint8Array(size);
  }

  raw(bytes: readonly number[]): void {
    for (const b of bytes) this.out[this.at++] = b;
  }

  head(major: number, n: number): void {
    const m = major << 5;
    const o = this.out;
    if (n < 24) o[this.at++] = m | n;
    else if (n < 0x100) {
      o[this.at++] = m | 24;
      o[this.at++] = n;
    } else if (n < 0x10000) {
      o[this.at++] = m | 25;
      o[this.at++] = n >>> 8;
      o[this.at++] = n & 0xff;
    } else {
      o[this.at++] = m | 26;
      o[this.at++] = n >>> 24;
      o[this.at++] = (n >>> 16) & 0xff;
      o[this.at++] = (n >>> 8) & 0xff;
      o[this.at++] = n & 0xff;
    }
  }

  bytes(b: Uint8Array): void {
    this.head(2, b.byteLength);
    this.out.set(b, this.at);
    this.at += b.byteLength;
  }

  cid(cid: CID): void {
    this.out[this.at++] = 0xd8;
    this.out[this.at++] = 42;
    this.head(2, cid.bytes.byteLength + 1);
    this.out[this.at++] = 0;
    this.out.set(cid.bytes, this.at);
    this.at += cid.bytes.byteLength;
  }

  /** The map head and the "v" and "op" entries every message starts with. */
  start(entries: number, op: Op): void {
    this.head(5, entries);
    this.raw(V);
    this.raw(OP);
    this.out[this.at++] = TEXT3;
    this.raw(OPS[op]);
  }

  done(): Uint8Array {
    return this.at === this.out.byteLength ? this.out : this.out.subarray(0, this.at);
  }
}

/** Size of the map head, "v": 1 and "op": "xxx". */
const START = 1 + V.length + OP.length + 1 + 3;

/** A request whose CIDs are all CIDv1 or v0 as multiformats represents them; larger than 4 GiB never happens. */
export function encodeBlockRequestFast(req: BlockRequest): Uint8Array {
  switch (req.op) {
    case 'get': {
      const w = new Writer(START + KEY_CID.length + cidSize(req.cid));
      w.start(3, 'get');
      w.raw(KEY_CID);
      w.cid(req.cid);
      return w.done();
    }
    case 'put': {
      const n = req.bytes.byteLength;
      const w = new Writer(START + KEY_CID.length + cidSize(req.cid) + KEY_BYTES.length + headSize(n) + n);
      w.start(4, 'put');
      w.raw(KEY_CID);
      w.cid(req.cid);
      w.raw(KEY_BYTES);
      w.bytes(req.bytes);
      return w.done();
    }
    case 'has': {
      let size = START + KEY_CIDS.length + headSize(req.cids.length);
      for (const c of req.cids) size += cidSize(c);
      const w = new Writer(size);
      w.start(3, 'has');
      w.raw(KEY_CIDS);
      w.head(4, req.cids.length);
      for (const c of req.cids) w.cid(c);
      return w.done();
    }
  }
}

export function encodeBlockResponseFast(res: BlockResponse): Uint8Array {
  switch (res.op) {
    case 'get': {
      if (res.bytes === undefined) {
        const w = new Writer(START);
        w.start(2, 'get');
        return w.done();
      }
      const n = res.bytes.byteLength;
      const w = new Writer(START + KEY_BYTES.length + headSize(n) + n);
      w.start(3, 'get');
      w.raw(KEY_BYTES);
      w.bytes(res.bytes);
      return w.done();
    }
    case 'put': {
      const w = new Writer(START + KEY_STORED.length + 1);
      w.start(3, 'put');
      w.raw(KEY_STORED);
      w.out[w.at++] = res.stored ? 0xf5 : 0xf4;
      return w.done();
    }
    case 'has': {
      const n = res.bits.byteLength;
      const w = new Writer(START + KEY_BITS.length + headSize(n) + n);
      w.start(3, 'has');
      w.raw(KEY_BITS);
      w.bytes(res.bits);
      return w.done();
    }
  }
}

/** Thrown inside the reader when the layout is not the exact one expected (never escapes this module). */
class NotCanonical {}
const NOT = new NotCanonical();

class Reader {
  at = 0;

  constructor(readonly b: Uint8Array) {}

  expect(bytes: readonly number[]): void {
    for (const x of bytes) if (this.b[this.at++] !== x) throw NOT;
  }

  /** A head of `major`, in its shortest form; returns its argument. */
  head(major: number): number {
    const b = this.b;
    const first = b[this.at++];
    if (first === undefined || first >>> 5 !== major) throw NOT;
    const info = first & 0x1f;
    let n: number;
    if (info < 24) return info;
    if (info === 24) n = b[this.at++];
    else if (info === 25) n = (b[this.at++] << 8) | b[this.at++];
    else if (info === 26) n = ((b[this.at++] << 24) | (b[this.at++] << 16) | (b[this.at++] << 8) | b[this.at++]) >>> 0;
    else throw NOT;
    if (n === undefined || Number.isNaN(n) || this.at > b.byteLength || headSize(n) !== (info === 24 ? 2 : info === 25 ? 3 : 5)) throw NOT;
    return n;
  }

  bytes(): Uint8Array {
    const n = this.head(2);
    const end = this.at + n;
    if (end > this.b.byteLength) throw NOT;
    const out = this.b.subarray(this.at, end);
    this.at = end;
    return out;
  }

  cid(): CID {
    if (this.b[this.at++] !== 0xd8 || this.b[this.at++] !== 42) throw NOT;
    const raw = this.bytes();
    if (raw.byteLength < 2 || raw[0] !== 0) throw NOT;
    try {
      // a copy: the CID must not keep the message alive
      return CID.decode(raw.slice(1));
    } catch {
      throw NOT;
    }
  }

  /** The map head (exactly `entries`), "v": 1 and "op"; returns the op. */
  start(entries: number): Op {
    if (this.head(5) !== entries) throw NOT;
    this.expect(V);
    this.expect(OP);
    this.expect([TEXT3]);
    const b = this.b;
    const a = this.at;
    this.at += 3;
    for (const op of ['get', 'put', 'has'] as const) {
      const o = OPS[op];
      if (b[a] === o[0] && b[a + 1] === o[1] && b[a + 2] === o[2]) return op;
    }
    throw NOT;
  }

  end(): void {
    if (this.at !== this.b.byteLength) throw NOT;
  }
}

function attempt<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (e === NOT) return undefined;
    throw e;
  }
}

/** The request, when `bytes` are in the exact layout the encoder writes (at most `maxHas` CIDs); else undefined. */
export function decodeBlockRequestFast(bytes: Uint8Array, maxHas: number): BlockRequest | undefined {
  return attempt((): BlockRequest => {
    const first = bytes[0];
    const r = new Reader(bytes);
    const op = r.start(first === 0xa4 ? 4 : 3);
    if (op === 'get' && first === 0xa3) {
      r.expect(KEY_CID);
      const cid = r.cid();
      r.end();
      return { op, cid };
    }
    if (op === 'put' && first === 0xa4) {
      r.expect(KEY_CID);
      const cid = r.cid();
      r.expect(KEY_BYTES);
      const data = r.bytes();
      r.end();
      return { op, cid, bytes: data };
    }
    if (op === 'has' && first === 0xa3) {
      r.expect(KEY_CIDS);
      const n = r.head(4);
      if (n > maxHas) throw NOT;
      const cids: CID[] = new Array<CID>(n);
      for (let i = 0; i < n; i++) cids[i] = r.cid();
      r.end();
      return { op, cids };
    }
    throw NOT;
  });
}

/** The response to an `expect` request, when in the exact layout the encoder writes; else undefined. */
export function decodeBlockResponseFast(bytes: Uint8Array, expect: BlockRequest['op']): BlockResponse | undefined {
  return attempt((): BlockResponse => {
    const first = bytes[0];
    const r = new Reader(bytes);
    if (expect === 'get' && first === 0xa2) {
      if (r.start(2) !== 'get') throw NOT;
      r.end();
      return { op: 'get' };
    }
    if (first !== 0xa3 || r.start(3) !== expect) throw NOT;
    switch (expect) {
      case 'get': {
        r.expect(KEY_BYTES);
        const data = r.bytes();
        r.end();
        return { op: 'get', bytes: data };
      }
      case 'put': {
        r.expect(KEY_STORED);
        const flag = bytes[r.at++];
        if (flag !== 0xf4 && flag !== 0xf5) throw NOT;
        r.end();
        return { op: 'put', stored: flag === 0xf5 };
      }
      case 'has': {
        r.expect(KEY_BITS);
        const bits = r.bytes();
        r.end();
        return { op: 'has', bits };
      }
    }
  });
}
