/**
 * A small but real Box behaviour and scenario that exercise the whole simulator stack end to end, until the
 * keeper/retriever exists: Boxes that share a secret gossip a counter (max wins, persisted in the KV store) and
 * an inventory of the blocks they hold; each fetches the blocks it lacks from whoever advertised them (verifying
 * every block against its CID), and scrubs its own blocks, deleting rotten ones so they are fetched again.
 *
 * `demoScenario` runs it under a swarm of faults. Safety: a counter value a Box acknowledged (bump() resolved) is
 * durable on its disk from then on; no Box ever stored a corrupt block it fetched (every damaged block on a disk
 * was damaged there, by injected rot or a torn write). Liveness: after heal, every Box is up, agrees on the
 * counter, and holds an intact copy of every acknowledged block. Option `bug=unawaited-counter` acknowledges a
 * bump before its write is durable, which the safety checker catches once a crash lands in that window.
 */
import type { CID } from 'multiformats/cid';
import type { BoxId } from '../../core/net.ts';
import { cidOf, matchesCid, parseCid, RAW_CODE } from '../../core/blocks/cid.ts';
import { getVerified } from '../../core/blocks/verified.ts';
import { SimCluster, type BoxBehaviour, type BoxPorts } from './cluster.ts';
import { FaultInjector, swarmOptions, describeSwarm, type SwarmOptions } from './faults.ts';
import { option, type Checker, type Scenario } from './runner.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

export interface DemoInit {
  /** Boxes gossip on topics derived from it; Boxes with another secret never hear them. */
  secret: string;
  /** Gossip/scrub period, virtual ms. */
  periodMs?: number;
  /** Acknowledge bumps before they are durable (a deliberate bug for the runner to find). */
  unawaitedCounter?: boolean;
}

export const BLOCK_PROTOCOL = '/reserve-demo/block/1';
const SCRUB_PER_TICK = 8;

/** The demonstration Box. */
export class DemoBox implements BoxBehaviour {
  readonly ports: BoxPorts<DemoInit>;
  counter = 0;
  readonly #fetching = new Set<string>();
  readonly #unsubscribe: Array<() => void> = [];
  #cancelTimer: (() => void) | undefined;
  #stopped = false;
  #scrubCursor = 0;

  constructor(ports: BoxPorts<DemoInit>) {
    this.ports = ports;
  }

