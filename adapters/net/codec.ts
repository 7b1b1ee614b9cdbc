/**
 * The wire encoding of every message the network adapter sends. Pure: no I/O, no clocks.
 *
 * Frame (version 1):  version u8 | kind u8 | payload length u32 BE | payload
 *
 * Every decoder takes its limits up front and checks a length against them BEFORE it allocates or waits for the
 * bytes, so a peer cannot make a Box allocate from an announced length: memory grows only with bytes actually
 * received, and never past the limit of the frame kind expected at that point. Bad input throws one of the named
 * WireFormatError subclasses (MalformedFrameError, FrameTooLargeError, UnsupportedVersionError,
 * TruncatedFrameError, UnexpectedFrameError) and nothing else; the caller closes the stream and changes nothing.
 */
import { CID, SHA256_CODE } from '../../core/blocks/cid.ts';
import {
  FrameTooLargeError,
  MalformedFrameError,
  TruncatedFrameError,
  UnexpectedFrameError,
  UnsupportedVersionError,
  WireFormatError,
} from './errors.ts';

export const WIRE_VERSION = 1;
export const HEADER_BYTES = 6;

export const FrameKind = {
  /** request/response: the request bytes */
  Request: 0x01,
  /** request/response: the handler's answer */
  Response: 0x02,
  /** request/response and blocks: the remote failed; payload is {errorName, message} */
  Error: 0x03,
  /** blocks: client -> server, a batch of wanted CIDs */
  Want: 0x10,
  /** blocks: server -> client, one block (CID + bytes) */
  Block: 0x11,
  /** blocks: server -> client, the server does not hold this CID */
  Missing: 0x12,
  /** blocks: end of a batch (client -> server: no more wants; server -> client: every want answered) */
  Done: 0x13,
  /** blocks-push: client -> server, one block to store (CID + bytes) */
  Put: 0x14,
  /** blocks-push: server -> client, the block is durable there */
  Stored: 0x15,
  /** blocks-push: server -> client, the block was refused (its bytes do not hash to its CID) */
  Refused: 0x16,
  /** gossip envelope */
  Gossip: 0x30,
} as const;
export type FrameKindCode = (typeof FrameKind)[keyof typeof FrameKind];

const KIND_NAMES = new Map<number, string>(Object.entries(FrameKind).map(([name, code]) => [code, name]));
export function kindName(kind: number): string {
  return KIND_NAMES.get(kind) ?? `0x${kind.toString(16).padStart(2, '0')}`;
}

/** Defaults; every one is configurable where it is used. */
export const Limits = {
  /** request/response payloads of control protocols */
  control: 64 * 1024,
  /** the bytes of one block (chunks are at most 2 MiB) */
  block: 4 * 1024 * 1024,
  /** CIDs in one Want frame */
  wantCids: 1024,
  /** a CID's binary form */
  cidBytes: 64,
  /** {errorName, message} */
  errorName: 64,
  errorMessage: 2048,
  /** gossip payloads */
  gossip: 1024 * 1024,
  /** peer exchange */
  peers: 64,
  peerAddrs: 16,
  peerIdChars: 128,
  addrChars: 512,
} as const;

/** Payload limit of the Want frame at the default `wantCids`. */
export const WANT_FRAME_LIMIT = 2 + Limits.wantCids * (1 + Limits.cidBytes);
/** Payload limit of the Error frame. */
export const ERROR_FRAME_LIMIT = 1 + Limits.errorName + 2 + Limits.errorMessage;
/** Payload limit of a Block frame carrying at most `maxBlock` bytes. */
export function blockFrameLimit(maxBlock: number): number {
  return 1 + Limits.cidBytes + maxBlock;
}

export interface Frame {
  kind: number;
  payload: Uint8Array;
}

/** kind -> largest payload accepted. Kinds not in the map are refused with UnexpectedFrameError. */
export type FrameLimits = ReadonlyMap<number, number>;

