/**
 * The file integrity monitor: a periodic, throttled sweep that re-hashes every block on this Box's disk against
 * its CID (the source of truth). A corrupt block is handed to the keeper, which quarantines it, fetches a healthy
 * copy from another holder and raises a disk-corruption event; a block no healthy copy exists of is reported.
 */
import type { CID } from 'multiformats/cid';
import type { Clock } from '../ports.ts';
import type { ChunkingService } from '../snapshot/ports.ts';
import type { TrackingBlockstore } from './tracking-store.ts';
import type { KvStore } from '../kv.ts';

const LAST_SWEEP_KEY = 'integrity/last-sweep';

const toNull = (): null => null;

/** Digest equality (a local loop: the shared byte comparison sees many array kinds and runs slower). */
function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface SweepReport {
  checked: number;
  bytes: number;
  corrupt: string[];
  repaired: string[];
  unrepairable: string[];
  startedAt: number;
  finishedAt: number;
}

export interface IntegrityOptions {
  blocks: TrackingBlockstore;
  /** Where the time of the last complete sweep is kept, so a restarted Box sweeps when one is overdue. */
  kv?: KvStore;
  chunking: ChunkingService;
  clock: Clock;
  /** Quarantine and re-fetch; true when a healthy copy was stored. */
  repair: (cid: CID) => Promise<boolean>;
  /** Between the start of one sweep and the next (default 7 days). */
  intervalMs?: number;
  /** Throttle: bytes hashed per second of clock time (default 64 MiB/s), so sweeps never starve other work. */
  bytesPerSecond?: number;
  /** Blocks read per batch (default 16). */
  batch?: number;
  onSweep?: (r: SweepReport) => void;
}

export class IntegrityMonitor {
  readonly #o: IntegrityOptions;
  #timer: (() => void) | null = null;
  #stopped = true;
  #abort = false;
  #running: Promise<SweepReport> | null = null;
  last: SweepReport | null = null;

  constructor(options: IntegrityOptions) {
    this.#o = options;
  }

  /** Start periodic sweeps: the first when the last recorded sweep is one interval old (one interval from now when none is recorded). */
  async start(firstInMs?: number): Promise<void> {
    this.#stopped = false;
    this.#abort = false;
    const interval = this.#o.intervalMs ?? 7 * 24 * 3600_000;
    let first = firstInMs;
    if (first === undefined) {
      const raw = await this.#o.kv?.get(LAST_SWEEP_KEY);
      const last = raw ? Number(new TextDecoder().decode(raw)) : NaN;
      first = Number.isFinite(last) ? Math.max(0, last + interval - this.#o.clock.now()) : interval;
    }
    this.#arm(first);
  }

  stop(): void {
    this.#stopped = true;
    this.#abort = true;
    this.#timer?.();
    this.#timer = null;
  }

  #arm(ms: number): void {
    if (this.#stopped) return;
    this.#timer = this.#o.clock.setTimer(ms, () => {
      void this.sweep().finally(() => this.#arm(this.#o.intervalMs ?? 7 * 24 * 3600_000));
    });
  }

  /** Held blocks in key order (kept while the held set does not change: between sweeps, it rarely does). */
  #sortedHeld(): ReadonlyArray<readonly [string, CID]> {
    const blocks = this.#o.blocks;
    if (this.#held?.version !== blocks.version) {
      const list = [...blocks.held()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      this.#held = { version: blocks.version, list };
    }
    return this.#held.list;
  }

  #held: { version: number; list: ReadonlyArray<readonly [string, CID]> } | undefined;

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#o.clock.setTimer(ms, resolve));
  }

  /** One full sweep now (sweeps never overlap). */
  sweep(): Promise<SweepReport> {
    if (!this.#running) this.#running = this.#sweep().finally(() => (this.#running = null));
    return this.#running;
  }

  async #sweep(): Promise<SweepReport> {
    const { blocks, chunking, clock } = this.#o;
    const report: SweepReport = { checked: 0, bytes: 0, corrupt: [], repaired: [], unrepairable: [], startedAt: clock.now(), finishedAt: 0 };
    const rate = this.#o.bytesPerSecond ?? 64 * 1024 * 1024;
    const held = this.#sortedHeld();
    const batchSize = this.#o.batch ?? 16;
    const readOrNull = (cid: CID): Promise<Uint8Array | null> => blocks.get(cid).catch(toNull);
    for (let i = 0; i < held.length; i += batchSize) {
      if (this.#abort) break;
      const cids: CID[] = [];
      for (let j = i; j < Math.min(i + batchSize, held.length); j++) if (blocks.holds(held[j][0])) cids.push(held[j][1]);
      const read = await Promise.all(cids.map(readOrNull));
      const present: CID[] = [];
      const contents: Uint8Array[] = [];
      for (let j = 0; j < cids.length; j++) {
        const bytes = read[j];
        if (bytes === null) continue; // deleted meanwhile
        present.push(cids[j]);
        contents.push(bytes);
      }
      const digests = await chunking.digest(contents);
      let batchBytes = 0;
      for (let j = 0; j < present.length; j++) {
        const cid = present[j];
        report.checked++;
        batchBytes += contents[j].length;
        if (sameDigest(digests[j], cid.multihash.digest)) continue;
        report.corrupt.push(cid.toString());
        if (await this.#o.repair(cid)) report.repaired.push(cid.toString());
        else report.unrepairable.push(cid.toString());
      }
      report.bytes += batchBytes;
      if (batchBytes > 0) await this.#sleep((batchBytes / rate) * 1000);
    }
    report.finishedAt = clock.now();
    this.last = report;
    if (!this.#abort) await this.#o.kv?.put(LAST_SWEEP_KEY, new TextEncoder().encode(String(report.startedAt)));
    this.#o.onSweep?.(report);
    return report;
  }
}
