/**
 * Simulated disks. A `DiskDevice` is one Box's physical drive: a serial write queue (fixed latency per write plus
 * bytes / write rate) in virtual time, a crash model and a brick switch. On it live a `SimDisk` (the Blockstore)
 * and a `SimKv` (the KvStore); `SimDrive` bundles the three.
 *
 * Durability model. A write is visible to reads at once (the page cache) and becomes durable when its completion
 * event fires, which is exactly when its promise resolves. So code that awaits `put`/`batch` before relying on it
 * is safe; code that does not is exposed. Writes on one device complete in issue order (one serial queue, like an
 * ordered journal), so a resolved write also implies that every write issued before it on that device is durable. On a crash, writes still pending are handled per the device's
 * `crashMode`: `none` (they all survive), `lose` (they are all lost) or `tear` (blocks: each independently lost,
 * kept or torn, i.e. truncated; KV: a random prefix of pending batches survives, each batch all-or-nothing, as
 * the KvStore contract promises). The crash report says exactly what happened, for checkers.
 *
 * Bit rot flips random bytes of random durable blocks (seeded) and returns what it corrupted; `corrupted()` and
 * `audit()` give the ground truth at any time. Bricking clears the device for good.
 *
 * Handles. `open(life)` returns a Blockstore/KvStore handle for one Box incarnation: once that incarnation is
 * killed its pending operations never settle and new calls never return, as for a dead process. A handle's
 * `close()` closes only that handle; the data stays on the device (a later `open` sees it). `SimDisk` and `SimKv`
 * themselves implement the ports through a default handle, so they can run the shared acceptance suites.
 *
 * Without a scheduler (standalone use) writes are durable the moment they are issued.
 */
import type { CID } from 'multiformats/cid';
import type { AbortOptions } from '../../core/ports.ts';
import type { KvOp, KvStore } from '../../core/kv.ts';
import { BlockNotFoundError, StorageFullError, type Blockstore, type Pair } from '../../core/blocks/blockstore.ts';
import { matchesCid } from '../../core/blocks/cid.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { StoreClosedError, throwIfAborted } from '../../adapters/storage/support.ts';
import { DiskBrickedError } from './errors.ts';
import { never, type Life, type Scheduler } from './scheduler.ts';
import { SimRandom } from './rng.ts';

export type CrashMode = 'none' | 'lose' | 'tear';

export interface DiskOptions {
  /** Name in reports and errors (the Box id, usually). */
  name: string;
  /** Bytes of blocks the disk holds before puts fail with StorageFullError (KV entries are not counted). */
  capacityBytes: number;
  /** Fixed virtual cost of each write (think fsync), ms. */
  writeLatencyMs: number;
  /** Sequential write rate, bytes per second. */
  writeBytesPerSec: number;
  /** Virtual latency of reads, ms; 0 answers reads at once (still asynchronously). */
  readLatencyMs: number;
  /** What happens to writes still pending when the Box crashes. */
  crashMode: CrashMode;
  /**
   * Hand out a copy of a block's bytes on every read, so a caller that mutates what it read cannot change the
   * disk (a real read returns fresh memory). Turn off only for huge runs (a simulated year of weekly integrity
   * sweeps reads gigabytes); like the network's `copyPayloads`, it changes nothing the simulation computes.
   */
  copyReads: boolean;
}

export const DEFAULT_DISK: DiskOptions = {
  name: 'disk',
  capacityBytes: Infinity,
  writeLatencyMs: 0.2,
  writeBytesPerSec: 200e6,
  readLatencyMs: 0,
  crashMode: 'lose',
  copyReads: true,
};

/** One drive: the serial write queue, virtual time and randomness shared by the block and KV stores on it. */
export class DiskDevice {
  readonly options: DiskOptions;
  readonly scheduler: Scheduler | undefined;
  readonly rng: SimRandom;
  #busyUntil = 0;
  #bricked = false;
  /** Bytes written and writes completed, for reports. */
  bytesWritten = 0;
  writes = 0;

