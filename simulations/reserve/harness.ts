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
import type { ChunkingService } from '../../core/snapshot/ports.ts';
import * as nodeCrypto from 'node:crypto';
import { RAW_CODE, parseCid } from '../../core/blocks/cid.ts';
import type { CID } from 'multiformats/cid';
import { collectManifest } from '../../core/snapshot/manifest-io.ts';
import { BlockNotFoundError } from '../../core/blocks/blockstore.ts';
import { BLOCKS_PROTOCOL, decodeBlockRequest, decodeBlockResponse } from '../../core/keeper/protocol.ts';
import { filesNeeding, type FilesNeeding } from '../../core/keeper/files.ts';
import { createReserveSecret, signerFromSeed, unsealerFromSeed } from '../../core/state/crypto.ts';
import { activeMembers, toPlacementView } from '../../core/state/reducer.ts';
import { createYjsBackend } from '../../adapters/crdt/yjs.ts';
import type { BoxPorts } from '../sim/cluster.ts';
import type { DiskOptions } from '../sim/disk.ts';
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
  /** Remember digests by buffer (only with disks that do not copy reads; see simChunking). */
  memoDigests?: boolean;
  /** Shared by every Box of the run: what each Box reported, in order (survives crashes and bricks). */
  notices: Array<{ box: BoxId; at: number; notice: Notice }>;
  /** Shared: every reserve event any Box raised (durable in its outbox). */
  raised: Array<RaisedEvent>;
  /** Shared: the run's traffic. */
  meter: TrafficMeter;
}

/** A reserve event as its Box raised it (durable in that Box's outbox); `at` is the Box's clock (ms since 1970). */
export interface RaisedEvent {
  box: BoxId;
  id: string;
  kind: string;
  severity: string;
  at: number;
  payload: unknown;
}

export type Notice = KeeperNotice | { type: string; [k: string]: unknown };

export interface TrafficCount {
  requests: number;
  sent: number;
  received: number;
}

/** Traffic by protocol, summed over every Box of every run in this process (see TrafficMeter for one run's). */
export const traffic = new Map<string, TrafficCount>();

/** Block payloads carried over the network: puts, and gets answered with the block. */
export interface Moved {
  blocks: number;
  bytes: number;
}

/**
 * One run's traffic, as the Boxes' Network ports saw it: requests and bytes by protocol (the block protocol split by
 * operation: get, put, has), and the block payloads moved. Counted on completed requests and published gossip.
 */
export class TrafficMeter {
  readonly byProtocol = new Map<string, TrafficCount>();
  readonly moved: Moved = { blocks: 0, bytes: 0 };

  bump(key: string, sent: number, received: number): void {
    for (const map of [this.byProtocol, traffic]) {
      const t = map.get(key) ?? { requests: 0, sent: 0, received: 0 };
      t.requests++;
      t.sent += sent;
      t.received += received;
      map.set(key, t);
    }
  }

  move(bytes: number): void {
    this.moved.blocks++;
    this.moved.bytes += bytes;
  }

  snapshot(): { byProtocol: Record<string, TrafficCount>; moved: Moved } {
    return { byProtocol: Object.fromEntries([...this.byProtocol].map(([k, v]) => [k, { ...v }])), moved: { ...this.moved } };
  }
}

/** The operation of a block-protocol message in the canonical layout (block-codec.ts): its "op" text. */
function blockOp(data: Uint8Array): string {
  if (data.byteLength > 10 && data[7] === 0x63) return String.fromCharCode(data[8], data[9], data[10]);
  try {
    return decodeBlockRequest(data).op;
  } catch {
    return '?';
  }
}

