/**
 * A Box's replica of the reserve's shared state: the CRDT document of the current epoch, the incremental
 * reducer over it, the Box's own clock and sequence numbers, and compaction. This is what the rest of a Box uses:
 *
 * - the keeper and CLI: `state()`, `publish(kind, body)`, `join`, `leave`, `remove`, `rotateSecret`;
 * - the network layer: `onUpdate` (messages to gossip), `receive(eventBytes)` (one event), `stateVector()` /
 *   `diff(stateVector)` / `applyUpdate(message)` (the sync handshake: each side sends its state vector, answers
 *   the other's with a diff, and applies the answer);
 * - the runtime: `maybeCheckpoint()` now and then, `save()` / `ReserveLedger.load()` across restarts.
 *
 * Sync messages are dag-cbor `{ v: 1, r: reserveId, e: epoch, sv + hw | u | ev }`. Within one epoch they carry
 * the CRDT backend's own bytes (state vector `sv`, update `u`). Across epochs the answer to a state vector is a
 * list of event bytes `ev`: the sender's epoch checkpoints and its events above the asker's per-author high-water
 * marks `hw`. The receiver adopts any checkpoint among them (moving to a newer epoch) and adds what its own epoch
 * does not cover; `needsSync` tells the network layer when the two still differ and another round is due. A CRDT
 * update `u` of another epoch (a gossiped change) is decoded entry by entry the same way.
 *
 * Nothing a peer sends reaches the state unchecked: every entry's id must be the hash of its bytes, and the bytes
 * must decode and verify (events.ts) before the reducer sees them. Junk in a peer's document is counted and
 * skipped.
 */
import * as dagCbor from '@ipld/dag-cbor';
import { ReserveError } from '../errors.ts';
import type { BoxId } from '../net.ts';
import type { Clock, Random } from '../ports.ts';
import {
  baseOf,
  checkpointAuthorized,
  DEFAULT_CHECKPOINT_EVERY,
  designatedProposer,
  epochIdOf,
  frontier,
  GENESIS_EPOCH,
  isCovered,
  proposeCut,
} from './compaction.ts';
import type { CheckpointEvent } from './compaction.ts';
import { CrdtUpdateError } from './crdt.ts';
import type { CrdtBackend, CrdtBackendFactory, CrdtEntry } from './crdt.ts';
import { joinKeySigner, seal, UnsealError } from './crypto.ts';
import type { Signer, Unsealer } from './crypto.ts';
import { createEvent, decodeEvent, joinProofInput, MalformedEventError, MAX_EVENT_BYTES, NotAMemberError, peekEvent, sealContext } from './events.ts';
import type { BodyByKind, StateEvent, StateEventKind, StateEventOf } from './events.ts';
import { ClockDriftError, HybridClock } from './hlc.ts';
import { StateReducer, throwRejection } from './reducer.ts';
import type { ReserveState } from './reducer.ts';
import { emptySummary, joinSummaries } from './summary.ts';
import type { Summary } from './summary.ts';

const MESSAGE_VERSION = 1;
/** Diffs kept for repeated state vectors (a reserve has a handful of members; see #diffs). */
const DIFF_CACHE = 8;
const MAX_MESSAGE_BYTES = 512 * 1024 * 1024;

/** A sync message that does not decode, or belongs to another reserve. */
export class BadSyncMessageError extends ReserveError {
  static override readonly name = 'BadSyncMessageError';
}

/** This Box holds no secret (of a current generation) to prove in a join, or no key to receive secrets with. */
export class NoSecretError extends ReserveError {
  static override readonly name = 'NoSecretError';
}

/** A saved ledger that does not load. */
export class BadSavedLedgerError extends ReserveError {
  static override readonly name = 'BadSavedLedgerError';
}

export interface LedgerOptions {
  reserveId: string;
  signer: Signer;
  clock: Clock;
  random: Random;
  backend: CrdtBackendFactory;
  /** Opens secrets sealed to this Box (needed to join and to follow secret rotations). */
  unsealer?: Unsealer;
  /** Secret generations this Box holds (generation -> secret). */
  secrets?: ReadonlyMap<number, Uint8Array>;
  /** Called when this Box learns a new secret generation (from a rotation sealed to it, or one it made). */
  onSecret?: (generation: number, secret: Uint8Array) => void;
  /** Uncompacted events that make a Box consider proposing a checkpoint. */
  checkpointEvery?: number;
  /** See compaction.ts PENDING_GRACE_MS. */
  pendingGraceMs?: number;
  /**
   * A cache of event ids whose signatures this process has already verified, shared between ledgers (e.g. a
   * simulator running many Boxes, or the benchmark). The ledger adds to it and never clears it. Without it, each
   * ledger keeps its own, bounded to its current and previous epoch.
   */
  verified?: Set<string>;
  maxDriftMs?: number;
}

