/**
 * A Box's health and limitations, wired to its events (BoxEvents) and to the shared config:
 *
 * - a HealthSampler reads the injected HealthSource (the OS on a real Box, a synthetic one in the simulator) every
 *   `intervalMs` on the injected clock, first at start, and turns sustained memory/CPU/disk-I/O pressure into
 *   keeper-health conditions (raised once, resolved once). `latest()` is the last reading, for the daemon's status.
 * - a LimitationWatcher forecasts the Box's disk use against its disk size (and every backed-up source's size
 *   against the snapshot size limit) and raises "limitation imminent" with the predicted time when that falls
 *   within the warning window of the shared config (followed as it changes).
 * - `preflight` runs before a backup writes anything: it scans the source's metadata (core/forecast/prescan.ts)
 *   and checks the shared config's limits (file size, files per directory, snapshot size) and this Box's free disk
 *   against the bytes the backup may newly store. A violation raises "limitation encountered" (one event per
 *   limitation, naming the worst case) and throws LimitExceededError, which names the limit, the value and the
 *   limit.
 */
import type { CID } from 'multiformats/cid';
import type { Blockstore } from '../blocks/blockstore.ts';
import type { ConditionTracker } from '../events/conditions.ts';
import type { EventRaiser } from '../events/dispatcher.ts';
import { HealthSampler } from '../events/health.ts';
import type { HealthSample, HealthSource, HealthThresholds } from '../events/health.ts';
import { checkLimitsDetailed, encounteredDraft, LimitExceededError } from '../forecast/limits.ts';
import type { KeeperDemand, Limitation, LimitViolation } from '../forecast/limits.ts';
import { prescanSource, plannedFromScan, type PrescanResult } from '../forecast/prescan.ts';
import { LimitationWatcher } from '../forecast/watcher.ts';
import type { BoxId } from '../net.ts';
import type { Clock } from '../ports.ts';
import type { SourceTree } from '../snapshot/ports.ts';
import type { SharedConfig } from '../state/config.ts';

/** The last health sample and when it was taken (the clock's ms). */
export interface HealthReading {
  at: number;
  sample: HealthSample;
}

export interface BoxHealthOptions {
  id: BoxId;
  clock: Clock;
  /** Where health comes from; without one, only limits (pre-flight, snapshot size forecasts) are tracked. */
  source?: HealthSource;
  /** The Box's condition tracker and raiser (BoxEvents). */
  tracker: ConditionTracker;
  raiser: EventRaiser;
  /** The shared config in force now. */
  config: () => SharedConfig;
  /** Between samples. Default 60 s. */
  intervalMs?: number;
  thresholds?: Partial<HealthThresholds>;
  onError?: (error: unknown) => void;
}

export interface PreflightContext {
  /** The parent snapshot, when this Box holds its manifest: unchanged files are not counted as new bytes. */
  parent?: { store: Blockstore; root: CID } | null;
  signal?: AbortSignal;
}

export class BoxHealth {
  readonly watcher: LimitationWatcher;
  readonly sampler: HealthSampler | undefined;
  readonly #o: BoxHealthOptions;
  #latest: HealthReading | undefined;

  constructor(options: BoxHealthOptions) {
    this.#o = options;
    const events = options.config().events;
    this.watcher = new LimitationWatcher({
      tracker: options.tracker,
      clock: options.clock,
      warningWindowMs: events.warningWindowMs,
      windowOverrides: events.warningWindowOverrides,
    });
    this.sampler = options.source
      ? new HealthSampler({
          source: options.source,
          tracker: options.tracker,
          clock: options.clock,
          keeper: options.id,
          intervalMs: options.intervalMs,
          thresholds: options.thresholds,
          watcher: this.watcher,
          onSample: (sample, at) => {
            this.#latest = { at, sample };
            this.#followConfig();
          },
          onError: options.onError,
        })
      : undefined;
  }

  #followConfig(): void {
    const events = this.#o.config().events;
    this.watcher.setWindows(events.warningWindowMs, events.warningWindowOverrides);
  }

  /** The last sample taken (undefined before the first, or without a source). */
  latest(): HealthReading | undefined {
    return this.#latest;
  }

  /** Sample now, then every interval. */
  start(): void {
    this.sampler?.start({ immediate: true });
  }

  stop(): void {
    this.sampler?.stop();
  }

  /**
   * Check a backup of `source` against the limits before anything is written. Returns the scan; throws
   * LimitExceededError (after raising "limitation encountered") when a limit would be exceeded.
   */
  async preflight(source: SourceTree, context: PreflightContext = {}): Promise<PrescanResult> {
    const limits = this.#o.config().limits;
    const scan = await prescanSource(source, { limits, parent: context.parent ?? undefined, signal: context.signal });
    const demand: KeeperDemand[] = [];
    const disk = this.#latest?.sample.disk;
    // Blocks land on this Box first; its free disk is known from its health. Other keepers pull their share
    // later and report shortage through their own health and forecasts.
    if (disk && disk.totalBytes > 0) demand.push({ keeper: this.#o.id, freeBytes: disk.availableBytes, plannedBytes: scan.newBytes });
    const { violations, omitted } = checkLimitsDetailed(plannedFromScan(scan, { keeperDemand: demand }), limits);
    if (violations.length > 0) {
      const unlisted = omitted + (scan.oversizeFiles - scan.oversize.length) + (scan.crowdedDirectories - scan.crowded.length);
      await this.#raiseEncountered(violations);
      throw new LimitExceededError(violations, unlisted);
    }
    this.#followConfig();
    try {
      await this.watcher.observe({ limitation: 'snapshot-size', subject: source.description, value: scan.snapshotBytes, limit: limits.maxSnapshotBytes });
    } catch (error) {
      this.#o.onError?.(error);
    }
    return scan;
  }

  /** One "limitation encountered" per limitation kind, for its worst violation. */
  async #raiseEncountered(violations: readonly LimitViolation[]): Promise<void> {
    const worst = new Map<Limitation, LimitViolation>();
    for (const v of violations) {
      const w = worst.get(v.limitation);
      if (!w || v.value / Math.max(1, v.limit) > w.value / Math.max(1, w.limit)) worst.set(v.limitation, v);
    }
    for (const v of worst.values()) {
      try {
        await this.#o.raiser.raise(encounteredDraft(v));
      } catch (error) {
        this.#o.onError?.(error); // the backup still fails with the reason; only the event is missing
      }
    }
  }
}
