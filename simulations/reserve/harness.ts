/**
 * The real Box (core/box) inside the deterministic simulator: every Box runs the production keeper, ledger,
 * integrity monitor, backup and restore, over the simulator's virtual clock, network and disks. A ReserveSim sets up
 * a reserve (secret, keys, config), adds/replaces Boxes, and answers the checkers' questions (who holds what,
 * does every Box agree, can every snapshot be restored byte-identical).
 */
import { DEFAULT_CHUNKER, type ChunkerParams } from '../../core/chunker/fastcdc.ts';
import { Box, type BoxTiming } from '../../core/box/box.ts';
import type { KeeperNotice } from '../../core/keeper/keeper.ts';
import type { BoxId, Network } from '../../core/net.ts';
import { compileView } from '../../core/placement/place.ts';
import { inlineChunking } from '../../core/snapshot/inline.ts';
import { RAW_CODE, parseCid } from '../../core/blocks/cid.ts';
import type { CID } from 'multiformats/cid';
import { collectManifest } from '../../core/snapshot/manifest-io.ts';
import { BlockNotFoundError } from '../../core/blocks/blockstore.ts';
import { createReserveSecret, signerFromSeed, unsealerFromSeed } from '../../core/state/crypto.ts';
import { toPlacementView } from '../../core/state/reducer.ts';
import { createYjsBackend } from '../../adapters/crdt/yjs.ts';
import type { BoxPorts } from '../sim/cluster.ts';
import { SimCluster } from '../sim/cluster.ts';
import type { SimRandom } from '../sim/rng.ts';
import type { SimWorld } from '../sim/world.ts';
import { MemSourceTree, MemTargetTree, compareMemTrees, type MemNode } from './memtree.ts';

/** Small chunks so a simulated reserve holds thousands of chunks in little memory. */
export const SIM_CHUNKER: ChunkerParams = { minSize: 1024, avgSize: 4096, maxSize: 16384 };

export interface ReserveInit {
  reserveId: string;
  secrets: Map<number, Uint8Array>;
  keySeed: Uint8Array;
  capacity: number;
  region?: string;
  timing: BoxTiming;
  chunker: ChunkerParams;
  /** Shared by every Box of the run: what each Box reported, in order (survives crashes and bricks). */
  notices: Array<{ box: BoxId; at: number; notice: Notice }>;
  /** Shared: every reserve event any Box raised (durable in its outbox). */
  raised: Array<{ box: BoxId; id: string; kind: string; severity: string }>;
}

export type Notice = KeeperNotice | { type: string; [k: string]: unknown };

/** Traffic by protocol, summed over every Box (for scenario reports: what moved, and why). */
export const traffic = new Map<string, { requests: number; sent: number; received: number }>();

function counting(net: Network): Network {
  const bump = (key: string, sent: number, received: number, n = 1) => {
    const t = traffic.get(key) ?? { requests: 0, sent: 0, received: 0 };
    t.requests += n;
    t.sent += sent;
    t.received += received;
    traffic.set(key, t);
  };
  return {
    get self() {
      return net.self;
    },
    publish(topic, data) {
      bump(`gossip ${topic}`, data.length, 0);
      net.publish(topic, data);
    },
    subscribe: (topic, handler) => net.subscribe(topic, handler),
    async request(to, protocol, data, options) {
      const res = await net.request(to, protocol, data, options);
      bump(protocol, data.length, res.length);
      return res;
    },
    handle: (protocol, handler) => net.handle(protocol, handler),
    peers: () => net.peers(),
  };
}

/** The simulator's behaviour for a Box: the production Box over the simulated ports. */
export class SimReserveBox {
  readonly box: Box;
  readonly notices: Notice[] = [];

