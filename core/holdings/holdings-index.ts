/**
 * HoldingsIndex: an incrementally maintained Merkle summary of the set of blocks one Box holds, so two Boxes can
 * find the blocks they disagree on by exchanging O(d log n) hashes instead of their whole lists (reconcile.ts).
 *
 * Shape. A block's *partition* is the first `partitionBits` bits of its sha2-256 digest (big-endian), the same
 * bytes placement hashes as the chunk key. The partitions are the leaves (buckets) of a fixed-depth tree with
 * fanout 2^levelBits and depth partitionBits / levelBits. Default: 16 bits, 4 bits per level, so fanout 16,
 * depth 4, 65,536 buckets.
 *  - Every node stores (count, 128-bit sum of entry values) over the blocks below it (set-hash.ts). A parent is the
 *    sum of its children, so add/delete touch exactly one node per level: O(depth), no rehashing.
 *  - Each bucket keeps its entries as packed, sorted 40-byte records (32 digest bytes, codec u32, size u32) in a
 *    slot of a size-class pool (store.ts), so the index can list a bucket's CIDs in canonical order, and 1M
 *    blocks cost ~40 MB of records plus slot slack instead of ~400 B per block for CID objects, with no
 *    per-bucket allocations for the garbage collector to chase.
 *
 * Why O(d log n): digests are uniform, so a block set of size n spreads evenly over the buckets; a difference
 * lives in one bucket and changes exactly the depth + 1 nodes on its path. Comparison walks down only the
 * differing paths: at most d per level, each costing one fanout-wide list of child hashes, so d * depth * fanout
 * hashes, plus the contents of at most d buckets of n / 2^partitionBits blocks each. With partitionBits chosen
 * near log2(n) - 4 (16 bits for 1M blocks: ~15 per bucket), depth and bucket size are both O(log n). 16 bits is
 * also the memory sweet spot: 2^20 buckets would mean ~1 block per bucket and ~20 MB of node sums alone, for
 * no gain in bytes. Four bits per level trades bytes for round trips: a binary tree would send about half the
 * hashes in total (2 per level over 16 levels instead of 16 per level over 4) but need 17 round trips instead of
 * 5, and a round trip between two homes costs tens of milliseconds.
 *
 * Persistence: `serialise` writes a compact, self-checking form (~36 bytes per block); `restore` verifies it
 * (order, partitions, totals and the root sum) and rebuilds the sums in one pass. A Box can store the whole
 * index, or ranges of partitions as separate KvStore values and rewrite only the ranges that changed.
 */
import { CID } from 'multiformats/cid';
import * as Digest from 'multiformats/hashes/digest';
import { SHA256_CODE } from '../blocks/cid.ts';
import { InvalidInputError } from '../errors.ts';
import { CorruptHoldingsError, InvalidBlockSizeError, InvalidGeometryError, UnsupportedCidError } from './errors.ts';
import { Coverage } from './filter.ts';
import type { PartitionFilter } from './filter.ts';
import { add128, ENTRY_KEY_BYTES, entryValue, equal128, hashBytes, HASH_BYTES, sub128, tagValue } from './set-hash.ts';
import { RecordStore } from './store.ts';
import { ByteReader, ByteWriter } from './wire.ts';

/** How the index partitions blocks: the tree has depth partitionBits / levelBits and fanout 2^levelBits. */
export interface HoldingsGeometry {
  readonly partitionBits: number;
  readonly levelBits: number;
}

export const DEFAULT_GEOMETRY: HoldingsGeometry = Object.freeze({ partitionBits: 16, levelBits: 4 });
export const MAX_PARTITION_BITS = 20;
export const MAX_LEVEL_BITS = 8;

/** Bytes of one stored entry: the 36-byte key and the block size (u32, little-endian). */
export const RECORD_BYTES = ENTRY_KEY_BYTES + 4;
const MAX_BLOCK_SIZE = 0xffffffff;
const MAX_CODEC = 0xffffffff;

/** A node's summary: how many blocks are below it and the 128-bit sum of their values. */
export interface NodeSummary {
  count: number;
  /** 16 bytes, little-endian. All zero for an empty node. */
  hash: Uint8Array;
}