function counting(net: Network, meter: TrafficMeter): Network {
  return {
    get self() {
      return net.self;
    },
    publish(topic, data) {
      meter.bump(`gossip ${topic}`, data.length, 0);
      net.publish(topic, data);
    },
    subscribe: (topic, handler) => net.subscribe(topic, handler),
    async request(to, protocol, data, options) {
      const res = await net.request(to, protocol, data, options);
      if (protocol !== BLOCKS_PROTOCOL) {
        meter.bump(protocol, data.length, res.length);
        return res;
      }
      const op = blockOp(data);
      meter.bump(`${protocol} ${op}`, data.length, res.length);
      try {
        if (op === 'put') {
          const req = decodeBlockRequest(data);
          if (req.op === 'put') meter.move(req.bytes.byteLength);
        } else if (op === 'get') {
          const answer = decodeBlockResponse(res, 'get');
          if (answer.op === 'get' && answer.bytes !== undefined) meter.move(answer.bytes.byteLength);
        }
      } catch {
        // not a block message the meter understands: counted above, not as a block moved
      }
      return res;
    },
    handle: (protocol, handler) => net.handle(protocol, handler),
    peers: () => net.peers(),
  };
}

const oneShotHash = (nodeCrypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'buffer') => Uint8Array }).hash;

