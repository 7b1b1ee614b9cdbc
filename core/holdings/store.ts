/**
 * Memory for the holdings index's per-bucket record arrays, without one ArrayBuffer per bucket.
 *
 * Allocating a typed array costs microseconds and a tracked off-heap backing store; with 65,536 buckets growing
 * by doubling, an index of 1M blocks would make ~300,000 of them and spend most of its build time in the
 * allocator and the garbage collector. Instead, buckets live in size-class pools: class k holds slots of 2^k
 * records, carved out of a few large chunks (growing from 16 slots to ~1 MiB per chunk). A bucket that outgrows
 * its slot moves to a slot of the next class; one that falls to a quarter of its slot moves down a class.
 * Slots of a class are kept dense: a freed slot is filled by moving the class's last slot into it (each class
 * knows which bucket owns each slot), and a tail chunk is returned once the class has shrunk half a chunk below
 * it. So memory is the live slots plus at most about one chunk per class, a bucket uses between 1/4 and all of
 * its slot, nothing ever needs compacting, and there is no transient doubling.
 *
 * `locate(b)` sets `data`/`offset` to the bucket's records; they stay valid until the next `reserve` or
 * `setLength` on any bucket.
 */

/** Largest size class: 2^26 records per bucket (2.5 GiB at 40 bytes), far beyond any real bucket. */
const MAX_CLASS = 26;
/** Target chunk size once a class is in heavy use. */
const CHUNK_BYTES = 1 << 20;
/** Slots in the first chunk of a class (later chunks double, up to CHUNK_BYTES). */
const FIRST_CHUNK_SLOTS = 16;

interface SizeClass {
  readonly slotBytes: number;
  readonly chunks: Uint8Array[];
  /** First slot id of each chunk, and its slot count. */
  readonly chunkStart: number[];
  readonly chunkSlots: number[];
  /** Bucket owning each slot in use. */
  readonly owner: number[];
  /** Slots in use: always ids 0 .. used-1. */
  used: number;
  /** Total slots in all chunks. */
  capacity: number;
}

const EMPTY = new Uint8Array(0);

export class RecordStore {
  readonly recordBytes: number;
  readonly #classes: Array<SizeClass | undefined> = [];
  /** Per bucket: size class + 1 (0 = no slot). */
  readonly #cls: Uint8Array;
  readonly #slot: Uint32Array;
  readonly #len: Uint32Array;
  /** Set by `locate`. */
  data: Uint8Array = EMPTY;
  offset = 0;

  constructor(buckets: number, recordBytes: number) {
    this.recordBytes = recordBytes;
    this.#cls = new Uint8Array(buckets);
    this.#slot = new Uint32Array(buckets);
    this.#len = new Uint32Array(buckets);
  }

  length(bucket: number): number {
    return this.#len[bucket]!;
  }

  /** Capacity of a bucket's slot, in records. */
  capacity(bucket: number): number {
    const c = this.#cls[bucket]!;
    return c === 0 ? 0 : 2 ** (c - 1);
  }

  /** Point `data`/`offset` at the bucket's records. Returns false (and EMPTY) when it has none. */
  locate(bucket: number): boolean {
    const c = this.#cls[bucket]!;
    if (c === 0) {
      this.data = EMPTY;
      this.offset = 0;
      return false;
    }
    this.#point(this.#classes[c - 1]!, this.#slot[bucket]!);
    return true;
  }