export function checkGeometry(g: HoldingsGeometry): HoldingsGeometry {
  const { partitionBits: p, levelBits: l } = g;
  if (!Number.isInteger(l) || l < 1 || l > MAX_LEVEL_BITS)
    throw new InvalidGeometryError(`levelBits must be a whole number in [1, ${MAX_LEVEL_BITS}], got ${l}`);
  if (!Number.isInteger(p) || p < l || p > MAX_PARTITION_BITS || p % l !== 0)
    throw new InvalidGeometryError(
      `partitionBits must be a whole multiple of levelBits (${l}) in [${l}, ${MAX_PARTITION_BITS}], got ${p}`,
    );
  return Object.freeze({ partitionBits: p, levelBits: l });
}

/** Write the entry key of `cid` into key[0..36); throws UnsupportedCidError for anything but CIDv1 sha2-256. */
export function writeEntryKey(cid: CID, key: Uint8Array, off = 0): void {
  const mh = cid.multihash;
  if (cid.version !== 1 || mh.code !== SHA256_CODE || mh.digest.length !== 32)
    throw new UnsupportedCidError(`holdings accept CIDv1 sha2-256 only, got ${String(cid)}`);
  const codec = cid.code;
  if (!Number.isInteger(codec) || codec < 0 || codec > MAX_CODEC) throw new UnsupportedCidError(`codec ${codec} is out of range`);
  key.set(mh.digest, off);
  writeU32(key, off + 32, codec);
}

/** The CID for the entry key at key[off .. off+36). */
export function cidFromEntryKey(key: Uint8Array, off = 0): CID {
  const digest = key.slice(off, off + 32);
  return CID.createV1(readU32(key, off + 32), Digest.create(SHA256_CODE, digest));
}

/** Lexicographic order of two entry keys. */
export function compareKeys(a: Uint8Array, ao: number, b: Uint8Array, bo: number): number {
  for (let i = 0; i < ENTRY_KEY_BYTES; i++) {
    const d = a[ao + i]! - b[bo + i]!;
    if (d !== 0) return d;
  }
  return 0;
}

export function readU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = v >>> 24;
}

const SERIAL_MAGIC = [0x52, 0x48, 0x49, 0x58]; // "RHIX"
/** 2: a segment's sum covers its geometry too (version 1 accepted a changed levelBits). */
const SERIAL_VERSION = 2;

/**
 * What a segment's stored sum adds to its entries' sum: a value of the geometry. levelBits shapes only the tree
 * above the buckets, so no other check of a segment depends on it; added to the sum, a changed one fails the sum.
 */
function geometryValue(g: HoldingsGeometry): Uint32Array {
  return tagValue((g.partitionBits << 8) | g.levelBits);
}

export class HoldingsIndex {
  readonly geometry: HoldingsGeometry;
  readonly partitionBits: number;
  readonly levelBits: number;
  readonly fanout: number;
  /** Levels below the root; buckets are level `depth`. */
  readonly depth: number;
  /** Number of buckets (partitions): 2^partitionBits. */
  readonly partitions: number;

  /** Per level: count of blocks under each node. */
  readonly #counts: Uint32Array[];
  /** Per level: 4 lanes per node, the 128-bit sum. */
  readonly #sums: Uint32Array[];
  /** Per bucket: packed sorted records. */
  readonly #store: RecordStore;
  #count = 0;
  #bytes = 0;
  #revision = 0;

  readonly #key = new Uint8Array(ENTRY_KEY_BYTES);
  readonly #value = new Uint32Array(4);

  constructor(geometry: Partial<HoldingsGeometry> = {}) {
    this.geometry = checkGeometry({ ...DEFAULT_GEOMETRY, ...geometry });
    this.partitionBits = this.geometry.partitionBits;
    this.levelBits = this.geometry.levelBits;
    this.fanout = 1 << this.levelBits;
    this.depth = this.partitionBits / this.levelBits;
    this.partitions = 2 ** this.partitionBits;
    this.#counts = [];
    this.#sums = [];
    for (let level = 0; level <= this.depth; level++) {
      const nodes = 2 ** (level * this.levelBits);
      this.#counts.push(new Uint32Array(nodes));
      this.#sums.push(new Uint32Array(nodes * 4));
    }
    this.#store = new RecordStore(this.partitions, RECORD_BYTES);
  }

  /** Build an index from (cid, size) pairs. */
  static from(entries: Iterable<readonly [CID, number]>, geometry?: Partial<HoldingsGeometry>): HoldingsIndex {
    const index = new HoldingsIndex(geometry);
    for (const [cid, size] of entries) index.add(cid, size);
    return index;
  }