export interface ReceiveResult {
  id: string;
  /** added: new in this epoch; duplicate: already held; covered: already compacted; checkpoint: adopted. */
  status: 'added' | 'duplicate' | 'covered' | 'checkpoint';
  /** Set when the event is held but has no effect yet (or at all): its rejection's error name. */
  rejected?: string;
}

export interface ApplyResult {
  /** Events newly added to the state. */
  added: number;
  /** Entries that failed validation (junk, bad signatures) and were skipped. */
  invalid: number;
  /** The update holds changes that build on ones this replica lacks: run a state-vector sync with the sender. */
  needsSync: boolean;
  /** This replica moved to a newer epoch while applying. */
  epochChanged: boolean;
}

export interface LedgerStats {
  epoch: string;
  /** Checkpoints the epoch started from. */
  baseCheckpoints: number;
  /** Events in the epoch not yet compacted. */
  uncompacted: number;
  /** Entries in the CRDT document. */
  documentEntries: number;
  /** Bytes of the document's full encoding (computed on request). */
  documentBytes?: number;
  checkpointsAdopted: number;
}

interface SyncMessage {
  v: number;
  r: string;
  e: string;
  /** The sender's CRDT state vector (same epoch: the receiver answers with a CRDT diff). */
  sv?: Uint8Array;
  /** Per author, the sequence number up to which the sender holds every event (answers across epochs). */
  hw?: Array<[BoxId, number]>;
  /** A CRDT update of epoch `e`. */
  u?: Uint8Array;
  /** Event bytes (answers across epochs: the sender's checkpoints and the events the receiver lacks). */
  ev?: Uint8Array[];
}

