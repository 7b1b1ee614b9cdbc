/**
 * The Boxes of a simulated reserve and their lifecycle. A `SimCluster` builds each Box from a pluggable factory
 * that receives only ports (the same ports a real Box gets, wired to the simulated world), so the keeper/retriever
 * code under test runs unchanged:
 *
 *   const cluster = new SimCluster(world, (ports) => new Keeper(ports));
 *   const a = cluster.add();                        // box-1, up, start() running
 *   cluster.crash('box-1'); cluster.restart('box-1'); // same disk, volatile state gone
 *   cluster.brick('box-2');                           // disk gone for good
 *   cluster.replace('box-2', { init: secret, bootstrap: ['box-1'] }); // factory-new Box, new id, empty disk
 *   await cluster.remove('box-3', { graceful: true });// behaviour.stop() decides what "graceful" means
 *
 * Each start of a Box is an *incarnation* with its own `Life`: a crash kills the Life, so that incarnation's
 * timers never fire, its pending requests and disk writes never settle, and nothing is delivered to it again,
 * while the drive (minus un-awaited writes, per the crash mode) stays for the next incarnation.
 *
 * `start()` runs inside the simulation: `add`/`restart` return at once; a start() that rejects fails the run as a
 * crash (so does `ports.panic(err)`). Use `cluster.settle(box.starting)` or `runUntil(() => box.started)` to wait.
 */
import type { Clock, Random } from '../../core/ports.ts';
import type { BoxId, Network } from '../../core/net.ts';
import type { Blockstore } from '../../core/blocks/blockstore.ts';
import type { KvStore } from '../../core/kv.ts';
import { SimDrive, type DiskOptions, type DriveCrashReport, type SimDisk, type SimKv } from './disk.ts';
import { Life, SimClock, type RunUntilOptions, type RunUntilResult } from './scheduler.ts';
import { traceLog, type SimLog } from './trace.ts';
import type { SimWorld } from './world.ts';
import type { SimEndpoint } from './net.ts';
import { BoxStateError } from './errors.ts';

/** What every simulated Box must do; scenarios call whatever else their behaviour offers. */
export interface BoxBehaviour {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** The world as one Box incarnation sees it. */
export interface BoxPorts<I = unknown> {
  id: BoxId;
  clock: Clock;
  random: Random;
  network: Network;
  blocks: Blockstore;
  kv: KvStore;
  log: SimLog;
  /** Peer addresses this Box was given when it joined. */
  bootstrap: readonly BoxId[];
  /** Whatever the scenario hands a new Box (the shared secret, a role, ...). */
  init: I;
  /** 1 for the first start, then +1 per restart. */
  incarnation: number;
  /** Report an unexpected failure in background work: ends the run as a crash. */
  panic(error: unknown): void;
}

export type BoxFactory<B extends BoxBehaviour, I = unknown> = (ports: BoxPorts<I>) => B;

/** up: process running (perhaps still starting); down: crashed or stopped, disk kept; bricked/removed: gone. */
export type BoxState = 'up' | 'stopping' | 'down' | 'bricked' | 'removed';

export interface AddOptions<I> {
  id?: BoxId;
  init?: I;
  /** Peer addresses the new Box starts with (default: every current member). */
  bootstrap?: readonly BoxId[];
  disk?: Partial<DiskOptions>;
  upBytesPerSec?: number;
  downBytesPerSec?: number;
}

export interface ClusterOptions {
  /** Disk settings for every Box (per-Box `disk` options override). */
  disk?: Partial<DiskOptions>;
  /** Generated ids are `${idPrefix}${n}` (default `box-`). */
  idPrefix?: string;
}

export class SimBox<B extends BoxBehaviour, I = unknown> {
  readonly id: BoxId;
  readonly drive: SimDrive;
  readonly init: I;
  readonly bootstrap: readonly BoxId[];
  state: BoxState = 'down';
  incarnation = 0;
  /** The current (or last) incarnation's behaviour. */
  behaviour: B | undefined;
  /** The current incarnation's start(), for `cluster.settle(box.starting)`. */
  starting: Promise<void> = Promise.resolve();
  /** start() of the current incarnation has resolved. */
  started = false;
  /** @internal */ life: Life | undefined;
  /** @internal */ endpoint: SimEndpoint | undefined;

  constructor(id: BoxId, drive: SimDrive, init: I, bootstrap: readonly BoxId[]) {
    this.id = id;
    this.drive = drive;
    this.init = init;
    this.bootstrap = bootstrap;
  }

  get blocks(): SimDisk {
    return this.drive.blocks;
  }