  get #period(): number {
    return this.ports.init.periodMs ?? 1000;
  }

  #topic(what: string): string {
    return `/reserve-demo/${this.ports.init.secret}/${what}`;
  }

  async start(): Promise<void> {
    const { kv, network } = this.ports;
    const saved = await kv.get('counter');
    this.counter = saved === undefined ? 0 : Number(dec.decode(saved));
    this.#unsubscribe.push(network.subscribe(this.#topic('counter'), (_from, data) => void this.#adopt(Number(dec.decode(data)))));
    this.#unsubscribe.push(network.subscribe(this.#topic('inventory'), (from, data) => this.#onInventory(from, data)));
    network.handle(BLOCK_PROTOCOL, async (_from, data) => getVerified(this.ports.blocks, parseCid(dec.decode(data)), this.ports.id));
    this.ports.log.info('started', { counter: this.counter });
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#cancelTimer?.();
    for (const u of this.#unsubscribe.splice(0)) u();
  }

  /** Increment the counter; resolves (with the new value) once it is durable, unless the bug is switched on. */
  async bump(): Promise<number> {
    const value = ++this.counter;
    const write = this.ports.kv.put('counter', enc.encode(String(value)));
    if (this.ports.init.unawaitedCounter !== true) await write;
    this.ports.network.publish(this.#topic('counter'), enc.encode(String(value)));
    return value;
  }

  /** Store a block locally; resolves with its CID once durable. */
  async store(bytes: Uint8Array): Promise<CID> {
    const cid = cidOf(RAW_CODE, bytes);
    await this.ports.blocks.put(cid, bytes);
    return cid;
  }

  async #adopt(value: number): Promise<void> {
    if (!(value > this.counter)) return;
    this.counter = value;
    await this.ports.kv.put('counter', enc.encode(String(value)));
  }

  #schedule(): void {
    if (this.#stopped) return;
    // Jitter from the Box's own PRNG so Boxes do not tick in lockstep.
    const delay = this.#period * (0.75 + (this.ports.random.u32() / 0x100000000) * 0.5);
    this.#cancelTimer = this.ports.clock.setTimer(delay, () => {
      this.#tick().catch((error: unknown) => this.ports.panic(error));
    });
  }

  async #tick(): Promise<void> {
    const { blocks, network } = this.ports;
    network.publish(this.#topic('counter'), enc.encode(String(this.counter)));
    const held: CID[] = [];
    for await (const cid of blocks.keys()) held.push(cid);
    held.sort((a, b) => (a.toString() < b.toString() ? -1 : 1));
    // Scrub a window of SCRUB_PER_TICK held blocks per tick (round robin): a damaged one is deleted so that it is
    // fetched again, and left out of the inventory meanwhile.
    const bad = new Set<string>();
    for (let i = 0; i < Math.min(SCRUB_PER_TICK, held.length); i++) {
      const cid = held[(this.#scrubCursor + i) % held.length];
      try {
        await getVerified(blocks, cid, this.ports.id);
      } catch (error) {
        if (!(error instanceof Error) || error.name !== 'BlockCorruptError') throw error;
        this.ports.log.warn('scrub found a corrupt block', { cid: cid.toString() });
        bad.add(cid.toString());
        await blocks.delete(cid);
      }
    }
    this.#scrubCursor += SCRUB_PER_TICK;
    const good = held.map((c) => c.toString()).filter((c) => !bad.has(c));
    network.publish(this.#topic('inventory'), enc.encode(good.join('\n')));
    this.#schedule();
  }

  #onInventory(from: BoxId, data: Uint8Array): void {
    const text = dec.decode(data);
    if (text === '') return;
    for (const line of text.split('\n')) {
      if (this.#fetching.has(line)) continue;
      this.#fetching.add(line);
      void this.#fetch(from, parseCid(line)).finally(() => this.#fetching.delete(line));
    }
  }

  async #fetch(from: BoxId, cid: CID): Promise<void> {
    const { blocks, network, log } = this.ports;
    if (await blocks.has(cid)) return;
    try {
      const bytes = await network.request(from, BLOCK_PROTOCOL, enc.encode(cid.toString()), { timeoutMs: 5000 });
      if (!matchesCid(cid, bytes)) {
        log.warn('peer sent a block that does not match its CID', { from, cid: cid.toString() });
        return;
      }
      await blocks.put(cid, bytes);
    } catch (error) {
      log.debug('fetch failed', { from, cid: cid.toString(), error });
    }
  }
}

export interface DemoOptions {
  boxes: number;
  steps: number;
  stepMs: number;
  blockBytes: number;
  swarm: SwarmOptions;
  bug: string;
}

export interface DemoState {
  cluster: SimCluster<DemoBox, DemoInit>;
  injector: FaultInjector<DemoBox, DemoInit>;
  /** Highest counter value each Box acknowledged. */
  acked: Map<BoxId, number>;
  /** Blocks acknowledged as stored somewhere. */
  stored: Map<string, CID>;
  init: DemoInit;
}

const checkers: Array<Checker<DemoOptions, DemoState>> = [
  {
    name: 'acknowledged-counter-is-durable',
    kind: 'safety',
    check(s) {
      const problems: string[] = [];
      for (const box of s.cluster.members()) {
        const acked = s.acked.get(box.id) ?? 0;
        const raw = box.kv.peekDurable('counter');
        const durable = raw === undefined ? 0 : Number(dec.decode(raw));
        if (durable < acked) problems.push(`${box.id} acknowledged counter ${acked} but its disk holds ${durable}`);
      }
      return problems;
    },
  },
  {
    name: 'no-fetched-corruption',
    kind: 'safety',
    check(s) {
      const problems: string[] = [];
      for (const box of s.cluster.members()) {
        const known = new Set(box.blocks.corrupted().map((c) => c.toString()));
        for (const cid of box.blocks.audit()) if (!known.has(cid.toString())) problems.push(`${box.id} holds corrupt ${cid.toString()} that no injected fault explains`);
      }
      return problems;
    },
  },
  {
    name: 'all-up-and-counters-agree',
    kind: 'liveness',
    check(s) {
      const members = s.cluster.members();
      const down = members.filter((b) => !b.started);
      if (down.length > 0) return `not running: ${down.map((b) => b.id).join(', ')}`;
      const max = Math.max(0, ...s.acked.values());
      const behind = members.filter((b) => (b.behaviour as DemoBox).counter < max);
      return behind.map((b) => `${b.id} counter ${(b.behaviour as DemoBox).counter} < ${max}`);
    },
  },
  {
    name: 'every-block-everywhere-intact',
    kind: 'liveness',
    check(s) {
      const problems: string[] = [];
      for (const box of s.cluster.members()) {
        let missing = 0;
        for (const cid of s.stored.values()) if (!box.blocks.intact(cid)) missing++;
        if (missing > 0) problems.push(`${box.id} lacks an intact copy of ${missing} of ${s.stored.size} blocks`);
      }
      return problems;
    },
  },
];

export const demoScenario: Scenario<DemoOptions, DemoState> = {
  name: 'demo',
  description: 'gossiped counter and fully replicated blocks under a swarm of faults (simulator self-test)',
  options(rng, overrides) {
    const boxes = option(overrides, 'boxes', rng.range(3, 5));
    const steps = option(overrides, 'steps', rng.range(10, 40));
    const stepMs = option(overrides, 'stepMs', rng.range(200, 3000));
    const blockBytes = option(overrides, 'blockBytes', rng.pick([256, 4096, 65536]));
    const swarm = swarmOptions(rng.fork('swarm'), { off: ['brick'] });
    const bug = option(overrides, 'bug', 'none');
    return { boxes, steps, stepMs, blockBytes, swarm, bug };
  },
  async setup(ctx) {
    const { world, options } = ctx;
    const init: DemoInit = { secret: 'demo-secret', unawaitedCounter: options.bug === 'unawaited-counter' };
    const cluster = new SimCluster<DemoBox, DemoInit>(world, (ports) => new DemoBox(ports), { disk: { crashMode: options.swarm.crashMode } });
    for (let i = 0; i < options.boxes; i++) cluster.add({ init });
    for (const box of cluster.all()) await cluster.settle(box.starting, { what: `${box.id}.start()` });
    // Rot only hits a block with an intact copy on another Box: the demo replicates after acknowledging, so the
    // last intact copy of a fresh block is exactly what "at most RF-1 copies lost at once" protects.
    const mayRot = (id: BoxId, cid: CID): boolean => cluster.members().some((b) => b.id !== id && b.blocks.intact(cid));
    const injector = new FaultInjector(cluster, options.swarm, world.rng.fork('faults'), { maxUnavailable: options.boxes - 1, mayRot });
    injector.applyNetwork();
    world.trace.record('scenario', '', `demo ${describeSwarm(options.swarm)}`);
    return { cluster, injector, acked: new Map(), stored: new Map(), init };
  },
  steps: (o) => o.steps,
  async step(s, ctx) {
    const { rng, options, world } = ctx;
    const up = s.cluster.upBoxes().filter((b) => b.started);
    if (up.length > 0) {
      const box = rng.pick(up);
      const id = box.id;
      void box.running.bump().then((v) => s.acked.set(id, Math.max(s.acked.get(id) ?? 0, v)));
      if (rng.chance(0.5)) {
        const bytes = rng.bytes(options.blockBytes);
        void rng.pick(up).running.store(bytes).then((cid) => s.stored.set(cid.toString(), cid));
      }
    }
    await world.runFor(0); // let the work start (and, with the bug, be acknowledged) before faults strike
    s.injector.step();
    await world.runFor(options.stepMs);
  },
  async heal(s) {
    s.injector.heal();
  },
  livenessBoundMs: () => 120_000,
  livenessPollMs: () => 500,
  checkers,
  metrics(s) {
    return { blocks: s.stored.size, counter: Math.max(0, ...s.acked.values()), rotted: s.injector.rotted.length };
  },
};