  constructor(options: Partial<DiskOptions> = {}, scheduler?: Scheduler, rng?: SimRandom) {
    this.options = { ...DEFAULT_DISK, ...options };
    if (!(this.options.capacityBytes >= 0)) throw new InvalidInputError(`disk capacity must be >= 0, got ${this.options.capacityBytes}`);
    if (!(this.options.writeBytesPerSec > 0)) throw new InvalidInputError(`disk write rate must be > 0, got ${this.options.writeBytesPerSec}`);
    this.scheduler = scheduler;
    this.rng = rng ?? new SimRandom(`disk/${this.options.name}`);
  }

  get bricked(): boolean {
    return this.#bricked;
  }

  get name(): string {
    return this.options.name;
  }

  /** Virtual time at which a write of `bytes` issued now completes (the queue is serial). */
  reserve(bytes: number): number {
    const s = this.scheduler;
    if (s === undefined) return 0;
    const start = Math.max(s.elapsed, this.#busyUntil);
    this.#busyUntil = start + this.options.writeLatencyMs + (bytes * 1000) / this.options.writeBytesPerSec;
    return this.#busyUntil;
  }

  /** Forget queued work (after a crash the queue is empty). */
  resetQueue(): void {
    this.#busyUntil = this.scheduler?.elapsed ?? 0;
  }

  markBricked(): void {
    this.#bricked = true;
  }
}

interface Stored {
  cid: CID;
  bytes: Uint8Array;
  /** Ground truth: offsets flipped by bit rot, if any. */
  rot?: number[];
  /** Ground truth: a torn write left only a prefix. */
  torn?: boolean;
  /** Cached: the bytes hash to the CID. Sound because stored bytes are never changed in place (rot and tears
   * replace the whole record). */
  hashOk?: boolean;
}

function hashOk(s: Stored): boolean {
  s.hashOk ??= matchesCid(s.cid, s.bytes);
  return s.hashOk;
}

interface PendingBlockWrite {
  key: string;
  cid: CID;
  /** undefined for a delete. */
  stored: Stored | undefined;
  cancel: () => void;
}

/** What bit rot did to one block. */
export interface RotReport {
  cid: CID;
  /** Byte offsets flipped. */
  offsets: number[];
}

/** What a crash did to the writes that were still pending. */
export interface BlockCrashReport {
  /** Puts that never reached the disk (the old state, or nothing, is what is there). */
  lost: CID[];
  /** Puts that left a truncated block behind. */
  torn: CID[];
  /** Puts that made it despite not being awaited. */
  survived: CID[];
  /** Deletes that were undone (the block is back). */
  undeleted: CID[];
}

export interface KvCrashReport {
  /** Pending put/delete/batch calls lost whole. */
  lostWrites: number;
  /** Pending calls that survived whole. */
  survivedWrites: number;
}

export interface DriveCrashReport {
  blocks: BlockCrashReport;
  kv: KvCrashReport;
}

function gate(life: Life | undefined, device: DiskDevice, closed: boolean, what: string, options?: AbortOptions): boolean {
  if (life !== undefined && !life.alive) return false;
  if (device.bricked) throw new DiskBrickedError(device.name);
  if (closed) throw new StoreClosedError(what);
  throwIfAborted(options);
  return true;
}

/** Settle after the read latency (or at once); nothing settles for a dead incarnation. */
function afterRead<T>(device: DiskDevice, life: Life | undefined, produce: () => T): Promise<T> {
  const s = device.scheduler;
  const latency = device.options.readLatencyMs;
  if (s === undefined || !(latency > 0)) return Promise.resolve().then(produce);
  return new Promise<T>((resolve, reject) => {
    s.after(latency, () => {
      if (life !== undefined && !life.alive) return;
      try {
        resolve(produce());
      } catch (error) {
        reject(error);
      }
    });
  });
}

/** The simulated Blockstore on a DiskDevice. */
export class SimDisk implements Blockstore {
  readonly device: DiskDevice;
  #live = new Map<string, Stored>();
  #durable = new Map<string, Stored>();
  readonly #pending = new Set<PendingBlockWrite>();
  /** Pending writes per key (so a delete need not scan every pending write). */
  readonly #pendingKeys = new Map<string, number>();
  #used = 0;
  readonly #main: Blockstore;
  readonly #onDelete = new Set<(cid: CID) => void>();

  constructor(device: DiskDevice | Partial<DiskOptions> = {}) {
    this.device = device instanceof DiskDevice ? device : new DiskDevice(device);
    this.#main = this.open();
  }