  get kv(): SimKv {
    return this.drive.kv;
  }

  get up(): boolean {
    return this.state === 'up';
  }

  /** The running behaviour; throws BoxStateError when the Box is not up. */
  get running(): B {
    if (this.state !== 'up' || this.behaviour === undefined) throw new BoxStateError(`box ${this.id} is ${this.state}, not up`);
    return this.behaviour;
  }
}

export class SimCluster<B extends BoxBehaviour, I = undefined> {
  readonly world: SimWorld;
  readonly #factory: BoxFactory<B, I>;
  readonly #options: ClusterOptions;
  readonly #boxes = new Map<BoxId, SimBox<B, I>>();
  #counter = 0;

  constructor(world: SimWorld, factory: BoxFactory<B, I>, options: ClusterOptions = {}) {
    this.world = world;
    this.#factory = factory;
    this.#options = options;
  }

  // --- queries ---

  box(id: BoxId): SimBox<B, I> {
    const box = this.#boxes.get(id);
    if (box === undefined) throw new BoxStateError(`no box ${id} in this cluster`);
    return box;
  }

  has(id: BoxId): boolean {
    return this.#boxes.has(id);
  }

  /** Every Box ever added, in the order added (including bricked and removed ones). */
  all(): SimBox<B, I>[] {
    return [...this.#boxes.values()];
  }

  /** Boxes that are members (not bricked, not removed). */
  members(): SimBox<B, I>[] {
    return this.all().filter((b) => b.state !== 'bricked' && b.state !== 'removed');
  }

  /** Boxes whose process is running. */
  upBoxes(): SimBox<B, I>[] {
    return this.all().filter((b) => b.state === 'up');
  }

  ids(): BoxId[] {
    return this.members().map((b) => b.id);
  }

  // --- lifecycle ---

  /** A factory-new Box with an empty disk, started. */
  add(options: AddOptions<I> = {}): SimBox<B, I> {
    const id = options.id ?? this.#nextId();
    if (this.#boxes.has(id)) throw new BoxStateError(`box ${id} already exists`);
    const bootstrap = [...(options.bootstrap ?? this.ids())].filter((b) => b !== id);
    const drive = new SimDrive({ ...this.#options.disk, name: id, ...options.disk }, this.world.scheduler, this.world.rng.fork(`disk/${id}`));
    const box = new SimBox<B, I>(id, drive, options.init as I, bootstrap);
    this.#boxes.set(id, box);
    this.world.net.register(id, { bootstrap, upBytesPerSec: options.upBytesPerSec, downBytesPerSec: options.downBytesPerSec });
    this.world.trace.record('box.add', id, `bootstrap=[${bootstrap.join(',')}]`);
    this.#boot(box);
    return box;
  }

  /** Power loss / kernel panic: volatile state gone, un-awaited writes handled per the disk's crash mode. */
  crash(id: BoxId): DriveCrashReport {
    const box = this.box(id);
    if (box.state !== 'up' && box.state !== 'stopping') throw new BoxStateError(`cannot crash box ${id}: it is ${box.state}`);
    this.#kill(box);
    const report = box.drive.crash();
    box.state = 'down';
    this.world.trace.record(
      'box.crash',
      id,
      `lost=${report.blocks.lost.length} torn=${report.blocks.torn.length} survived=${report.blocks.survived.length} kvLost=${report.kv.lostWrites}`,
    );
    return report;
  }

  /** Start a crashed or stopped Box again on its own disk. */
  restart(id: BoxId): SimBox<B, I> {
    const box = this.box(id);
    if (box.state !== 'down') throw new BoxStateError(`cannot restart box ${id}: it is ${box.state}`);
    this.#boot(box);
    return box;
  }

  /** Clean power-off: behaviour.stop() runs (in virtual time), then the process ends and every write is flushed. */
  async stop(id: BoxId, options: { maxMs?: number } = {}): Promise<void> {
    const box = this.box(id);
    if (box.state !== 'up') throw new BoxStateError(`cannot stop box ${id}: it is ${box.state}`);
    box.state = 'stopping';
    this.world.trace.record('box.stopping', id);
    const behaviour = box.behaviour as B;
    await this.world.settle(behaviour.stop(), { maxMs: options.maxMs ?? 600_000, what: `${id}.stop()` });
    if (box.state !== 'stopping') return; // crashed meanwhile
    this.#kill(box);
    box.drive.crash('none');
    box.state = 'down';
    this.world.trace.record('box.stopped', id);
  }

  /** The Box's disk dies for good (the process with it). Its data is gone; its id is never used again. */
  brick(id: BoxId): void {
    const box = this.box(id);
    if (box.state === 'bricked' || box.state === 'removed') throw new BoxStateError(`cannot brick box ${id}: it is ${box.state}`);
    if (box.state === 'up' || box.state === 'stopping') this.#kill(box);
    box.drive.brick();
    box.state = 'bricked';
    this.world.net.unregister(id);
    this.world.trace.record('box.brick', id);
  }

  /**
   * Replace a Box with a factory-new one (new id, empty disk). The old one is bricked first if it is not gone
   * already. The new Box starts with `options.bootstrap` (default: one member that is up, the first by id).
   */
  replace(oldId: BoxId, options: AddOptions<I> = {}): SimBox<B, I> {
    const old = this.box(oldId);
    if (old.state !== 'bricked' && old.state !== 'removed') this.brick(oldId);
    const firstUp = this.upBoxes()
      .map((b) => b.id)
      .sort()[0];
    const bootstrap = options.bootstrap ?? (firstUp === undefined ? [] : [firstUp]);
    const box = this.add({ ...options, bootstrap });
    this.world.trace.record('box.replace', oldId, `by ${box.id}`);
    return box;
  }

  /**
   * Take a Box out of the reserve. Graceful: behaviour.stop() runs first (the behaviour decides what leaving
   * involves; a scenario that wants a hand-off calls the behaviour's own leave operation before). Sudden: it is
   * crashed. Either way the Box and its disk are gone afterwards.
   */
  async remove(id: BoxId, options: { graceful: boolean; maxMs?: number }): Promise<void> {
    const box = this.box(id);
    if (box.state === 'bricked' || box.state === 'removed') throw new BoxStateError(`cannot remove box ${id}: it is ${box.state}`);
    if (options.graceful && box.state === 'up') await this.stop(id, { maxMs: options.maxMs });
    else if (box.state === 'up' || box.state === 'stopping') this.crash(id);
    box.drive.brick();
    box.state = 'removed';
    this.world.net.unregister(id);
    this.world.trace.record('box.remove', id, options.graceful ? 'graceful' : 'sudden');
  }

  // --- driving the world ---

  runFor(ms: number): Promise<void> {
    return this.world.runFor(ms);
  }

  runUntil(predicate: () => boolean, options: RunUntilOptions): Promise<RunUntilResult> {
    return this.world.runUntil(predicate, options);
  }

  settle<T>(promise: Promise<T>, options?: { maxMs?: number; what?: string }): Promise<T> {
    return this.world.settle(promise, options);
  }

  #nextId(): BoxId {
    let id: BoxId;
    do id = `${this.#options.idPrefix ?? 'box-'}${++this.#counter}`;
    while (this.#boxes.has(id));
    return id;
  }

  #boot(box: SimBox<B, I>): void {
    box.incarnation++;
    const life = new Life(`${box.id}#${box.incarnation}`);
    const world = this.world;
    const endpoint = world.net.attach(box.id, life);
    const handles = box.drive.open(life);
    box.life = life;
    box.endpoint = endpoint;
    box.state = 'up';
    box.started = false;
    const ports: BoxPorts<I> = {
      id: box.id,
      clock: new SimClock(world.scheduler, life),
      random: world.rng.fork(`box/${box.id}/${box.incarnation}`),
      network: endpoint,
      blocks: handles.blocks,
      kv: handles.kv,
      log: traceLog(world.trace, box.id, () => life.alive),
      bootstrap: box.bootstrap,
      init: box.init,
      incarnation: box.incarnation,
      panic: (error) => {
        if (life.alive) world.panic(`${box.id} (incarnation ${box.incarnation})`, error);
      },
    };
    world.trace.record('box.start', box.id, `incarnation=${box.incarnation}`);
    const behaviour = this.#factory(ports);
    box.behaviour = behaviour;
    let starting: Promise<void>;
    try {
      starting = Promise.resolve(behaviour.start());
    } catch (error) {
      starting = Promise.reject(error);
    }
    box.starting = starting.then(
      () => {
        if (!life.alive) return;
        box.started = true;
        world.trace.record('box.started', box.id, `incarnation=${box.incarnation}`);
      },
      (error: unknown) => {
        if (life.alive) world.panic(`${box.id}.start() (incarnation ${box.incarnation})`, error);
      },
    );
  }

  #kill(box: SimBox<B, I>): void {
    box.life?.kill();
    box.life = undefined;
    box.endpoint = undefined;
    box.started = false;
    this.world.net.detach(box.id);
  }
}
