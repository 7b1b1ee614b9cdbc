/**
 * Keeper health. A `HealthSource` reports the Box's memory, CPU, disk I/O and disk space (adapters/metrics reads
 * them from the OS; the simulator drives a synthetic source such as ManualHealthSource). The HealthSampler samples
 * it on the injected clock and turns thresholds into keeper-health conditions through the ConditionTracker:
 *
 * - a metric must be over its warning (or failure) threshold for `sustain` samples in a row before the condition
 *   opens (a busy CPU during a backup is not news), and back under the warning threshold minus `hysteresis` for
 *   `clearAfter` samples in a row before it is resolved;
 * - a warning that becomes a sustained failure is raised again with severity failure (escalation), once;
 * - disk space feeds the LimitationWatcher (limitation 'disk-capacity', subject = this keeper, value = bytes in
 *   use, limit = capacity), which forecasts when the disk fills up;
 * - disk corruption is reported by whoever finds it (block verification, scrubbing): `reportCorruption(cids)`
 *   opens a failure (raised again when more blocks turn out corrupt), `reportRepaired(cids)` resolves it once no
 *   corrupt block is left (until then it only updates the condition's block list, durably, without an event).
 */
import type { BoxId } from '../net.ts';
import type { AbortOptions, Clock } from '../ports.ts';
import type { LimitationWatcher } from '../forecast/watcher.ts';
import { conditionKey } from './conditions.ts';
import type { ConditionTracker } from './conditions.ts';
import { MAX_LISTED_BLOCKS } from './types.ts';
import type { EventEnvelope, KeeperHealthPayload, Severity } from './types.ts';

export interface MemorySample {
  totalBytes: number;
  /** Memory available for new work without swapping (Linux MemAvailable). */
  availableBytes: number;
}

export interface CpuSample {
  /** Share of CPU time not idle since the previous sample, 0..1. */
  busyFraction: number;
}

export interface DiskIoSample {
  /** Device name(s) measured, e.g. 'sda' or 'vda+vdb'. */
  device: string;
  readBytesPerSec: number;
  writeBytesPerSec: number;
  /** Share of wall time the device was busy with I/O, 0..1. */
  busyFraction: number;
}

export interface DiskSpaceSample {
  path: string;
  totalBytes: number;
  /** Bytes an unprivileged writer can still use. */
  availableBytes: number;
}

/** One reading. A metric the source cannot measure (yet: rates need two readings) is absent. */
export interface HealthSample {
  memory?: MemorySample;
  cpu?: CpuSample;
  diskIo?: DiskIoSample;
  disk?: DiskSpaceSample;
}

export interface HealthSource {
  sample(options?: AbortOptions): Promise<HealthSample>;
}

/** A source that returns whatever was last set: for the simulator and tests. */
export class ManualHealthSource implements HealthSource {
  #next: HealthSample;
  constructor(initial: HealthSample = {}) {
    this.#next = initial;
  }
  set(sample: HealthSample): void {
    this.#next = sample;
  }
  update(partial: HealthSample): void {
    this.#next = { ...this.#next, ...partial };
  }
  async sample(): Promise<HealthSample> {
    return structuredClone(this.#next);
  }
}

export interface Threshold {
  warning: number;
  failure?: number;
}

export interface HealthThresholds {
  /** Share of memory in use (1 - available/total). */
  memoryUsedFraction: Threshold;
  cpuBusyFraction: Threshold;
  diskBusyFraction: Threshold;
}

export const DEFAULT_HEALTH_THRESHOLDS: HealthThresholds = {
  memoryUsedFraction: { warning: 0.9, failure: 0.97 },
  cpuBusyFraction: { warning: 0.95 },
  diskBusyFraction: { warning: 0.95 },
};

export interface HealthSamplerOptions {
  source: HealthSource;
  tracker: ConditionTracker;
  clock: Clock;
  /** The Box whose health this is. */
  keeper: BoxId;
  /** Sampling period for `start()`. Default 60 s. */
  intervalMs?: number;
  thresholds?: Partial<HealthThresholds>;
  /** Samples over a threshold before a condition opens (or escalates). Default 3. */
  sustain?: number;
  /** Samples under (threshold - hysteresis) before it is resolved. Default 3. */
  clearAfter?: number;
  /** Default 0.05. */
  hysteresis?: number;
  /** Receives disk space as the 'disk-capacity' limitation of this keeper. */
  watcher?: LimitationWatcher;
  /** Every sample taken, with the clock's time, before it is acted on. */
  onSample?: (sample: HealthSample, at: number) => void;
  onError?: (error: unknown) => void;
}

type Metric = 'memory' | 'cpu' | 'disk-io';

interface Run {
  warn: number;
  fail: number;
  clear: number;
}

function clamp01(x: number): number {
  return Math.min(1, Math.max(0, Number.isFinite(x) ? x : 0));
}

export class HealthSampler {
  readonly #o: HealthSamplerOptions;
  readonly #thresholds: HealthThresholds;
  readonly #sustain: number;
  readonly #clearAfter: number;
  readonly #hysteresis: number;
  readonly #runs: Record<Metric, Run> = {
    memory: { warn: 0, fail: 0, clear: 0 },
    cpu: { warn: 0, fail: 0, clear: 0 },
    'disk-io': { warn: 0, fail: 0, clear: 0 },
  };
  readonly #corrupt = new Set<string>();
  #cancel?: () => void;
  #running = false;

