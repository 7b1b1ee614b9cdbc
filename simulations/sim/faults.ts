/**
 * Swarm testing (TigerBeetle VOPR style): `swarmOptions(rng)` draws, from the seed, which fault kinds are on for
 * this run and how often each strikes. Some kinds are switched off entirely per seed, so that across many seeds
 * every combination gets explored, including the quiet ones where a rare fault is not drowned out by the rest.
 *
 * `FaultInjector` applies a swarm to a cluster one step at a time: crashes and restarts, bricks (handed to the
 * scenario to replace), partitions (halves, one Box isolated, one-way), clogs and bit rot, never taking more than
 * `maxUnavailable` Boxes out at once (so "at most RF-1 Boxes lost at once" holds by construction), and records
 * every action in the trace. `heal()` ends the safety phase: network healed, every crashed Box restarted.
 */
import type { CID } from 'multiformats/cid';
import type { BoxId } from '../../core/net.ts';
import { InvalidInputError } from '../../core/errors.ts';
import type { SimRandom } from './rng.ts';
import type { CrashMode, RotReport } from './disk.ts';
import type { BoxBehaviour, SimCluster } from './cluster.ts';

export const FAULT_KINDS = ['loss', 'duplicate', 'reorder', 'partition', 'isolate', 'oneWay', 'clog', 'crash', 'brick', 'bitrot', 'torn'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Ranges the rates are drawn from (log-uniform). Per-message kinds are probabilities per message; the rest per step. */
export const FAULT_RANGES: Readonly<Record<FaultKind, readonly [number, number]>> = {
  loss: [0.001, 0.2],
  duplicate: [0.001, 0.1],
  reorder: [0.01, 0.3],
  partition: [0.01, 0.2],
  isolate: [0.01, 0.2],
  oneWay: [0.01, 0.2],
  clog: [0.01, 0.3],
  crash: [0.01, 0.3],
  brick: [0.002, 0.05],
  bitrot: [0.01, 0.3],
  torn: [1, 1],
};

export interface SwarmOptions {
  /** Which kinds are on for this run. */
  enabled: Record<FaultKind, boolean>;
  /** Their rates (0 when off): per message for loss/duplicate/reorder, per step for the rest. */
  rates: Record<FaultKind, number>;
  /** Probability per step that a crashed Box comes back. */
  restart: number;
  /** Probability per step that partitions and one-way blocks are lifted. */
  unpartition: number;
  /** The disks' crash mode: `tear` when torn writes are on, else `lose`. */
  crashMode: CrashMode;
}

/**
 * Draw a swarm from `rng`. Each kind is on with probability `pOn` (default 0.6) unless forced by `on`/`off`.
 * Every draw happens whatever the outcome, so forcing a kind changes nothing else about the run.
 */
export function swarmOptions(rng: SimRandom, options: { on?: readonly FaultKind[]; off?: readonly FaultKind[]; pOn?: number } = {}): SwarmOptions {
  for (const k of [...(options.on ?? []), ...(options.off ?? [])]) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new InvalidInputError(`unknown fault kind ${k}; known: ${FAULT_KINDS.join(', ')}`);
  }
  const enabled = {} as Record<FaultKind, boolean>;
  const rates = {} as Record<FaultKind, number>;
  for (const kind of FAULT_KINDS) {
    const drawnOn = rng.chance(options.pOn ?? 0.6);
    const [lo, hi] = FAULT_RANGES[kind];
    const rate = rng.logUniform(lo, hi);
    const on = options.off?.includes(kind) === true ? false : options.on?.includes(kind) === true ? true : drawnOn;
    enabled[kind] = on;
    rates[kind] = on ? rate : 0;
  }
  const restart = rng.uniform(0.1, 0.8);
  const unpartition = rng.uniform(0.05, 0.5);
  return { enabled, rates, restart, unpartition, crashMode: enabled.torn ? 'tear' : 'lose' };
}

/** A one-line description of a swarm, for reports. */
export function describeSwarm(swarm: SwarmOptions): string {
  const on = FAULT_KINDS.filter((k) => swarm.enabled[k]).map((k) => (k === 'torn' ? k : `${k}=${swarm.rates[k].toPrecision(2)}`));
  return on.length === 0 ? 'no faults' : on.join(' ');
}

export interface InjectorOptions {
  /** Most Boxes that may be down or bricked-and-not-yet-replaced at once (RF-1, typically). */
  maxUnavailable: number;
  /** Called right after a Box is bricked, so the scenario can replace it (or not). */
  onBrick?: (id: BoxId) => void;
  /** Longest clog, ms (default 30 s). */
  maxClogMs?: number;
  /** Bytes flipped per rotted block (default 1). */
  rotBytes?: number;
  /** Which blocks rot may hit (default all): e.g. only those with an intact copy on another Box. */
  mayRot?: (box: BoxId, cid: CID) => boolean;
  /** Which Boxes a brick may hit (default all): e.g. not one whose loss, with rot elsewhere, destroys every copy. */
  mayBrick?: (box: BoxId) => boolean;
}

/** Ground truth of one bit-rot injection. */
export interface RotEvent extends RotReport {
  box: BoxId;
  atMs: number;
}