export function frameLimits(entries: Array<[number, number]>): FrameLimits {
  return new Map(entries);
}

// ---------------------------------------------------------------------------------------------------------------
// Frames

export function frameHeader(kind: number, length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > 0xffffffff) throw new RangeError(`bad frame length ${length}`);
  const h = new Uint8Array(HEADER_BYTES);
  h[0] = WIRE_VERSION;
  h[1] = kind;
  new DataView(h.buffer).setUint32(2, length);
  return h;
}

/** One contiguous frame (copies the payload: use `frameHeader` + the payload for big frames). */
export function encodeFrame(kind: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.byteLength);
  out.set(frameHeader(kind, payload.byteLength), 0);
  out.set(payload, HEADER_BYTES);
  return out;
}

function checkHeader(version: number, kind: number, length: number, limits: FrameLimits): void {
  if (version !== WIRE_VERSION) throw new UnsupportedVersionError(version);
  const limit = limits.get(kind);
  if (limit === undefined) {
    if (!KIND_NAMES.has(kind)) throw new MalformedFrameError(`unknown frame kind ${kindName(kind)}`);
    throw new UnexpectedFrameError(`a ${kindName(kind)} frame is not allowed here`);
  }
  if (length > limit) throw new FrameTooLargeError(`${kindName(kind)} frame`, length, limit);
}

/** Decode exactly one frame that fills `bytes`. */
export function decodeFrame(bytes: Uint8Array, limits: FrameLimits): Frame {
  if (bytes.byteLength < HEADER_BYTES) throw new TruncatedFrameError(`frame header needs ${HEADER_BYTES} bytes, got ${bytes.byteLength}`);
  const length = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(2);
  checkHeader(bytes[0], bytes[1], length, limits);
  const end = HEADER_BYTES + length;
  if (bytes.byteLength < end) throw new TruncatedFrameError(`frame announces ${length} payload bytes, got ${bytes.byteLength - HEADER_BYTES}`);
  if (bytes.byteLength > end) throw new MalformedFrameError(`${bytes.byteLength - end} bytes after the frame`);
  return { kind: bytes[1], payload: bytes.subarray(HEADER_BYTES, end) };
}

/**
 * Incremental decoder for a byte stream of frames. Buffers at most one frame (whose length was checked against
 * the limits before waiting for it) plus what the last chunk carried beyond it. Payloads that arrived in one
 * chunk are returned as views without copying; others are assembled once, into an allocation of the (already
 * received, already limit-checked) size. After a failure every call throws the same error.
 */
export class FrameDecoder {
  #chunks: Uint8Array[] = [];
  #offset = 0; // consumed bytes of #chunks[0]
  #buffered = 0;
  #failure: WireFormatError | undefined;
  #limits: FrameLimits;

  constructor(limits: FrameLimits) {
    this.#limits = limits;
  }

  /** Replace the allowed kinds/limits (e.g. when the conversation moves to its next phase). */
  setLimits(limits: FrameLimits): void {
    this.#limits = limits;
  }

  get buffered(): number {
    return this.#buffered;
  }

  /** Append received bytes (a Uint8Array or an iterable of them, e.g. a Uint8ArrayList). */
  push(data: Uint8Array | Iterable<Uint8Array>): void {
    if (this.#failure) throw this.#failure;
    if (data instanceof Uint8Array) {
      if (data.byteLength > 0) {
        this.#chunks.push(data);
        this.#buffered += data.byteLength;
      }
      return;
    }
    for (const c of data) {
      if (c.byteLength > 0) {
        this.#chunks.push(c);
        this.#buffered += c.byteLength;
      }
    }
  }

  #byteAt(i: number): number {
    let idx = i + this.#offset;
    for (const c of this.#chunks) {
      if (idx < c.byteLength) return c[idx];
      idx -= c.byteLength;
    }
    throw new RangeError('byteAt past the buffer'); // unreachable: callers check #buffered
  }