  /** Number of blocks held. */
  get count(): number {
    return this.#count;
  }

  /** Sum of the sizes of the blocks held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Bumped by every add or delete that changed the set (a cheap "needs persisting" signal). */
  get revision(): number {
    return this.#revision;
  }

  /** The partition (bucket number) of a CID: the first partitionBits bits of its digest. */
  partitionOf(cid: CID): number {
    writeEntryKey(cid, this.#key);
    return this.#partitionOfKey(this.#key, 0);
  }

  #partitionOfKey(key: Uint8Array, off: number): number {
    const top = (key[off]! << 16) | (key[off + 1]! << 8) | key[off + 2]!;
    return top >>> (24 - this.partitionBits);
  }

  /** @internal the partition of the entry key at key[off..]. */
  partitionOfKey(key: Uint8Array, off = 0): number {
    return this.#partitionOfKey(key, off);
  }

  /**
   * Binary search for the key in `bucket`: index if found, else -(insertion point) - 1. Leaves the store located
   * at the bucket.
   */
  #find(bucket: number, key: Uint8Array, off: number): number {
    const store = this.#store;
    store.locate(bucket);
    const data = store.data;
    const base = store.offset;
    let lo = 0;
    let hi = store.length(bucket);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = compareKeys(data, base + mid * RECORD_BYTES, key, off);
      if (c < 0) lo = mid + 1;
      else if (c > 0) hi = mid;
      else return mid;
    }
    return -lo - 1;
  }

  /** Add a block of `size` bytes. Returns false (and changes nothing) if the CID is already held. */
  add(cid: CID, size: number): boolean {
    if (!Number.isInteger(size) || size < 0 || size > MAX_BLOCK_SIZE)
      throw new InvalidBlockSizeError(`block size must be a whole number of bytes in [0, 2^32 - 1], got ${size}`);
    const key = this.#key;
    writeEntryKey(cid, key);
    const bucket = this.#partitionOfKey(key, 0);
    const at = this.#find(bucket, key, 0);
    if (at >= 0) return false;
    const pos = -at - 1;
    const store = this.#store;
    const n = store.length(bucket);
    store.reserve(bucket, n + 1);
    const data = store.data;
    const base = store.offset;
    data.copyWithin(base + (pos + 1) * RECORD_BYTES, base + pos * RECORD_BYTES, base + n * RECORD_BYTES);
    data.set(key, base + pos * RECORD_BYTES);
    writeU32(data, base + pos * RECORD_BYTES + ENTRY_KEY_BYTES, size);
    store.setLength(bucket, n + 1);
    entryValue(key, 0, this.#value);
    this.#apply(bucket, 1);
    this.#count++;
    this.#bytes += size;
    this.#revision++;
    return true;
  }

  /** Remove a block. Returns false if it was not held. */
  delete(cid: CID): boolean {
    const key = this.#key;
    writeEntryKey(cid, key);
    const bucket = this.#partitionOfKey(key, 0);
    const at = this.#find(bucket, key, 0);
    if (at < 0) return false;
    const store = this.#store;
    const data = store.data;
    const base = store.offset;
    const n = store.length(bucket);
    const size = readU32(data, base + at * RECORD_BYTES + ENTRY_KEY_BYTES);
    data.copyWithin(base + at * RECORD_BYTES, base + (at + 1) * RECORD_BYTES, base + n * RECORD_BYTES);
    store.setLength(bucket, n - 1);
    entryValue(key, 0, this.#value);
    this.#apply(bucket, -1);
    this.#count--;
    this.#bytes -= size;
    this.#revision++;
    return true;
  }

  /** Add (+1) or subtract (-1) this.#value on the path from `bucket` to the root. */
  #apply(bucket: number, sign: 1 | -1): void {
    for (let level = this.depth; level >= 0; level--) {
      const node = bucket >>> ((this.depth - level) * this.levelBits);
      this.#counts[level]![node]! += sign;
      if (sign > 0) add128(this.#sums[level]!, node * 4, this.#value);
      else sub128(this.#sums[level]!, node * 4, this.#value);
    }
  }

  has(cid: CID): boolean {
    writeEntryKey(cid, this.#key);
    return this.#find(this.#partitionOfKey(this.#key, 0), this.#key, 0) >= 0;
  }

  /** The size recorded for a held block, or undefined. */
  sizeOf(cid: CID): number | undefined {
    writeEntryKey(cid, this.#key);
    const bucket = this.#partitionOfKey(this.#key, 0);
    const at = this.#find(bucket, this.#key, 0);
    return at < 0 ? undefined : readU32(this.#store.data, this.#store.offset + at * RECORD_BYTES + ENTRY_KEY_BYTES);
  }

  /** The root hash: the 128-bit sum over every block (16 bytes). Equal sets have equal roots, whatever the geometry. */
  root(): Uint8Array {
    return hashBytes(this.#sums[0]!, 0);
  }

  #checkNode(level: number, index: number): void {
    if (!Number.isInteger(level) || level < 0 || level > this.depth)
      throw new InvalidInputError(`level must be in [0, ${this.depth}], got ${level}`);
    const nodes = 2 ** (level * this.levelBits);
    if (!Number.isInteger(index) || index < 0 || index >= nodes)
      throw new InvalidInputError(`node index at level ${level} must be in [0, ${nodes}), got ${index}`);
  }

  /** The hash of node `index` at `level` (0 = root, depth = buckets). */
  node(level: number, index: number): Uint8Array {
    this.#checkNode(level, index);
    return hashBytes(this.#sums[level]!, index * 4);
  }

  /** Blocks below node `index` at `level`. */
  nodeCount(level: number, index: number): number {
    this.#checkNode(level, index);
    return this.#counts[level]![index]!;
  }

  /** Count and hash of a node, optionally restricted to the partitions of `filter`. */
  summary(level: number, index: number, filter?: PartitionFilter): NodeSummary {
    this.#checkNode(level, index);
    const lanes = new Uint32Array(4);
    const count = this.summaryInto(level, index, filter, lanes, 0);
    return { count, hash: hashBytes(lanes, 0) };
  }

  /**
   * @internal Add the (filtered) summary of a node into lanes[o..o+4) and return its count. Cost: O(1) when the
   * filter covers the node wholly or not at all; otherwise it recurses only into children the filter cuts.
   */
  summaryInto(level: number, index: number, filter: PartitionFilter | undefined, lanes: Uint32Array, o: number): number {
    if (filter !== undefined && !filter.isAll) {
      const shift = (this.depth - level) * this.levelBits;
      const start = index * 2 ** shift;
      const cov = filter.coverage(start, start + 2 ** shift);
      if (cov === Coverage.None) return 0;
      if (cov === Coverage.Some) {
        let count = 0;
        const first = index * this.fanout;
        for (let c = 0; c < this.fanout; c++) count += this.summaryInto(level + 1, first + c, filter, lanes, o);
        return count;
      }
    }
    const count = this.#counts[level]![index]!;
    if (count > 0) add128(lanes, o, this.#sums[level]!, index * 4);
    return count;
  }

  /** The first bucket under node `index` at `level`, and how many buckets it spans. */
  span(level: number, index: number): [start: number, count: number] {
    this.#checkNode(level, index);
    const width = 2 ** ((this.depth - level) * this.levelBits);
    return [index * width, width];
  }

  /** Number of blocks in a bucket. */
  bucketSize(bucket: number): number {
    this.#checkNode(this.depth, bucket);
    return this.#store.length(bucket);
  }

  /** The CIDs in a bucket, in canonical (digest, codec) order. */
  bucket(bucket: number): CID[] {
    this.#checkNode(this.depth, bucket);
    const [data, base, n] = this.records(bucket);
    const out: CID[] = [];
    for (let i = 0; i < n; i++) out.push(cidFromEntryKey(data, base + i * RECORD_BYTES));
    return out;
  }

  /**
   * @internal The packed records of a bucket (RECORD_BYTES each, sorted): the array they live in, where they
   * start, and how many there are. Live memory: read it before the next add or delete.
   */
  records(bucket: number): [data: Uint8Array, offset: number, length: number] {
    const store = this.#store;
    store.locate(bucket);
    return [store.data, store.offset, store.length(bucket)];
  }

  /** Bytes of memory the index has allocated for records and tree nodes (what `heapUsed` cannot see). */
  get allocatedBytes(): number {
    let n = this.#store.allocatedBytes();
    for (let level = 0; level <= this.depth; level++) n += this.#counts[level]!.byteLength + this.#sums[level]!.byteLength;
    return n;
  }

  /** Every held CID with its size, in bucket order. */
  *entries(): IterableIterator<[CID, number]> {
    for (let b = 0; b < this.partitions; b++) {
      const [live, base, n] = this.records(b);
      if (n === 0) continue;
      const data = live.slice(base, base + n * RECORD_BYTES);
      for (let i = 0; i < n; i++) yield [cidFromEntryKey(data, i * RECORD_BYTES), readU32(data, i * RECORD_BYTES + ENTRY_KEY_BYTES)];
    }
  }

  *cids(): IterableIterator<CID> {
    for (const [cid] of this.entries()) yield cid;
  }

  /** True when both hold the same set with the same geometry and sizes. */
  equals(other: HoldingsIndex): boolean {
    if (other.partitionBits !== this.partitionBits || other.levelBits !== this.levelBits) return false;
    if (other.#count !== this.#count || other.#bytes !== this.#bytes) return false;
    if (!equal128(this.#sums[0]!, 0, other.#sums[0]!, 0)) return false;
    for (let b = 0; b < this.partitions; b++) {
      const [a, ao, n] = this.records(b);
      const [c, co, m] = other.records(b);
      if (m !== n) return false;
      for (let i = 0; i < n * RECORD_BYTES; i++) if (a[ao + i] !== c[co + i]) return false;
    }
    return true;
  }

  /**
   * Compact bytes for the buckets [from, to) (default: all). A segment carries the geometry, its range, and its
   * count, bytes and root sum, which `restore` checks; the sum written is the entries' root sum plus a value of the
   * geometry, so it checks the geometry too. Layout (integers are varints):
   *   "RHIX" version partitionBits levelBits from to count bytes sum[16]
   *   then per non-empty bucket: (bucket - previous - 1) n, and n entries: digest[32] codec size
   */
  serialise(from = 0, to = this.partitions): Uint8Array {
    if (!Number.isInteger(from) || !Number.isInteger(to) || from < 0 || to > this.partitions || from > to)
      throw new InvalidInputError(`bucket range [${from}, ${to}) is not within [0, ${this.partitions}]`);
    let count = 0;
    let bytes = 0;
    const sum = new Uint32Array(4);
    for (let b = from; b < to; b++) {
      const [data, base, n] = this.records(b);
      if (n === 0) continue;
      count += n;
      add128(sum, 0, this.#sums[this.depth]!, b * 4);
      for (let i = 0; i < n; i++) bytes += readU32(data, base + i * RECORD_BYTES + ENTRY_KEY_BYTES);
    }
    add128(sum, 0, geometryValue(this.geometry));
    const w = new ByteWriter(64 + count * 38);
    for (const m of SERIAL_MAGIC) w.u8(m);
    w.u8(SERIAL_VERSION);
    w.u8(this.partitionBits);
    w.u8(this.levelBits);
    w.varint(from);
    w.varint(to);
    w.varint(count);
    w.varint(bytes);
    w.bytes(hashBytes(sum, 0));
    let prev = from - 1;
    for (let b = from; b < to; b++) {
      const [data, base, n] = this.records(b);
      if (n === 0) continue;
      w.varint(b - prev - 1);
      prev = b;
      w.varint(n);
      for (let i = 0; i < n; i++) {
        const r = base + i * RECORD_BYTES;
        w.bytes(data, r, r + 32);
        w.varint(readU32(data, r + 32));
        w.varint(readU32(data, r + ENTRY_KEY_BYTES));
      }
    }
    return w.finish();
  }

  /**
   * Rebuild an index from `serialise` output: one segment, or several whose ranges tile [0, partitions) exactly
   * (in any order). Every check failure is a CorruptHoldingsError.
   */
  static restore(segments: Uint8Array | readonly Uint8Array[]): HoldingsIndex {
    const list = segments instanceof Uint8Array ? [segments] : segments;
    if (list.length === 0) throw new CorruptHoldingsError('no segments to restore from');
    const fail = (m: string): Error => new CorruptHoldingsError(`serialised holdings: ${m}`);
    const headers = list.map((bytes) => {
      const r = new ByteReader(bytes, fail);
      for (const m of SERIAL_MAGIC) if (r.u8() !== m) throw r.fail('bad magic');
      const version = r.u8();
      if (version !== SERIAL_VERSION) throw r.fail(`unsupported version ${version}`);
      const partitionBits = r.u8();
      const levelBits = r.u8();
      let geometry: HoldingsGeometry;
      try {
        geometry = checkGeometry({ partitionBits, levelBits });
      } catch (cause) {
        throw new CorruptHoldingsError(`serialised holdings: ${(cause as Error).message}`, { cause });
      }
      const partitions = 2 ** partitionBits;
      const from = r.varint(partitions, 'from');
      const to = r.varint(partitions, 'to');
      if (from > to) throw r.fail(`empty-or-reversed range [${from}, ${to})`);
      return { r, geometry, from, to };
    });
    const g = headers[0]!.geometry;
    for (const h of headers)
      if (h.geometry.partitionBits !== g.partitionBits || h.geometry.levelBits !== g.levelBits) throw fail('segments disagree on geometry');
    const index = new HoldingsIndex(g);
    const sorted = [...headers].sort((a, b) => a.from - b.from);
    let covered = 0;
    for (const h of sorted) {
      if (h.from !== covered) throw fail(`segments do not tile the partitions: gap or overlap at ${covered}`);
      covered = h.to;
    }
    if (covered !== index.partitions) throw fail(`segments cover [0, ${covered}) of [0, ${index.partitions})`);
    for (const h of headers) index.#readSegment(h.r, h.from, h.to);
    index.#rebuildSums();
    return index;
  }

  #readSegment(r: ByteReader, from: number, to: number): void {
    const count = r.varint(Number.MAX_SAFE_INTEGER, 'count');
    const bytes = r.varint(Number.MAX_SAFE_INTEGER, 'bytes');
    const sum = r.bytes(HASH_BYTES).slice();
    const got = new Uint32Array(4);
    const value = this.#value;
    const leaves = this.#sums[this.depth]!;
    let seen = 0;
    let total = 0;
    let b = from - 1;
    while (r.remaining > 0) {
      b += r.varint(to - b - 2, 'bucket delta') + 1;
      const n = r.varint(Math.floor(r.remaining / 34), 'bucket size');
      if (n === 0) throw r.fail(`empty bucket ${b} listed`);
      this.#store.reserve(b, n);
      const data = this.#store.data;
      const base = this.#store.offset;
      for (let i = 0; i < n; i++) {
        const o = base + i * RECORD_BYTES;
        data.set(r.bytes(32), o);
        writeU32(data, o + 32, r.varint(MAX_CODEC, 'codec'));
        const size = r.varint(MAX_BLOCK_SIZE, 'size');
        writeU32(data, o + ENTRY_KEY_BYTES, size);
        if (this.#partitionOfKey(data, o) !== b) throw r.fail(`entry filed under bucket ${b} belongs to another`);
        if (i > 0 && compareKeys(data, o - RECORD_BYTES, data, o) >= 0) throw r.fail(`bucket ${b} is not strictly ascending`);
        entryValue(data, o, value);
        add128(leaves, b * 4, value);
        add128(got, 0, value);
        total += size;
      }
      this.#store.setLength(b, n);
      this.#counts[this.depth]![b] = n;
      seen += n;
    }
    if (seen !== count) throw fail2(`segment lists ${seen} blocks, its header says ${count}`);
    if (total !== bytes) throw fail2(`segment sizes add to ${total}, its header says ${bytes}`);
    add128(got, 0, geometryValue(this.geometry));
    if (!equal128(got, 0, lanesOf(sum), 0)) throw fail2('segment root sum does not match its entries and geometry');
    this.#count += seen;
    this.#bytes += total;
  }

  /** Recompute every level above the buckets from the bucket sums. */
  #rebuildSums(): void {
    for (let level = this.depth - 1; level >= 0; level--) {
      const counts = this.#counts[level]!;
      const sums = this.#sums[level]!;
      const childCounts = this.#counts[level + 1]!;
      const childSums = this.#sums[level + 1]!;
      counts.fill(0);
      sums.fill(0);
      for (let c = 0; c < childCounts.length; c++) {
        if (childCounts[c] === 0) continue;
        const p = c >>> this.levelBits;
        counts[p]! += childCounts[c]!;
        add128(sums, p * 4, childSums, c * 4);
      }
    }
  }
}

/** The four little-endian lanes of a 16-byte hash. */
export function lanesOf(hash: Uint8Array, off = 0): Uint32Array {
  const out = new Uint32Array(4);
  for (let i = 0; i < 4; i++) out[i] = readU32(hash, off + i * 4);
  return out;
}

function fail2(message: string): CorruptHoldingsError {
  return new CorruptHoldingsError(`serialised holdings: ${message}`);
}