export class FaultInjector<B extends BoxBehaviour, I> {
  readonly cluster: SimCluster<B, I>;
  readonly swarm: SwarmOptions;
  readonly rng: SimRandom;
  readonly options: InjectorOptions;
  /** Every block corrupted so far. */
  readonly rotted: RotEvent[] = [];
  /** Bricked Boxes not yet replaced (the scenario calls `replaced(id)` once it has). */
  readonly #unreplaced = new Set<BoxId>();
  #steps = 0;

  constructor(cluster: SimCluster<B, I>, swarm: SwarmOptions, rng: SimRandom, options: InjectorOptions) {
    this.cluster = cluster;
    this.swarm = swarm;
    this.rng = rng;
    this.options = options;
  }

  /** Set the network's per-message fault rates from the swarm. */
  applyNetwork(): void {
    this.cluster.world.net.configure({ loss: this.swarm.rates.loss, duplicate: this.swarm.rates.duplicate, reorder: this.swarm.rates.reorder });
  }

  /** Boxes down, plus bricked ones not replaced yet. */
  unavailable(): number {
    return this.cluster.all().filter((b) => b.state === 'down' || b.state === 'stopping').length + this.#unreplaced.size;
  }

  /** Tell the injector a bricked Box has been replaced (it no longer counts as unavailable). */
  replaced(id: BoxId): void {
    this.#unreplaced.delete(id);
  }

  /** One step of faults. Returns what was done (also recorded in the trace). */
  step(): string[] {
    const { rates, enabled } = this.swarm;
    const rng = this.rng;
    const cluster = this.cluster;
    const net = cluster.world.net;
    const done: string[] = [];
    const act = (what: string): void => {
      done.push(what);
      cluster.world.trace.record('fault', '', what);
    };
    // Draw every decision up front in a fixed order, so the stream does not depend on the cluster's state.
    const roll = {
      restart: cluster.all().map(() => rng.chance(this.swarm.restart)),
      crash: rng.chance(rates.crash),
      brick: rng.chance(rates.brick),
      partition: rng.chance(rates.partition),
      isolate: rng.chance(rates.isolate),
      oneWay: rng.chance(rates.oneWay),
      unpartition: rng.chance(this.swarm.unpartition),
      clog: rng.chance(rates.clog),
      bitrot: rng.chance(rates.bitrot),
      pick: rng.fork(`step/${this.#steps++}`),
    };
    const pick = roll.pick;

    cluster.all().forEach((box, i) => {
      if (box.state === 'down' && roll.restart[i]) {
        cluster.restart(box.id);
        act(`restart ${box.id}`);
      }
    });
    if (enabled.crash && roll.crash && this.unavailable() < this.options.maxUnavailable) {
      const up = cluster.upBoxes();
      if (up.length > 0) {
        const id = pick.pick(up).id;
        cluster.crash(id);
        act(`crash ${id}`);
      }
    }
    if (enabled.brick && roll.brick && this.unavailable() < this.options.maxUnavailable) {
      const members = cluster.members();
      const mayBrick = this.options.mayBrick;
      const eligible = mayBrick === undefined ? members : members.filter((b) => mayBrick(b.id));
      if (members.length > 1 && eligible.length > 0) {
        const id = pick.pick(eligible).id;
        cluster.brick(id);
        this.#unreplaced.add(id);
        act(`brick ${id}`);
        this.options.onBrick?.(id);
      }
    }
    const ids = net.members();
    if (enabled.partition && roll.partition && ids.length >= 2) {
      const [a, b] = net.partitionHalves(pick);
      act(`partition [${a.join(',')}] [${b.join(',')}]`);
    }
    if (enabled.isolate && roll.isolate && ids.length >= 2) {
      const id = pick.pick(ids);
      net.isolate(id);
      act(`isolate ${id}`);
    }
    if (enabled.oneWay && roll.oneWay && ids.length >= 2) {
      const [from, to] = pick.sample(ids, 2);
      net.block(from, to);
      act(`block ${from} -> ${to}`);
    }
    if ((enabled.partition || enabled.isolate || enabled.oneWay) && roll.unpartition && net.blockedPaths().length > 0) {
      net.unblockAll();
      act('unpartition');
    }
    if (enabled.clog && roll.clog && ids.length >= 2) {
      const [from, to] = pick.sample(ids, 2);
      const ms = Math.round(pick.uniform(100, this.options.maxClogMs ?? 30_000));
      net.clog(from, to, ms);
      act(`clog ${from} -> ${to} ${ms}ms`);
    }
    if (enabled.bitrot && roll.bitrot) {
      const holders = cluster.members().filter((b) => b.blocks.size > 0);
      if (holders.length > 0) {
        const box = pick.pick(holders);
        const mayRot = this.options.mayRot;
        const eligible = mayRot === undefined ? undefined : (cid: CID) => mayRot(box.id, cid);
        for (const r of box.blocks.rot(1, this.options.rotBytes ?? 1, pick, eligible)) {
          this.rotted.push({ ...r, box: box.id, atMs: cluster.world.elapsed });
          act(`bitrot ${box.id} ${r.cid.toString()} @${r.offsets.join(',')}`);
        }
      }
    }
    return done;
  }

  /** End of the safety phase: the network is healed and every crashed Box is restarted. */
  heal(): string[] {
    const done: string[] = ['heal network'];
    this.cluster.world.net.heal();
    for (const box of this.cluster.all()) {
      if (box.state === 'down') {
        this.cluster.restart(box.id);
        done.push(`restart ${box.id}`);
      }
    }
    for (const what of done) this.cluster.world.trace.record('fault', '', what);
    return done;
  }
}
