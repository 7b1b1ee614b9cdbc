/**
 * The binary encoding of the holdings comparison protocol (`reserve/holdings/1`), versioned and length-limited.
 *
 * A request asks, in one message, for (a) the child summaries of some nodes ("expand") and (b) an entry exchange
 * for some subtrees ("items": the asker lists the blocks it holds there; the answer marks which of them the
 * answerer lacks and lists the blocks the answerer has that the asker did not list). Integers are minimal
 * unsigned LEB128 varints; an entry is its 32 digest bytes then its codec.
 *
 *   request  = version(1) 'Q' partitionBits levelBits filter
 *              nExpand (level index)*  nItems (level index k entry{k})*
 *   filter   = 0                                   every partition
 *            | 1 nRanges (gap length)*             ranges; gap from the previous end, length >= 1
 *            | 2 bitmap[ceil(2^partitionBits / 8)] partition p is bit (p & 7) of byte p >> 3
 *   response = version(1) 'A' levelBits nNodes summary{nNodes * 2^levelBits}
 *              nItems (k bitmap[ceil(k / 8)] m entry{m})*
 *   summary  = count [hash(16) when count > 0]
 *   entry    = digest(32) codec
 *
 * Structural rules the decoders enforce (each failure a MalformedHoldingsMessageError, the size check first as a
 * HoldingsMessageTooLargeError, an unknown version an UnsupportedHoldingsVersionError): expanded nodes strictly
 * ascending by (level, index) and above the bucket level; items ordered by the partitions they span, without
 * overlap; each item's entries strictly ascending, in the item's span and in the filter; bitmaps with no bits set
 * past their length; nothing left over at the end. Whether a response fits the request it answers is checked by
 * the asker (reconcile.ts), which holds both.
 */
import { ENTRY_KEY_BYTES, HASH_BYTES } from './set-hash.ts';
import { HoldingsMessageTooLargeError, MalformedHoldingsMessageError, UnsupportedHoldingsVersionError } from './errors.ts';
import { PartitionFilter } from './filter.ts';
import { checkGeometry, compareKeys, readU32 } from './holdings-index.ts';
import type { HoldingsGeometry } from './holdings-index.ts';
import { ByteReader, ByteWriter, varintLength } from './wire.ts';

export const HOLDINGS_WIRE_VERSION = 1;
/** Largest request or response either side accepts or sends: 8 MiB. */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

const REQUEST_TAG = 0x51; // 'Q'
const RESPONSE_TAG = 0x41; // 'A'
const FILTER_ALL = 0;
const FILTER_RANGES = 1;
const FILTER_BITMAP = 2;
const MAX_CODEC = 0xffffffff;
/** Smallest encoding of an entry: 32 digest bytes and a one-byte codec. */
const MIN_ENTRY_WIRE = 33;

export interface NodeRef {
  level: number;
  index: number;
}

export interface RequestItem extends NodeRef {
  /** The asker's entries in this subtree (within the filter): `count` packed 36-byte keys, strictly ascending. */
  keys: Uint8Array;
  count: number;
}

export interface HoldingsRequest {
  geometry: HoldingsGeometry;
  filter: PartitionFilter;
  expand: NodeRef[];
  items: RequestItem[];
}

export interface ResponseItem {
  /** Bit i set: the asker's i-th listed entry is not held by the answerer. */
  missing: Uint8Array;
  /** How many entries the asker listed (the bitmap's length in bits). */
  listed: number;
  /** Entries the answerer holds in the subtree that the asker did not list: packed 36-byte keys, ascending. */
  extra: Uint8Array;
  extraCount: number;
}

export interface HoldingsResponse {
  levelBits: number;
  /** Per expanded node, in request order, its 2^levelBits children: counts and 16-byte hashes (zero when empty). */
  counts: number[];
  hashes: Uint8Array;
  items: ResponseItem[];
}

function malformed(message: string): Error {
  return new MalformedHoldingsMessageError(`holdings message: ${message}`);
}

