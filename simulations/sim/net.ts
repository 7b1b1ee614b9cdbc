/**
 * The simulated network: one `SimNet` fabric for the world and one `SimEndpoint` (implementing core's `Network`)
 * per Box incarnation. Messages are packets in virtual time, TigerBeetle packet-simulator style:
 *
 * - Timing: a message leaves when the sender's uplink is free (serialisation at `upBytesPerSec`), crosses the
 *   path after a latency drawn from the path's distribution (fixed, uniform or log-normal with a cap), then queues
 *   on the receiver's downlink (`downBytesPerSec`). So moving 10k blocks of 1 MiB takes realistic virtual time, and
 *   a new Box fed by four others is limited by its own downlink.
 * - Faults (all drawn from the network's own PRNG stream): loss, duplication, reordering (an extra random delay on
 *   some messages, on top of latency jitter), directional blocks (partitions: one Box isolated, groups, random
 *   halves, one-way), clogs (a path holds its messages until the clog ends, then delivers them) and `heal()`.
 *   Blocks are checked when a message is sent and again when it arrives (in-flight messages die with a partition).
 * - Requests: dialling a Box that is down, removed or unknown fails with PeerUnreachableError after a round trip
 *   (connection refused); dialling across a block fails with PeerUnreachableError after `dialTimeoutMs`; a request
 *   or response lost, blocked or addressed to a Box that crashed meanwhile ends in RequestTimeoutError at the
 *   caller's `timeoutMs` (default `defaultTimeoutMs`). A handler's failure becomes RemoteError(name, message); a
 *   protocol with no handler, RemoteError('UnsupportedProtocolError'). A duplicated request runs the handler twice.
 * - Gossip is direct (one hop, no relaying): `publish` sends to every known, up Box subscribed to the topic.
 * - Discovery: `exchange` (default) gives a Box its bootstrap list, then every Box it hears from and their known
 *   peers (identify + peer exchange); a Box that knows only one peer address finds the rest through it. `all`
 *   makes every registered Box known to every other (a LAN with mDNS).
 *
 * Responses go back to the incarnation that asked: a caller that crashed and restarted never sees an answer meant
 * for its former self. Bytes and messages are counted per directed path.
 */
import type { AbortOptions } from '../../core/ports.ts';
import { AbortedError, InvalidInputError } from '../../core/errors.ts';
import { PeerUnreachableError, RemoteError, RequestTimeoutError, type BoxId, type GossipHandler, type Network, type RequestHandler } from '../../core/net.ts';
import { never, type Life, type Scheduler } from './scheduler.ts';
import type { SimRandom } from './rng.ts';
import type { TraceRecorder } from './trace.ts';

export type LatencyModel =
  | { kind: 'fixed'; ms: number }
  | { kind: 'uniform'; minMs: number; maxMs: number }
  /** exp(N(ln median, sigma)), capped at maxMs: most messages near the median, a long tail. */
  | { kind: 'lognormal'; medianMs: number; sigma: number; maxMs?: number };

export function sampleLatency(model: LatencyModel, rng: SimRandom): number {
  switch (model.kind) {
    case 'fixed':
      return model.ms;
    case 'uniform':
      return rng.uniform(model.minMs, model.maxMs);
    case 'lognormal': {
      const v = model.medianMs * Math.exp(model.sigma * rng.normal());
      return Math.min(v, model.maxMs ?? Infinity);
    }
  }
}

export interface NetOptions {
  latency: LatencyModel;
  /** Probability a message is lost. */
  loss: number;
  /** Probability a message is delivered twice. */
  duplicate: number;
  /** Probability a message gets an extra delay uniform in [0, reorderMaxMs). */
  reorder: number;
  reorderMaxMs: number;
  /** Default per-Box link rates, bytes per second (Infinity: unlimited). */
  upBytesPerSec: number;
  downBytesPerSec: number;
  /** Framing overhead added to every message's size. */
  headerBytes: number;
  /** A request's timeout when the caller gives none. */
  defaultTimeoutMs: number;
  /** How long dialling across a partition takes to fail. */
  dialTimeoutMs: number;
  discovery: 'exchange' | 'all';
  /** Copy payloads on send (so neither side can alias the other's buffers). Turn off only for huge runs. */
  copyPayloads: boolean;
}

