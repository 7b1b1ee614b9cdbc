/**
 * One simulated world: the seed and its PRNG tree, the scheduler (virtual time), the trace and the network.
 * Everything random in a run descends from `world.rng` through named forks (`net`, `disk/<box>`, `box/<box>/<n>`,
 * `faults`, `scenario`, ...), so each subsystem's stream is independent of how much the others draw.
 */
import type { Seed } from './rng.ts';
import { SimRandom, seedLabel } from './rng.ts';
import { Scheduler, type RunUntilOptions, type RunUntilResult } from './scheduler.ts';
import { TraceRecorder } from './trace.ts';
import { SimNet, type NetOptions } from './net.ts';
import { SimPanicError } from './errors.ts';

export interface WorldOptions {
  seed: Seed;
  /** `Clock.now()` at virtual time 0 (default 2025-01-01T00:00:00Z). */
  epochMs?: number;
  net?: Partial<NetOptions>;
  /** Events kept for failure reports (the hash covers all of them). */
  traceCapacity?: number;
}

export class SimWorld {
  /** The seed as given (what a replay command repeats). */
  readonly seed: string;
  readonly rng: SimRandom;
  readonly scheduler: Scheduler;
  readonly trace: TraceRecorder;
  readonly net: SimNet;

  constructor(options: WorldOptions) {
    this.seed = seedLabel(options.seed);
    this.rng = new SimRandom(options.seed);
    this.scheduler = new Scheduler({ epochMs: options.epochMs });
    this.trace = new TraceRecorder(() => this.scheduler.elapsed, options.traceCapacity);
    this.net = new SimNet(this.scheduler, this.rng.fork('net'), this.trace, options.net);
  }

  /** Virtual ms since the start. */
  get elapsed(): number {
    return this.scheduler.elapsed;
  }

  runFor(ms: number): Promise<void> {
    return this.scheduler.runFor(ms);
  }

  runUntil(predicate: () => boolean, options: RunUntilOptions): Promise<RunUntilResult> {
    return this.scheduler.runUntil(predicate, options);
  }

  /** Run the world until `promise` settles; see Scheduler.settle. */
  settle<T>(promise: Promise<T>, options?: { maxMs?: number; what?: string }): Promise<T> {
    return this.scheduler.settle(promise, options);
  }

  /** End the run as a crash: simulated code hit an error it had no business hitting. */
  panic(where: string, error: unknown): void {
    const err = new SimPanicError(where, error);
    this.trace.record('panic', '', err.message);
    this.scheduler.fail(err);
  }
}
