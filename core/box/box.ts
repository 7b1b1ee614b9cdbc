/**
 * A Box: one member of a reserve, assembled from the pure parts and the ports it is given. The same class runs
 * on a real Box (adapters wire a disk, libp2p and the system clock) and inside the simulator (virtual everything).
 *
 *   ledger (signed events in a CRDT) ── gossip + state-vector sync ──▶ every Box agrees on members, config, catalog
 *   keeper ── placement of the merged state ──▶ pulls/pushes/drops blocks so each Box holds its share
 *   integrity monitor ── throttled sweeps ──▶ corrupt blocks quarantined and re-fetched
 *   backup ──▶ blocks on this Box, snapshot published to the catalog, pushed to its keepers
 *   restore ──▶ any snapshot, from whichever Boxes hold its blocks, verified, byte-identical
 */
import type { CID } from 'multiformats/cid';
import type { Blockstore } from '../blocks/blockstore.ts';
import { parseCid } from '../blocks/cid.ts';
import type { ChunkerParams } from '../chunker/fastcdc.ts';
import { AbortedError, ReserveError } from '../errors.ts';
import type { KvStore } from '../kv.ts';
import type { BoxId, Network } from '../net.ts';
import type { Clock, Progress, Random } from '../ports.ts';
import { backup, type BackupStats } from '../snapshot/backup.ts';
import { restore, type RestoreStats } from '../snapshot/restore.ts';
import type { ChunkingService, SourceTree, TargetTree, TreePath, Warning } from '../snapshot/ports.ts';
import type { Signer, Unsealer } from '../state/crypto.ts';
import type { CrdtBackendFactory } from '../state/crdt.ts';
import { ReserveLedger } from '../state/ledger.ts';
import { activeMembers, type ReserveState } from '../state/reducer.ts';
import type { SnapshotRecord } from '../state/summary.ts';
import { BlockClient } from '../keeper/block-client.ts';
import { IntegrityMonitor, type SweepReport } from '../keeper/integrity.ts';
import { DrainIncompleteError, Keeper, type KeeperNotice, type Protection } from '../keeper/keeper.ts';
import { NetworkBlockstore } from '../keeper/network-store.ts';
import {
  decodeJoinRequest,
  decodeJoinResponse,
  encodeJoinRequest,
  encodeJoinResponse,
  JOIN_PROTOCOL,
  JoinRefusedError,
  JoinRequiredError,
  PING_PROTOCOL,
  PUSH_PROTOCOL,
  STATE_TOPIC,
  SYNC_PROTOCOL,
} from '../keeper/protocol.ts';
import { RemoteError } from '../net.ts';
import { decodeEvent, UnknownBoxError } from '../state/events.ts';
import { checkEvent } from '../state/reducer.ts';
import { TrackingBlockstore } from '../keeper/tracking-store.ts';
import type { EventEnvelope } from '../events/types.ts';
import type { HealthSource } from '../events/health.ts';
import { BoxEvents } from './events.ts';
import { BoxHealth, type HealthReading } from './health.ts';

export class UnknownSnapshotError extends ReserveError {
  static override readonly name = 'UnknownSnapshotError';
}

export class NotJoinedError extends ReserveError {
  static override readonly name = 'NotJoinedError';
}

/** A graceful leave was refused: this Box is the only member, or too few Boxes would remain (see `force`). */
export class LeaveRefusedError extends ReserveError {
  static override readonly name = 'LeaveRefusedError';
}

/** A Box cannot decommission itself (it leaves instead), nor one that is decommissioned already. */
export class RemoveRefusedError extends ReserveError {
  static override readonly name = 'RemoveRefusedError';
}

export interface LeaveResult {
  /** Referenced blocks this Box held. */
  held: number;
  /** Copies of them the Boxes that keep them now lacked, and made (pulling from any holder). */
  copies: number;
  /** Active members after the leave. */
  remaining: number;
  /** Members that confirmed they hold the departure; the others learn it from them. */
  confirmedBy: BoxId[];
  unconfirmed: BoxId[];
}

export interface DecommissionResult {
  box: BoxId;
  /** Its membership status before (active, dead, left). */
  was: string;
  /** The new secret generation (the removed Box does not have it). */
  generation: number;
  /** Active members now, and the minimum number of copies: fewer members than that leave every snapshot short. */
  active: number;
  minimum: number;
  confirmedBy: BoxId[];
  unconfirmed: BoxId[];
}