  // --- Blockstore (through the default handle) ---
  put(cid: CID, bytes: Uint8Array, options?: AbortOptions): Promise<CID> {
    return this.#main.put(cid, bytes, options);
  }
  putMany(source: Iterable<Pair> | AsyncIterable<Pair>, options?: AbortOptions): AsyncIterable<CID> {
    return this.#main.putMany(source, options);
  }
  get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    return this.#main.get(cid, options);
  }
  has(cid: CID, options?: AbortOptions): Promise<boolean> {
    return this.#main.has(cid, options);
  }
  delete(cid: CID, options?: AbortOptions): Promise<void> {
    return this.#main.delete(cid, options);
  }
  keys(options?: AbortOptions): AsyncIterable<CID> {
    return this.#main.keys(options);
  }
  close(): Promise<void> {
    return this.#main.close();
  }

  /** A handle for one Box incarnation (or a plain reopen when `life` is omitted). */
  open(life?: Life): Blockstore {
    const disk = this;
    const device = this.device;
    let closed = false;
    const what = `simulated blockstore ${device.name}`;
    const handle: Blockstore = {
      put(cid, bytes, options) {
        try {
          if (!gate(life, device, closed, what, options)) return never();
          return disk.#write(cid, bytes, life).then(() => cid);
        } catch (error) {
          return Promise.reject(error);
        }
      },
      async *putMany(source, options) {
        for await (const { cid, bytes } of source) yield await handle.put(cid, bytes, options);
      },
      get(cid, options) {
        try {
          if (!gate(life, device, closed, what, options)) return never();
        } catch (error) {
          return Promise.reject(error);
        }
        return afterRead(device, life, () => {
          const found = disk.#live.get(cid.toString());
          if (found === undefined) throw new BlockNotFoundError(cid);
          return device.options.copyReads ? new Uint8Array(found.bytes) : found.bytes;
        });
      },
      has(cid, options) {
        try {
          if (!gate(life, device, closed, what, options)) return never();
        } catch (error) {
          return Promise.reject(error);
        }
        return afterRead(device, life, () => disk.#live.has(cid.toString()));
      },
      delete(cid, options) {
        try {
          if (!gate(life, device, closed, what, options)) return never();
          return disk.#write(cid, undefined, life);
        } catch (error) {
          return Promise.reject(error);
        }
      },
      async *keys(options) {
        if (!gate(life, device, closed, what, options)) await never();
        const cids = [...disk.#live.values()].map((s) => s.cid);
        for (const cid of cids) {
          if (life !== undefined && !life.alive) await never();
          throwIfAborted(options);
          yield cid;
        }
      },
      async close() {
        closed = true;
      },
    };
    return handle;
  }

  /** Apply a put (bytes) or delete (undefined) to the visible state now; resolves when it is durable. */
  #write(cid: CID, bytes: Uint8Array | undefined, life: Life | undefined): Promise<void> {
    const key = cid.toString();
    const old = this.#live.get(key);
    if (bytes === undefined && old === undefined && !this.#hasPendingFor(key)) return Promise.resolve();
    let stored: Stored | undefined;
    if (bytes !== undefined) {
      const grow = bytes.byteLength - (old?.bytes.byteLength ?? 0);
      if (this.#used + grow > this.device.options.capacityBytes) {
        throw new StorageFullError(`disk ${this.device.name} is full: ${this.#used} of ${this.device.options.capacityBytes} bytes used, ${bytes.byteLength} more needed`);
      }
      stored = { cid, bytes: new Uint8Array(bytes) };
      this.#live.set(key, stored);
      this.#used += grow;
    } else if (old !== undefined) {
      this.#live.delete(key);
      this.#used -= old.bytes.byteLength;
      for (const fn of this.#onDelete) fn(cid);
    }
    const s = this.device.scheduler;
    if (s === undefined) {
      this.#applyDurable(key, stored);
      this.device.writes++;
      this.device.bytesWritten += bytes?.byteLength ?? 0;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const entry: PendingBlockWrite = { key, cid, stored, cancel: () => undefined };
      entry.cancel = s.at(this.device.reserve(bytes?.byteLength ?? 0), () => {
        this.#pending.delete(entry);
        this.#unpend(key);
        this.#applyDurable(key, stored);
        this.device.writes++;
        this.device.bytesWritten += bytes?.byteLength ?? 0;
        if (life === undefined || life.alive) resolve();
      });
      this.#pending.add(entry);
      this.#pendingKeys.set(key, (this.#pendingKeys.get(key) ?? 0) + 1);
    });
  }

  #hasPendingFor(key: string): boolean {
    return this.#pendingKeys.has(key);
  }

  #unpend(key: string): void {
    const n = this.#pendingKeys.get(key) ?? 0;
    if (n <= 1) this.#pendingKeys.delete(key);
    else this.#pendingKeys.set(key, n - 1);
  }