/** sha2-256 of `bytes`, the same digest multiformats computes, without its per-call wrapping. */
function sha256(bytes: Uint8Array): Uint8Array {
  const d = oneShotHash ? oneShotHash('sha256', bytes, 'buffer') : nodeCrypto.createHash('sha256').update(bytes).digest();
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/**
 * The ChunkingService port of a simulated Box: core's inline chunker (as the worker pool would run it), and batch
 * digests hashed directly (integrity sweeps hash every block every simulated week: gigabytes in a simulated year).
 *
 * `memo`: remember each digest by the identity of the buffer hashed. Only for disks that hand out their stored
 * buffers instead of copies (`copyReads: false`): a stored buffer is never changed in place (rot and torn writes
 * replace it, see SimDisk), so the digest of the same buffer object is the same digest, and a sweep re-reading an
 * untouched block gets the answer hashing would give without spending the CPU (the simulated disk keeps the same
 * kind of cache for its own checks, `hashOk`). What the Box computes and every virtual time stay the same.
 */
function simChunking(params: ChunkerParams, memo: boolean): ChunkingService {
  const inline = inlineChunking(params);
  const known = memo ? new WeakMap<Uint8Array, Uint8Array>() : undefined;
  const digest = (bytes: Uint8Array): Uint8Array => {
    if (known === undefined) return sha256(bytes);
    let d = known.get(bytes);
    if (d === undefined) known.set(bytes, (d = sha256(bytes)));
    return d;
  };
  return {
    chunk: (data, eof, owned) => inline.chunk(data, eof, owned),
    digest: async (blocks) => blocks.map(digest),
    close: () => inline.close(),
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
      network: counting(ports.network, init.meter),
      blocks: ports.blocks,
      kv: ports.kv,
      backend: createYjsBackend,
      chunking: simChunking(init.chunker, init.memoDigests === true),
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
        init.raised.push({ box: ports.id, id: e.id, kind: e.kind, severity: e.severity, at: ports.clock.now(), payload: e.payload });
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
  /** Disk settings for every Box (huge runs turn `copyReads` off). */
  disk?: Partial<DiskOptions>;
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

/** Probes of protection after a mark, in simulated time. */
const PROBE_MS = 60_000;

/** Where things stood when a change began (see ReserveSim.mark). */
export interface ChangeMark {
  /** Virtual ms since the start. */
  at: number;
  /** Block -> Boxes with an intact copy. */
  have: Map<string, Set<BoxId>>;
  traffic: { byProtocol: Record<string, TrafficCount>; moved: Moved };
  /** Events raised before the change. */
  events: number;
  /** Most chunks seen below the target copy count at once since the mark (undefined: not probed yet). */
  below: number | undefined;
  /** Since when every chunk has been at the target copy count (undefined: not now). */
  protectedAt: number | undefined;
}

/** What a change cost (ReserveSim.report). */
export interface ChangeReport {
  /** Block payloads moved over the network. */
  moved: Moved;
  /** What had to move at least: each copy the final placement asks for that was not there when the change began. */
  minimum: Moved;
  /** moved.bytes / minimum.bytes. */
  ratio: number;
  /** Requests and bytes by protocol (block protocol by operation). */
  traffic: Record<string, TrafficCount>;
  /** Bytes of every request and answer (all protocols; gossip as sent). */
  networkBytes: number;
  /** Simulated ms from the change until every chunk was back at the target copy count (0: never below). */
  protectedAfterMs: number | undefined;
  /** Most chunks below the target copy count at once. */
  mostBelowTarget: number;
  /** Events raised since the change, by kind/severity. */
  events: Record<string, number>;
}

export class ReserveSim {
  readonly cluster: SimCluster<SimReserveBox, ReserveInit>;
  readonly reserveId: string;
  readonly secret: Uint8Array;
  readonly #rng: SimRandom;
  readonly notices: ReserveInit['notices'] = [];
  readonly raised: ReserveInit['raised'] = [];
  readonly meter = new TrafficMeter();
  #n = 0;

  constructor(
    readonly world: SimWorld,
    readonly options: ReserveSimOptions,
  ) {
    this.#rng = world.rng.fork('reserve');
    const { secret, reserveId } = createReserveSecret(this.#rng.fork('secret'));
    this.secret = secret;
    this.reserveId = reserveId;
    this.cluster = new SimCluster<SimReserveBox, ReserveInit>(world, (ports) => new SimReserveBox(ports), { disk: options.disk });
  }

  /** A new Box (factory-new: it knows the secret and the given peers only). */
  addBox(opts: { bootstrap?: BoxId[]; capacity?: number; region?: string; secrets?: Map<number, Uint8Array> } = {}): BoxId {
    const i = this.#n++;
    const keySeed = this.#rng.fork(`key/${i}`).bytes(32);
    const id = signerFromSeed(keySeed).id;
    const o = this.options;
    const added = this.cluster.add({
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
        memoDigests: o.disk?.copyReads === false,
        notices: this.notices,
        raised: this.raised,
        meter: this.meter,
      },
    });
    added.blocks.onDelete((cid) => {
      for (const fn of this.#copyLost) fn(cid);
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

  /** Does `box` hold the last intact copy of a chunk that has a rotted copy on another disk that still exists? */
  lastIntactCopyOfRotted(box: BoxId): boolean {
    const intact = this.intactCopies();
    const rotted = new Set<string>();
    for (const b of this.cluster.all()) {
      if (b.state === 'bricked' || b.state === 'removed' || b.id === box) continue;
      for (const cid of b.blocks.cids()) if (cid.code === RAW_CODE && !b.blocks.intact(cid)) rotted.add(cid.toString());
    }
    const here = this.cluster.box(box);
    for (const cid of here.blocks.cids()) {
      const key = cid.toString();
      if (cid.code === RAW_CODE && here.blocks.intact(cid) && intact.get(key) === 1 && rotted.has(key)) return true;
    }
    return false;
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
    const running = this.upBoxes();
    // A decommissioned Box is locked out: what it raised and had not delivered yet never will be.
    const removed = new Set(running.flatMap((b) => [...b.state().members.values()].filter((m) => m.status === 'decommissioned').map((m) => m.id)));
    const alive = new Set(this.cluster.all().filter((b) => b.state !== 'bricked' && b.state !== 'removed' && !removed.has(b.id)).map((b) => b.id));
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

  /**
   * Snapshots some running Box reported lost, wholly (a 'snapshot-lost' notice: no member holds the manifest) or in
   * part (a 'chunks-lost' notice: the manifest survives, some chunks no member holds, the files needing them named).
   */
  reportedLost(): Set<string> {
    const out = new Set<string>();
    for (const n of this.notices) if (n.notice.type === 'snapshot-lost' || n.notice.type === 'chunks-lost') out.add((n.notice as { root: string }).root);
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

  // ------------------------------------------------------------------------------------- measuring a change

  /**
   * Start measuring a change (a Box added, removed, lost, a partition...): remember where every block has an
   * intact copy now, the traffic so far and the time. `report(mark)` later says what the change cost.
   */
  mark(): ChangeMark {
    const have = new Map<string, Set<BoxId>>();
    for (const b of this.cluster.all()) {
      if (b.state === 'bricked' || b.state === 'removed') continue;
      for (const cid of b.blocks.cids()) {
        if (!b.blocks.intact(cid)) continue;
        const key = cid.toString();
        (have.get(key) ?? have.set(key, new Set()).get(key)!).add(b.id);
      }
    }
    const mark: ChangeMark = { at: this.world.elapsed, have, traffic: this.meter.snapshot(), events: this.raised.length, below: undefined, protectedAt: undefined };
    this.#watch(mark);
    return mark;
  }

  /**
   * Watch protection after a mark, once a simulated minute (a pure scheduler event: it reads the disks and the
   * merged state, never does simulated I/O, and changes nothing a Box computes): when chunks are below the target
   * copy count, and when they are all back at it.
   */
  #watch(mark: ChangeMark): void {
    const probe = (): void => {
      if (this.#watching !== mark) return;
      const below = this.belowTargetNow();
      if (below !== undefined) {
        if (below > 0) mark.protectedAt = undefined;
        else if (mark.protectedAt === undefined) mark.protectedAt = this.world.elapsed;
        mark.below = Math.max(mark.below ?? 0, below);
      }
      this.world.scheduler.after(PROBE_MS, probe, { pure: true });
    };
    this.#watching = mark;
    probe();
  }

  #watching: ChangeMark | undefined;
  readonly #copyLost = new Set<(cid: CID) => void>();

  /** Call `fn` at the moment any Box deletes a block (see SimDisk.onDelete). Returns the function that stops it. */
  onCopyDeleted(fn: (cid: CID) => void): () => void {
    this.#copyLost.add(fn);
    return () => this.#copyLost.delete(fn);
  }

  /** Intact copies of one block on every disk that still exists. */
  copiesOf(cid: CID): number {
    let n = 0;
    for (const b of this.cluster.all()) if (b.state !== 'bricked' && b.state !== 'removed' && b.blocks.intact(cid)) n++;
    return n;
  }
  readonly #chunkCids = new Map<string, CID[]>();

  /**
   * Chunks (of snapshots whose chunk lists are known, see chunksOf) with fewer intact copies among active members
   * than the target, computed synchronously; undefined when some snapshot's chunks are not known yet.
   */
  belowTargetNow(): number | undefined {
    const boxes = this.upBoxes();
    if (boxes.length === 0) return undefined;
    const state = boxes[0].state();
    const target = compileView(toPlacementView(state)).replicas;
    const active = activeMembers(state).map((id) => this.cluster.box(id)).filter((b) => b.state === 'up');
    let below = 0;
    for (const rec of state.catalog.values()) {
      let chunks = this.#chunkCids.get(rec.root);
      if (!chunks) {
        const keys = this.#chunkCache.get(rec.root);
        if (!keys) return undefined;
        this.#chunkCids.set(rec.root, (chunks = keys.map(parseCid)));
      }
      for (const cid of chunks) {
        let n = 0;
        for (const b of active) if (b.blocks.intact(cid)) n++;
        if (n < target) below++;
      }
    }
    return below;
  }

  /**
   * What a change cost, from its mark to now: block payloads moved over the network against the minimum that had to
   * move (every copy placement now asks for that was not already on that Box when the change began: each block of
   * every snapshot on every active member for manifests, on its placement Boxes for chunks), traffic by protocol,
   * the time until every chunk was back at the target copy count, and the events raised.
   */
  async report(mark: ChangeMark): Promise<ChangeReport> {
    const boxes = this.upBoxes();
    const now = this.meter.snapshot();
    const moved: Moved = { blocks: now.moved.blocks - mark.traffic.moved.blocks, bytes: now.moved.bytes - mark.traffic.moved.bytes };
    const byProtocol: Record<string, TrafficCount> = {};
    for (const [k, v] of Object.entries(now.byProtocol)) {
      const was = mark.traffic.byProtocol[k] ?? { requests: 0, sent: 0, received: 0 };
      if (v.requests > was.requests) byProtocol[k] = { requests: v.requests - was.requests, sent: v.sent - was.sent, received: v.received - was.received };
    }
    const minimum: Moved = { blocks: 0, bytes: 0 };
    if (boxes.length > 0) {
      const state = boxes[0].state();
      const placer = compileView(toPlacementView(state));
      const active = activeMembers(state);
      const seen = new Set<string>();
      // A block that did not exist when the change began was written by its snapshot's author: that copy did not
      // have to travel.
      const need = (key: string, size: number, on: readonly BoxId[], author: BoxId) => {
        if (seen.has(key)) return;
        seen.add(key);
        if (size === 0) return; // no intact copy left anywhere: nothing can move it (a loss, reported as such)
        const had = mark.have.get(key) ?? new Set([author]);
        for (const box of on) {
          if (had.has(box)) continue;
          minimum.blocks++;
          minimum.bytes += size;
        }
      };
      for (const rec of state.catalog.values()) {
        const blocks = await this.blocksOf(rec.root);
        if (!blocks) continue;
        for (const m of blocks.manifest) need(m.cid, m.size, active, rec.author);
        for (const c of blocks.chunks) need(c.cid, c.size, placer.place(parseCid(c.cid).multihash.digest).filter((b) => active.includes(b)), rec.author);
      }
    }
    const events = this.raised.slice(mark.events);
    const byKind: Record<string, number> = {};
    for (const e of events) byKind[`${e.kind}/${e.severity}`] = (byKind[`${e.kind}/${e.severity}`] ?? 0) + 1;
    return {
      moved,
      minimum,
      ratio: minimum.bytes > 0 ? moved.bytes / minimum.bytes : moved.bytes === 0 ? 1 : Infinity,
      traffic: byProtocol,
      networkBytes: Object.values(byProtocol).reduce((n, t) => n + t.sent + t.received, 0),
      protectedAfterMs: mark.protectedAt === undefined ? undefined : Math.max(0, mark.protectedAt - mark.at),
      mostBelowTarget: mark.below ?? 0,
      events: byKind,
    };
  }

  readonly #blockCache = new Map<string, { manifest: Array<{ cid: string; size: number }>; chunks: Array<{ cid: string; size: number }> }>();

  /** A snapshot's manifest blocks and chunks with their sizes, from the disks (ground truth, like chunksOf). */
  async blocksOf(root: string): Promise<{ manifest: Array<{ cid: string; size: number }>; chunks: Array<{ cid: string; size: number }> } | null> {
    const cached = this.#blockCache.get(root);
    if (cached) return cached;
    const disks = this.cluster.all().filter((b) => b.state !== 'bricked' && b.state !== 'removed').map((b) => b.blocks);
    const sizeOf = (cid: CID): number => {
      for (const d of disks) if (d.intact(cid)) return d.peek(cid)!.byteLength;
      return 0;
    };
    const read = async (cid: CID): Promise<Uint8Array> => {
      for (const d of disks) if (d.intact(cid)) return d.peek(cid)!;
      throw new BlockNotFoundError(cid, 'any disk');
    };
    let idx: { manifest: CID[]; chunks: CID[] };
    try {
      idx = await collectManifest(parseCid(root), read);
    } catch (e) {
      if (e instanceof BlockNotFoundError) return null;
      throw e;
    }
    const out = { manifest: idx.manifest.map((c) => ({ cid: c.toString(), size: sizeOf(c) })), chunks: idx.chunks.map((c) => ({ cid: c.toString(), size: sizeOf(c) })) };
    this.#blockCache.set(root, out);
    if (!this.#chunkCache.has(root)) this.#chunkCache.set(root, out.chunks.map((c) => c.cid));
    return out;
  }

  /** The files of a snapshot that need any of `chunks`, read from the disks (ground truth, like chunksOf). */
  async filesNeeding(root: string, chunks: ReadonlySet<string>): Promise<FilesNeeding> {
    const disks = this.cluster.all().filter((b) => b.state !== 'bricked' && b.state !== 'removed').map((b) => b.blocks);
    return filesNeeding(parseCid(root), chunks, async (cid) => {
      for (const d of disks) if (d.intact(cid)) return d.peek(cid)!;
      throw new BlockNotFoundError(cid, 'any disk');
    });
  }

  /** Back up a tree on a Box; returns the snapshot root. */
  async backup(on: BoxId, tree: MemNode): Promise<string> {
    const r = await this.cluster.settle(this.box(on).backup(new MemSourceTree(tree)), { maxMs: 3_600_000, what: 'backup' });
    return r.root;
  }
}

export { DEFAULT_CHUNKER };