/** A home network: 40 Mbit/s up, 200 Mbit/s down, ~15 ms median latency with a tail to 2 s. */
export const DEFAULT_NET: NetOptions = {
  latency: { kind: 'lognormal', medianMs: 15, sigma: 0.5, maxMs: 2000 },
  loss: 0,
  duplicate: 0,
  reorder: 0,
  reorderMaxMs: 200,
  upBytesPerSec: 5_000_000,
  downBytesPerSec: 25_000_000,
  headerBytes: 64,
  defaultTimeoutMs: 10_000,
  dialTimeoutMs: 5_000,
  discovery: 'exchange',
  copyPayloads: true,
};

/** Per directed path settings that override the network-wide ones. */
export interface PathOverride {
  latency?: LatencyModel;
  loss?: number;
  duplicate?: number;
  reorder?: number;
}

export interface PathStats {
  /** Messages handed to the path by the sender (including those a partition stopped before they left). */
  offered: number;
  /** Messages put on the wire (duplicates count once; see `duplicated`). */
  sent: number;
  /** Bytes put on the wire, headers included. */
  bytes: number;
  delivered: number;
  deliveredBytes: number;
  lost: number;
  duplicated: number;
  /** Dropped by a partition (at send or in flight). */
  blocked: number;
  /** Arrived at a Box that was down, removed or restarted since (or died in a crashed sender's buffer). */
  undeliverable: number;
}

function emptyStats(): PathStats {
  return { offered: 0, sent: 0, bytes: 0, delivered: 0, deliveredBytes: 0, lost: 0, duplicated: 0, blocked: 0, undeliverable: 0 };
}

type Message =
  | { kind: 'gossip'; id: 0; topic: string; data: Uint8Array }
  | { kind: 'req'; id: number; protocol: string; data: Uint8Array; replyTo: SimEndpoint }
  | { kind: 'res'; id: number; target: SimEndpoint; ok: true; data: Uint8Array }
  | { kind: 'res'; id: number; target: SimEndpoint; ok: false; name: string; message: string };

/** The fabric's record of one Box (internal to the simulator). */
export interface NetNode {
  id: BoxId;
  endpoint: SimEndpoint | undefined;
  removed: boolean;
  known: Set<BoxId>;
  upBytesPerSec: number;
  downBytesPerSec: number;
  upBusy: number;
  downBusy: number;
}

interface PendingRequest {
  resolve(data: Uint8Array): void;
  reject(error: Error): void;
}

/** Everything about one directed path: its counters, overrides, block, clog and held messages. */
interface PathRec {
  from: BoxId;
  to: BoxId;
  stats: PathStats;
  override: PathOverride | undefined;
  blocked: boolean;
  /** Virtual time the clog ends (0: not clogged). */
  clogUntil: number;
  /** Sends and arrivals waiting for the clog to end, in order. */
  held: Array<() => void>;
}

export class SimNet {
  readonly scheduler: Scheduler;
  readonly rng: SimRandom;
  readonly trace: TraceRecorder;
  options: NetOptions;
  readonly #nodes = new Map<BoxId, NetNode>();
  /** from -> to -> record (nested maps: no key strings built per message). */
  readonly #paths = new Map<BoxId, Map<BoxId, PathRec>>();
  #members: BoxId[] | undefined;
  #nextRequest = 1;

  constructor(scheduler: Scheduler, rng: SimRandom, trace: TraceRecorder, options: Partial<NetOptions> = {}) {
    this.scheduler = scheduler;
    this.rng = rng;
    this.trace = trace;
    this.options = { ...DEFAULT_NET, ...options };
  }

