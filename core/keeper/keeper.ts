/**
 * The keeper: makes every Box hold exactly the blocks the merged state says it should.
 *
 * Rules (each Box applies them to itself, from the same merged state, so they agree without talking):
 *  - Manifest blocks (snapshot nodes, directories, chunk lists) go to EVERY member: any Box alone can list and plan
 *    the restore of every snapshot.
 *  - A chunk goes to the Boxes `place(chunk, view)` names. Each placement Box is responsible for its own replica:
 *    it pulls what it lacks from the other holders, reading from all of them in parallel (the candidates for each
 *    chunk are ordered by that chunk's own placement, so the load spreads across survivors). One responsible Box
 *    per missing replica: repair is neither skipped nor duplicated.
 *  - After a backup the author pushes each new block to its placement Boxes (and manifests to everyone); the
 *    push is recorded in the KvStore until done, so a restart resumes it. Pulls of a young snapshot wait
 *    `pushGraceMs` while its author is reachable, so the push and the pulls do not move the same bytes twice.
 *  - A Box drops a referenced chunk it is no longer placed on only after every Box of the chunk's placement has
 *    confirmed holding it (add a Box: the old holders hand over, then let go).
 *  - Unreferenced blocks (an interrupted backup's leftovers) are deleted only after `gcGraceMs` unreferenced and
 *    never while a local backup runs.
 *  - Liveness: a member unreachable for the configured repair grace period (with hysteresis: it must be back for
 *    `hysteresisMs` before its absence clock resets) is declared dead by exactly one Box: the smallest id among the
 *    active members that can still see each other. Only then does placement change and repair start, so a Box
 *    offline for an afternoon moves nothing.
 */
import type { CID } from 'multiformats/cid';
import { BlockCorruptError, BlockNotFoundError, type Blockstore } from '../blocks/blockstore.ts';
import { matchesCid, parseCid } from '../blocks/cid.ts';
import { AbortedError, ReserveError } from '../errors.ts';
import type { KvStore } from '../kv.ts';
import type { BoxId, Network } from '../net.ts';
import type { Clock, Progress } from '../ports.ts';
import { compileView } from '../placement/place.ts';
import type { CompiledPlacement, PlacementView } from '../placement/types.ts';
import { collectManifest } from '../snapshot/manifest-io.ts';
import type { ReserveLedger } from '../state/ledger.ts';
import { activeMembers, toPlacementView, type ReserveState } from '../state/reducer.ts';
import { mapLimit } from '../util/limit.ts';
import { BlockAbsentError, type BlockClient } from './block-client.ts';
import { filesNeeding } from './files.ts';
import { HoldingsIndex } from '../holdings/holdings-index.ts';
import { HoldingsGeometryMismatchError, UnsupportedCidError } from '../holdings/errors.ts';
import { reconcileWith, serveHoldings } from '../holdings/network.ts';
import { RemoteError } from '../net.ts';
import {
  BLOCKS_PROTOCOL,
  PING_PROTOCOL,
  decodeBlockRequest,
  encodeBlockResponse,
  packBits,
} from './protocol.ts';
import { inOrderReader, type TrackingBlockstore } from './tracking-store.ts';

/** What the keeper tells its Box (the Box turns these into reserve events). */
export type KeeperNotice =
  /** `snapshots`: with 'unrepairable', the snapshots (indexed here) that need the block. */
  | { type: 'corrupt-block'; cid: string; action: 'quarantined' | 'repaired' | 'unrepairable'; snapshots?: string[] }
  /**
   * Chunks of a snapshot that no member holds any more (every active member answered, none had a good copy): how
   * many, and the files that need them. Each lost chunk is reported once, by its first placement Box.
   */
  | { type: 'chunks-lost'; root: string; lost: number; files: string[]; fileCount: number }
  | { type: 'bad-copy'; cid: string; peer: BoxId }
  | { type: 'declared-dead'; box: BoxId; unreachableMs: number }
  /** A member's ping failed, the first failure since it last answered (`since`: this failure). */
  | { type: 'peer-unreachable'; box: BoxId; since: number }
  /**
   * A member that failed a ping answers again, but has not yet been back for `hysteresisMs`: for the owner it is
   * reachable (a reboot is not news); for the keeper its absence clock still runs until `peer-reachable`.
   */
  | { type: 'peer-answered'; box: BoxId }
  /** A member that had been unreachable has answered for `hysteresisMs`: its absence clock is reset. */
  | { type: 'peer-reachable'; box: BoxId }
  | { type: 'peer-departed'; box: BoxId }
  | { type: 'repaired'; blocks: number; bytes: number }
  | { type: 'dropped'; blocks: number }
  | { type: 'collected'; blocks: number }
  | { type: 'protected'; root: string }
  | { type: 'manifest-unavailable'; root: string; reason: string }
  | { type: 'manifest-available'; root: string }
  | { type: 'snapshot-lost'; root: string; author: BoxId; reason: string };

export interface KeeperOptions {
  ledger: ReserveLedger;
  network: Network;
  blocks: TrackingBlockstore;
  kv: KvStore;
  clock: Clock;
  client: BlockClient;
  /** Quarantine a block (set it aside, no longer served); the default deletes it. */
  quarantine?: (cid: CID) => Promise<void>;
  /** Between keeper rounds while there is work (default 5 s). */
  tickMs?: number;
  /** Idle rounds back off, doubling up to this (default 30 min, inside the default 1 h repair grace). */
  idleTickMs?: number;
  /** How long pulls of a new snapshot wait for its reachable author's push (default 60 s). */
  pushGraceMs?: number;
  /** How long a block must stay unreferenced before it is collected (default 1 h). */
  gcGraceMs?: number;
  /** Block transfers in flight during repair (default 8; 1 while a backup or restore runs). */
  repairConcurrency?: number;
  /** Deadline for a ping (default 5 s). */
  pingTimeoutMs?: number;
  /** Deadline for one holdings-protocol request (default: the network's). */
  requestTimeoutMs?: number;
  /** Holder reports (this Box's holdings summary in the shared state) at most this often (default 10 min). */
  reportEveryMs?: number;
  onNotice?: (n: KeeperNotice) => void;
}