  constructor(readonly ports: BoxPorts<ReserveInit>) {
    const init = ports.init;
    this.box = new Box({
      reserveId: init.reserveId,
      secrets: init.secrets,
      signer: signerFromSeed(init.keySeed),
      unsealer: unsealerFromSeed(init.keySeed.map((b) => b ^ 0x5a)),
      clock: ports.clock,
      random: ports.random,
      network: counting(ports.network),
      blocks: ports.blocks,
      kv: ports.kv,
      backend: createYjsBackend,
      chunking: inlineChunking(init.chunker),
      chunker: init.chunker,
      capacity: init.capacity,
      region: init.region,
      addresses: [`/sim/${ports.id}`],
      host: ports.id,
      bootstrap: [...ports.bootstrap],
      timing: init.timing,
      onNotice: (n) => {
        this.notices.push(n as Notice);
        init.notices.push({ box: ports.id, at: ports.clock.now(), notice: n as Notice });
        ports.log.debug(`notice ${n.type}`);
      },
      onEvent: (e) => {
        init.raised.push({ box: ports.id, id: e.id, kind: e.kind, severity: e.severity });
        ports.log.debug(`event ${e.kind} ${e.id}`);
      },
    });
  }

  start(): Promise<void> {
    return this.box.start();
  }

  stop(): Promise<void> {
    return this.box.stop();
  }
}

export interface ReserveSimOptions {
  boxes: number;
  rf: number;
  minimum?: number;
  timing?: BoxTiming;
  chunker?: ChunkerParams;
  capacities?: number[];
  regions?: string[];
}

export const SIM_TIMING: BoxTiming = {
  tickMs: 5_000,
  syncMs: 5_000,
  pushGraceMs: 30_000,
  gcGraceMs: 3_600_000,
  integrityIntervalMs: 7 * 24 * 3_600_000,
  integrityBytesPerSecond: 64 * 1024 * 1024,
  requestTimeoutMs: 10_000,
};

export class ReserveSim {
  readonly cluster: SimCluster<SimReserveBox, ReserveInit>;
  readonly reserveId: string;
  readonly secret: Uint8Array;
  readonly #rng: SimRandom;
  readonly notices: ReserveInit['notices'] = [];
  readonly raised: ReserveInit['raised'] = [];
  #n = 0;