export interface BoxTiming {
  /** Between keeper rounds (default 5 s). */
  tickMs?: number;
  /** Between anti-entropy syncs with every reachable member (default 10 s). */
  syncMs?: number;
  /** Idle syncs back off up to this (default 2 h; gossip carries changes at once, this is anti-entropy). */
  idleSyncMs?: number;
  /** Idle keeper rounds back off up to this (default 30 min). */
  idleTickMs?: number;
  pushGraceMs?: number;
  gcGraceMs?: number;
  /** Between integrity sweeps (default 7 days). */
  integrityIntervalMs?: number;
  integrityBytesPerSecond?: number;
  requestTimeoutMs?: number;
  /** Between health samples (default 60 s). */
  healthMs?: number;
}

export interface BoxInit {
  reserveId: string;
  /** Secret generations this Box holds (an invite carries the newest). */
  secrets: ReadonlyMap<number, Uint8Array>;
  signer: Signer;
  unsealer: Unsealer;
  clock: Clock;
  random: Random;
  network: Network;
  blocks: Blockstore;
  kv: KvStore;
  backend: CrdtBackendFactory;
  chunking: ChunkingService;
  /** Chunk sizes for backups (default DEFAULT_CHUNKER; the simulator uses small ones). */
  chunker?: ChunkerParams;
  /** Bytes offered to the reserve. */
  capacity: number;
  region?: string;
  addresses?: string[];
  host?: string;
  /** Peers to sync with before joining (a factory-new Box knows one). */
  bootstrap?: BoxId[];
  /** Quarantine a corrupt block (the file-system store moves it aside); default: delete it. */
  quarantine?: (cid: CID) => Promise<void>;
  timing?: BoxTiming;
  onNotice?: (n: KeeperNotice | { type: 'sweep'; report: SweepReport } | { type: 'joined'; box: BoxId } | JoinNotice) => void;
  /** Every reserve event this Box raised, once it is durable in the outbox. */
  onEvent?: (e: EventEnvelope) => void;
  /** Memory, CPU, disk I/O and disk space of this Box (adapters/metrics reads the OS); sampled every
   * `timing.healthMs` into keeper-health events and disk-capacity forecasts. Without it only limits are tracked. */
  health?: HealthSource;
}

/**
 * Admission over a gated network (libp2p): a Box that is not a member yet is refused everything but JOIN. The joiner
 * sends its signed box-joined event to the peer that refused it ('join-accepted' when that peer applied it, then it
 * syncs from it); the member checks it like any event (signature, join proof, generation, not decommissioned),
 * applies it, gossips it ('join-admitted'), or refuses it and changes nothing ('join-refused').
 */
export type JoinNotice =
  | { type: 'join-accepted'; by: BoxId; members: number }
  | { type: 'join-failed'; peer: BoxId; message: string }
  | { type: 'join-admitted'; box: BoxId }
  | { type: 'join-refused'; box: BoxId; message: string };

export interface BoxBackupResult {
  cid: CID;
  root: string;
  parent: string | null;
  stats: BackupStats;
  warnings: Warning[];
}

export interface BoxRestoreResult {
  root: string;
  stats: RestoreStats;
}

export interface MemberStatus {
  id: BoxId;
  status: string;
  self: boolean;
  reachable: boolean;
  capacity: number;
  region?: string;
  addresses: string[];
}

/** A gated network refused this Box as a non-member (JoinRequiredError, here or from the peer). */
function isJoinRequired(err: unknown): boolean {
  return err instanceof JoinRequiredError || (err instanceof RemoteError && err.remoteName === JoinRequiredError.name);
}

const LEDGER_KEY = 'box/ledger';
const SECRET_PREFIX = 'box/secret/';

export class Box {
  readonly #init: BoxInit;
  readonly blocks: TrackingBlockstore;
  readonly client: BlockClient;
  #ledger!: ReserveLedger;
  #keeper!: Keeper;
  #integrity!: IntegrityMonitor;
  #events!: BoxEvents;
  #health!: BoxHealth;
  #syncTimer: (() => void) | null = null;
  #unsubscribe: Array<() => void> = [];
  #started = false;
  #dirty = false;
  #syncInterval = 0;
  #saving: Promise<void> | null = null;
  /** Peers that refused this Box as a non-member (JoinRequiredError): they get a JOIN. */
  readonly #refusedBy = new Set<BoxId>();

  constructor(init: BoxInit) {
    this.#init = init;
    this.blocks = new TrackingBlockstore(init.blocks);
    this.client = new BlockClient({
      network: init.network,
      clock: init.clock,
      timeoutMs: init.timing?.requestTimeoutMs,
      onBadCopy: (peer, cid) => init.onNotice?.({ type: 'bad-copy', cid: cid.toString(), peer }),
    });
  }