/** FNV-1a over the bytes: a cheap first test before comparing cached messages byte by byte. */
function hashBytes(b: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return h >>> 0;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function decodeMessage(bytes: Uint8Array, reserveId: string): SyncMessage {
  if (bytes.byteLength > MAX_MESSAGE_BYTES) throw new BadSyncMessageError('sync message too large');
  let m: unknown;
  try {
    m = dagCbor.decode(bytes);
  } catch (cause) {
    throw new BadSyncMessageError('sync message is not dag-cbor', { cause });
  }
  const msg = m as SyncMessage;
  if (msg === null || typeof msg !== 'object' || msg.v !== MESSAGE_VERSION || typeof msg.e !== 'string' || typeof msg.r !== 'string') {
    throw new BadSyncMessageError('not a version 1 sync message');
  }
  if (msg.r !== reserveId) throw new BadSyncMessageError(`sync message of reserve ${msg.r.slice(0, 64)}, not ${reserveId}`);
  if (msg.sv !== undefined && !(msg.sv instanceof Uint8Array)) throw new BadSyncMessageError('sv must be bytes');
  if (msg.u !== undefined && !(msg.u instanceof Uint8Array)) throw new BadSyncMessageError('u must be bytes');
  if (msg.ev !== undefined && (!Array.isArray(msg.ev) || !msg.ev.every((b) => b instanceof Uint8Array))) throw new BadSyncMessageError('ev must be a list of bytes');
  if (
    msg.hw !== undefined &&
    (!Array.isArray(msg.hw) || !msg.hw.every((x) => Array.isArray(x) && x.length === 2 && typeof x[0] === 'string' && Number.isSafeInteger(x[1]) && (x[1] as number) >= 0))
  ) {
    throw new BadSyncMessageError('hw must be a list of [box, seq]');
  }
  return msg;
}

/** One Box's replica of the reserve's shared state. */
export class ReserveLedger {
  readonly reserveId: string;
  readonly #o: LedgerOptions;
  readonly #ctx: { reserveId: string; verified: Set<string> };
  #previousVerified = new Set<string>();
  #hlc: HybridClock;
  #seq = 0;
  #secrets: Map<number, Uint8Array>;
  #base: Summary = emptySummary();
  #genesis: CheckpointEvent[] = [];
  #epoch = GENESIS_EPOCH;
  #doc: CrdtBackend;
  #unsubscribe: () => void = () => {};
  #reducer: StateReducer;
  #cpSeqs = new Map<BoxId, Set<number>>();
  #listeners = new Set<(message: Uint8Array) => void>();
  #adopted = 0;
  /** While set, local document writes are not gossiped (they are peers' events or carried-over ones). */
  #quiet = false;
  #invalid = 0;
  #queue: CheckpointEvent[] = [];
  /** A join or rotation arrived: look for a secret sealed to this Box once the current operation is done. */
  #secretCheck = false;
  /**
   * Sync messages are pure functions of the replica's contents, and an idle reserve asks for the same ones again
   * and again (every anti-entropy round, from every peer): this replica's state-vector message, and the diffs
   * answered to the last few distinct state vectors (one per peer, as each peer's bytes differ in order), kept
   * until anything changes (#changed, called on every path that can change the replica).
   */
  #svMessage: Uint8Array | undefined;
  #diffs: Array<{ request: Uint8Array; hash: number; answer: Uint8Array }> = [];
  /** Bumped by every change (#changed); an update message that changed nothing, at the version it left. */
  #version = 0;
  #noop: { version: number; message: Uint8Array } | undefined;

  constructor(options: LedgerOptions) {
    this.#o = options;
    this.reserveId = options.reserveId;
    this.#ctx = { reserveId: options.reserveId, verified: options.verified ?? new Set() };
    this.#hlc = new HybridClock(options.clock, { maxDriftMs: options.maxDriftMs });
    this.#secrets = new Map(options.secrets ?? []);
    this.#reducer = new StateReducer(options.reserveId);
    this.#doc = this.#openDocument([], []);
  }

  /** A ledger from `save()` bytes. Every event in it is checked again. Throws BadSavedLedgerError. */
  static load(options: LedgerOptions, saved: Uint8Array): ReserveLedger {
    let v: { v?: unknown; r?: unknown; g?: unknown; d?: unknown; s?: unknown; t?: unknown };
    try {
      v = dagCbor.decode(saved) as typeof v;
    } catch (cause) {
      throw new BadSavedLedgerError('the saved ledger is not dag-cbor', { cause });
    }
    if (v === null || typeof v !== 'object' || v.v !== 1 || v.r !== options.reserveId || !Array.isArray(v.g) || !(v.d instanceof Uint8Array)) {
      throw new BadSavedLedgerError(`not a saved ledger of reserve ${options.reserveId}`);
    }
    const ledger = new ReserveLedger(options);
    const genesis: CheckpointEvent[] = [];
    for (const bytes of v.g as unknown[]) {
      let ev: StateEvent;
      try {
        if (!(bytes instanceof Uint8Array)) throw new BadSavedLedgerError('bad checkpoint in saved ledger');
        ev = decodeEvent(bytes, ledger.#ctx);
      } catch (cause) {
        throw new BadSavedLedgerError('a checkpoint in the saved ledger does not verify', { cause });
      }
      if (ev.kind !== 'checkpoint') throw new BadSavedLedgerError('saved ledger epoch starts from a non-checkpoint');
      genesis.push(ev);
    }
    ledger.#genesis = frontier(genesis);
    ledger.#base = baseOf(ledger.#genesis);
    ledger.#epoch = epochIdOf(ledger.#genesis);
    ledger.#reducer = new StateReducer(ledger.reserveId, ledger.#base);
    ledger.#unsubscribe();
    ledger.#doc.destroy();
    try {
      ledger.#doc = options.backend({ random: options.random, state: v.d });
    } catch (cause) {
      throw new BadSavedLedgerError('the saved document does not load', { cause });
    }
    ledger.#cpSeqs = new Map();
    for (const c of ledger.#genesis) ledger.#noteCheckpointSeq(c);
    ledger.#unsubscribe = ledger.#doc.onUpdate((c) => ledger.#onDocChange(c.added, c.origin, c.update));
    if (typeof v.s === 'number' && Number.isSafeInteger(v.s)) ledger.#seq = v.s;
    if (Array.isArray(v.t) && v.t.length === 2 && v.t.every((x) => Number.isSafeInteger(x) && x >= 0)) {
      ledger.#hlc = new HybridClock(options.clock, { last: { wall: v.t[0] as number, logical: v.t[1] as number }, maxDriftMs: options.maxDriftMs });
    }
    ledger.#ingestEntries([...ledger.#doc.entries()], 'document');
    ledger.#flush();
    return ledger;
  }

  /** This Box's id. */
  get id(): BoxId {
    return this.#o.signer.id;
  }

  /** The current epoch's id ('genesis' before the first checkpoint). */
  get epoch(): string {
    return this.#epoch;
  }

  /** The merged state (cached until the next change). */
  state(): ReserveState {
    return this.#reducer.state();
  }

  /** Secret generations this Box holds. */
  secrets(): ReadonlyMap<number, Uint8Array> {
    return this.#secrets;
  }

  /** The base summary the current epoch started from. */
  baseSummary(): Summary {
    return this.#base;
  }

  /** The events of the current epoch that are not compacted (checkpoints excluded). */
  uncompacted(): StateEvent[] {
    return [...this.#reducer.events()];
  }

  stats(options: { measure?: boolean } = {}): LedgerStats {
    const s: LedgerStats = {
      epoch: this.#epoch,
      baseCheckpoints: this.#genesis.length,
      uncompacted: this.#reducer.size,
      documentEntries: this.#doc.size,
      checkpointsAdopted: this.#adopted,
    };
    if (options.measure === true) s.documentBytes = this.#doc.encodeState().byteLength;
    return s;
  }

  // ---------------------------------------------------------------------------------------------- local

  /**
   * Sign, stamp and add an event of this Box. Throws (and changes nothing) when the reserve would reject it:
   * NotAMemberError, StaleGenerationError, ... A join whose generation this replica does not know yet is allowed
   * (a new Box publishes its join before it has synced).
   */
  publish<K extends StateEventKind>(kind: K, body: BodyByKind[K]): StateEventOf<K> {
    const hlc = new HybridClock(this.#o.clock, { last: this.#hlc.last, maxDriftMs: this.#o.maxDriftMs });
    const created = createEvent(this.#o.signer, this.#ctx, { seq: this.#seq + 1, at: hlc.now() }, kind, body);
    const ev = created as unknown as StateEvent;
    if (kind !== 'checkpoint') {
      const rej = this.#reducer.judge(ev);
      const allowed = rej === undefined || (kind === 'box-joined' && rej.pending);
      if (!allowed) throwRejection(rej);
    }
    this.#hlc = hlc;
    this.#seq = ev.seq;
    this.#ingest(ev, 'local');
    this.#flush();
    return created;
  }

  /**
   * Join (or rejoin, or re-announce) with the newest secret generation this Box holds. The proof is made with the
   * generation's join key; the Box's X25519 key rides along so future secrets can be sealed to it.
   */
  join(info: { capacity: number; region?: string; addresses: string[] }): StateEventOf<'box-joined'> {
    const unsealer = this.#o.unsealer;
    if (unsealer === undefined) throw new NoSecretError('a Box needs an X25519 key (unsealer) to join');
    if (this.#secrets.size === 0) throw new NoSecretError('this Box holds no reserve secret to prove');
    const generation = Math.max(...this.#secrets.keys());
    const joinKey = joinKeySigner(this.#secrets.get(generation) as Uint8Array, generation);
    const proof = joinKey.sign(joinProofInput(this.reserveId, this.id, generation, unsealer.publicKey));
    const body: BodyByKind['box-joined'] = { generation, joinKey: joinKey.publicKey, proof, xpub: unsealer.publicKey, capacity: info.capacity, addresses: info.addresses };
    if (info.region !== undefined) body.region = info.region;
    return this.publish('box-joined', body);
  }

  /** Leave the reserve gracefully. */
  leave(reason?: string): StateEventOf<'box-left'> {
    return this.publish('box-left', reason === undefined ? {} : { reason });
  }

  /**
   * Start a new secret generation (fresh secret from the injected Random) sealed to every active member, this
   * Box included. Joins must prove the new secret from then on, so Boxes removed before it cannot come back.
   */
  rotateSecret(reason?: string): StateEventOf<'secret-rotated'> {
    const state = this.state();
    const generation = state.generation + 1;
    const secret = this.#o.random.bytes(32);
    const joinKey = joinKeySigner(secret, generation).publicKey;
    const sealed: Array<[BoxId, Uint8Array]> = [];
    for (const m of state.members.values()) {
      if (m.status !== 'active') continue;
      sealed.push([m.id, seal(m.xpub, secret, sealContext(this.reserveId, generation, m.id), this.#o.random)]);
    }
    sealed.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const body: BodyByKind['secret-rotated'] = { generation, joinKey, sealed };
    if (reason !== undefined) body.reason = reason;
    const ev = this.publish('secret-rotated', body);
    this.#learnSecret(generation, secret);
    return ev;
  }

  /** Declare a Box dead (or decommission it) and rotate the secret so it cannot come back. */
  remove(box: BoxId, how: 'dead' | 'decommissioned', reason?: string): [StateEvent, StateEventOf<'secret-rotated'>] {
    const body = reason === undefined ? { box } : { box, reason };
    const ev = how === 'dead' ? this.publish('box-declared-dead', body) : this.publish('box-decommissioned', body);
    return [ev, this.rotateSecret(`removed ${box}`)];
  }

  // ---------------------------------------------------------------------------------------------- network

  /** Subscribe to messages to gossip (this Box's own changes). Returns an unsubscribe function. */
  onUpdate(listener: (message: Uint8Array) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * One event's bytes (gossip, an outbox, a late arrival from an old epoch). Throws MalformedEventError,
   * BadSignatureError or BadJoinProofError and changes nothing when the bytes are not a valid event.
   */
  receive(bytes: Uint8Array): ReceiveResult {
    const ev = decodeEvent(bytes, this.#ctx);
    const r = this.#ingest(ev, 'remote');
    this.#flush();
    return r;
  }

  /**
   * Many events' bytes at once (a batch of gossip, an outbox flush): written to the document as one change.
   * Invalid bytes are counted and skipped, never thrown.
   */
  receiveMany(list: readonly Uint8Array[]): { added: number; invalid: number; covered: number } {
    let invalid = 0;
    let covered = 0;
    const fresh: StateEvent[] = [];
    const checkpoints: StateEvent[] = [];
    for (const bytes of list) {
      let ev: StateEvent;
      try {
        ev = decodeEvent(bytes, this.#ctx);
      } catch (err) {
        if (err instanceof ReserveError) {
          invalid++;
          continue;
        }
        throw err;
      }
      if (ev.kind === 'checkpoint') checkpoints.push(ev);
      else if (isCovered(this.#base.cut, ev.author, ev.seq)) covered++;
      else if (!this.#reducer.has(ev.id)) fresh.push(ev);
    }
    for (const cp of checkpoints) this.#ingest(cp, 'remote');
    const unique = new Map(fresh.map((e) => [e.id, e]));
    this.#silently(() => this.#doc.addMany([...unique.values()].filter((e) => !this.#doc.has(e.id)).map((e) => [e.id, e.bytes] as CrdtEntry)));
    let added = 0;
    for (const ev of unique.values()) if (this.#ingest(ev, 'document').status === 'added') added++;
    this.#flush();
    return { added, invalid, covered };
  }

  /** This replica's state vector, as a sync message. */
  stateVector(): Uint8Array {
    this.#svMessage ??= dagCbor.encode({ v: MESSAGE_VERSION, r: this.reserveId, e: this.#epoch, sv: this.#doc.encodeStateVector(), hw: [...this.#highWater()] });
    return this.#svMessage;
  }

  /** The sequence number of this Box's newest own event (0 before its first). */
  get ownSeq(): number {
    return this.#seq;
  }

  /**
   * Does the replica whose state-vector message this is hold every event `author` made up to `seq` (in its
   * document or compacted into a checkpoint)? Throws BadSyncMessageError on bytes that are not such a message.
   */
  peerHolds(stateVectorMessage: Uint8Array, author: BoxId, seq: number): boolean {
    const m = decodeMessage(stateVectorMessage, this.reserveId);
    const hw = new Map(m.hw ?? []);
    return (hw.get(author) ?? 0) >= seq;
  }

  /**
   * What the sender of `stateVector` lacks, as a sync message. Same epoch: a CRDT diff. Different epochs: this
   * epoch's checkpoints and the events above the sender's per-author high-water marks, as event bytes.
   */
  diff(stateVectorMessage: Uint8Array): Uint8Array {
    const hash = hashBytes(stateVectorMessage);
    for (const d of this.#diffs) if (d.hash === hash && sameBytes(d.request, stateVectorMessage)) return d.answer;
    const answer = this.#diff(stateVectorMessage);
    if (this.#diffs.length >= DIFF_CACHE) this.#diffs.shift();
    this.#diffs.push({ request: stateVectorMessage.slice(), hash, answer });
    return answer;
  }

  #diff(stateVectorMessage: Uint8Array): Uint8Array {
    const m = decodeMessage(stateVectorMessage, this.reserveId);
    if (m.e === this.#epoch && m.sv !== undefined) {
      let u: Uint8Array;
      try {
        u = this.#doc.encodeDiff(m.sv);
      } catch (err) {
        if (err instanceof CrdtUpdateError) throw new BadSyncMessageError(err.message, { cause: err });
        throw err;
      }
      return dagCbor.encode({ v: MESSAGE_VERSION, r: this.reserveId, e: this.#epoch, u });
    }
    const hw = new Map(m.hw ?? []);
    const ev: Uint8Array[] = this.#genesis.map((c) => c.bytes);
    for (const e of this.#reducer.events()) if (e.seq > (hw.get(e.author) ?? 0)) ev.push(e.bytes);
    return dagCbor.encode({ v: MESSAGE_VERSION, r: this.reserveId, e: this.#epoch, ev });
  }

  /** Per author, the largest s such that this replica holds (or has compacted) every event with seq <= s. */
  #highWater(): Map<BoxId, number> {
    const seqs = new Map<BoxId, Set<number>>();
    const add = (author: BoxId, seq: number) => {
      let set = seqs.get(author);
      if (set === undefined) seqs.set(author, (set = new Set()));
      set.add(seq);
    };
    for (const e of this.#reducer.events()) add(e.author, e.seq);
    for (const [author, set] of this.#cpSeqs) for (const n of set) add(author, n);
    const out = new Map(this.#base.cut);
    for (const [author, set] of seqs) {
      let s = out.get(author) ?? 0;
      while (set.has(s + 1)) s++;
      if (s > 0) out.set(author, s);
    }
    return out;
  }

  /** The whole document as an update message (what a peer in another epoch can always use). */
  fullUpdate(): Uint8Array {
    return dagCbor.encode({ v: MESSAGE_VERSION, r: this.reserveId, e: this.#epoch, u: this.#doc.encodeState() });
  }

  /** Apply an update message (a diff, a whole document, a peer's gossiped change). Throws BadSyncMessageError. */
  applyUpdate(message: Uint8Array): ApplyResult {
    // The same bytes again, and nothing changed since they were found to change nothing: nothing to do.
    const noop = this.#noop;
    if (noop !== undefined && noop.version === this.#version && sameBytes(noop.message, message)) return { added: 0, invalid: 0, needsSync: false, epochChanged: false };
    const m = decodeMessage(message, this.reserveId);
    if (m.ev !== undefined) {
      const before = this.#epoch;
      const r = this.receiveMany(m.ev);
      return { added: r.added, invalid: r.invalid, needsSync: m.e !== this.#epoch, epochChanged: this.#epoch !== before };
    }
    if (m.u === undefined) throw new BadSyncMessageError('the message carries no update');
    const before = this.#epoch;
    const version = this.#version;
    const startSize = this.#reducer.size;
    const startInvalid = this.#invalid;
    const startAdopted = this.#adopted;
    let needsSync: boolean;
    if (m.e === this.#epoch) {
      try {
        this.#doc.applyUpdate(m.u);
      } catch (err) {
        if (!(err instanceof CrdtUpdateError)) throw err;
        this.#invalid++;
      }
      needsSync = this.#doc.missingDependencies;
    } else {
      let scratch: CrdtBackend | undefined;
      try {
        scratch = this.#o.backend({ random: this.#o.random, state: m.u });
      } catch (err) {
        if (!(err instanceof CrdtUpdateError)) throw err;
        this.#invalid++;
      }
      const entries = scratch === undefined ? [] : [...scratch.entries()];
      scratch?.destroy();
      this.#invalid += this.#ingestEntries(entries, 'foreign');
      needsSync = false;
    }
    this.#flush();
    // Still in different epochs (the sender's checkpoints were not in what it sent): a full sync settles it.
    if (m.e !== this.#epoch) needsSync = true;
    const added = this.#adopted === startAdopted ? this.#reducer.size - startSize : this.#reducer.size;
    const result = { added: Math.max(0, added), invalid: this.#invalid - startInvalid, needsSync, epochChanged: this.#epoch !== before };
    // A change of the document or the reducer has already cleared the cached sync messages. What can change
    // without that: updates held back for missing dependencies (a diff includes them), and whatever a rejected
    // update left half-applied. When none of that happened, this update changed nothing: remember it.
    if (version === this.#version && !needsSync && result.invalid === 0 && m.e === before && m.e === this.#epoch) {
      this.#noop = { version, message: message.slice() };
    } else this.#changed();
    return result;
  }

  // ---------------------------------------------------------------------------------------------- compaction

  /**
   * Propose a checkpoint when the epoch holds at least `checkpointEvery` uncompacted events and this Box is the
   * epoch's designated proposer (or the epoch has grown to twice the threshold, in case that Box is away).
   * Returns the checkpoint (already adopted: the ledger is in the new epoch), or undefined when none was due or
   * it would cover too little. `force` skips the threshold and the designation.
   */
  maybeCheckpoint(options: { force?: boolean } = {}): CheckpointEvent | undefined {
    const every = this.#o.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY;
    const raw = this.#reducer.size;
    if (options.force !== true) {
      if (raw < every) return undefined;
      const designated = designatedProposer(this.#epoch, this.#reducer.activeMembers());
      if (designated !== this.id && raw < 2 * every) return undefined;
    }
    if (this.#reducer.member(this.id)?.status !== 'active') return undefined;
    const proposal = proposeCut({ base: this.#base, events: [...this.#reducer.events()], checkpointSeqs: this.#cpSeqs, full: this.#reducer, pendingGraceMs: this.#o.pendingGraceMs });
    const minimum = options.force === true ? 1 : Math.max(1, Math.floor(every / 2));
    if (proposal.covered < minimum) return undefined;
    return this.publish('checkpoint', { summary: proposal.summary });
  }

  // ---------------------------------------------------------------------------------------------- persistence

  /** Everything needed to resume: the epoch's checkpoints, its document, this Box's sequence and clock. */
  save(): Uint8Array {
    const t = this.#hlc.last;
    return dagCbor.encode({ v: 1, r: this.reserveId, g: this.#genesis.map((c) => c.bytes), d: this.#doc.encodeState(), s: this.#seq, t: [t.wall, t.logical] });
  }

  // ---------------------------------------------------------------------------------------------- internals

  #openDocument(genesis: readonly CheckpointEvent[], carry: readonly StateEvent[]): CrdtBackend {
    this.#unsubscribe();
    const doc = this.#o.backend({ random: this.#o.random, genesis: genesis.map((c) => [c.id, c.bytes] as CrdtEntry) });
    this.#cpSeqs = new Map();
    for (const c of genesis) this.#noteCheckpointSeq(c);
    this.#unsubscribe = doc.onUpdate((c) => this.#onDocChange(c.added, c.origin, c.update));
    if (carry.length > 0) this.#silently(() => doc.addMany(carry.map((e) => [e.id, e.bytes] as CrdtEntry)));
    return doc;
  }

  #silently<T>(fn: () => T): T {
    const was = this.#quiet;
    this.#quiet = true;
    try {
      return fn();
    } finally {
      this.#quiet = was;
    }
  }

  #noteCheckpointSeq(c: CheckpointEvent): void {
    let s = this.#cpSeqs.get(c.author);
    if (s === undefined) this.#cpSeqs.set(c.author, (s = new Set()));
    s.add(c.seq);
  }

  /** Forget the cached sync messages: the replica may be about to change. */
  #changed(): void {
    this.#version++;
    this.#svMessage = undefined;
    if (this.#diffs.length > 0) this.#diffs = [];
    this.#noop = undefined;
  }

  #onDocChange(added: readonly CrdtEntry[], origin: 'local' | 'remote', update: Uint8Array): void {
    this.#changed();
    if (origin === 'local') {
      if (this.#quiet || this.#listeners.size === 0) return;
      const message = dagCbor.encode({ v: MESSAGE_VERSION, r: this.reserveId, e: this.#epoch, u: update });
      for (const l of this.#listeners) l(message);
      return;
    }
    this.#invalid += this.#ingestEntries(added, 'document');
  }

  /** Check and ingest entries (from this epoch's document or a foreign one). Returns how many were invalid. */
  #ingestEntries(entries: readonly CrdtEntry[], from: 'document' | 'foreign'): number {
    let invalid = 0;
    const checkpoints: StateEvent[] = [];
    const events: StateEvent[] = [];
    const genesis = new Set(this.#genesis.map((c) => c.id));
    for (const [id, bytes] of entries) {
      if (this.#reducer.has(id) || genesis.has(id)) continue;
      if (!(bytes instanceof Uint8Array)) {
        invalid++;
        continue;
      }
      // From a foreign (older) document most entries are usually compacted here already: skip them unverified.
      const head = from === 'foreign' && bytes.byteLength <= MAX_EVENT_BYTES ? peekEvent(bytes) : undefined;
      if (head !== undefined && isCovered(this.#base.cut, head.author, head.seq)) continue;
      let ev: StateEvent;
      try {
        if (this.#previousVerified.has(id)) this.#ctx.verified.add(id);
        ev = decodeEvent(bytes, this.#ctx);
        if (ev.id !== id) throw new MalformedEventError('entry id is not the hash of its bytes');
      } catch (err) {
        if (err instanceof ReserveError) {
          invalid++;
          continue;
        }
        throw err;
      }
      (ev.kind === 'checkpoint' ? checkpoints : events).push(ev);
    }
    const how = from === 'document' ? 'document' : 'remote';
    for (const cp of checkpoints) this.#ingest(cp, how);
    for (const ev of events) this.#ingest(ev, how);
    return invalid;
  }

  #ingest(ev: StateEvent, from: 'local' | 'remote' | 'document'): ReceiveResult {
    if (ev.author === this.id && ev.seq > this.#seq) this.#seq = ev.seq;
    if (from !== 'local') {
      try {
        this.#hlc.observe(ev.at);
      } catch (err) {
        if (!(err instanceof ClockDriftError)) throw err;
      }
    }
    if (ev.kind === 'checkpoint') {
      if (this.#genesis.some((c) => c.id === ev.id) || this.#queue.some((c) => c.id === ev.id)) return { id: ev.id, status: 'duplicate' };
      if (isCovered(this.#base.cut, ev.author, ev.seq)) return { id: ev.id, status: 'covered' };
      this.#changed();
      this.#noteCheckpointSeq(ev);
      if (from !== 'document' && !this.#doc.has(ev.id)) this.#write(ev, from);
      if (!checkpointAuthorized(ev)) return { id: ev.id, status: 'added', rejected: NotAMemberError.name };
      this.#queue.push(ev);
      return { id: ev.id, status: 'checkpoint' };
    }
    if (isCovered(this.#base.cut, ev.author, ev.seq)) return { id: ev.id, status: 'covered' };
    if (this.#reducer.has(ev.id)) return { id: ev.id, status: 'duplicate' };
    this.#changed();
    if (from !== 'document' && !this.#doc.has(ev.id)) this.#write(ev, from);
    this.#reducer.add(ev);
    if (ev.kind === 'secret-rotated' || ev.kind === 'box-joined') this.#secretCheck = true;
    const rej = from === 'local' ? undefined : this.#reducer.rejection(ev.id);
    return rej === undefined ? { id: ev.id, status: 'added' } : { id: ev.id, status: 'added', rejected: rej.error };
  }

  #write(ev: StateEvent, from: 'local' | 'remote'): void {
    if (from === 'local') this.#doc.add(ev.id, ev.bytes);
    else this.#silently(() => this.#doc.add(ev.id, ev.bytes));
  }

  /** Adopt queued checkpoints and look for new secrets (outside any document callback). */
  #flush(): void {
    while (this.#queue.length > 0) {
      const cp = this.#queue.shift() as CheckpointEvent;
      if (!isCovered(this.#base.cut, cp.author, cp.seq)) this.#adopt(cp);
    }
    if (this.#secretCheck) {
      this.#secretCheck = false;
      this.#checkSecret();
    }
  }

  #checkSecret(): void {
    const gen = this.#reducer.currentGeneration();
    if (gen === undefined || this.#secrets.has(gen.generation)) return;
    const sealed = gen.sealed.get(this.id);
    const unsealer = this.#o.unsealer;
    if (sealed === undefined || unsealer === undefined) return;
    try {
      const secret = unsealer.unseal(sealed, sealContext(this.reserveId, gen.generation, this.id));
      const derived = joinKeySigner(secret, gen.generation).publicKey;
      if (derived.every((b, i) => b === gen.joinKey[i])) this.#learnSecret(gen.generation, secret);
    } catch (err) {
      if (!(err instanceof UnsealError)) throw err;
    }
  }

  #learnSecret(generation: number, secret: Uint8Array): void {
    if (this.#secrets.has(generation)) return;
    this.#secrets.set(generation, secret);
    this.#o.onSecret?.(generation, secret);
  }

  /** Adopt a checkpoint: join its summary into the base and move to the epoch that starts from it. */
  #adopt(cp: CheckpointEvent): void {
    this.#changed();
    this.#adopted++;
    const base = joinSummaries(this.#base, cp.body.summary);
    const genesis = frontier([...this.#genesis, cp]);
    const carry: StateEvent[] = [];
    for (const ev of this.#reducer.events()) if (!isCovered(base.cut, ev.author, ev.seq)) carry.push(ev);
    const oldDoc = this.#doc;
    this.#base = base;
    this.#genesis = genesis;
    this.#epoch = epochIdOf(genesis);
    if (this.#o.verified === undefined) {
      this.#previousVerified = this.#ctx.verified;
      this.#ctx.verified = new Set(carry.map((e) => e.id));
    }
    const reducer = new StateReducer(this.reserveId, base);
    reducer.addAll(carry);
    this.#reducer = reducer;
    this.#doc = this.#openDocument(genesis, carry);
    oldDoc.destroy();
    this.#secretCheck = true;
  }
}