function checkLength(bytes: Uint8Array, maxBytes: number): void {
  if (!(bytes instanceof Uint8Array)) throw malformed('not a byte array');
  if (bytes.length > maxBytes) throw new HoldingsMessageTooLargeError(bytes.length, maxBytes);
}

function header(r: ByteReader, tag: number): void {
  const version = r.u8();
  if (version !== HOLDINGS_WIRE_VERSION) throw new UnsupportedHoldingsVersionError(version);
  const t = r.u8();
  if (t !== tag) throw r.fail(`expected a ${tag === REQUEST_TAG ? 'request' : 'response'}, got tag ${t}`);
}

function writeEntry(w: ByteWriter, keys: Uint8Array, i: number): void {
  const o = i * ENTRY_KEY_BYTES;
  w.bytes(keys, o, o + 32);
  w.varint(readU32(keys, o + 32));
}

/** Read `n` entries into packed keys, checking strict ascending order. */
function readEntries(r: ByteReader, n: number): Uint8Array {
  if (n * MIN_ENTRY_WIRE > r.remaining) throw r.fail(`${n} entries cannot fit in ${r.remaining} bytes`);
  const keys = new Uint8Array(n * ENTRY_KEY_BYTES);
  for (let i = 0; i < n; i++) {
    const o = i * ENTRY_KEY_BYTES;
    keys.set(r.bytes(32), o);
    const codec = r.varint(MAX_CODEC, 'codec');
    keys[o + 32] = codec & 0xff;
    keys[o + 33] = (codec >>> 8) & 0xff;
    keys[o + 34] = (codec >>> 16) & 0xff;
    keys[o + 35] = codec >>> 24;
    if (i > 0 && compareKeys(keys, o - ENTRY_KEY_BYTES, keys, o) >= 0) throw r.fail('entries are not strictly ascending');
  }
  return keys;
}

function readBitmap(r: ByteReader, bits: number): Uint8Array {
  const bytes = r.bytes(Math.ceil(bits / 8)).slice();
  const spare = bits & 7;
  if (spare !== 0 && (bytes[bytes.length - 1]! >>> spare) !== 0) throw r.fail('bitmap has bits set past its length');
  return bytes;
}

/** Bytes a filter takes on the wire (the encoder picks the shorter of ranges and bitmap). */
function filterEncoding(filter: PartitionFilter): { mode: number; length: number } {
  if (filter.isAll) return { mode: FILTER_ALL, length: 1 };
  let ranges = 1 + varintLength(filter.rangeCount);
  let prev = 0;
  for (const [s, e] of filter.rangeList()) {
    ranges += varintLength(s - prev) + varintLength(e - s);
    prev = e;
  }
  const bitmap = 1 + Math.ceil(filter.partitions / 8);
  return ranges <= bitmap ? { mode: FILTER_RANGES, length: ranges } : { mode: FILTER_BITMAP, length: bitmap };
}

export function filterWireBytes(filter: PartitionFilter): number {
  return filterEncoding(filter).length;
}

function writeFilter(w: ByteWriter, filter: PartitionFilter): void {
  const { mode } = filterEncoding(filter);
  w.u8(mode);
  if (mode === FILTER_ALL) return;
  if (mode === FILTER_RANGES) {
    w.varint(filter.rangeCount);
    let prev = 0;
    for (const [s, e] of filter.rangeList()) {
      w.varint(s - prev);
      w.varint(e - s);
      prev = e;
    }
    return;
  }
  const bitmap = new Uint8Array(Math.ceil(filter.partitions / 8));
  for (const [s, e] of filter.rangeList()) for (let p = s; p < e; p++) bitmap[p >>> 3]! |= 1 << (p & 7);
  w.bytes(bitmap);
}