  get id(): BoxId {
    return this.#init.signer.id;
  }

  get ledger(): ReserveLedger {
    return this.#ledger;
  }

  get keeper(): Keeper {
    return this.#keeper;
  }

  get integrity(): IntegrityMonitor {
    return this.#integrity;
  }

  /** Reserve events: the durable dispatcher and the local inbox the CLI and admin UI read. */
  get events(): BoxEvents {
    return this.#events;
  }

  state(): ReserveState {
    return this.#ledger.state();
  }

  /** The last health sample (undefined before the first one, or when the Box has no health source). */
  latestHealth(): HealthReading | undefined {
    return this.#health?.latest();
  }

  // ------------------------------------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    const init = this.#init;
    const secrets = new Map(init.secrets);
    for await (const [key, value] of init.kv.list(SECRET_PREFIX)) secrets.set(Number(key.slice(SECRET_PREFIX.length)), value);
    const options = {
      reserveId: init.reserveId,
      signer: init.signer,
      unsealer: init.unsealer,
      clock: init.clock,
      random: init.random,
      backend: init.backend,
      secrets,
      onSecret: (generation: number, secret: Uint8Array) => void init.kv.put(SECRET_PREFIX + generation, secret),
    };
    for (const [g, s] of secrets) await init.kv.put(SECRET_PREFIX + g, s);
    const saved = await init.kv.get(LEDGER_KEY);
    this.#ledger = saved ? ReserveLedger.load(options, saved) : new ReserveLedger(options);