  /** Change network-wide settings (fault rates, latency, default link rates for Boxes registered later). */
  configure(options: Partial<NetOptions>): void {
    for (const p of ['loss', 'duplicate', 'reorder'] as const) {
      const v = options[p];
      if (v !== undefined && !(v >= 0 && v <= 1)) throw new InvalidInputError(`${p} must be a probability, got ${v}`);
    }
    this.options = { ...this.options, ...options };
    this.trace.record('net.configure', '', Object.entries(options).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' '));
  }

  // --- membership (driven by the cluster) ---

  /** A Box exists on the network (down until attached). `bootstrap` are the peer addresses it starts with. */
  register(id: BoxId, options: { bootstrap?: readonly BoxId[]; upBytesPerSec?: number; downBytesPerSec?: number } = {}): void {
    const existing = this.#nodes.get(id);
    if (existing !== undefined && !existing.removed) throw new InvalidInputError(`box ${id} is already on the network`);
    this.#nodes.set(id, {
      id,
      endpoint: undefined,
      removed: false,
      known: new Set((options.bootstrap ?? []).filter((b) => b !== id)),
      upBytesPerSec: options.upBytesPerSec ?? this.options.upBytesPerSec,
      downBytesPerSec: options.downBytesPerSec ?? this.options.downBytesPerSec,
      upBusy: 0,
      downBusy: 0,
    });
    this.#members = undefined;
  }

  /** The Box's process is up: a fresh endpoint (no subscriptions, no handlers) tied to `life`. */
  attach(id: BoxId, life: Life): SimEndpoint {
    const node = this.#node(id);
    if (node.removed) throw new InvalidInputError(`box ${id} was removed from the network`);
    const ep = new SimEndpoint(this, node, life);
    node.endpoint = ep;
    node.upBusy = Math.max(node.upBusy, this.scheduler.elapsed);
    this.trace.record('net.up', id);
    return ep;
  }

  /** The Box's process is gone (crash or stop): nothing more is delivered to it; its queued uplink is dropped. */
  detach(id: BoxId): void {
    const node = this.#node(id);
    node.endpoint = undefined;
    node.upBusy = this.scheduler.elapsed;
    node.downBusy = this.scheduler.elapsed;
    this.trace.record('net.down', id);
  }

  /** The Box left for good. */
  unregister(id: BoxId): void {
    const node = this.#node(id);
    node.endpoint = undefined;
    node.removed = true;
    this.#members = undefined;
    this.trace.record('net.removed', id);
  }

  isUp(id: BoxId): boolean {
    return this.#nodes.get(id)?.endpoint !== undefined;
  }

  /** Registered, not removed Box ids, sorted. */
  members(): BoxId[] {
    this.#members ??= [...this.#nodes.values()]
      .filter((n) => !n.removed)
      .map((n) => n.id)
      .sort();
    return this.#members.slice();
  }

  /** The peers `id` knows addresses for (discovery state), sorted. */
  known(id: BoxId): BoxId[] {
    return this.#knownOf(this.#node(id));
  }

  setLink(id: BoxId, rates: { upBytesPerSec?: number; downBytesPerSec?: number }): void {
    const node = this.#node(id);
    if (rates.upBytesPerSec !== undefined) node.upBytesPerSec = rates.upBytesPerSec;
    if (rates.downBytesPerSec !== undefined) node.downBytesPerSec = rates.downBytesPerSec;
  }

  /** Override settings on the directed path from -> to (merged with earlier overrides). */
  setPath(from: BoxId, to: BoxId, override: PathOverride): void {
    const rec = this.#path(from, to);
    rec.override = { ...rec.override, ...override };
  }

  // --- faults ---

  /** Only Boxes in the same group can talk. Registered Boxes not listed form one more group. Adds to existing blocks. */
  partition(groups: readonly (readonly BoxId[])[]): void {
    const groupOf = new Map<BoxId, number>();
    groups.forEach((g, i) => g.forEach((id) => groupOf.set(id, i)));
    const ids = [...new Set([...this.members(), ...groupOf.keys()])].sort();
    for (const a of ids) for (const b of ids) if (a !== b && (groupOf.get(a) ?? -1) !== (groupOf.get(b) ?? -1)) this.#path(a, b).blocked = true;
    this.trace.record('net.partition', '', groups.map((g) => `[${[...g].sort().join(',')}]`).join(' '));
  }

  /** Cut one Box off from every other registered Box, both ways. */
  isolate(id: BoxId): void {
    for (const other of this.members()) {
      if (other === id) continue;
      this.#path(id, other).blocked = true;
      this.#path(other, id).blocked = true;
    }
    this.trace.record('net.isolate', id);
  }

  /** Split the registered Boxes into two random non-empty halves (needs at least two Boxes). */
  partitionHalves(rng: SimRandom = this.rng): [BoxId[], BoxId[]] {
    const ids = rng.shuffle(this.members());
    if (ids.length < 2) throw new InvalidInputError('a partition into halves needs at least two boxes');
    const cut = 1 + rng.int(ids.length - 1);
    const halves: [BoxId[], BoxId[]] = [ids.slice(0, cut).sort(), ids.slice(cut).sort()];
    this.partition(halves);
    return halves;
  }

  /** One-way block: messages from `from` to `to` are dropped; the other direction is untouched. */
  block(from: BoxId, to: BoxId): void {
    this.#path(from, to).blocked = true;
    this.trace.record('net.block', from, to);
  }

  unblock(from: BoxId, to: BoxId): void {
    this.#path(from, to).blocked = false;
    this.trace.record('net.unblock', from, to);
  }

  /** Remove every partition and one-way block. */
  unblockAll(): void {
    for (const rec of this.#allPaths()) rec.blocked = false;
    this.trace.record('net.unblock-all', '');
  }

  /** Hold every message on from -> to for `ms`: those sent or arriving meanwhile go on, in order, when it ends. */
  clog(from: BoxId, to: BoxId, ms: number): void {
    const rec = this.#path(from, to);
    rec.clogUntil = Math.max(rec.clogUntil, this.scheduler.elapsed + ms);
    this.scheduler.at(rec.clogUntil, () => this.#unclogIfDue(rec), { pure: true });
    this.trace.record('net.clog', from, to, ms);
  }

  /** Clog every path into and out of `id`. */
  clogBox(id: BoxId, ms: number): void {
    for (const other of this.members()) {
      if (other === id) continue;
      this.clog(id, other, ms);
      this.clog(other, id, ms);
    }
  }

  /** End every clog now (held messages are released). */
  unclogAll(): void {
    this.trace.record('net.unclog-all', '');
    for (const rec of this.#allPaths()) {
      if (rec.clogUntil === 0) continue;
      rec.clogUntil = 0;
      this.#release(rec);
    }
  }

  /** Remove every partition, block and clog, and set loss, duplication and reordering back to zero everywhere. */
  heal(): void {
    for (const rec of this.#allPaths()) {
      rec.blocked = false;
      if (rec.override !== undefined) rec.override = rec.override.latency === undefined ? undefined : { latency: rec.override.latency };
    }
    this.unclogAll();
    this.options = { ...this.options, loss: 0, duplicate: 0, reorder: 0 };
    this.trace.record('net.heal', '');
  }

  /** Messages from -> to currently pass (no block on that direction). */
  reachable(from: BoxId, to: BoxId): boolean {
    return this.#paths.get(from)?.get(to)?.blocked !== true;
  }

  /** Currently blocked directed paths, sorted. */
  blockedPaths(): Array<[BoxId, BoxId]> {
    return this.#allPaths()
      .filter((r) => r.blocked)
      .map((r): [BoxId, BoxId] => [r.from, r.to]);
  }

  // --- accounting ---

  /** Counters for the directed path from -> to. */
  path(from: BoxId, to: BoxId): PathStats {
    return { ...(this.#paths.get(from)?.get(to)?.stats ?? emptyStats()) };
  }

  /** Every used path's counters (keyed "from -> to") and their totals. */
  stats(): { total: PathStats; paths: Record<string, PathStats> } {
    const total = emptyStats();
    const paths: Record<string, PathStats> = {};
    for (const rec of this.#allPaths()) {
      if (rec.stats.sent === 0 && rec.stats.blocked === 0) continue;
      paths[`${rec.from} -> ${rec.to}`] = { ...rec.stats };
      for (const k of Object.keys(total) as Array<keyof PathStats>) total[k] += rec.stats[k];
    }
    return { total, paths };
  }

  // --- internals used by SimEndpoint ---

  /** @internal */
  newRequestId(): number {
    return this.#nextRequest++;
  }

  /** @internal Peers `node` knows and can currently send to, that are up. */
  peersOf(node: NetNode): BoxId[] {
    return this.#knownOf(node).filter((id) => this.#nodes.get(id)?.endpoint !== undefined && this.reachable(node.id, id));
  }

  /** @internal */
  publish(from: SimEndpoint, topic: string, data: Uint8Array): void {
    const node = from.node;
    for (const id of this.#knownOf(node)) {
      const target = this.#nodes.get(id);
      if (target?.endpoint === undefined || !target.endpoint.subscribed(topic)) continue;
      const payload = this.options.copyPayloads ? new Uint8Array(data) : data;
      this.#transmit(node, this.#path(node.id, id), { kind: 'gossip', id: 0, topic, data: payload }, payload.byteLength + topic.length);
    }
  }

  /** @internal Start a request; the outcome comes back through `pending`. */
  sendRequest(from: SimEndpoint, to: BoxId, id: number, protocol: string, data: Uint8Array, pending: PendingRequest): void {
    const node = from.node;
    const target = this.#nodes.get(to);
    if (to === node.id) return this.#dialFailed(from, to, protocol, pending, 0, 'cannot dial self');
    if (target === undefined || target.removed) return this.#dialFailed(from, to, protocol, pending, this.#rtt(node.id, to), 'no such box');
    if (this.options.discovery === 'exchange' && !node.known.has(to)) return this.#dialFailed(from, to, protocol, pending, 0, 'no known address');
    if (!this.reachable(node.id, to)) return this.#dialFailed(from, to, protocol, pending, this.options.dialTimeoutMs, 'dial timed out');
    if (target.endpoint === undefined) return this.#dialFailed(from, to, protocol, pending, this.#rtt(node.id, to), 'connection refused');
    const payload = this.options.copyPayloads ? new Uint8Array(data) : data;
    this.#transmit(node, this.#path(node.id, to), { kind: 'req', id, protocol, data: payload, replyTo: from }, payload.byteLength + protocol.length);
  }

  /** A dial that cannot succeed: the request fails with PeerUnreachableError after `afterMs`. */
  #dialFailed(from: SimEndpoint, to: BoxId, protocol: string, pending: PendingRequest, afterMs: number, detail: string): void {
    this.trace.record('net.dial-fail', from.node.id, to, protocol, detail);
    const entry = { cancel: noop };
    entry.cancel = this.scheduler.after(afterMs, () => {
      from.life.untrack(entry);
      pending.reject(new PeerUnreachableError(to, detail));
    });
    from.life.track(entry);
  }

  /** @internal */
  respond(from: SimEndpoint, request: { id: number; replyTo: SimEndpoint }, outcome: { ok: true; data: Uint8Array } | { ok: false; name: string; message: string }): void {
    if (!from.life.alive) return;
    const rec = this.#path(from.node.id, request.replyTo.node.id);
    if (outcome.ok) {
      const payload = this.options.copyPayloads ? new Uint8Array(outcome.data) : outcome.data;
      this.#transmit(from.node, rec, { kind: 'res', id: request.id, target: request.replyTo, ok: true, data: payload }, payload.byteLength);
    } else {
      const msg: Message = { kind: 'res', id: request.id, target: request.replyTo, ok: false, name: outcome.name, message: outcome.message };
      this.#transmit(from.node, rec, msg, outcome.name.length + outcome.message.length);
    }
  }

  #node(id: BoxId): NetNode {
    const node = this.#nodes.get(id);
    if (node === undefined) throw new InvalidInputError(`box ${id} is not on the network`);
    return node;
  }

  #knownOf(node: NetNode): BoxId[] {
    if (this.options.discovery === 'all') return this.members().filter((id) => id !== node.id);
    return [...node.known].filter((id) => this.#nodes.get(id)?.removed !== true).sort();
  }

  #path(from: BoxId, to: BoxId): PathRec {
    let row = this.#paths.get(from);
    if (row === undefined) {
      row = new Map();
      this.#paths.set(from, row);
    }
    let rec = row.get(to);
    if (rec === undefined) {
      rec = { from, to, stats: emptyStats(), override: undefined, blocked: false, clogUntil: 0, held: [] };
      row.set(to, rec);
    }
    return rec;
  }

  /** Every path record, sorted by (from, to) for determinism. */
  #allPaths(): PathRec[] {
    const out: PathRec[] = [];
    for (const row of this.#paths.values()) for (const rec of row.values()) out.push(rec);
    return out.sort((a, b) => (a.from < b.from ? -1 : a.from > b.from ? 1 : a.to < b.to ? -1 : a.to > b.to ? 1 : 0));
  }

  #latency(rec: PathRec): number {
    return sampleLatency(rec.override?.latency ?? this.options.latency, this.rng);
  }

  /** A connection attempt's round trip (for refusals). */
  #rtt(from: BoxId, to: BoxId): number {
    return this.#latency(this.#path(from, to)) + this.#latency(this.#path(to, from));
  }

  #transmit(from: NetNode, rec: PathRec, msg: Message, payloadBytes: number, held = false): void {
    const s = this.scheduler;
    const stats = rec.stats;
    if (!held) stats.offered++;
    if (rec.blocked) {
      stats.blocked++;
      this.trace.record('net.blocked', from.id, rec.to, msg.kind, msg.id);
      return;
    }
    if (rec.clogUntil > s.elapsed) {
      // Still in the sender's socket buffer: it goes when the clog ends, unless the sender's process dies first.
      const sender = from.endpoint;
      rec.held.push(() => {
        if (from.endpoint === sender) this.#transmit(from, rec, msg, payloadBytes, true);
        else {
          stats.undeliverable++;
          this.trace.record('net.undeliverable', from.id, rec.to, msg.kind, msg.id);
        }
      });
      return;
    }
    const size = payloadBytes + this.options.headerBytes;
    const override = rec.override;
    const txEnd = Math.max(s.elapsed, from.upBusy) + (size * 1000) / from.upBytesPerSec;
    from.upBusy = txEnd;
    stats.sent++;
    stats.bytes += size;
    this.trace.record('net.send', from.id, rec.to, msg.kind === 'gossip' ? msg.topic : msg.kind === 'req' ? msg.protocol : msg.ok ? 'ok' : msg.name, size);
    const copies = this.rng.chance(override?.duplicate ?? this.options.duplicate) ? 2 : 1;
    if (copies === 2) {
      stats.duplicated++;
      stats.bytes += size;
    }
    for (let c = 0; c < copies; c++) {
      const lost = this.rng.chance(override?.loss ?? this.options.loss);
      let delay = this.#latency(rec);
      if (this.rng.chance(override?.reorder ?? this.options.reorder)) delay += this.rng.uniform(0, this.options.reorderMaxMs);
      if (lost) {
        stats.lost++;
        this.trace.record('net.lost', from.id, rec.to, msg.kind, msg.id);
        continue;
      }
      const m = c === 0 || !this.options.copyPayloads ? msg : copyMessage(msg);
      s.at(txEnd + delay, () => this.#arrive(rec, m, size), { pure: true });
    }
  }

  /** A message reached the receiver's side of the path (no user code runs here). */
  #arrive(rec: PathRec, msg: Message, size: number): void {
    const stats = rec.stats;
    if (rec.blocked) {
      stats.blocked++;
      this.trace.record('net.blocked', rec.from, rec.to, msg.kind, msg.id);
      return;
    }
    if (rec.clogUntil > this.scheduler.elapsed) {
      rec.held.push(() => this.#arrive(rec, msg, size));
      return;
    }
    const node = this.#nodes.get(rec.to);
    const ep = node?.endpoint;
    if (node === undefined || ep === undefined || (msg.kind === 'res' && msg.target !== ep)) {
      stats.undeliverable++;
      this.trace.record('net.undeliverable', rec.from, rec.to, msg.kind, msg.id);
      return;
    }
    const at = Math.max(this.scheduler.elapsed, node.downBusy) + (size * 1000) / node.downBytesPerSec;
    node.downBusy = at;
    this.scheduler.at(at, () => this.#deliver(rec, node, ep, msg, size));
  }

  #deliver(rec: PathRec, node: NetNode, ep: SimEndpoint, msg: Message, size: number): void {
    const stats = rec.stats;
    if (node.endpoint !== ep || !ep.life.alive) {
      stats.undeliverable++;
      this.trace.record('net.undeliverable', rec.from, rec.to, msg.kind, msg.id);
      return;
    }
    stats.delivered++;
    stats.deliveredBytes += size;
    this.trace.record('net.deliver', rec.to, rec.from, msg.kind, msg.id);
    this.#learn(node, rec.from);
    ep.receive(rec.from, msg);
  }

  #unclogIfDue(rec: PathRec): void {
    if (rec.clogUntil === 0 || rec.clogUntil > this.scheduler.elapsed) return; // ended early, or extended meanwhile
    rec.clogUntil = 0;
    this.#release(rec);
  }

  #release(rec: PathRec): void {
    const held = rec.held;
    rec.held = [];
    for (const fn of held) fn();
  }

  /** `node` heard from `from`: it now knows `from`, and (peer exchange) the peers `from` knows. */
  #learn(node: NetNode, from: BoxId): void {
    if (this.options.discovery !== 'exchange') return;
    node.known.add(from);
    const sender = this.#nodes.get(from);
    if (sender !== undefined) for (const id of sender.known) if (id !== node.id) node.known.add(id);
  }
}