function readFilter(r: ByteReader, partitions: number): PartitionFilter {
  const mode = r.u8();
  if (mode === FILTER_ALL) return PartitionFilter.all(partitions);
  if (mode === FILTER_RANGES) {
    const n = r.varint(Math.floor(r.remaining / 2), 'range count');
    const ranges: Array<[number, number]> = [];
    let prev = 0;
    for (let i = 0; i < n; i++) {
      const gap = r.varint(partitions, 'range gap');
      if (i > 0 && gap === 0) throw r.fail('adjacent filter ranges must be merged');
      const len = r.varint(partitions, 'range length');
      if (len === 0) throw r.fail('empty filter range');
      const s = prev + gap;
      if (s + len > partitions) throw r.fail(`filter range [${s}, ${s + len}) exceeds ${partitions} partitions`);
      ranges.push([s, s + len]);
      prev = s + len;
    }
    return PartitionFilter.ranges(partitions, ranges);
  }
  if (mode === FILTER_BITMAP) {
    const bitmap = readBitmap(r, partitions);
    return PartitionFilter.where(partitions, (p) => (bitmap[p >>> 3]! & (1 << (p & 7))) !== 0);
  }
  throw r.fail(`unknown filter mode ${mode}`);
}

/** Upper bound on the encoded size of a request with these parts (used to batch). */
export function requestOverhead(filter: PartitionFilter): number {
  return 4 + filterWireBytes(filter) + 2 * 8;
}
export const EXPAND_WIRE_MAX = 1 + 3;
export function itemWireMax(count: number): number {
  return 1 + 3 + varintLength(count) + count * (32 + 5);
}
export function summariesWireMax(nodes: number, fanout: number): number {
  return nodes * fanout * (varintLength(0xffffffff) + HASH_BYTES);
}
export function responseItemWireMax(listed: number, extra: number): number {
  return varintLength(listed) + Math.ceil(listed / 8) + varintLength(extra) + extra * (32 + 5);
}
export const RESPONSE_OVERHEAD = 3 + 2 * 8;

export function encodeRequest(req: HoldingsRequest, maxBytes = MAX_MESSAGE_BYTES): Uint8Array {
  const w = new ByteWriter(256);
  w.u8(HOLDINGS_WIRE_VERSION);
  w.u8(REQUEST_TAG);
  w.u8(req.geometry.partitionBits);
  w.u8(req.geometry.levelBits);
  writeFilter(w, req.filter);
  w.varint(req.expand.length);
  for (const n of req.expand) {
    w.varint(n.level);
    w.varint(n.index);
  }
  w.varint(req.items.length);
  for (const item of req.items) {
    w.varint(item.level);
    w.varint(item.index);
    w.varint(item.count);
    for (let i = 0; i < item.count; i++) writeEntry(w, item.keys, i);
  }
  const out = w.finish();
  if (out.length > maxBytes) throw new HoldingsMessageTooLargeError(out.length, maxBytes);
  return out;
}