/** Everything one snapshot needs, found by walking its manifest. */
export interface SnapshotIndex {
  root: string;
  /** Manifest blocks: the snapshot node, directories and their pages, chunk lists. */
  manifest: CID[];
  /** Distinct chunks. */
  chunks: CID[];
  /** The same CIDs as strings (computed once: rounds look every chunk up by key). */
  manifestKeys: string[];
  chunkKeys: string[];
}

export interface Protection {
  root: string;
  chunks: number;
  atTarget: number;
  belowTarget: number;
  belowMinimum: number;
  lost: number;
  /** Chunks with no reachable copy but a copy on a live member that could not be asked. */
  unknown: number;
  target: number;
  minimum: number;
  /** At least the minimum acceptable number of copies of every chunk. */
  protected: boolean;
}

const PUSH_PREFIX = 'keeper/push/';

/**
 * A block's identity as a short string, for sets that live for one comparison: its CID's bytes, one character per
 * byte. Unlike `toString()` (base32, kept on the CID object once made) it costs no encoding and leaves nothing behind.
 */
function blockKey(cid: CID): string {
  return String.fromCharCode.apply(null, cid.bytes as unknown as number[]);
}

export class DrainIncompleteError extends ReserveError {
  static override readonly name = 'DrainIncompleteError';
}

export class Keeper {
  readonly #o: KeeperOptions;
  readonly #index = new Map<string, SnapshotIndex>();
  readonly #lastSeen = new Map<BoxId, number>();
  readonly #downSince = new Map<BoxId, number>();
  readonly #upSince = new Map<BoxId, number>();
  readonly #unreferencedSince = new Map<string, number>();
  #placementKey = '';
  #placement: CompiledPlacement | null = null;
  #placementState: ReserveState | null = null;
  /** Derived from one merged state (the ledger hands out the same object until something changes). */
  #perState: { state: ReserveState | null; peers: BoxId[]; signature: string } = { state: null, peers: [], signature: '' };
  #view: PlacementView | null = null;
  #timer: (() => void) | null = null;
  #running: Promise<void> | null = null;
  #stopped = true;
  #foreground = 0;
  /** A drain is running: nothing is dropped meanwhile. */
  #draining = 0;
  #rounds = 0;
  /** Signature of what the last complete replication round saw; equal signature and nothing pending = skip. */
  #settled = '';
  #nextGcAt = Infinity;
  #interval = 0;
  #idle = false;
  /** poke() arrived while a round ran: another round follows it at once. */
  #repoke = false;
  /** Snapshots whose manifest could not be read, and those known lost (reported once each). */
  readonly #unavailable = new Set<string>();
  readonly #lost = new Set<string>();
  /**
   * Chunks found lost (every member answered, none had a good copy), with the membership they were found lost in:
   * not asked for again, and not holding rounds busy, until the membership changes (a Box presumed dead may come
   * back with its disk).
   */
  readonly #lostChunks = new Map<string, string>();
  /** Lost chunks this Box has reported (each once). */
  readonly #lostReported = new Set<string>();
  readonly #placedCache = new WeakMap<SnapshotIndex, { placement: CompiledPlacement; lists: readonly (readonly BoxId[])[] }>();
  readonly #expectedCache = new Map<BoxId, { placement: CompiledPlacement; indexes: SnapshotIndex[]; index: HoldingsIndex }>();
  /** Peers that do not answer the holdings protocol (asked with `has` instead). */
  readonly #noHoldings = new Set<BoxId>();
  #lastReportAt = -Infinity;
  /** Per snapshot index, which of its chunks the placement it was computed for gives this Box. */
  readonly #mine = new WeakMap<SnapshotIndex, { placement: CompiledPlacement; flags: Uint8Array }>();
  /** Every block the indexes of the last collection referenced (the same indexes give the same set). */
  #referenced: { indexes: SnapshotIndex[]; keys: Set<string> } | null = null;

  constructor(options: KeeperOptions) {
    this.#o = options;
  }

  get id(): BoxId {
    return this.#o.ledger.id;
  }

  get rounds(): number {
    return this.#rounds;
  }

