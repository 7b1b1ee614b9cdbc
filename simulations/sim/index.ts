/**
 * The deterministic simulator's public surface, for scenario and keeper authors and the `reserve sim` CLI.
 *
 *   const world = new SimWorld({ seed: 42 });
 *   const cluster = new SimCluster(world, (ports) => new MyBox(ports));
 *   cluster.add(); cluster.add(); cluster.add();
 *   world.net.partitionHalves(); await cluster.runFor(60_000); world.net.heal();
 *   const r = await cluster.runUntil(() => converged(cluster), { maxMs: 600_000 });
 *
 * or, for a named scenario with checkers and a replay line: `await runScenario(scenario, { seed })`.
 */
export { SimRandom, seedKey, seedLabel, fnv1a64, mix64, type Seed } from './rng.ts';
export { Scheduler, SimClock, Life, never, DEFAULT_EPOCH_MS, type RunUntilOptions, type RunUntilResult, type ScheduleOptions } from './scheduler.ts';
export { TraceRecorder, traceLog, formatMs, formatFields, type TraceEvent, type SimLog } from './trace.ts';
export { SimNet, SimEndpoint, DEFAULT_NET, sampleLatency, type LatencyModel, type NetOptions, type PathOverride, type PathStats } from './net.ts';
export {
  SimDisk,
  SimKv,
  SimDrive,
  DiskDevice,
  DEFAULT_DISK,
  type CrashMode,
  type DiskOptions,
  type RotReport,
  type BlockCrashReport,
  type KvCrashReport,
  type DriveCrashReport,
} from './disk.ts';
export { SimWorld, type WorldOptions } from './world.ts';
export { SimCluster, SimBox, type BoxBehaviour, type BoxPorts, type BoxFactory, type BoxState, type AddOptions, type ClusterOptions } from './cluster.ts';
export { FaultInjector, swarmOptions, describeSwarm, FAULT_KINDS, FAULT_RANGES, type FaultKind, type SwarmOptions, type InjectorOptions, type RotEvent } from './faults.ts';
export {
  runScenario,
  runSeeds,
  formatResult,
  replayCommand,
  option,
  toJson,
  EXIT,
  EXIT_PASS,
  EXIT_CRASH,
  EXIT_LIVENESS,
  EXIT_SAFETY,
  type Scenario,
  type Checker,
  type CheckResult,
  type RunContext,
  type RunOptions,
  type RunResult,
  type Failure,
  type Outcome,
  type Overrides,
  type Phase,
} from './runner.ts';
export { BoxStateError, SimReentrancyError, SimStallError, SimPanicError, DiskBrickedError } from './errors.ts';
export { DemoBox, demoScenario, BLOCK_PROTOCOL, type DemoInit, type DemoOptions, type DemoState } from './demo.ts';