  #point(sc: SizeClass, slot: number): void {
    // binary search for the last chunk starting at or before `slot`
    const starts = sc.chunkStart;
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= slot) lo = mid;
      else hi = mid - 1;
    }
    const i = lo;
    this.data = sc.chunks[i]!;
    this.offset = (slot - sc.chunkStart[i]!) * sc.slotBytes;
  }

  /** Make the bucket's slot hold at least `records` records (keeping its contents), then locate it. */
  reserve(bucket: number, records: number): void {
    if (records <= this.capacity(bucket)) {
      this.locate(bucket);
      return;
    }
    let k = 1;
    while (2 ** k < records) k++;
    this.#move(bucket, k);
  }

  /** Set a bucket's length (<= capacity); frees or shrinks its slot when it becomes empty or a quarter full. */
  setLength(bucket: number, records: number): void {
    this.#len[bucket] = records;
    const c = this.#cls[bucket]!;
    if (c === 0) return;
    if (records === 0) {
      const slot = this.#slot[bucket]!;
      this.#cls[bucket] = 0;
      this.#slot[bucket] = 0;
      this.#release(c - 1, slot);
      return;
    }
    const cap = 2 ** (c - 1);
    if (cap >= 8 && records * 4 <= cap) this.#move(bucket, c - 2);
  }

  /** Move a bucket to a slot of class k (copying min(length, 2^k) records) and locate it. */
  #move(bucket: number, k: number): void {
    if (k > MAX_CLASS) throw new RangeError(`a bucket of more than 2^${MAX_CLASS} records is not supported`);
    const sc = this.#class(k);
    const slot = this.#alloc(sc, bucket);
    this.#point(sc, slot);
    const to = this.data;
    const toOff = this.offset;
    const old = this.#cls[bucket]!;
    const oldSlot = this.#slot[bucket]!;
    this.#cls[bucket] = k + 1;
    this.#slot[bucket] = slot;
    if (old !== 0) {
      const oc = this.#classes[old - 1]!;
      this.#point(oc, oldSlot);
      const n = Math.min(this.#len[bucket]!, 2 ** k) * this.recordBytes;
      to.set(this.data.subarray(this.offset, this.offset + n), toOff);
      this.#release(old - 1, oldSlot);
    }
    this.data = to;
    this.offset = toOff;
  }

  #class(k: number): SizeClass {
    let sc = this.#classes[k];
    if (sc === undefined) {
      sc = { slotBytes: 2 ** k * this.recordBytes, chunks: [], chunkStart: [], chunkSlots: [], owner: [], used: 0, capacity: 0 };
      this.#classes[k] = sc;
    }
    return sc;
  }

  #alloc(sc: SizeClass, bucket: number): number {
    if (sc.used === sc.capacity) {
      const last = sc.chunkSlots[sc.chunkSlots.length - 1];
      const cap = Math.max(1, Math.floor(CHUNK_BYTES / sc.slotBytes));
      const slots = last === undefined ? Math.min(FIRST_CHUNK_SLOTS, cap) : Math.min(last * 2, cap);
      sc.chunks.push(new Uint8Array(slots * sc.slotBytes));
      sc.chunkStart.push(sc.capacity);
      sc.chunkSlots.push(slots);
      sc.capacity += slots;
    }
    sc.owner[sc.used] = bucket;
    return sc.used++;
  }

  /** Free a slot of class k whose bucket no longer points at it: fill it with the last slot, trim the tail. */
  #release(k: number, slot: number): void {
    const sc = this.#classes[k]!;
    const last = sc.used - 1;
    if (slot !== last) {
      const moved = sc.owner[last]!;
      this.#point(sc, last);
      const from = this.data;
      const fromOff = this.offset;
      this.#point(sc, slot);
      const n = this.#len[moved]! * this.recordBytes;
      this.data.set(from.subarray(fromOff, fromOff + n), this.offset);
      sc.owner[slot] = moved;
      this.#slot[moved] = slot;
    }
    sc.owner.length = last;
    sc.used = last;
    const i = sc.chunks.length - 1;
    if (i > 0 && sc.used + (sc.chunkSlots[i]! >>> 1) <= sc.chunkStart[i]!) {
      sc.capacity = sc.chunkStart[i]!;
      sc.chunks.pop();
      sc.chunkStart.pop();
      sc.chunkSlots.pop();
    } else if (i === 0 && sc.used === 0) {
      sc.capacity = 0;
      sc.chunks.pop();
      sc.chunkStart.pop();
      sc.chunkSlots.pop();
    }
  }

  /** Bytes of record memory allocated (all chunks of all classes). */
  allocatedBytes(): number {
    let n = 0;
    for (const sc of this.#classes) if (sc !== undefined) for (const c of sc.chunks) n += c.length;
    return n;
  }
}