  // ------------------------------------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    await this.#o.blocks.load();
    this.#o.network.handle(BLOCKS_PROTOCOL, (from, data) => this.#serveBlocks(from, data));
    this.#o.network.handle(PING_PROTOCOL, async () => new Uint8Array(0));
    serveHoldings(this.#o.network, () => this.#o.blocks.holdings);
    this.#stopped = false;
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.();
    this.#timer = null;
    await this.#running?.catch(() => undefined);
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer?.();
    this.#timer = this.#o.clock.setTimer(ms, () => {
      this.#timer = null;
      void this.round().finally(() => {
        const tick = this.#o.tickMs ?? 5_000;
        this.#interval = this.#idle ? Math.min(Math.max(this.#interval, tick) * 2, Math.max(this.#o.idleTickMs ?? 1_800_000, tick)) : tick;
        this.#schedule(this.#interval);
      });
    });
  }

  /** Mark a backup or restore as running: repair slows down and garbage collection waits. */
  async foreground<T>(fn: () => Promise<T>): Promise<T> {
    this.#foreground++;
    try {
      return await fn();
    } finally {
      this.#foreground--;
    }
  }

  /** Something changed (new state, a backup): run a round soon instead of after an idle back-off. */
  poke(): void {
    if (this.#stopped) return;
    this.#interval = 0;
    const running = this.#running;
    if (!running) return this.#schedule(0);
    // A round is running and may have read the state before this change (a push recorded after it looked): run
    // another as soon as it ends, rather than after the (possibly backed-off) interval.
    if (this.#repoke) return;
    this.#repoke = true;
    const after = () => {
      if (!this.#repoke) return;
      this.#repoke = false;
      this.#interval = 0;
      this.#schedule(0);
    };
    void running.then(after, after);
  }

  /** Run one keeper round now (rounds never overlap). */
  round(): Promise<void> {
    if (this.#running) return this.#running;
    this.#running = this.#round().finally(() => {
      this.#running = null;
      this.#rounds++;
    });
    return this.#running;
  }

  // ------------------------------------------------------------------------------------------- state

  state(): ReserveState {
    return this.#o.ledger.state();
  }

  /** The compiled placement for the current merged state (recompiled only when the view changes). */
  placement(): CompiledPlacement {
    const state = this.state();
    // The ledger hands out the same state object until something changes: skip rebuilding the view till then.
    if (state === this.#placementState && this.#placement) return this.#placement;
    this.#placementState = state;
    const view = toPlacementView(state);
    const key = JSON.stringify(view);
    if (key !== this.#placementKey || !this.#placement) {
      this.#placementKey = key;
      this.#view = view;
      this.#placement = compileView(view);
    }
    return this.#placement;
  }

  view(): PlacementView {
    this.placement();
    return this.#view!;
  }

  /** Members other than this Box that are active. */
  #peers(state = this.state()): BoxId[] {
    const c = this.#perState;
    if (c.state === state) return c.peers;
    const peers = activeMembers(state).filter((id) => id !== this.id);
    const members = [...state.members.values()].map((m) => `${m.id}:${m.status}:${m.capacity}:${m.region ?? ''}`).sort().join(',');
    this.#perState = { state, peers, signature: `${members}|${state.catalog.size}|${state.config.replication.target}` };
    return peers;
  }

  /** Another exchange with `peer` succeeded (a sync, a block): proof of life, so no ping is needed for a while. */
  noteSeen(peer: BoxId): void {
    if (this.#lastSeen.has(peer) || !this.#downSince.has(peer)) this.#lastSeen.set(peer, this.#o.clock.now());
  }

  reachable(peer: BoxId): boolean {
    return !this.#downSince.has(peer) && this.#lastSeen.has(peer);
  }

  // ------------------------------------------------------------------------------------------- serving

  async #serveBlocks(_from: BoxId, data: Uint8Array): Promise<Uint8Array> {
    const req = decodeBlockRequest(data);
    const blocks = this.#o.blocks;
    switch (req.op) {
      case 'get': {
        if (!blocks.holds(req.cid)) return encodeBlockResponse({ op: 'get' });
        let bytes: Uint8Array;
        try {
          bytes = await blocks.get(req.cid);
        } catch (e) {
          if (e instanceof BlockNotFoundError) return encodeBlockResponse({ op: 'get' });
          throw e;
        }
        if (!matchesCid(req.cid, bytes)) {
          // Our copy rotted: never hand it on; set it aside and get a healthy one.
          await this.#quarantine(req.cid);
          return encodeBlockResponse({ op: 'get' });
        }
        return encodeBlockResponse({ op: 'get', bytes });
      }
      case 'put': {
        if (!matchesCid(req.cid, req.bytes)) throw new BlockCorruptError(req.cid, 'the request');
        if (!blocks.holds(req.cid)) await blocks.put(req.cid, req.bytes);
        return encodeBlockResponse({ op: 'put', stored: true });
      }
      case 'has':
        return encodeBlockResponse({ op: 'has', bits: packBits(req.cids.map((c) => blocks.holds(c))) });
    }
  }

  async #quarantine(cid: CID): Promise<void> {
    if (this.#o.quarantine) await this.#o.quarantine(cid);
    else await this.#o.blocks.delete(cid);
    this.#o.blocks.forget(cid);
    this.#o.onNotice?.({ type: 'corrupt-block', cid: cid.toString(), action: 'quarantined' });
  }

  /** Called by the integrity monitor when a local block fails its hash: quarantine it and fetch a good copy. */
  async repairCorrupt(cid: CID): Promise<boolean> {
    await this.#quarantine(cid);
    try {
      const { bytes } = await this.#o.client.fetch(cid, this.#candidates(cid));
      await this.#o.blocks.put(cid, bytes);
      this.#o.onNotice?.({ type: 'corrupt-block', cid: cid.toString(), action: 'repaired' });
      return true;
    } catch {
      this.#o.onNotice?.({ type: 'corrupt-block', cid: cid.toString(), action: 'unrepairable', snapshots: this.snapshotsNeeding(cid.toString()) });
      return false;
    }
  }

  /** Snapshots (indexed on this Box) whose manifest or chunks include the block, sorted. */
  snapshotsNeeding(key: string): string[] {
    const out: string[] = [];
    for (const idx of this.#index.values()) if (idx.chunkKeys.includes(key) || idx.manifestKeys.includes(key)) out.push(idx.root);
    return out.sort();
  }

  // ------------------------------------------------------------------------------------------- manifests

  /** A manifest block: local if held (and intact), else fetched from the author or any member, then kept. */
  async #manifestBlock(cid: CID, author: BoxId): Promise<Uint8Array> {
    const blocks = this.#o.blocks;
    if (blocks.holds(cid)) {
      const bytes = await blocks.get(cid);
      if (matchesCid(cid, bytes)) return bytes;
      await this.#quarantine(cid);
    }
    const { bytes } = await this.#o.client.fetch(cid, [author, ...this.#peers()].filter((p) => p !== this.id));
    await blocks.put(cid, bytes);
    return bytes;
  }

  /** Walk a snapshot's manifest (fetching what is missing) and list its manifest blocks and chunks. */
  async index(root: string, author: BoxId): Promise<SnapshotIndex> {
    const cached = this.#index.get(root);
    if (cached) return cached;
    const { manifest, chunks } = await collectManifest(parseCid(root), (cid) => this.#manifestBlock(cid, author));
    const idx: SnapshotIndex = { root, manifest, chunks, manifestKeys: manifest.map(String), chunkKeys: chunks.map(String) };
    this.#index.set(root, idx);
    return idx;
  }

  /** Index every snapshot in the catalog that can be indexed now. */
  async indexAll(): Promise<SnapshotIndex[]> {
    const out: SnapshotIndex[] = [];
    const catalog = [...this.state().catalog.values()].sort((a, b) => a.time - b.time || (a.root < b.root ? -1 : 1));
    for (const rec of catalog) {
      if (this.#lost.has(rec.root)) continue;
      try {
        out.push(await this.index(rec.root, rec.author));
        if (this.#unavailable.delete(rec.root)) this.#o.onNotice?.({ type: 'manifest-available', root: rec.root });
      } catch (e) {
        if (!this.#unavailable.has(rec.root)) {
          this.#unavailable.add(rec.root);
          this.#o.onNotice?.({ type: 'manifest-unavailable', root: rec.root, reason: (e as Error).message });
        }
        // Every member answered and none has it, and its author is gone: the snapshot is lost. Say so once.
        const author = this.state().members.get(rec.author);
        const authorGone = rec.author !== this.id && (!author || author.status !== 'active');
        if (authorGone && this.#peers().every((p) => this.reachable(p))) {
          this.#lost.add(rec.root);
          this.#o.onNotice?.({ type: 'snapshot-lost', root: rec.root, author: rec.author, reason: (e as Error).message });
        }
      }
    }
    return out;
  }

  /** Snapshots this Box found lost (no member holds their manifest and their author is gone). */
  lostSnapshots(): string[] {
    return [...this.#lost].sort();
  }

  // ------------------------------------------------------------------------------------------- the round

  /** Candidate holders of a chunk, best first (for readers such as the restore path). */
  candidatesFor(cid: CID): BoxId[] {
    return this.#candidates(cid);
  }

  /** Candidate holders of a chunk: its placement Boxes in order, then every other active member. */
  #candidates(cid: CID): BoxId[] {
    const ranked = this.placement().rank(cid.multihash.digest);
    const peers = [...this.#peers(), ...[...this.state().members.values()].filter((m) => m.status === 'left' && m.id !== this.id).map((m) => m.id)];
    const set = new Set(peers);
    const out = ranked.filter((id) => id !== this.id && set.has(id));
    for (const p of peers) if (!out.includes(p)) out.push(p);
    // Reachable ones first, keeping the per-chunk order among them.
    return [...out.filter((p) => this.reachable(p)), ...out.filter((p) => !this.reachable(p))];
  }

  async #round(): Promise<void> {
    if (this.#stopped) return;
    const state = this.state();
    if (!state.members.has(this.id) || state.members.get(this.id)!.status !== 'active') return;
    await this.#liveness(state);
    await this.#resumePushes();
    const sig = this.#signature();
    const gcDue = this.#o.clock.now() >= this.#nextGcAt;
    this.#idle = sig === this.#settled && !gcDue && this.#downSince.size === 0;
    if (sig === this.#settled && !gcDue) {
      this.#maybeReport(); // settled: say what this Box holds (when it changed since the last report)
      return; // nothing changed since a round that left nothing to do
    }
    const indexes = await this.indexAll();
    const clean = await this.#replicate(indexes);
    await this.#collect(indexes);
    // What this round saw when it began: a change while it ran (a block quarantined, a peer gone) is not covered.
    this.#settled = clean ? sig : '';
    if (clean) this.#maybeReport();
  }

  /** What replication depends on: members and their status, the catalog, config, reachability, our holdings. */
  #signature(): string {
    const s = this.state();
    const reach = this.#peers(s).filter((p) => this.reachable(p)).join(',');
    return `${this.#perState.signature}|${reach}|${this.#o.blocks.version}|${this.#foreground}`;
  }

  async #liveness(state: ReserveState): Promise<void> {
    const now = () => this.#o.clock.now();
    const peers = this.#peers(state);
    // Forget liveness records of Boxes that are no longer active members (declared dead, left, removed).
    for (const p of [...this.#downSince.keys()]) if (!peers.includes(p)) this.#o.onNotice?.({ type: 'peer-departed', box: p });
    for (const map of [this.#downSince, this.#upSince, this.#lastSeen]) for (const p of [...map.keys()]) if (!peers.includes(p)) map.delete(p);
    const fresh = Math.max(this.#interval, this.#o.tickMs ?? 5_000) / 2;
    // Heard from recently (a sync or a transfer) and not in trouble: that is proof enough, skip the ping.
    const due = peers.filter((p) => this.#downSince.has(p) || now() - (this.#lastSeen.get(p) ?? -Infinity) >= fresh);
    // Its last ping failed: away, and not back on probation (answering, but for less than the hysteresis).
    const failing = (p: BoxId) => this.#downSince.has(p) && !this.#upSince.has(p);
    await Promise.all(
      due.map(async (p) => {
        try {
          await this.#o.network.request(p, PING_PROTOCOL, new Uint8Array(0), { timeoutMs: this.#o.pingTimeoutMs ?? 5_000 });
          this.#lastSeen.set(p, now());
          const wasFailing = failing(p);
          if (this.#downSince.has(p)) {
            if (!this.#upSince.has(p)) this.#upSince.set(p, now());
            if (now() - this.#upSince.get(p)! >= state.config.repair.hysteresisMs) {
              this.#downSince.delete(p);
              this.#upSince.delete(p);
              this.#o.onNotice?.({ type: 'peer-reachable', box: p });
            } else if (wasFailing) this.#o.onNotice?.({ type: 'peer-answered', box: p });
          }
        } catch {
          const wasFailing = failing(p);
          this.#upSince.delete(p);
          if (!wasFailing) {
            // Newly failing: gone, or gone again while its return was still on probation (the absence clock,
            // #downSince, keeps its first start either way).
            if (!this.#downSince.has(p)) this.#downSince.set(p, now());
            this.#o.onNotice?.({ type: 'peer-unreachable', box: p, since: now() });
          }
        }
      }),
    );
    // Declare dead whoever has been unreachable past the grace period. Exactly one Box does it: the smallest id
    // among the members that still see each other, and only while that group is a strict majority of the active
    // members, so the two sides of a long partition cannot declare each other dead. Declaring dead does not rotate
    // the secret (decommissioning does): a Box presumed dead that comes back re-announces itself and is reinstated.
    const grace = state.config.repair.graceMs;
    const active = peers.length + 1;
    for (const [p, since] of this.#downSince) {
      if (!peers.includes(p) || now() - since < grace) continue;
      const seeing = [this.id, ...peers.filter((q) => q !== p && !this.#downSince.has(q))].sort();
      if (seeing[0] !== this.id || seeing.length * 2 <= active) continue;
      try {
        this.#o.ledger.publish('box-declared-dead', { box: p, reason: `unreachable for ${Math.round((now() - since) / 1000)} s` });
        this.#o.onNotice?.({ type: 'declared-dead', box: p, unreachableMs: now() - since });
      } catch {
        // another Box declared it first (the reducer refuses a second declaration): nothing to do
      }
      this.#downSince.delete(p);
    }
  }

  /** For each chunk of `idx` (in order), 1 when `placement` gives it to this Box. */
  #mineFlags(idx: SnapshotIndex, placement: CompiledPlacement): Uint8Array {
    const cached = this.#mine.get(idx);
    if (cached && cached.placement === placement) return cached.flags;
    const flags = new Uint8Array(idx.chunks.length);
    for (let i = 0; i < flags.length; i++) if (placement.place(idx.chunks[i].multihash.digest).includes(this.id)) flags[i] = 1;
    this.#mine.set(idx, { placement, flags });
    return flags;
  }

  /** Pull missing chunks, drop confirmed surplus. True when nothing was left undone. */
  async #replicate(indexes: SnapshotIndex[]): Promise<boolean> {
    const state = this.state();
    const placement = this.placement();
    const blocks = this.#o.blocks;
    const now = this.#o.clock.now();
    const pushGrace = this.#o.pushGraceMs ?? 60_000;
    const missing: CID[] = [];
    const surplus: CID[] = [];
    const seen = new Set<string>();
    const dedupe = indexes.length > 1;
    let deferred = false;
    for (const idx of indexes) {
      const rec = state.catalog.get(idx.root);
      const young = rec !== undefined && rec.author !== this.id && now - rec.time < pushGrace && this.reachable(rec.author);
      const flags = this.#mineFlags(idx, placement);
      const keys = idx.chunkKeys;
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i];
        if (dedupe) {
          // an index lists distinct chunks; only several indexes can share one
          if (seen.has(key)) continue;
          seen.add(key);
        }
        const c = idx.chunks[i];
        const mine = flags[i] === 1;
        if (mine && !blocks.holds(key)) {
          if (this.#lostChunks.get(key) === this.#perState.signature) continue; // lost; nothing changed since
          if (!young) missing.push(c);
          else deferred = true;
        } else if (!mine && blocks.holds(key)) surplus.push(c);
      }
    }
    // Pull what placement gives this Box.
    let pulled = 0;
    let bytes = 0;
    let failed = 0;
    const concurrency = this.#foreground > 0 ? 1 : (this.#o.repairConcurrency ?? 8);
    const lost: CID[] = [];
    await mapLimit(missing, concurrency, async (cid) => {
      if (this.#stopped) return;
      // Stored since the round looked (pushed here, or fetched and kept by a restore running meanwhile): fetched once.
      if (blocks.holds(cid)) return;
      try {
        const got = await this.#o.client.fetch(cid, this.#candidates(cid));
        await blocks.put(cid, got.bytes);
        pulled++;
        bytes += got.bytes.length;
        this.#lostChunks.delete(cid.toString());
        this.#lostReported.delete(cid.toString());
      } catch (e) {
        // Every member answered and none had it: lost (said once). Otherwise the next round tries again.
        if (e instanceof BlockAbsentError && e.absent.length + e.corrupt.length > 0) lost.push(cid);
        else failed++;
      }
    });
    if (pulled > 0) this.#o.onNotice?.({ type: 'repaired', blocks: pulled, bytes });
    if (lost.length > 0) await this.#reportLost(lost, indexes);
    // Let go of what placement no longer gives this Box, once every placement Box confirms its copy.
    const kept = surplus.length > 0 ? await this.#dropConfirmed(surplus) : 0;
    return failed === 0 && kept === 0 && !deferred && indexes.length + this.#lost.size >= state.catalog.size;
  }

  /**
   * Chunks no member holds: remember them (until the membership changes) and say which snapshots and files lost
   * them. Each chunk is reported by its first placement Box only, so the reserve reports it once.
   */
  async #reportLost(lost: CID[], indexes: SnapshotIndex[]): Promise<void> {
    // The membership as it is now (it may have changed while the round pulled): who reports, and what to wait for.
    const placement = this.placement();
    this.#peers();
    const fresh = new Set<string>();
    for (const cid of lost) {
      const key = cid.toString();
      this.#lostChunks.set(key, this.#perState.signature);
      if (!this.#lostReported.has(key) && placement.place(cid.multihash.digest)[0] === this.id) {
        this.#lostReported.add(key);
        fresh.add(key);
      }
    }
    if (fresh.size === 0) return;
    const state = this.state();
    for (const idx of indexes) {
      const here = new Set(idx.chunkKeys.filter((k) => fresh.has(k)));
      if (here.size === 0) continue;
      const author = state.catalog.get(idx.root)?.author ?? this.id;
      try {
        const { files, count } = await filesNeeding(parseCid(idx.root), here, (cid) => this.#manifestBlock(cid, author));
        this.#o.onNotice?.({ type: 'chunks-lost', root: idx.root, lost: here.size, files, fileCount: count });
      } catch {
        // the manifest cannot be read now: the loss is still said, without the files (fileCount -1: unknown)
        this.#o.onNotice?.({ type: 'chunks-lost', root: idx.root, lost: here.size, files: [], fileCount: -1 });
      }
    }
  }

  /** Drop surplus chunks every placement Box confirms; returns how many had to be kept for now. */
  async #dropConfirmed(surplus: CID[]): Promise<number> {
    if (this.#draining > 0) return surplus.length; // leaving: a source for its new keepers; an aborted leave finds all
    const placement = this.placement();
    const byPeer = new Map<BoxId, CID[]>();
    for (const c of surplus) for (const p of placement.place(c.multihash.digest)) (byPeer.get(p) ?? byPeer.set(p, []).get(p)!).push(c);
    const confirmed = new Map<string, number>();
    await Promise.all(
      [...byPeer].map(async ([peer, cids]) => {
        try {
          // A targeted, live question: right after a change most of what the peer should hold differs from what it
          // holds (it is still pulling, or has its own surplus to drop), so comparing whole sets would cost more.
          const bits = await this.#o.client.has(peer, cids);
          cids.forEach((c, i) => {
            if (bits[i]) confirmed.set(c.toString(), (confirmed.get(c.toString()) ?? 0) + 1);
          });
        } catch {
          // unreachable: its chunks stay here
        }
      }),
    );
    let dropped = 0;
    for (const c of surplus) {
      if ((confirmed.get(c.toString()) ?? 0) < placement.place(c.multihash.digest).length) continue;
      await this.#o.blocks.delete(c);
      dropped++;
    }
    if (dropped > 0) this.#o.onNotice?.({ type: 'dropped', blocks: dropped });
    return surplus.length - dropped;
  }

  async #collect(indexes: SnapshotIndex[]): Promise<void> {
    if (this.#foreground > 0) {
      this.#nextGcAt = this.#o.clock.now();
      return;
    }
    const last = this.#referenced;
    let referenced: Set<string>;
    if (last && last.indexes.length === indexes.length && last.indexes.every((idx, i) => idx === indexes[i])) referenced = last.keys;
    else {
      referenced = new Set<string>();
      for (const idx of indexes) {
        for (const k of idx.manifestKeys) referenced.add(k);
        for (const k of idx.chunkKeys) referenced.add(k);
      }
      this.#referenced = { indexes, keys: referenced };
    }
    // Only collect when every catalog entry could be indexed: an unindexed snapshot may need anything.
    if (indexes.length + this.#lost.size < this.state().catalog.size) return;
    const now = this.#o.clock.now();
    const grace = this.#o.gcGraceMs ?? 60 * 60 * 1000;
    const doomed: string[] = [];
    let next = Infinity;
    for (const key of this.#o.blocks.heldKeys()) {
      if (referenced.has(key)) {
        this.#unreferencedSince.delete(key);
        continue;
      }
      let since = this.#unreferencedSince.get(key);
      if (since === undefined) this.#unreferencedSince.set(key, (since = now));
      if (now - since >= grace) doomed.push(key);
      else next = Math.min(next, since + grace);
    }
    for (const key of [...this.#unreferencedSince.keys()]) if (!this.#o.blocks.holds(key)) this.#unreferencedSince.delete(key);
    this.#nextGcAt = next;
    for (const key of doomed) {
      await this.#o.blocks.delete(parseCid(key));
      this.#unreferencedSince.delete(key);
    }
    if (doomed.length > 0) this.#o.onNotice?.({ type: 'collected', blocks: doomed.length });
  }

  // ------------------------------------------------------------------------------------------- push

  /**
   * Record that a new snapshot must be pushed (manifests to every member, chunks to their placement Boxes) and
   * start a round to do it. The record stays in the KvStore until every peer has its share, so a crash or
   * restart resumes the push rather than starting over.
   */
  async schedulePush(root: string): Promise<void> {
    await this.#recordPush(root);
    this.poke();
  }

  /** Push now and report the snapshot's protection. */
  async protect(root: string): Promise<Protection> {
    await this.#recordPush(root);
    await this.#push(root);
    return this.protection(root);
  }

  #recordPush(root: string): Promise<void> {
    return this.#o.kv.put(PUSH_PREFIX + root, new TextEncoder().encode(root));
  }

  async #resumePushes(): Promise<void> {
    for await (const [key] of this.#o.kv.list(PUSH_PREFIX)) {
      if (this.#stopped) return;
      await this.#push(key.slice(PUSH_PREFIX.length)).catch(() => undefined);
    }
  }

  async #push(root: string): Promise<void> {
    const idx = await this.index(root, this.id);
    const peers = this.#peers();
    const placement = this.placement();
    const perPeer = new Map<BoxId, CID[]>();
    for (const p of peers) perPeer.set(p, [...idx.manifest]);
    for (const c of idx.chunks) for (const p of placement.place(c.multihash.digest)) if (p !== this.id) perPeer.get(p)?.push(c);
    let complete = true;
    await Promise.all(
      [...perPeer].map(async ([peer, cids]) => {
        try {
          const has = await this.#peerHolds(peer, cids, placement, this.#indexed(), false);
          const need = cids.filter((_, i) => !has[i]);
          await this.#o.client.putMany(peer, need, inOrderReader(this.#o.blocks, need), { handOver: this.#o.blocks.handsOverReads });
        } catch {
          complete = false; // the peer is down or failed mid-way; the next round resumes from what it has
        }
      }),
    );
    if (complete) {
      await this.#o.kv.delete(PUSH_PREFIX + root);
      this.#o.onNotice?.({ type: 'protected', root });
    }
  }

  /**
   * Before a graceful leave, once no Box places anything on this one any more (its capacity 0, known to every
   * member): wait until the Boxes that placement now gives each referenced block this Box holds have a copy. They
   * pull those themselves, each new keeper its own replica, once, from any holder (this Box too), so nothing moves
   * twice. Nothing is dropped here meanwhile. `progress` counts the copies they lacked at the first look. Throws
   * DrainIncompleteError when no copy lands for `stallMs` (default 2 min) while some are missing (a new keeper
   * unreachable, or full), AbortedError when `signal` fires; this Box must not leave then.
   */
  async drain(options: { progress?: Progress; signal?: AbortSignal; stallMs?: number } = {}): Promise<{ held: number; copies: number }> {
    this.#draining++;
    try {
      return await this.#drain(options);
    } finally {
      this.#draining--;
    }
  }

  async #drain(options: { progress?: Progress; signal?: AbortSignal; stallMs?: number }): Promise<{ held: number; copies: number }> {
    const { progress, signal } = options;
    const clock = this.#o.clock;
    const stallMs = options.stallMs ?? 120_000;
    const indexes = await this.indexAll();
    // A snapshot whose manifest cannot be read here has chunks this Box cannot name: it may hold the only copy.
    const indexed = new Set(indexes.map((i) => i.root));
    const unreadable = [...this.state().catalog.keys()].filter((root) => !indexed.has(root) && !this.#lost.has(root));
    if (unreadable.length) throw new DrainIncompleteError(`cannot read the manifest of snapshot ${unreadable.sort().join(', ')} to know which of its blocks must stay; not leaving`);
    const view = this.view();
    const without = compileView({ ...view, keepers: view.keepers.map((k) => (k.id === this.id ? { ...k, live: false } : k)) });
    const missing = new Map<BoxId, CID[]>();
    const seen = new Set<string>();
    for (const idx of indexes) {
      for (const c of idx.chunks) {
        const key = c.toString();
        if (seen.has(key) || !this.#o.blocks.holds(key)) continue;
        seen.add(key);
        for (const p of without.place(c.multihash.digest)) (missing.get(p) ?? missing.set(p, []).get(p)!).push(c);
      }
    }
    const checkAborted = () => {
      if (signal?.aborted) throw new AbortedError('the leave was aborted; this Box is still a member');
    };
    let copies = -1;
    let lastCopy = clock.now();
    let waitMs = 250;
    for (;;) {
      checkAborted();
      const unreachable: BoxId[] = [];
      let landed = 0;
      await Promise.all(
        [...missing].map(async ([peer, cids]) => {
          try {
            const has = await this.#o.client.has(peer, cids);
            const still = cids.filter((_, i) => !has[i]);
            landed += cids.length - still.length;
            if (still.length) missing.set(peer, still);
            else missing.delete(peer);
          } catch {
            unreachable.push(peer);
          }
        }),
      );
      checkAborted();
      const left = [...missing.values()].reduce((n, l) => n + l.length, 0);
      if (copies < 0) {
        copies = left; // what the new keepers lacked at the first look
        progress?.total?.(copies);
      } else if (landed > 0) progress?.advance(landed);
      if (left === 0) return { held: seen.size, copies };
      if (landed > 0) {
        lastCopy = clock.now();
        waitMs = 250;
      } else if (clock.now() - lastCopy >= stallMs) {
        const who = [...missing].map(([p, l]) => `${p} lacks ${l.length}${unreachable.includes(p) ? ' (unreachable)' : ''}`);
        throw new DrainIncompleteError(`no new copy of this Box's blocks for ${Math.round(stallMs / 1000)} s: ${who.sort().join(', ')}; not leaving`);
      }
      await new Promise<void>((resolve) => clock.setTimer(waitMs, resolve));
      waitMs = Math.min(waitMs * 2, 5_000);
    }
  }

  // ------------------------------------------------------------------------------------------- holdings

  /** The indexed snapshots of the current catalog, in catalog order. */
  #indexed(): SnapshotIndex[] {
    const out: SnapshotIndex[] = [];
    for (const rec of this.state().catalog.values()) {
      const idx = this.#index.get(rec.root);
      if (idx) out.push(idx);
    }
    return out;
  }

  /** Each chunk's placement Boxes, per index and placement (computed once). */
  #placed(idx: SnapshotIndex, placement: CompiledPlacement): readonly (readonly BoxId[])[] {
    const cached = this.#placedCache.get(idx);
    if (cached && cached.placement === placement) return cached.lists;
    const lists = idx.chunks.map((c) => placement.place(c.multihash.digest));
    this.#placedCache.set(idx, { placement, lists });
    return lists;
  }

  /**
   * What `peer` should hold under `placement`: every manifest block of `indexes`, and the chunks placed on it, as a
   * holdings index (sizes unknown: 0). Kept per peer until the placement or the indexes change.
   */
  #expected(peer: BoxId, placement: CompiledPlacement, indexes: readonly SnapshotIndex[]): HoldingsIndex {
    const cached = this.#expectedCache.get(peer);
    if (cached && cached.placement === placement && cached.indexes.length === indexes.length && cached.indexes.every((x, i) => x === indexes[i])) return cached.index;
    const index = new HoldingsIndex();
    const add = (cid: CID) => {
      try {
        index.add(cid, 0);
      } catch (e) {
        if (!(e instanceof UnsupportedCidError)) throw e;
      }
    };
    for (const idx of indexes) {
      for (const m of idx.manifest) add(m);
      const lists = this.#placed(idx, placement);
      for (let i = 0; i < lists.length; i++) if (lists[i].includes(peer)) add(idx.chunks[i]);
    }
    this.#expectedCache.set(peer, { placement, indexes: [...indexes], index });
    return index;
  }

  /**
   * Which of `cids` `peer` holds. Compares what the peer should hold (under `placement`, for `indexes`) with its
   * holdings index through the holdings protocol: O(d log n) hashes for d differences among n blocks, instead of a
   * `has` query naming every block. Without `live`, a published holder report equal to what the peer should hold
   * settles it without asking at all (fine for pushing and for status; letting go of a copy asks live). Peers that
   * do not speak the holdings protocol get `has` queries.
   */
  async #peerHolds(peer: BoxId, cids: readonly CID[], placement: CompiledPlacement, indexes: readonly SnapshotIndex[], live: boolean): Promise<boolean[]> {
    if (cids.length === 0) return [];
    if (this.#noHoldings.has(peer)) return this.#o.client.has(peer, cids);
    const expected = this.#expected(peer, placement, indexes);
    const report = live ? undefined : this.state().holders.get(peer);
    let lacks: Set<string>;
    let extra: Set<string>;
    try {
      const r = await reconcileWith(this.#o.network, peer, expected, {
        timeoutMs: this.#o.requestTimeoutMs,
        remoteReport: report ? { count: report.count, bytes: report.bytes, root: report.root } : undefined,
      });
      lacks = new Set(r.onlyLocal.map(blockKey));
      extra = new Set(r.onlyRemote.map(blockKey));
    } catch (e) {
      if (e instanceof RemoteError && (e.remoteName === 'UnsupportedProtocolError' || e.remoteName === HoldingsGeometryMismatchError.name)) {
        this.#noHoldings.add(peer);
        return this.#o.client.has(peer, cids);
      }
      throw e;
    }
    if (lacks.size === 0 && extra.size === 0) return cids.map((c) => expected.has(c));
    return cids.map((c) => {
      const key = blockKey(c);
      return lacks.has(key) ? false : extra.has(key) || expected.has(c);
    });
  }

  /**
   * Publish this Box's holder report (count, bytes, root of its holdings) when it changed, at most once per
   * `reportEveryMs`: peers then know it holds what they expect without asking.
   */
  #maybeReport(): void {
    const h = this.#o.blocks.holdings;
    const state = this.state();
    const mine = state.holders.get(this.id);
    const root = h.root();
    if (mine && mine.count === h.count && mine.root.length === root.length && mine.root.every((b, i) => b === root[i])) return;
    const now = this.#o.clock.now();
    if (now - this.#lastReportAt < (this.#o.reportEveryMs ?? 600_000)) return;
    this.#lastReportAt = now;
    try {
      this.#o.ledger.publish('holder-report', { count: h.count, bytes: h.bytes, root });
    } catch {
      // not an active member now: nothing to report
    }
  }

  // ------------------------------------------------------------------------------------------- status

  /** Count the copies of every chunk of a snapshot among this Box and the members that answer. */
  async protection(root: string): Promise<Protection> {
    const state = this.state();
    const rec = state.catalog.get(root);
    const idx = await this.index(root, rec?.author ?? this.id);
    const counts = new Int32Array(idx.chunks.length);
    const unknown = new Uint8Array(idx.chunks.length);
    idx.chunks.forEach((c, i) => {
      if (this.#o.blocks.holds(c)) counts[i]++;
    });
    await Promise.all(
      this.#peers(state).map(async (peer) => {
        try {
          const bits = await this.#peerHolds(peer, idx.chunks, this.placement(), this.#indexed(), false);
          bits.forEach((b, i) => {
            if (b) counts[i]++;
          });
        } catch {
          idx.chunks.forEach((_, i) => (unknown[i] = 1));
        }
      }),
    );
    const target = Math.min(state.config.replication.target, Math.max(activeMembers(state).length, 1));
    const minimum = Math.min(state.config.replication.minimum, target);
    const p: Protection = { root, chunks: idx.chunks.length, atTarget: 0, belowTarget: 0, belowMinimum: 0, lost: 0, unknown: 0, target, minimum, protected: false };
    counts.forEach((n, i) => {
      if (n === 0) {
        if (unknown[i]) p.unknown++;
        else p.lost++;
      } else if (n < minimum) p.belowMinimum++;
      else if (n < target) p.belowTarget++;
      else p.atTarget++;
    });
    p.protected = p.lost === 0 && p.unknown === 0 && p.belowMinimum === 0;
    return p;
  }
}