export function decodeRequest(bytes: Uint8Array, maxBytes = MAX_MESSAGE_BYTES): HoldingsRequest {
  checkLength(bytes, maxBytes);
  const r = new ByteReader(bytes, malformed);
  header(r, REQUEST_TAG);
  const partitionBits = r.u8();
  const levelBits = r.u8();
  let geometry: HoldingsGeometry;
  try {
    geometry = checkGeometry({ partitionBits, levelBits });
  } catch (cause) {
    throw new MalformedHoldingsMessageError(`holdings message: ${(cause as Error).message}`, { cause });
  }
  const depth = partitionBits / levelBits;
  const partitions = 2 ** partitionBits;
  const filter = readFilter(r, partitions);

  const readNode = (maxLevel: number): NodeRef => {
    const level = r.varint(maxLevel, 'level');
    const index = r.varint(2 ** (level * levelBits) - 1, 'node index');
    return { level, index };
  };

  const nExpand = r.varint(Math.floor(r.remaining / 2), 'expand count');
  const expand: NodeRef[] = [];
  for (let i = 0; i < nExpand; i++) {
    const n = readNode(depth - 1);
    const p = expand[expand.length - 1];
    if (p !== undefined && (n.level < p.level || (n.level === p.level && n.index <= p.index)))
      throw r.fail('expanded nodes are not strictly ascending');
    expand.push(n);
  }

  const nItems = r.varint(Math.floor(r.remaining / 3), 'item count');
  const items: RequestItem[] = [];
  let spanEnd = 0;
  for (let i = 0; i < nItems; i++) {
    const n = readNode(depth);
    const width = 2 ** ((depth - n.level) * levelBits);
    const start = n.index * width;
    if (start < spanEnd) throw r.fail('items overlap or are out of order');
    spanEnd = start + width;
    const count = r.varint(Math.floor(r.remaining / MIN_ENTRY_WIRE), 'entry count');
    const keys = readEntries(r, count);
    for (let k = 0; k < count; k++) {
      const o = k * ENTRY_KEY_BYTES;
      const p = ((keys[o]! << 16) | (keys[o + 1]! << 8) | keys[o + 2]!) >>> (24 - partitionBits);
      if (p < start || p >= spanEnd) throw r.fail(`entry of partition ${p} listed under an item spanning [${start}, ${spanEnd})`);
      if (!filter.includes(p)) throw r.fail(`entry of partition ${p} is outside the filter`);
    }
    items.push({ level: n.level, index: n.index, keys, count });
  }
  r.end();
  return { geometry, filter, expand, items };
}

export function encodeResponse(res: HoldingsResponse, maxBytes = MAX_MESSAGE_BYTES): Uint8Array {
  const fanout = 2 ** res.levelBits;
  if (res.counts.length % fanout !== 0) throw malformed('summary count is not a whole number of nodes');
  const w = new ByteWriter(256);
  w.u8(HOLDINGS_WIRE_VERSION);
  w.u8(RESPONSE_TAG);
  w.u8(res.levelBits);
  w.varint(res.counts.length / fanout);
  for (let i = 0; i < res.counts.length; i++) {
    const c = res.counts[i]!;
    w.varint(c);
    if (c > 0) w.bytes(res.hashes, i * HASH_BYTES, (i + 1) * HASH_BYTES);
  }
  w.varint(res.items.length);
  for (const item of res.items) {
    w.varint(item.listed);
    w.bytes(item.missing, 0, Math.ceil(item.listed / 8));
    w.varint(item.extraCount);
    for (let i = 0; i < item.extraCount; i++) writeEntry(w, item.extra, i);
  }
  const out = w.finish();
  if (out.length > maxBytes) throw new HoldingsMessageTooLargeError(out.length, maxBytes);
  return out;
}

export function decodeResponse(bytes: Uint8Array, maxBytes = MAX_MESSAGE_BYTES): HoldingsResponse {
  checkLength(bytes, maxBytes);
  const r = new ByteReader(bytes, malformed);
  header(r, RESPONSE_TAG);
  const levelBits = r.u8();
  if (levelBits < 1 || levelBits > 8) throw r.fail(`levelBits ${levelBits} out of range`);
  const fanout = 2 ** levelBits;
  const nodes = r.varint(Math.floor(r.remaining / fanout), 'node count');
  const total = nodes * fanout;
  const counts: number[] = new Array<number>(total);
  const hashes = new Uint8Array(total * HASH_BYTES);
  for (let i = 0; i < total; i++) {
    const c = r.varint(0xffffffff, 'node count');
    counts[i] = c;
    if (c > 0) hashes.set(r.bytes(HASH_BYTES), i * HASH_BYTES);
  }
  const nItems = r.varint(Math.floor(r.remaining / 2), 'item count');
  const items: ResponseItem[] = [];
  for (let i = 0; i < nItems; i++) {
    const listed = r.varint(r.remaining * 8, 'listed count');
    const missing = readBitmap(r, listed);
    const extraCount = r.varint(Math.floor(r.remaining / MIN_ENTRY_WIRE), 'extra count');
    const extra = readEntries(r, extraCount);
    items.push({ listed, missing, extra, extraCount });
  }
  r.end();
  return { levelBits, counts, hashes, items };
}