    const net = init.network;
    this.#unsubscribe.push(this.#ledger.onUpdate((msg) => {
      this.#dirty = true;
      net.publish(STATE_TOPIC, msg);
      void this.#saveSoon(); // this Box's own events must survive a crash (others may not have them yet)
    }));
    this.#unsubscribe.push(
      net.subscribe(STATE_TOPIC, (from, data) => {
        try {
          this.#applyFrom(from, data);
        } catch {
          // junk from a peer changes nothing
        }
      }),
    );
    net.handle(SYNC_PROTOCOL, async (_from, data) => this.#ledger.diff(data));
    net.handle(JOIN_PROTOCOL, async (from, data) => this.#admit(from, data));
    // Answer liveness probes from the start (the keeper serves them too once it runs): the members that admit this
    // Box ping it at once, before it has finished starting.
    net.handle(PING_PROTOCOL, async () => new Uint8Array(0));
    // A member's update sent straight here (an empty request only asks): applied like gossip, saved before the
    // answer (the sender may be going away for good), answered with what this replica now holds.
    net.handle(PUSH_PROTOCOL, async (from, data) => {
      if (data.byteLength > 0 && this.#applyFrom(from, data) > 0) await this.#saveSoon();
      return this.#ledger.stateVector();
    });

    this.#keeper = new Keeper({
      ledger: this.#ledger,
      network: net,
      blocks: this.blocks,
      kv: init.kv,
      clock: init.clock,
      client: this.client,
      quarantine: init.quarantine,
      tickMs: init.timing?.tickMs,
      idleTickMs: init.timing?.idleTickMs,
      pushGraceMs: init.timing?.pushGraceMs,
      gcGraceMs: init.timing?.gcGraceMs,
      // pulls pipelined on one stream per holder keep more blocks in flight than one request each can
      repairConcurrency: init.network.blocks ? 16 : undefined,
      onNotice: (n) => {
        init.onNotice?.(n);
        this.#events?.notice(n, { chunksOf: (root) => this.state().catalog.get(root)?.chunks ?? 0 });
      },
    });
    this.#integrity = new IntegrityMonitor({
      blocks: this.blocks,
      kv: init.kv,
      chunking: init.chunking,
      clock: init.clock,
      repair: (cid) => this.#keeper.repairCorrupt(cid),
      intervalMs: init.timing?.integrityIntervalMs,
      bytesPerSecond: init.timing?.integrityBytesPerSecond,
      onSweep: (report) => init.onNotice?.({ type: 'sweep', report }),
    });

    // Learn the reserve from whoever we know, then join if we are not a member yet.
    const peers = new Set([...(init.bootstrap ?? []), ...activeMembers(this.state())]);
    peers.delete(this.id);
    await Promise.all([...peers].map((p) => this.syncWith(p)));
    this.#events = new BoxEvents({
      id: this.id,
      kv: init.kv,
      clock: init.clock,
      random: init.random,
      ledger: this.#ledger,
      batchIntervalMs: () => this.state().config.events.normalFrequencyMs,
      persist: () => this.#save(),
      onRaised: (e) => init.onEvent?.(e),
      onError: (e) => init.onNotice?.({ type: 'event-delivery-failed', message: (e as Error)?.message ?? String(e) } as never),
    });
    await this.#events.open();
    this.#health = new BoxHealth({
      id: this.id,
      clock: init.clock,
      source: init.health,
      tracker: this.#events.conditions,
      raiser: this.#events.raiser,
      config: () => this.state().config,
      intervalMs: init.timing?.healthMs,
      onError: (e) => init.onNotice?.({ type: 'health-failed', message: (e as Error)?.message ?? String(e) } as never),
    });
    await this.#rejoinIfNeeded();
    await this.#announceJoin();
    await this.#save();
    await this.#keeper.start();
    this.client.serve(this.blocks); // the bulk transport, when the network has one (the keeper loaded the store)
    await this.#integrity.start();
    this.#health.start();
    this.#started = true;
    this.#armSync();
  }

  async stop(): Promise<void> {
    this.#started = false;
    this.#syncTimer?.();
    this.#syncTimer = null;
    for (const u of this.#unsubscribe) u();
    this.#unsubscribe = [];
    this.#integrity?.stop();
    this.#health?.stop();
    await this.#keeper?.stop();
    await this.#events?.close();
    await this.#save();
  }

  /** Anti-entropy: sync with every member; back off (doubling, up to idleSyncMs) while nothing new arrives. */
  #armSync(): void {
    if (!this.#started) return;
    const base = this.#init.timing?.syncMs ?? 10_000;
    this.#syncTimer = this.#init.clock.setTimer(Math.max(this.#syncInterval, base), () => {
      void this.syncAll().then(
        (learned) => {
          this.#syncInterval = learned ? base : Math.min(Math.max(this.#syncInterval, base) * 2, Math.max(this.#init.timing?.idleSyncMs ?? 7_200_000, base));
          this.#armSync();
        },
        () => this.#armSync(),
      );
    });
  }

  async #save(): Promise<void> {
    this.#dirty = false;
    await this.#init.kv.put(LEDGER_KEY, this.#ledger.save());
  }

  /** Save once after the current burst of changes (a microtask later), sharing one write among them. */
  #saveSoon(): Promise<void> {
    this.#saving ??= Promise.resolve()
      .then(() => this.#save())
      .finally(() => (this.#saving = null));
    return this.#saving;
  }

  /**
   * The transport saw a connection to a member open or close (a Box restarting, unplugged, back): run a keeper round
   * now, so its liveness check (a ping) and any repair see it at once instead of after an idle back-off of up to
   * `idleTickMs`. The keeper's own ping decides: a connection closing is a hint, not proof that the member is gone.
   */
  connectionChanged(peer: BoxId): void {
    if (peer === this.id || !this.#keeper) return; // not started yet: the first round comes anyway
    if (!this.state().members.has(peer)) return;
    this.#keeper.poke();
  }

  /** Apply a peer's update message (gossip or a push); returns how many events were new. Throws on junk. */
  #applyFrom(from: BoxId, data: Uint8Array): number {
    const r = this.#ledger.applyUpdate(data);
    if (r.added > 0) {
      this.#dirty = true;
      this.#keeper?.poke();
      // presumed dead by the others while it is up: re-announce now rather than at the next anti-entropy round
      if (this.#started && this.state().members.get(this.id)?.status === 'dead') void this.#rejoinIfNeeded().catch(() => undefined);
    }
    if (r.needsSync) void this.syncWith(from);
    return r.added;
  }

  /**
   * Push this Box's own events straight to every active member until each confirms it holds all of them, or
   * `timeoutMs` (default 30 s) passes. Gossip carries them at once already; this makes sure, before this Box goes
   * away for good (a graceful leave) or a short-lived process stops (a CLI that decommissioned a Box). A member
   * that refuses this Box as a non-member after it left has evidently learnt of the leave: it counts as confirmed.
   */
  async share(options: { timeoutMs?: number } = {}): Promise<{ confirmed: BoxId[]; unconfirmed: BoxId[] }> {
    const clock = this.#init.clock;
    const seq = this.#ledger.ownSeq;
    const pending = new Set(activeMembers(this.state()).filter((p) => p !== this.id));
    const confirmed: BoxId[] = [];
    const deadline = clock.now() + (options.timeoutMs ?? 30_000);
    const requestMs = Math.min(this.#init.timing?.requestTimeoutMs ?? 10_000, options.timeoutMs ?? 30_000);
    for (let round = 0; pending.size > 0 && (round === 0 || clock.now() < deadline); round++) {
      if (round > 0) await new Promise<void>((resolve) => clock.setTimer(Math.min(1000, Math.max(0, deadline - clock.now())), resolve));
      await Promise.all(
        [...pending].map(async (peer) => {
          try {
            if (!(await this.#pushOwn(peer, seq, requestMs))) return;
          } catch (err) {
            if (!(isJoinRequired(err) && this.state().members.get(this.id)?.status === 'left')) return;
          }
          pending.delete(peer);
          confirmed.push(peer);
        }),
      );
    }
    return { confirmed: confirmed.sort(), unconfirmed: [...pending].sort() };
  }

  /**
   * Ask `peer` what it holds and send it what it lacks of this Box's own events up to `seq`; true once it holds
   * them all. Throws what the request throws.
   */
  async #pushOwn(peer: BoxId, seq: number, timeoutMs: number): Promise<boolean> {
    const holds = (sv: Uint8Array) => this.#ledger.peerHolds(sv, this.id, seq);
    let sv = await this.#init.network.request(peer, PUSH_PROTOCOL, new Uint8Array(0), { timeoutMs });
    if (!holds(sv)) sv = await this.#init.network.request(peer, PUSH_PROTOCOL, this.#ledger.diff(sv), { timeoutMs });
    return holds(sv);
  }

  /** Pull what `peer` has that we lack (state-vector handshake). Returns how many events were new; -1 when the
   * peer did not answer. */
  async syncWith(peer: BoxId): Promise<number> {
    try {
      const timeoutMs = this.#init.timing?.requestTimeoutMs ?? 10_000;
      const diff = await this.#init.network.request(peer, SYNC_PROTOCOL, this.#ledger.stateVector(), { timeoutMs });
      this.#keeper?.noteSeen(peer);
      const r = this.#ledger.applyUpdate(diff);
      if (r.added > 0) {
        this.#dirty = true;
        this.#keeper?.poke();
      }
      // Anti-entropy both ways for this Box's own events: one gossiped while the two could not talk (its join among
      // them) would otherwise reach a peer only if it happened to pull from this Box, and it pulls from members only.
      if (this.#ledger.ownSeq > 0) {
        try {
          await this.#pushOwn(peer, this.#ledger.ownSeq, timeoutMs);
        } catch (err) {
          if (isJoinRequired(err)) this.#refusedBy.add(peer);
        }
      }
      return r.added;
    } catch (err) {
      // A gated network refuses a Box its members do not know yet: it gets our join (#announceJoin).
      if (isJoinRequired(err)) this.#refusedBy.add(peer);
      return -1;
    }
  }

  /** Sync with every active member (the bootstrap peers while it knows no other Box); true when something new arrived. */
  async syncAll(): Promise<boolean> {
    const state = this.state();
    let peers = activeMembers(state).filter((p) => p !== this.id);
    if ([...state.members.keys()].every((p) => p === this.id)) peers = (this.#init.bootstrap ?? []).filter((p) => p !== this.id);
    const added = await Promise.all(peers.map((p) => this.syncWith(p)));
    await this.#rejoinIfNeeded();
    await this.#announceJoin();
    if (this.#dirty) await this.#save();
    return added.some((n) => n > 0);
  }

  /**
   * Join when this Box is not a member yet, or re-announce itself when the others presumed it dead (it was cut
   * off past the grace period and has come back). A Box that left or was decommissioned does not come back.
   */
  async #rejoinIfNeeded(): Promise<void> {
    const me = this.state().members.get(this.id);
    if (me && me.status !== 'dead') return;
    try {
      this.#ledger.join({ capacity: this.#init.capacity, region: this.#init.region, addresses: this.#init.addresses ?? [] });
    } catch {
      return; // the secret it holds was rotated away: it cannot come back without a new invite
    }
    this.#init.onNotice?.({ type: 'joined', box: this.id });
    this.#keeper?.poke();
    await this.#events.joined();
  }

  /** Send this Box's join to every peer that refused it as a non-member; sync from each one that admits it. */
  async #announceJoin(): Promise<void> {
    if (this.#refusedBy.size === 0) return;
    const me = this.state().members.get(this.id);
    if (me && me.status !== 'active') return; // it left or was removed (a join of a newer generation is pending here)
    const joins = this.#ledger.uncompacted().filter((e) => e.author === this.id && e.kind === 'box-joined');
    if (joins.length === 0) return; // compacted away: the reserve knows this Box already
    const newest = joins.reduce((a, b) => (b.seq > a.seq ? b : a));
    const request = encodeJoinRequest({ reserveId: this.#init.reserveId, events: [newest.bytes] });
    for (const peer of [...this.#refusedBy]) {
      this.#refusedBy.delete(peer);
      try {
        const answer = decodeJoinResponse(await this.#init.network.request(peer, JOIN_PROTOCOL, request, { timeoutMs: this.#init.timing?.requestTimeoutMs ?? 10_000 }));
        if (answer.reserveId !== this.#init.reserveId) throw new JoinRefusedError(`${peer} answered for reserve ${answer.reserveId}`);
        this.#init.onNotice?.({ type: 'join-accepted', by: peer, members: answer.members });
        await this.syncWith(peer);
      } catch (err) {
        this.#init.onNotice?.({ type: 'join-failed', peer, message: (err as Error)?.message ?? String(err) });
      }
    }
  }

  /**
   * A JOIN from a Box that holds the secret but is not a member here: check its box-joined event exactly as the
   * ledger would (signature, join proof, secret generation, not decommissioned) and refuse it, changing nothing,
   * unless it would be accepted; then apply it, save, gossip it to the other members and answer.
   */
  async #admit(from: BoxId, data: Uint8Array): Promise<Uint8Array> {
    try {
      const req = decodeJoinRequest(data);
      const reserveId = this.#init.reserveId;
      if (req.reserveId !== reserveId) throw new JoinRefusedError(`this Box belongs to reserve ${reserveId}, not ${req.reserveId.slice(0, 80)}`);
      const ctx = { reserveId, verified: new Set<string>() };
      for (const bytes of req.events) {
        let ev;
        try {
          ev = decodeEvent(bytes, ctx);
        } catch (err) {
          throw new JoinRefusedError(`the join of ${from} does not verify: ${(err as Error).message}`, { cause: err });
        }
        if (ev.author !== from) throw new JoinRefusedError(`${from} sent a join signed by ${ev.author}; a Box joins for itself`);
        if (ev.kind !== 'box-joined') throw new JoinRefusedError(`a join request carries box-joined events only, not ${ev.kind}`);
        try {
          checkEvent(this.state(), ev);
        } catch (err) {
          throw new JoinRefusedError(`${from} cannot join: ${(err as Error).message}`, { cause: err });
        }
      }
      const before = this.#ledger.stateVector();
      const r = this.#ledger.receiveMany(req.events);
      this.#keeper?.noteSeen(from); // it is up right now: no ping needed for a while
      if (r.added > 0) {
        this.#init.network.publish(STATE_TOPIC, this.#ledger.diff(before)); // the other members learn it at once
        this.#keeper?.poke();
      }
      await this.#save();
      this.#init.onNotice?.({ type: 'join-admitted', box: from });
      return encodeJoinResponse({ reserveId, members: activeMembers(this.state()).length });
    } catch (err) {
      this.#init.onNotice?.({ type: 'join-refused', box: from, message: (err as Error)?.message ?? String(err) });
      throw err;
    }
  }

  // ------------------------------------------------------------------------------------------- data

  /** Back up a tree: blocks land here, the snapshot is published, and its blocks are pushed to their keepers. */
  /**
   * Back up a tree. `protect`: 'background' (default) records the push and lets the keeper do it; 'wait' pushes
   * before returning; 'none' leaves the blocks for the keepers to pull.
   */
  async backup(source: SourceTree, options: { progress?: Progress; protect?: 'background' | 'wait' | 'none'; signal?: AbortSignal } = {}): Promise<BoxBackupResult> {
    this.#requireMember();
    const head = this.state().heads.get(this.id);
    const parent = head ? parseCid(head.root) : null;
    // Pre-flight: a backup that would exceed a limit fails here, before it writes anything (LimitExceededError).
    await this.#health.preflight(source, { parent: parent && this.blocks.holds(parent) ? { store: this.blocks, root: parent } : null, signal: options.signal });
    const result = await this.#keeper.foreground(() =>
      backup({
        source,
        store: this.blocks,
        chunking: this.#init.chunking,
        chunker: this.#init.chunker,
        clock: this.#init.clock,
        author: this.id,
        host: this.#init.host ?? this.id,
        parent: parent && this.blocks.holds(parent) ? parent : null,
        progress: options.progress,
        signal: options.signal,
      }),
    );
    const s = result.snapshot.stats;
    this.#ledger.publish('snapshot-published', {
      root: result.cid,
      parent: result.snapshot.parent,
      time: result.snapshot.time,
      size: s.bytes,
      files: s.files,
      chunks: s.chunks,
    });
    await this.#save();
    const protect = options.protect ?? 'background';
    if (protect === 'wait') await this.#keeper.protect(result.cid.toString());
    else if (protect === 'background') await this.#keeper.schedulePush(result.cid.toString());
    else this.#keeper.poke();
    return { cid: result.cid, root: result.cid.toString(), parent: result.snapshot.parent?.toString() ?? null, stats: result.stats, warnings: result.warnings };
  }

  /** Every snapshot in the catalog, oldest first. */
  snapshots(): SnapshotRecord[] {
    return [...this.state().catalog.values()].sort((a, b) => a.time - b.time || (a.root < b.root ? -1 : 1));
  }

  /** `latest`, a full root CID, a unique prefix/suffix of one (>= 6 characters), or an ISO time (newest at or before it). */
  resolve(ref: string): SnapshotRecord {
    const all = this.snapshots();
    if (all.length === 0) throw new UnknownSnapshotError('the reserve has no snapshots yet');
    if (ref === 'latest') return all[all.length - 1];
    const exact = all.find((s) => s.root === ref);
    if (exact) return exact;
    const when = /^\d{4}-\d{2}-\d{2}/.test(ref) ? Date.parse(ref) : NaN;
    if (!Number.isNaN(when)) {
      const before = all.filter((s) => s.time <= when);
      if (before.length) return before[before.length - 1];
      throw new UnknownSnapshotError(`no snapshot was taken at or before ${ref}`);
    }
    const matches = ref.length >= 6 ? all.filter((s) => s.root.startsWith(ref) || s.root.endsWith(ref)) : [];
    if (matches.length === 1) return matches[0];
    if (matches.length > 1) throw new UnknownSnapshotError(`${JSON.stringify(ref)} matches ${matches.length} snapshots; give more characters`);
    throw new UnknownSnapshotError(`no snapshot ${JSON.stringify(ref)} in this reserve`);
  }

  /** Restore a snapshot (or part of it) into `target`, from whichever Boxes hold its blocks. */
  async restore(ref: string, target: TargetTree, options: { subpath?: TreePath; progress?: Progress; signal?: AbortSignal } = {}): Promise<BoxRestoreResult> {
    const rec = this.resolve(ref);
    const keeper = this.#keeper;
    await keeper.index(rec.root, rec.author); // manifests come to this Box first (they belong on every Box)
    const store = new NetworkBlockstore(this.blocks, this.client, (cid) => keeper.candidatesFor(cid));
    const result = await keeper.foreground(() =>
      restore({ store, target, chunking: this.#init.chunking, snapshot: parseCid(rec.root), subpath: options.subpath, progress: options.progress, signal: options.signal }),
    );
    return { root: rec.root, stats: result.stats };
  }

  /** Protection of every snapshot (copies counted among the Boxes that answer). */
  async protection(): Promise<Protection[]> {
    const out: Protection[] = [];
    for (const s of this.snapshots()) {
      try {
        out.push(await this.#keeper.protection(s.root));
      } catch {
        out.push({ root: s.root, chunks: s.chunks, atTarget: 0, belowTarget: 0, belowMinimum: 0, lost: 0, unknown: s.chunks, target: 0, minimum: 0, protected: false });
      }
    }
    return out;
  }

  members(): MemberStatus[] {
    return [...this.state().members.values()]
      .map((m) => ({
        id: m.id,
        status: m.status,
        self: m.id === this.id,
        reachable: m.id === this.id || this.#keeper.reachable(m.id),
        capacity: m.capacity,
        region: m.region,
        addresses: m.addresses,
      }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /**
   * Leave gracefully: stop being placed (capacity 0, told to every member), wait until the Boxes placed on its
   * blocks now hold them (they pull them; `progress` counts the copies), then announce the departure and make sure
   * the other members have it (`share`). Refused (LeaveRefusedError) for the only member,
   * and, without `force`, when fewer Boxes would remain than the minimum number of copies. An aborted or failed
   * hand-over (AbortedError, DrainIncompleteError) leaves this Box a member, placed as before.
   */
  async leave(options: { force?: boolean; progress?: Progress; signal?: AbortSignal; confirmMs?: number } = {}): Promise<LeaveResult> {
    this.#requireMember();
    const state = this.state();
    const remaining = activeMembers(state).filter((p) => p !== this.id);
    if (remaining.length === 0) {
      throw new LeaveRefusedError("this Box is the reserve's only member: there is no other Box to hand its blocks to (add a Box first, or just stop using this one)");
    }
    const minimum = state.config.replication.minimum;
    if (remaining.length < minimum && !options.force) {
      throw new LeaveRefusedError(
        `after this Box leaves, ${remaining.length} Box${remaining.length === 1 ? '' : 'es'} would remain, fewer than the minimum of ${minimum} copies: no snapshot could stay protected. Add a Box first, or leave anyway with --force`,
      );
    }
    // The whole catalog first: blocks of a snapshot this Box has not heard of yet would be left behind.
    await this.syncAll();
    // Then stop being placed (capacity 0: still a member, still a holder), and make sure every other member knows
    // before any block moves. Otherwise a Box handed a block it is not placed on yet, in its view, drops it again
    // (its placement still counts this Box's copy), and the block is down a copy once this Box is gone.
    const me = this.state().members.get(this.id)!;
    const info = (capacity: number) => (me.region === undefined ? { capacity, addresses: me.addresses } : { capacity, region: me.region, addresses: me.addresses });
    if (me.capacity > 0) this.#ledger.publish('box-updated', info(0));
    let moved: { held: number; copies: number };
    try {
      const told = await this.share({ timeoutMs: options.confirmMs });
      if (told.unconfirmed.length > 0) throw new DrainIncompleteError(`could not tell ${told.unconfirmed.join(', ')} that this Box is leaving; not leaving`);
      moved = await this.#keeper.drain({ progress: options.progress, signal: options.signal });
      if (options.signal?.aborted) throw new AbortedError('the leave was aborted; this Box is still a member');
    } catch (err) {
      if (me.capacity > 0) this.#ledger.publish('box-updated', info(me.capacity)); // placed again, as before
      throw err;
    }
    await this.#events.leaving();
    this.#ledger.leave('leaving gracefully');
    await this.#save();
    const shared = await this.share({ timeoutMs: options.confirmMs });
    return { ...moved, remaining: remaining.length, confirmedBy: shared.confirmed, unconfirmed: shared.unconfirmed };
  }

  /**
   * The member whose id is `ref`, or the only one whose id starts or ends with it (ids are long; people copy the
   * end that `reserve status` shows). UnknownBoxError (core/state/events.ts) when none or several match.
   */
  findMember(ref: string): BoxId {
    const members = [...this.state().members.keys()];
    const text = ref.trim().replace(/^…/, '');
    if (members.includes(text)) return text;
    const hits = text.length === 0 ? [] : members.filter((m) => m.startsWith(text) || m.endsWith(text));
    if (hits.length === 1) return hits[0];
    if (hits.length === 0) throw new UnknownBoxError(`no Box of this reserve has the id ${JSON.stringify(ref)} (see \`reserve status\`)`);
    throw new UnknownBoxError(`${JSON.stringify(ref)} matches ${hits.length} Boxes (${hits.join(', ')}); give more of the id`);
  }

  /**
   * Remove another Box for good (stolen, sold, broken beyond repair): it is decommissioned and the reserve secret
   * rotates, so it can never connect again; the keepers re-replicate its share at once, without waiting for the
   * repair grace period. Its blocks are not needed from it: a Box that can still hand them over should `leave`.
   */
  async decommission(ref: string, options: { reason?: string; confirmMs?: number } = {}): Promise<DecommissionResult> {
    this.#requireMember();
    const box = this.findMember(ref);
    if (box === this.id) throw new RemoveRefusedError('a Box cannot remove itself: let it leave instead (`reserve leave`), which hands its blocks over first');
    const before = this.state().members.get(box)!;
    if (before.status === 'decommissioned') throw new RemoveRefusedError(`${box} was decommissioned already`);
    const [, rotation] = this.#ledger.remove(box, 'decommissioned', options.reason ?? `decommissioned by ${this.id}`);
    await this.#save();
    await this.#events.decommissioned(box, options.reason);
    this.#keeper.poke();
    const shared = await this.share({ timeoutMs: options.confirmMs ?? 10_000 });
    return {
      box,
      was: before.status,
      generation: rotation.body.generation,
      active: activeMembers(this.state()).length,
      minimum: this.state().config.replication.minimum,
      confirmedBy: shared.confirmed,
      unconfirmed: shared.unconfirmed,
    };
  }

  #requireMember(): void {
    const me = this.state().members.get(this.id);
    if (!me || me.status !== 'active') throw new NotJoinedError(`this Box is not an active member of reserve ${this.#init.reserveId}`);
  }
}