  constructor(options: HealthSamplerOptions) {
    this.#o = options;
    this.#thresholds = { ...DEFAULT_HEALTH_THRESHOLDS, ...(options.thresholds ?? {}) };
    this.#sustain = Math.max(1, options.sustain ?? 3);
    this.#clearAfter = Math.max(1, options.clearAfter ?? 3);
    this.#hysteresis = options.hysteresis ?? 0.05;
    // Corrupt blocks known from before a restart (the listed ones) stay known.
    const open = options.tracker.active(this.#corruptionKey());
    if (open && open.kind === 'keeper-health') {
      const p = open.payload as KeeperHealthPayload;
      if (p.metric === 'disk-corruption') for (const c of p.blocks) this.#corrupt.add(c);
    }
  }

  #key(metric: KeeperHealthPayload['metric']): string {
    return conditionKey('keeper-health', metric, this.#o.keeper);
  }

  #corruptionKey(): string {
    return this.#key('disk-corruption');
  }

  /** Sample every `intervalMs` until `stop()` (the first sample at once with `immediate`). */
  start(options: { immediate?: boolean } = {}): void {
    if (this.#running) return;
    this.#running = true;
    const run = (): void => {
      this.tick()
        .catch((error: unknown) => this.#o.onError?.(error))
        .finally(() => {
          if (this.#running) loop();
        });
    };
    const loop = (): void => {
      this.#cancel = this.#o.clock.setTimer(this.#o.intervalMs ?? 60_000, run);
    };
    if (options.immediate) run();
    else loop();
  }

  stop(): void {
    this.#running = false;
    this.#cancel?.();
    this.#cancel = undefined;
  }

  /** Take one sample and act on it; returns the sample and the events raised. */
  async tick(options?: AbortOptions): Promise<{ sample: HealthSample; raised: EventEnvelope[] }> {
    const sample = await this.#o.source.sample(options);
    this.#o.onSample?.(sample, this.#o.clock.now());
    const raised: EventEnvelope[] = [];
    const keeper = this.#o.keeper;
    if (sample.memory && sample.memory.totalBytes > 0) {
      const used = Math.max(0, sample.memory.totalBytes - sample.memory.availableBytes);
      const usedFraction = clamp01(used / sample.memory.totalBytes);
      const t = this.#thresholds.memoryUsedFraction;
      raised.push(
        ...(await this.#evaluate('memory', usedFraction, t, (threshold) => ({
          metric: 'memory',
          keeper,
          usedBytes: used,
          totalBytes: sample.memory!.totalBytes,
          usedFraction,
          threshold,
        }))),
      );
    }
    if (sample.cpu) {
      const busy = clamp01(sample.cpu.busyFraction);
      raised.push(...(await this.#evaluate('cpu', busy, this.#thresholds.cpuBusyFraction, (threshold) => ({ metric: 'cpu', keeper, busyFraction: busy, threshold }))));
    }
    if (sample.diskIo) {
      const io = sample.diskIo;
      const busy = clamp01(io.busyFraction);
      raised.push(
        ...(await this.#evaluate('disk-io', busy, this.#thresholds.diskBusyFraction, (threshold) => ({
          metric: 'disk-io',
          keeper,
          device: io.device,
          readBytesPerSec: Math.max(0, io.readBytesPerSec),
          writeBytesPerSec: Math.max(0, io.writeBytesPerSec),
          busyFraction: busy,
          threshold,
        }))),
      );
    }
    if (sample.disk && this.#o.watcher && sample.disk.totalBytes > 0) {
      const r = await this.#o.watcher.observe({
        limitation: 'disk-capacity',
        subject: keeper,
        value: Math.max(0, sample.disk.totalBytes - sample.disk.availableBytes),
        limit: sample.disk.totalBytes,
      });
      raised.push(...r.raised);
    }
    return { sample, raised };
  }

  async #evaluate(metric: Metric, value: number, t: Threshold, payload: (threshold: number) => KeeperHealthPayload): Promise<EventEnvelope[]> {
    const run = this.#runs[metric];
    const failing = t.failure !== undefined && value >= t.failure;
    const warning = value >= t.warning;
    const clear = value < t.warning - this.#hysteresis;
    run.fail = failing ? run.fail + 1 : 0;
    run.warn = warning ? run.warn + 1 : 0;
    run.clear = clear ? run.clear + 1 : 0;
    const key = this.#key(metric);
    const open = this.#o.tracker.active(key);
    const out: EventEnvelope[] = [];
    const draft = (severity: Severity) =>
      ({ kind: 'keeper-health', severity, payload: payload(severity === 'failure' ? (t.failure as number) : t.warning) }) as const;
    if (!open) {
      if (run.fail >= this.#sustain) {
        const e = await this.#o.tracker.begin(key, draft('failure'));
        if (e) out.push(e);
      } else if (run.warn >= this.#sustain) {
        const e = await this.#o.tracker.begin(key, draft('warning'));
        if (e) out.push(e);
      }
    } else if (open.severity === 'warning' && run.fail >= this.#sustain) {
      out.push(await this.#o.tracker.reraise(key, draft('failure')));
    } else if (run.clear >= this.#clearAfter) {
      const e = await this.#o.tracker.end(key);
      if (e) out.push(e);
      run.clear = 0;
    }
    return out;
  }

  /** Corrupt blocks currently known. */
  corruptBlocks(): string[] {
    return [...this.#corrupt].sort();
  }

  #corruptionDraft() {
    const blocks = this.corruptBlocks();
    return {
      kind: 'keeper-health',
      severity: 'failure',
      payload: { metric: 'disk-corruption', keeper: this.#o.keeper, blocks: blocks.slice(0, MAX_LISTED_BLOCKS), totalBlocks: blocks.length },
    } as const;
  }

  /** Blocks (CID strings) found corrupt on this keeper. Raises a failure when any of them is newly known. */
  async reportCorruption(cids: readonly string[]): Promise<EventEnvelope | undefined> {
    let added = false;
    for (const c of cids) {
      if (!this.#corrupt.has(c)) {
        this.#corrupt.add(c);
        added = true;
      }
    }
    if (!added) return undefined;
    return this.#o.tracker.reraise(this.#corruptionKey(), this.#corruptionDraft());
  }

  /** Blocks repaired (re-fetched from another keeper) or deleted. Resolves the condition when none is left. */
  async reportRepaired(cids: readonly string[]): Promise<EventEnvelope | undefined> {
    let removed = false;
    for (const c of cids) removed = this.#corrupt.delete(c) || removed;
    if (this.#corrupt.size > 0) {
      // Still failing: keep the durable record's block list current, quietly.
      if (removed) await this.#o.tracker.amend(this.#corruptionKey(), 'keeper-health', this.#corruptionDraft().payload);
      return undefined;
    }
    return this.#o.tracker.end(this.#corruptionKey(), 'every corrupt block was repaired');
  }
}