  /** The next complete frame, or undefined when more bytes are needed. Throws a WireFormatError on bad input. */
  next(): Frame | undefined {
    if (this.#failure) throw this.#failure;
    if (this.#buffered < HEADER_BYTES) return undefined;
    const version = this.#byteAt(0);
    const kind = this.#byteAt(1);
    const length = ((this.#byteAt(2) << 24) >>> 0) + (this.#byteAt(3) << 16) + (this.#byteAt(4) << 8) + this.#byteAt(5);
    try {
      checkHeader(version, kind, length, this.#limits);
    } catch (err) {
      this.#failure = err as WireFormatError;
      this.#chunks = [];
      this.#buffered = 0;
      throw err;
    }
    if (this.#buffered < HEADER_BYTES + length) return undefined;
    this.#consume(HEADER_BYTES);
    return { kind, payload: this.#take(length) };
  }

  /** The input ended: throws TruncatedFrameError if a partial frame is buffered. */
  finish(): void {
    if (this.#failure) throw this.#failure;
    if (this.#buffered > 0) {
      this.#failure = new TruncatedFrameError(`input ended inside a frame (${this.#buffered} bytes pending)`);
      throw this.#failure;
    }
  }

  #consume(n: number): void {
    this.#buffered -= n;
    while (n > 0) {
      const c = this.#chunks[0];
      const left = c.byteLength - this.#offset;
      if (n < left) {
        this.#offset += n;
        return;
      }
      n -= left;
      this.#chunks.shift();
      this.#offset = 0;
    }
  }

  #take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    const first = this.#chunks[0];
    if (first.byteLength - this.#offset >= n) {
      // a plain Uint8Array view (not a Node Buffer, whose slice() would not copy)
      const view = new Uint8Array(first.buffer, first.byteOffset + this.#offset, n);
      this.#consume(n);
      return view;
    }
    // n <= limit and n bytes are already buffered; every byte is overwritten below, so skip the zero-fill
    const out = n >= 4096 ? asPlain(Buffer.allocUnsafeSlow(n)) : new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.#chunks[0];
      const take = Math.min(c.byteLength - this.#offset, n - filled);
      out.set(c.subarray(this.#offset, this.#offset + take), filled);
      filled += take;
      this.#consume(take);
    }
    return out;
  }
}

/** A plain Uint8Array over the same memory (a Node Buffer's slice() would not copy). */
function asPlain(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

// ---------------------------------------------------------------------------------------------------------------
// Payload fields

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/** Bounds-checked cursor over one payload. */
class Reader {
  #pos = 0;
  readonly #view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly what: string,
  ) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get left(): number {
    return this.bytes.byteLength - this.#pos;
  }
  #need(n: number, field: string): void {
    if (this.left < n) throw new TruncatedFrameError(`${this.what}: ${field} needs ${n} bytes, ${this.left} left`);
  }
  u8(field: string): number {
    this.#need(1, field);
    return this.bytes[this.#pos++];
  }
  u16(field: string): number {
    this.#need(2, field);
    const v = this.#view.getUint16(this.#pos);
    this.#pos += 2;
    return v;
  }
  take(n: number, field: string): Uint8Array {
    this.#need(n, field);
    const v = this.bytes.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return v;
  }
  rest(): Uint8Array {
    const v = this.bytes.subarray(this.#pos);
    this.#pos = this.bytes.byteLength;
    return v;
  }
  end(): void {
    if (this.left !== 0) throw new MalformedFrameError(`${this.what}: ${this.left} unexpected trailing bytes`);
  }
}

function text(bytes: Uint8Array, what: string): string {
  try {
    return utf8Strict.decode(bytes);
  } catch {
    throw new MalformedFrameError(`${what} is not valid UTF-8`);
  }
}

function limited(value: number, limit: number, what: string): number {
  if (value > limit) throw new FrameTooLargeError(what, value, limit);
  return value;
}

/** A CIDv1 over sha2-256 (the only kind Reserve stores), from its binary form. */
export function decodeCidBytes(bytes: Uint8Array): CID {
  let cid: CID;
  try {
    cid = CID.decode(bytes);
  } catch {
    throw new MalformedFrameError('not a valid CID');
  }
  if (cid.version !== 1 || cid.multihash.code !== SHA256_CODE || cid.multihash.digest.byteLength !== 32) {
    throw new MalformedFrameError(`unsupported CID ${cid.toString()}: only CIDv1 sha2-256`);
  }
  return cid;
}

function writeCid(parts: Uint8Array[], cid: CID): void {
  const b = cid.bytes;
  if (b.byteLength > Limits.cidBytes) throw new RangeError(`CID of ${b.byteLength} bytes is too long`);
  parts.push(Uint8Array.of(b.byteLength), b);
}

function readCid(r: Reader): CID {
  const len = limited(r.u8('CID length'), Limits.cidBytes, 'CID');
  return decodeCidBytes(r.take(len, 'CID'));
}

/** `parts` copied into one new buffer; `total` is their summed length when the caller already knows it. */
export function concat(parts: readonly Uint8Array[], total?: number): Uint8Array {
  let n = total ?? 0;
  if (total === undefined) for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Error payload: nameLen u8 | name (ASCII identifier) | messageLen u16 | message (UTF-8)

export interface WireError {
  errorName: string;
  message: string;
}

const ERROR_NAME = /^[A-Za-z_$][A-Za-z0-9_$.-]*$/;

export function encodeError(err: WireError): Uint8Array {
  const name = ERROR_NAME.test(err.errorName) && err.errorName.length <= Limits.errorName ? err.errorName : 'Error';
  let msg = utf8.encode(err.message);
  if (msg.byteLength > Limits.errorMessage) {
    // cut on a character boundary
    let cut = Limits.errorMessage;
    while (cut > 0 && (msg[cut] & 0xc0) === 0x80) cut--;
    msg = msg.subarray(0, cut);
  }
  const nameBytes = utf8.encode(name);
  const out = new Uint8Array(1 + nameBytes.byteLength + 2 + msg.byteLength);
  out[0] = nameBytes.byteLength;
  out.set(nameBytes, 1);
  new DataView(out.buffer).setUint16(1 + nameBytes.byteLength, msg.byteLength);
  out.set(msg, 3 + nameBytes.byteLength);
  return out;
}

export function decodeError(payload: Uint8Array): WireError {
  const r = new Reader(payload, 'error');
  const nameLen = limited(r.u8('name length'), Limits.errorName, 'error name');
  const errorName = text(r.take(nameLen, 'name'), 'error name');
  if (!ERROR_NAME.test(errorName)) throw new MalformedFrameError('error name is not an identifier');
  const msgLen = limited(r.u16('message length'), Limits.errorMessage, 'error message');
  const message = text(r.take(msgLen, 'message'), 'error message');
  r.end();
  return { errorName, message };
}

// ---------------------------------------------------------------------------------------------------------------
// CID lists (Want): count u16 | count x (len u8 | cid)

export function encodeCidList(cids: readonly CID[]): Uint8Array {
  if (cids.length > 0xffff) throw new RangeError('too many CIDs for one frame');
  const parts: Uint8Array[] = [new Uint8Array([cids.length >> 8, cids.length & 0xff])];
  for (const c of cids) writeCid(parts, c);
  return concat(parts);
}

export function decodeCidList(payload: Uint8Array, maxCids: number = Limits.wantCids): CID[] {
  const r = new Reader(payload, 'CID list');
  const count = limited(r.u16('count'), maxCids, 'CID list');
  // each entry takes at least 2 bytes: refuse before looping over an impossible count
  if (count * 2 > r.left) throw new TruncatedFrameError(`CID list: ${count} entries cannot fit in ${r.left} bytes`);
  const out: CID[] = [];
  for (let i = 0; i < count; i++) out.push(readCid(r));
  r.end();
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Block: cidLen u8 | cid | bytes ; Missing: cidLen u8 | cid

/** The Block payload's prefix; send it, then the block's bytes (no copy of the block). */
export function blockPrefix(cid: CID): Uint8Array {
  const parts: Uint8Array[] = [];
  writeCid(parts, cid);
  return concat(parts);
}

export function encodeBlock(cid: CID, bytes: Uint8Array): Uint8Array {
  return concat([blockPrefix(cid), bytes]);
}

export function decodeBlock(payload: Uint8Array, maxBlock: number = Limits.block): { cid: CID; bytes: Uint8Array } {
  const r = new Reader(payload, 'block');
  const cid = readCid(r);
  limited(r.left, maxBlock, 'block');
  return { cid, bytes: r.rest() };
}

export function encodeMissing(cid: CID): Uint8Array {
  return blockPrefix(cid);
}

export function decodeMissing(payload: Uint8Array): CID {
  const r = new Reader(payload, 'missing');
  const cid = readCid(r);
  r.end();
  return cid;
}

// ---------------------------------------------------------------------------------------------------------------
// Push: Put = cidLen u8 | cid | bytes (a Block payload) ; Stored and Refused = cidLen u8 | cid

/** The Put payload's prefix; send it, then the block's bytes. */
export const putPrefix = blockPrefix;

export function encodePut(cid: CID, bytes: Uint8Array): Uint8Array {
  return encodeBlock(cid, bytes);
}

export function decodePut(payload: Uint8Array, maxBlock: number = Limits.block): { cid: CID; bytes: Uint8Array } {
  const r = new Reader(payload, 'put');
  const cid = readCid(r);
  limited(r.left, maxBlock, 'put block');
  return { cid, bytes: r.rest() };
}

function decodeCidOnly(payload: Uint8Array, what: string): CID {
  const r = new Reader(payload, what);
  const cid = readCid(r);
  r.end();
  return cid;
}

export const encodeStored = blockPrefix;
export const encodeRefused = blockPrefix;

export function decodeStored(payload: Uint8Array): CID {
  return decodeCidOnly(payload, 'stored');
}

export function decodeRefused(payload: Uint8Array): CID {
  return decodeCidOnly(payload, 'refused');
}

/** Payload limit of the Stored and Refused frames (and of Missing). */
export const CID_FRAME_LIMIT = 1 + Limits.cidBytes;

export function decodeEmpty(payload: Uint8Array, what: string): void {
  if (payload.byteLength !== 0) throw new MalformedFrameError(`${what} carries ${payload.byteLength} unexpected bytes`);
}

// ---------------------------------------------------------------------------------------------------------------
// Peer exchange: version u8 | count u8 | count x (idLen u8 | id | addrCount u8 | addrCount x (len u16 | addr))

export const PEERS_VERSION = 1;

export interface PeerRecord {
  id: string;
  addrs: string[];
}

const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]+$/; // base58btc (and the base36 'k...' form is a subset of its letters)
const ADDR = /^\/[\x21-\x7e]*$/;

export function encodePeers(peers: readonly PeerRecord[]): Uint8Array {
  const list = peers.slice(0, Limits.peers);
  const parts: Uint8Array[] = [Uint8Array.of(PEERS_VERSION, list.length)];
  for (const p of list) {
    const id = utf8.encode(p.id);
    if (id.byteLength > Limits.peerIdChars || !PEER_ID.test(p.id)) throw new RangeError(`bad peer id ${p.id}`);
    const addrs = p.addrs.filter((a) => a.length <= Limits.addrChars && ADDR.test(a)).slice(0, Limits.peerAddrs);
    parts.push(Uint8Array.of(id.byteLength), id, Uint8Array.of(addrs.length));
    for (const a of addrs) {
      const b = utf8.encode(a);
      parts.push(Uint8Array.of(b.byteLength >> 8, b.byteLength & 0xff), b);
    }
  }
  return concat(parts);
}

export function decodePeers(payload: Uint8Array): PeerRecord[] {
  const r = new Reader(payload, 'peers');
  const version = r.u8('version');
  if (version !== PEERS_VERSION) throw new UnsupportedVersionError(version, 'peer list');
  const count = limited(r.u8('count'), Limits.peers, 'peer list');
  const out: PeerRecord[] = [];
  for (let i = 0; i < count; i++) {
    const idLen = limited(r.u8('peer id length'), Limits.peerIdChars, 'peer id');
    const id = text(r.take(idLen, 'peer id'), 'peer id');
    if (!PEER_ID.test(id)) throw new MalformedFrameError('peer id is not base58');
    const n = limited(r.u8('address count'), Limits.peerAddrs, 'address list');
    const addrs: string[] = [];
    for (let j = 0; j < n; j++) {
      const len = limited(r.u16('address length'), Limits.addrChars, 'address');
      const a = text(r.take(len, 'address'), 'address');
      if (!ADDR.test(a)) throw new MalformedFrameError('address is not a multiaddr string');
      addrs.push(a);
    }
    out.push({ id, addrs });
  }
  r.end();
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// PSK handshake hello: 'R' 'S' 'V' | version u8 | cipher u8 | nonce (24 bytes)

export const HELLO_MAGIC = Uint8Array.of(0x52, 0x53, 0x56);
export const PSK_VERSION = 1;
export const NONCE_BYTES = 24;
export const HELLO_BYTES = 3 + 1 + 1 + NONCE_BYTES;
export const CONFIRM_BYTES = 32;

export interface Hello {
  version: number;
  cipher: number;
  nonce: Uint8Array;
}

export function encodeHello(cipher: number, nonce: Uint8Array): Uint8Array {
  if (nonce.byteLength !== NONCE_BYTES) throw new RangeError('nonce must be 24 bytes');
  const out = new Uint8Array(HELLO_BYTES);
  out.set(HELLO_MAGIC, 0);
  out[3] = PSK_VERSION;
  out[4] = cipher;
  out.set(nonce, 5);
  return out;
}

/** Throws MalformedFrameError when the magic is wrong (not a Reserve peer), UnsupportedVersionError on version. */
export function decodeHello(bytes: Uint8Array): Hello {
  if (bytes.byteLength < HELLO_BYTES) throw new TruncatedFrameError(`hello needs ${HELLO_BYTES} bytes, got ${bytes.byteLength}`);
  if (bytes.byteLength > HELLO_BYTES) throw new MalformedFrameError('hello has trailing bytes');
  if (bytes[0] !== HELLO_MAGIC[0] || bytes[1] !== HELLO_MAGIC[1] || bytes[2] !== HELLO_MAGIC[2]) {
    throw new MalformedFrameError('not a Reserve PSK hello');
  }
  if (bytes[3] !== PSK_VERSION) throw new UnsupportedVersionError(bytes[3], 'PSK handshake');
  return { version: bytes[3], cipher: bytes[4], nonce: bytes.slice(5, 5 + NONCE_BYTES) };
}

// ---------------------------------------------------------------------------------------------------------------
// Gossip envelope: a frame of kind Gossip

export function encodeGossip(data: Uint8Array, maxBytes: number = Limits.gossip): Uint8Array {
  if (data.byteLength > maxBytes) throw new FrameTooLargeError('gossip message', data.byteLength, maxBytes);
  return encodeFrame(FrameKind.Gossip, data);
}

export function decodeGossip(bytes: Uint8Array, maxBytes: number = Limits.gossip): Uint8Array {
  return decodeFrame(bytes, frameLimits([[FrameKind.Gossip, maxBytes]])).payload;
}