  #applyDurable(key: string, stored: Stored | undefined): void {
    if (stored === undefined) this.#durable.delete(key);
    else this.#durable.set(key, stored);
  }

  /** The crash: pending writes are resolved per `mode`, then the visible state is what is durable. */
  crash(mode: CrashMode = this.device.options.crashMode): BlockCrashReport {
    const report: BlockCrashReport = { lost: [], torn: [], survived: [], undeleted: [] };
    const rng = this.device.rng;
    for (const p of this.#pending) {
      p.cancel();
      if (p.stored === undefined) {
        const applied = mode === 'none' || (mode === 'tear' && rng.chance(0.5));
        if (applied) this.#durable.delete(p.key);
        else if (this.#durable.has(p.key)) report.undeleted.push(p.cid);
        continue;
      }
      let fate: 'lost' | 'kept' | 'torn' = mode === 'none' ? 'kept' : mode === 'lose' ? 'lost' : (['lost', 'kept', 'torn'] as const)[rng.int(3)];
      if (fate === 'torn' && p.stored.bytes.byteLength === 0) fate = 'lost';
      if (fate === 'kept') {
        this.#durable.set(p.key, p.stored);
        report.survived.push(p.cid);
      } else if (fate === 'torn') {
        const keep = rng.int(p.stored.bytes.byteLength);
        this.#durable.set(p.key, { cid: p.cid, bytes: p.stored.bytes.slice(0, keep), torn: true });
        report.torn.push(p.cid);
      } else {
        report.lost.push(p.cid);
      }
    }
    this.#pending.clear();
    this.#pendingKeys.clear();
    this.#live = new Map(this.#durable);
    this.#used = 0;
    for (const s of this.#live.values()) this.#used += s.bytes.byteLength;
    return report;
  }

  /** Gone for good: every block is lost. */
  brick(): void {
    for (const p of this.#pending) p.cancel();
    this.#pending.clear();
    this.#pendingKeys.clear();
    this.#live = new Map();
    this.#durable = new Map();
    this.#used = 0;
  }

  /**
   * Bit rot: flip `bytesPerBlock` random bytes (each XORed with a random non-zero value) in `blocks` random
   * durable, non-empty blocks (among those `eligible` accepts). Returns exactly what was corrupted.
   */
  rot(blocks = 1, bytesPerBlock = 1, rng: SimRandom = this.device.rng, eligible: (cid: CID) => boolean = () => true): RotReport[] {
    const candidates = [...this.#durable.entries()].filter(([, s]) => s.bytes.byteLength > 0 && eligible(s.cid));
    const chosen = rng.sample(candidates, blocks);
    const reports: RotReport[] = [];
    for (const [key, s] of chosen) {
      const bytes = s.bytes.slice();
      const distinct = new Set<number>();
      const n = Math.min(Math.max(1, bytesPerBlock), bytes.byteLength);
      while (distinct.size < n) distinct.add(rng.int(bytes.byteLength));
      const offsets = [...distinct];
      for (const off of offsets) bytes[off] ^= 1 + rng.int(255);
      const rotted: Stored = { cid: s.cid, bytes, rot: [...(s.rot ?? []), ...offsets], ...(s.torn === true ? { torn: true } : {}) };
      this.#durable.set(key, rotted);
      if (this.#live.get(key) === s) this.#live.set(key, rotted);
      reports.push({ cid: s.cid, offsets });
    }
    return reports;
  }

  // --- ground truth for checkers (synchronous, no virtual cost) ---

  /**
   * Call `fn` (synchronously, inside the deleting call) whenever a delete makes a block vanish from the visible
   * state: checkers that must hold at every moment (say, "no block has fewer copies than before") look then.
   * Returns the function that stops it.
   */
  onDelete(fn: (cid: CID) => void): () => void {
    this.#onDelete.add(fn);
    return () => this.#onDelete.delete(fn);
  }

  /** Bytes of blocks currently visible. */
  get usedBytes(): number {
    return this.#used;
  }

  /** Number of blocks currently visible. */
  get size(): number {
    return this.#live.size;
  }

  /** Writes issued but not yet durable. */
  get pendingWrites(): number {
    return this.#pending.size;
  }

  /** Visible CIDs (a snapshot). */
  cids(): CID[] {
    return [...this.#live.values()].map((s) => s.cid);
  }

  /** Durable CIDs: what would be there after a crash with mode `lose`. */
  durableCids(): CID[] {
    return [...this.#durable.values()].map((s) => s.cid);
  }

  hasNow(cid: CID): boolean {
    return this.#live.has(cid.toString());
  }

  /** The visible bytes of a block (not a copy: do not mutate), if present. */
  peek(cid: CID): Uint8Array | undefined {
    return this.#live.get(cid.toString())?.bytes;
  }

  /** True when the visible copy of `cid` is present and hashes to its CID. */
  intact(cid: CID): boolean {
    const s = this.#live.get(cid.toString());
    return s !== undefined && s.rot === undefined && s.torn !== true && hashOk(s);
  }

  /** Blocks known to be damaged by injected faults (rot or a torn write), per the simulator's own bookkeeping. */
  corrupted(): CID[] {
    return [...this.#live.values()].filter((s) => s.rot !== undefined || s.torn === true).map((s) => s.cid);
  }

  /** Re-hash every visible block and return those that do not match their CID (independent of bookkeeping). */
  audit(): CID[] {
    return [...this.#live.values()].filter((s) => !hashOk(s)).map((s) => s.cid);
  }
}

interface PendingKvWrite {
  ops: KvOp[];
  cancel: () => void;
}

/** The simulated KvStore on a DiskDevice (atomic put/delete/batch; see the file comment for crash behaviour). */
export class SimKv implements KvStore {
  readonly device: DiskDevice;
  #live = new Map<string, Uint8Array>();
  #durable = new Map<string, Uint8Array>();
  readonly #pending = new Set<PendingKvWrite>();
  readonly #main: KvStore;

  constructor(device: DiskDevice | Partial<DiskOptions> = {}) {
    this.device = device instanceof DiskDevice ? device : new DiskDevice(device);
    this.#main = this.open();
  }

  get(key: string, options?: AbortOptions): Promise<Uint8Array | undefined> {
    return this.#main.get(key, options);
  }
  put(key: string, value: Uint8Array, options?: AbortOptions): Promise<void> {
    return this.#main.put(key, value, options);
  }
  delete(key: string, options?: AbortOptions): Promise<void> {
    return this.#main.delete(key, options);
  }
  batch(ops: readonly KvOp[], options?: AbortOptions): Promise<void> {
    return this.#main.batch(ops, options);
  }
  list(prefix: string, options?: AbortOptions): AsyncIterable<[string, Uint8Array]> {
    return this.#main.list(prefix, options);
  }
  close(): Promise<void> {
    return this.#main.close();
  }

  /** A handle for one Box incarnation (or a plain reopen when `life` is omitted). */
  open(life?: Life): KvStore {
    const kv = this;
    const device = this.device;
    let closed = false;
    const what = `simulated kv store ${device.name}`;
    const write = (ops: readonly KvOp[], options?: AbortOptions): Promise<void> => {
      try {
        if (!gate(life, device, closed, what, options)) return never();
        return kv.#write(ops, life);
      } catch (error) {
        return Promise.reject(error);
      }
    };
    return {
      get(key, options) {
        try {
          if (!gate(life, device, closed, what, options)) return never();
        } catch (error) {
          return Promise.reject(error);
        }
        return afterRead(device, life, () => {
          const v = kv.#live.get(key);
          return v === undefined ? undefined : new Uint8Array(v);
        });
      },
      put: (key, value, options) => write([{ type: 'put', key, value }], options),
      delete: (key, options) => write([{ type: 'delete', key }], options),
      batch: (ops, options) => write(ops, options),
      async *list(prefix, options) {
        if (!gate(life, device, closed, what, options)) await never();
        const keys = [...kv.#live.keys()].filter((k) => k.startsWith(prefix)).sort();
        const entries = keys.map((k): [string, Uint8Array] => [k, new Uint8Array(kv.#live.get(k) as Uint8Array)]);
        for (const entry of entries) {
          if (life !== undefined && !life.alive) await never();
          throwIfAborted(options);
          yield entry;
        }
      },
      async close() {
        closed = true;
      },
    };
  }

  #write(ops: readonly KvOp[], life: Life | undefined): Promise<void> {
    const copied: KvOp[] = ops.map((op) => (op.type === 'put' ? { type: 'put', key: op.key, value: new Uint8Array(op.value) } : { type: 'delete', key: op.key }));
    apply(this.#live, copied);
    let size = 0;
    for (const op of copied) size += op.key.length * 2 + (op.type === 'put' ? op.value.byteLength : 0);
    const s = this.device.scheduler;
    if (s === undefined) {
      apply(this.#durable, copied);
      this.device.writes++;
      this.device.bytesWritten += size;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const entry: PendingKvWrite = { ops: copied, cancel: () => undefined };
      entry.cancel = s.at(this.device.reserve(size), () => {
        this.#pending.delete(entry);
        apply(this.#durable, copied);
        this.device.writes++;
        this.device.bytesWritten += size;
        if (life === undefined || life.alive) resolve();
      });
      this.#pending.add(entry);
    });
  }

  /** The crash: pending writes survive or vanish per `mode`, each write all-or-nothing, in issue order. */
  crash(mode: CrashMode = this.device.options.crashMode): KvCrashReport {
    const pending = [...this.#pending];
    for (const p of pending) p.cancel();
    this.#pending.clear();
    const keep = mode === 'none' ? pending.length : mode === 'lose' ? 0 : this.device.rng.int(pending.length + 1);
    for (const p of pending.slice(0, keep)) apply(this.#durable, p.ops);
    this.#live = new Map(this.#durable);
    return { lostWrites: pending.length - keep, survivedWrites: keep };
  }

  brick(): void {
    for (const p of this.#pending) p.cancel();
    this.#pending.clear();
    this.#live = new Map();
    this.#durable = new Map();
  }

  /** Writes issued but not yet durable. */
  get pendingWrites(): number {
    return this.#pending.size;
  }

  /** The visible value of `key` (not a copy), for checkers. */
  peek(key: string): Uint8Array | undefined {
    return this.#live.get(key);
  }

  /** The durable value of `key` (what survives a crash with mode `lose`), for checkers. */
  peekDurable(key: string): Uint8Array | undefined {
    return this.#durable.get(key);
  }

  /** Visible keys, sorted. */
  keysNow(prefix = ''): string[] {
    return [...this.#live.keys()].filter((k) => k.startsWith(prefix)).sort();
  }
}

function apply(map: Map<string, Uint8Array>, ops: readonly KvOp[]): void {
  for (const op of ops) {
    if (op.type === 'put') map.set(op.key, op.value);
    else map.delete(op.key);
  }
}

/** One Box's drive: the device plus the block and KV stores on it, crashed and bricked together. */
export class SimDrive {
  readonly device: DiskDevice;
  readonly blocks: SimDisk;
  readonly kv: SimKv;

  constructor(options: Partial<DiskOptions> = {}, scheduler?: Scheduler, rng?: SimRandom) {
    this.device = new DiskDevice(options, scheduler, rng);
    this.blocks = new SimDisk(this.device);
    this.kv = new SimKv(this.device);
  }

  get bricked(): boolean {
    return this.device.bricked;
  }

  /** Handles for one incarnation. */
  open(life?: Life): { blocks: Blockstore; kv: KvStore } {
    return { blocks: this.blocks.open(life), kv: this.kv.open(life) };
  }

  crash(mode: CrashMode = this.device.options.crashMode): DriveCrashReport {
    const report = { blocks: this.blocks.crash(mode), kv: this.kv.crash(mode) };
    this.device.resetQueue();
    return report;
  }

  brick(): void {
    this.blocks.brick();
    this.kv.brick();
    this.device.markBricked();
  }
}