  constructor(
    readonly world: SimWorld,
    readonly options: ReserveSimOptions,
  ) {
    this.#rng = world.rng.fork('reserve');
    const { secret, reserveId } = createReserveSecret(this.#rng.fork('secret'));
    this.secret = secret;
    this.reserveId = reserveId;
    this.cluster = new SimCluster<SimReserveBox, ReserveInit>(world, (ports) => new SimReserveBox(ports));
  }

  /** A new Box (factory-new: it knows the secret and the given peers only). */
  addBox(opts: { bootstrap?: BoxId[]; capacity?: number; region?: string; secrets?: Map<number, Uint8Array> } = {}): BoxId {
    const i = this.#n++;
    const keySeed = this.#rng.fork(`key/${i}`).bytes(32);
    const id = signerFromSeed(keySeed).id;
    const o = this.options;
    this.cluster.add({
      id,
      bootstrap: opts.bootstrap,
      init: {
        reserveId: this.reserveId,
        secrets: opts.secrets ?? new Map([[0, this.secret]]),
        keySeed,
        capacity: opts.capacity ?? o.capacities?.[i] ?? 1 << 40,
        region: opts.region ?? o.regions?.[i % o.regions.length],
        timing: { ...SIM_TIMING, ...o.timing },
        chunker: o.chunker ?? SIM_CHUNKER,
        notices: this.notices,
        raised: this.raised,
      },
    });
    return id;
  }

  /** What `reserve invite` on a member hands a new Box: the newest secret generation and that member's address. */
  invite(from: BoxId): { secrets: Map<number, Uint8Array>; bootstrap: BoxId[] } {
    const secrets = this.box(from).ledger.secrets();
    const newest = Math.max(...secrets.keys());
    return { secrets: new Map([[newest, secrets.get(newest)!]]), bootstrap: [from] };
  }

  /** Set up the reserve: the first Box founds it and sets the replication factor; the rest join it. */
  async found(): Promise<BoxId[]> {
    const first = this.addBox({ bootstrap: [] });
    await this.cluster.runUntil(() => this.cluster.box(first).started, { maxMs: 60_000 });
    const founder = this.box(first);
    const o = this.options;
    founder.ledger.publish('config-changed', {
      set: [
        ['events.normalFrequencyMs', 600_000],
        ['replication.minimum', o.minimum ?? Math.min(2, o.rf)],
        ['replication.target', o.rf],
      ],
    });
    const ids = [first];
    for (let i = 1; i < o.boxes; i++) ids.push(this.addBox({ bootstrap: [first] }));
    await this.cluster.runUntil(() => this.converged() && this.activeIds().length === o.boxes, { maxMs: 300_000 });
    return ids;
  }

  box(id: BoxId): Box {
    const b = this.cluster.box(id);
    if (!b.running) throw new Error(`${id} is not running`);
    return b.running.box;
  }

  upBoxes(): Box[] {
    return this.cluster
      .all()
      .filter((b) => b.state === 'up' && b.started && b.running)
      .map((b) => b.running!.box);
  }

  activeIds(): BoxId[] {
    const any = this.upBoxes()[0];
    if (!any) return [];
    return [...any.state().members.values()].filter((m) => m.status === 'active').map((m) => m.id).sort();
  }

  /** Every running Box has the same members, config and catalog, and computes the same placement. */
  converged(): boolean {
    const boxes = this.upBoxes();
    if (boxes.length === 0) return true;
    const sig = (b: Box) => {
      const s = b.state();
      return JSON.stringify([
        [...s.members.values()].map((m) => [m.id, m.status]).sort(),
        [...s.catalog.keys()].sort(),
        s.config.replication,
        s.generation,
      ]);
    };
    const first = sig(boxes[0]);
    return boxes.every((b) => sig(b) === first);
  }

  /** For each chunk of every snapshot: the running Boxes that hold an intact copy. */
  holders(): Map<string, BoxId[]> {
    const out = new Map<string, BoxId[]>();
    for (const sb of this.cluster.all()) {
      if (sb.state !== 'up' || !sb.running) continue;
      for (const cid of sb.blocks.cids()) {
        if (!sb.blocks.intact(cid)) continue;
        const key = cid.toString();
        (out.get(key) ?? out.set(key, []).get(key)!).push(sb.id);
      }
    }
    return out;
  }

  readonly #chunkCache = new Map<string, string[]>();

  /**
   * The chunks of a snapshot, read straight from the simulated disks (ground truth: any intact copy of each
   * manifest block on any disk that still exists). Never does simulated I/O, so checkers may call it between
   * steps. Null when some manifest block has no intact copy anywhere.
   */
  async chunksOf(root: string): Promise<string[] | null> {
    const cached = this.#chunkCache.get(root);
    if (cached) return cached;
    const disks = this.cluster.all().filter((b) => b.state !== 'bricked' && b.state !== 'removed').map((b) => b.blocks);
    const read = async (cid: CID): Promise<Uint8Array> => {
      for (const d of disks) if (d.intact(cid)) return d.peek(cid)!;
      throw new BlockNotFoundError(cid, 'any disk');
    };
    let out: string[];
    try {
      out = (await collectManifest(parseCid(root), read)).chunks.map(String);
    } catch (e) {
      if (e instanceof BlockNotFoundError) return null;
      throw e;
    }
    this.#chunkCache.set(root, out);
    return out;
  }

  /** Intact copies of every chunk (raw blocks; manifests belong on every Box) on every disk that still exists. */
  intactCopies(): Map<string, number> {
    const out = new Map<string, number>();
    for (const b of this.cluster.all()) {
      if (b.state === 'bricked' || b.state === 'removed') continue;
      for (const cid of b.blocks.cids()) if (cid.code === RAW_CODE && b.blocks.intact(cid)) out.set(cid.toString(), (out.get(cid.toString()) ?? 0) + 1);
    }
    return out;
  }

  /** Chunks (of indexed snapshots) with fewer than `rf` intact copies on active members' disks. */
  async underReplicated(ignore: ReadonlySet<string> = new Set()): Promise<{ chunks: number; below: number; lost: number; minCopies: number }> {
    const boxes = this.upBoxes();
    if (boxes.length === 0) return { chunks: 0, below: 0, lost: 0, minCopies: 0 };
    const b0 = boxes[0];
    const state = b0.state();
    const view = toPlacementView(state);
    const placer = compileView(view);
    const active = new Set(this.activeIds());
    const holders = this.holders();
    let chunks = 0;
    let below = 0;
    let lost = 0;
    let minCopies = Infinity;
    for (const rec of state.catalog.values()) {
      if (ignore.has(rec.root)) continue;
      const list = await this.chunksOf(rec.root);
      if (!list) {
        lost++;
        below++;
        continue;
      }
      for (const c of list) {
        chunks++;
        const n = (holders.get(c) ?? []).filter((h) => active.has(h)).length;
        minCopies = Math.min(minCopies, n);
        if (n === 0) lost++;
        if (n < placer.replicas) below++;
      }
    }
    return { chunks, below, lost, minCopies: chunks ? minCopies : 0 };
  }

  /**
   * Events raised by Boxes whose disk (and so outbox) still exists, missing from the shared log of some running
   * Box. At-least-once delivery means this list empties once the network heals.
   */
  undeliveredEvents(): string[] {
    const alive = new Set(this.cluster.all().filter((b) => b.state !== 'bricked' && b.state !== 'removed').map((b) => b.id));
    const running = this.upBoxes();
    const missing: string[] = [];
    for (const box of running) {
      const log = box.state().log;
      const have = new Set(log.entries.map((r) => r.event.id));
      for (const e of this.raised) {
        if (!alive.has(e.box) || have.has(e.id)) continue;
        const folded = log.totals.some((t) => t.source === e.box && t.kind === e.kind) && e.severity === 'normal' && e.kind !== 'resolved';
        if (!folded) missing.push(`${e.kind} ${e.id.slice(-14)} not in ${box.id.slice(-6)}'s log`);
      }
    }
    return missing;
  }

  /** Snapshots some running Box reported lost (a 'snapshot-lost' notice). */
  reportedLost(): Set<string> {
    const out = new Set<string>();
    for (const n of this.notices) if (n.notice.type === 'snapshot-lost') out.add((n.notice as { root: string }).root);
    return out;
  }

  /** Restore every snapshot on `on` and compare with the trees that were backed up. */
  async restoreAll(on: BoxId, originals: ReadonlyMap<string, MemNode>): Promise<string[]> {
    const box = this.box(on);
    const problems: string[] = [];
    for (const [root, tree] of originals) {
      const target = new MemTargetTree();
      try {
        await this.cluster.settle(box.restore(root, target), { maxMs: 3_600_000, what: `restore ${root}` });
        const diffs = compareMemTrees(tree, target.root);
        if (diffs.length) problems.push(`snapshot ${root.slice(-8)} restored on ${on.slice(-6)} differs: ${diffs.slice(0, 3).join('; ')}`);
      } catch (e) {
        problems.push(`snapshot ${root.slice(-8)} cannot be restored on ${on.slice(-6)}: ${(e as Error).message}`);
      }
    }
    return problems;
  }

  /** Back up a tree on a Box; returns the snapshot root. */
  async backup(on: BoxId, tree: MemNode): Promise<string> {
    const r = await this.cluster.settle(this.box(on).backup(new MemSourceTree(tree)), { maxMs: 3_600_000, what: 'backup' });
    return r.root;
  }
}

export { DEFAULT_CHUNKER };