function noop(): void {}

/**
 * One request of an endpoint, waiting for its outcome. Whatever ends it first (answer, refusal, timeout, abort)
 * wins; the rest are no-ops. (A class rather than closures: one allocation per request on the hottest path.)
 */
class OutstandingRequest implements PendingRequest {
  readonly timer = { cancel: noop };
  #settled = false;
  #onAbort: (() => void) | undefined;

  constructor(
    readonly pending: Map<number, PendingRequest>,
    readonly id: number,
    readonly life: Life,
    readonly settleOk: (data: Uint8Array) => void,
    readonly settleError: (error: Error) => void,
    readonly signal: AbortSignal | undefined,
  ) {}

  /** Follow the caller's abort signal, if any. */
  listen(): void {
    if (this.signal === undefined) return;
    this.#onAbort = () => this.reject(new AbortedError());
    this.signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  resolve(data: Uint8Array): void {
    if (this.#finish()) this.settleOk(data);
  }

  reject(error: Error): void {
    if (this.#finish()) this.settleError(error);
  }

  #finish(): boolean {
    if (this.#settled || !this.life.alive) return false;
    this.#settled = true;
    this.pending.delete(this.id);
    this.timer.cancel();
    this.life.untrack(this.timer);
    if (this.#onAbort !== undefined) this.signal?.removeEventListener('abort', this.#onAbort);
    return true;
  }
}

function copyMessage(msg: Message): Message {
  if (msg.kind === 'res' && !msg.ok) return msg;
  return { ...msg, data: new Uint8Array(msg.data) };
}

/** One Box incarnation's view of the network (core's `Network` port). Volatile: a restart gets a new one. */
export class SimEndpoint implements Network {
  readonly self: BoxId;
  readonly #net: SimNet;
  readonly #subs = new Map<string, Set<{ handler: GossipHandler }>>();
  readonly #handlers = new Map<string, RequestHandler>();
  readonly #pending = new Map<number, PendingRequest>();

  /** @internal */
  constructor(
    net: SimNet,
    /** @internal */ readonly node: NetNode,
    readonly life: Life,
  ) {
    this.#net = net;
    this.self = node.id;
  }

  publish(topic: string, data: Uint8Array): void {
    if (!this.life.alive) return;
    this.#net.publish(this, topic, data);
  }

  subscribe(topic: string, handler: GossipHandler): () => void {
    const entry = { handler };
    let set = this.#subs.get(topic);
    if (set === undefined) {
      set = new Set();
      this.#subs.set(topic, set);
    }
    set.add(entry);
    return () => {
      const s = this.#subs.get(topic);
      s?.delete(entry);
      if (s?.size === 0) this.#subs.delete(topic);
    };
  }

  request(to: BoxId, protocol: string, data: Uint8Array, options: AbortOptions & { timeoutMs?: number } = {}): Promise<Uint8Array> {
    const life = this.life;
    if (!life.alive) return never();
    const signal = options.signal;
    if (signal?.aborted === true) return Promise.reject(new AbortedError());
    const timeoutMs = options.timeoutMs ?? this.#net.options.defaultTimeoutMs;
    const scheduler = this.#net.scheduler;
    return new Promise<Uint8Array>((resolve, reject) => {
      const id = this.#net.newRequestId();
      const pending = new OutstandingRequest(this.#pending, id, life, resolve, reject, signal);
      pending.timer.cancel = scheduler.after(timeoutMs, () => pending.reject(new RequestTimeoutError(to, protocol, timeoutMs)));
      life.track(pending.timer);
      pending.listen();
      this.#pending.set(id, pending);
      this.#net.sendRequest(this, to, id, protocol, data, pending);
    });
  }

  handle(protocol: string, handler: RequestHandler): void {
    this.#handlers.set(protocol, handler);
  }

  peers(): BoxId[] {
    if (!this.life.alive) return [];
    return this.#net.peersOf(this.node);
  }

  /** @internal */
  subscribed(topic: string): boolean {
    return (this.#subs.get(topic)?.size ?? 0) > 0;
  }

  /** @internal A message for this endpoint arrived (the fabric checked it is alive and current). */
  receive(from: BoxId, msg: Message): void {
    switch (msg.kind) {
      case 'gossip': {
        const subs = this.#subs.get(msg.topic);
        if (subs === undefined) return;
        for (const { handler } of [...subs]) handler(from, msg.data);
        return;
      }
      case 'res': {
        const pending = this.#pending.get(msg.id);
        if (pending === undefined) return; // already answered (a duplicate), timed out or aborted
        if (msg.ok) pending.resolve(msg.data);
        else pending.reject(new RemoteError(from, msg.name, msg.message));
        return;
      }
      case 'req': {
        const handler = this.#handlers.get(msg.protocol);
        if (handler === undefined) {
          this.#net.respond(this, msg, { ok: false, name: 'UnsupportedProtocolError', message: `${this.self} does not serve ${msg.protocol}` });
          return;
        }
        let result: Promise<Uint8Array>;
        try {
          result = Promise.resolve(handler(from, msg.data, {}));
        } catch (error) {
          result = Promise.reject(error);
        }
        result.then(
          (data) => this.#net.respond(this, msg, { ok: true, data }),
          (error: unknown) =>
            this.#net.respond(this, msg, {
              ok: false,
              name: error instanceof Error ? error.name : 'Error',
              message: error instanceof Error ? error.message : String(error),
            }),
        );
        return;
      }
    }
  }
}
