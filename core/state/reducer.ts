/**
 * The reserve's state as a pure, deterministic function of a set of shared-state events (plus, after compaction,
 * the summary they start from). Delivery order, duplicates and partitions never change the result.
 *
 * Semantics (what `reduce` computes; `StateReducer` computes the same thing incrementally):
 * 1. Membership events (joins, leaves, deaths, decommissions, secret rotations) are folded in key order
 *    (hlc, then id). Each is checked against the membership as of its key: the author must be a member then,
 *    a join must prove the secret of a generation that had not been superseded, a rotation must start the next
 *    generation. These events are few, so re-folding them when one arrives out of order is cheap.
 * 2. Every other event is checked against the folded membership: its author must have joined before it and must
 *    not have been removed (left, declared dead, decommissioned, or left out of a secret rotation) before it.
 *    Accepted events are merged with the lattice rules of summary.ts, so their order does not matter.
 * 3. A rejected event changes nothing; it is listed in `rejected` with its error's name. Rejections that later
 *    events can lift (author not known yet, unknown secret generation, unknown target Box) are marked pending.
 *
 * Incremental application: an event that arrives in key order (membership) or any data event is applied in
 * O(1) amortised; a membership event that arrives out of order, or one that retroactively removes a Box whose
 * later data events were already applied, marks the reducer dirty and the next `state()` re-folds from the
 * summary. The law suite checks incremental == full reduce under every delivery order.
 */
import { equalBytes } from '../blocks/cid.ts';
import type { ReserveError } from '../errors.ts';
import type { BoxId } from '../net.ts';
import type { KeeperView, PlacementView } from '../placement/types.ts';
import { materializeConfig } from './config.ts';
import type { ConfigIssue, SharedConfig } from './config.ts';
import {
  BadJoinProofError,
  DecommissionedBoxError,
  keyOf,
  MEMBERSHIP_KINDS,
  NotAMemberError,
  StaleGenerationError,
  UnknownBoxError,
  UnknownGenerationError,
} from './events.ts';
import type { StateEvent, StateEventOf } from './events.ts';
import type { Hlc } from './hlc.ts';
import {
  cloneSummary,
  compareKey,
  currentGeneration,
  DAY_MS,
  dayKey,
  emptySummary,
  isImportant,
  normalizeSummary,
  statusBeats,
  totalKey,
} from './summary.ts';
import type {
  ConfigEntry,
  GenerationRecord,
  HeadRecord,
  HolderRecord,
  Key,
  LogDay,
  LogRecord,
  LogTotal,
  MemberRecord,
  MemberStatus,
  SnapshotRecord,
  Summary,
} from './summary.ts';

export type { Key, MemberRecord, MemberStatus, SnapshotRecord, HolderRecord, HeadRecord, GenerationRecord, ConfigEntry, LogRecord, LogTotal, LogDay };

/** Why an event had no effect. */
export interface Rejection {
  id: string;
  kind: StateEvent['kind'];
  author: BoxId;
  /** Name of the error class (NotAMemberError, BadJoinProofError, ...). */
  error: string;
  message: string;
  /** True when a later event could make it valid (its author's join, a rotation, its target's join). */
  pending: boolean;
}

export interface EventLogView {
  /** Warnings, failures and resolutions (kept through compaction) and normal events not yet compacted, by key. */
  entries: readonly LogRecord[];
  /** Normal events, all time, per (author, source, kind). */
  totals: readonly LogTotal[];
  /** Normal events per day (recent days only once compacted). */
  days: readonly LogDay[];
}

export interface ReserveState {
  readonly reserveId: string;
  readonly members: ReadonlyMap<BoxId, Readonly<MemberRecord>>;
  /** Current secret generation (-1 before the first join). */
  readonly generation: number;
  readonly generations: ReadonlyMap<number, Readonly<GenerationRecord>>;
  readonly config: SharedConfig;
  /** Repairs made to an inconsistent merged config, and member regions outside config.regions. */
  readonly configIssues: readonly ConfigIssue[];
  /** The merged config fields with who set them and when. */
  readonly configFields: ReadonlyMap<string, Readonly<ConfigEntry>>;
  /** Snapshots by root CID. */
  readonly catalog: ReadonlyMap<string, Readonly<SnapshotRecord>>;
  /** Latest snapshot per author. */
  readonly heads: ReadonlyMap<BoxId, Readonly<HeadRecord>>;
  readonly holders: ReadonlyMap<BoxId, Readonly<HolderRecord>>;
  readonly log: EventLogView;
  readonly rejected: ReadonlyMap<string, Readonly<Rejection>>;
  /** Per author, the sequence numbers covered by the compacted summary. */
  readonly cut: ReadonlyMap<BoxId, number>;
}

// ------------------------------------------------------------------------------------------------ predicates

/** Was `rec`'s Box a member at `key`? (Joined before it, not removed before it.) */
export function memberAt(rec: MemberRecord | undefined, key: Key): boolean {
  if (rec === undefined) return false;
  if (compareKey(rec.joinedAt, key) >= 0) return false;
  return rec.status === 'active' || compareKey(rec.statusAt, key) > 0;
}

/** A rejection before it is recorded. Error objects are only built when a caller asks to throw one. */
type Fail = { name: string; message: string; pending: boolean };
type ErrorClass = { readonly name: string };

function fail(error: ErrorClass, message: string, pending = false): Fail {
  return { name: error.name, message, pending };
}

function notAMember(author: BoxId, rec: MemberRecord | undefined): Fail {
  if (rec === undefined) return fail(NotAMemberError, `${author} has not joined the reserve`, true);
  return fail(NotAMemberError, `${author} is ${rec.status === 'active' ? 'not yet a member at that time' : `${rec.status} since before this event`}`);
}

// ------------------------------------------------------------------------------------------------ reducer

/** Incremental reducer: feed it events in any order; `state()` is always `reduce(all events so far)`. */
export class StateReducer {
  readonly reserveId: string;
  readonly #base: Summary;
  #w: Summary;
  readonly #events = new Map<string, StateEvent>();
  readonly #membership: StateEvent[] = [];
  #normals = new Map<string, LogRecord>();
  #rejected = new Map<string, Rejection>();
  #rejectedByAuthor = new Map<BoxId, Set<string>>();
  #lastDataKey = new Map<BoxId, Key>();
  /** Joins proving a generation whose rotation comes later in key order (a new Box's clock running behind). */
  #deferred = new Map<number, StateEventOf<'box-joined'>[]>();
  #dirty = false;
  #view: ReserveState | undefined;
  #rebuilds = 0;

  constructor(reserveId: string, base: Summary = emptySummary()) {
    this.reserveId = reserveId;
    this.#base = cloneSummary(base);
    this.#w = cloneSummary(this.#base);
  }

  /** The summary this reducer started from (compacted history). */
  get base(): Summary {
    return this.#base;
  }

  /** Events added (checkpoints excluded). */
  get size(): number {
    return this.#events.size;
  }

  /** How many times the state was re-folded from the summary (a diagnostic for the benchmark). */
  get rebuilds(): number {
    return this.#rebuilds;
  }

  has(id: string): boolean {
    return this.#events.has(id);
  }

  events(): IterableIterator<StateEvent> {
    return this.#events.values();
  }

  /** Add one event (idempotent by id). Checkpoint events are the ledger's business and are ignored here. */
  add(ev: StateEvent): boolean {
    if (ev.kind === 'checkpoint' || this.#events.has(ev.id)) return false;
    this.#events.set(ev.id, ev);
    this.#view = undefined;
    if (MEMBERSHIP_KINDS.has(ev.kind)) {
      const pos = this.#insertMembership(ev);
      if (this.#dirty) return true;
      if (pos !== this.#membership.length - 1) {
        this.#dirty = true;
        return true;
      }
      const touched = this.#stepMembership(ev);
      for (const box of touched) this.#revisit(box);
    } else if (!this.#dirty) {
      this.#applyData(ev);
    }
    return true;
  }

  addAll(events: Iterable<StateEvent>): void {
    for (const ev of events) this.add(ev);
  }

  /** The current secret generation's record (undefined before the first join). */
  currentGeneration(): Readonly<GenerationRecord> | undefined {
    this.#settle();
    return this.#w.generations.get(currentGeneration(this.#w.generations));
  }

  /** One member's record as folded so far. */
  member(id: BoxId): Readonly<MemberRecord> | undefined {
    this.#settle();
    return this.#w.members.get(id);
  }

  /** Members whose status is active, sorted by id. */
  activeMembers(): BoxId[] {
    this.#settle();
    return [...this.#w.members.values()].filter((m) => m.status === 'active').map((m) => m.id).sort();
  }

  /**
   * How `ev` would be judged if it were added now as the newest event (undefined: accepted). Changes nothing;
   * costs a copy of the membership.
   */
  judge(ev: StateEvent): Rejection | undefined {
    this.#settle();
    const s = emptySummary();
    for (const [id, m] of this.#w.members) s.members.set(id, { ...m, addresses: [...m.addresses] });
    for (const [g, r] of this.#w.generations) s.generations.set(g, { ...r, recipients: [...r.recipients], sealed: new Map(r.sealed) });
    const r = new StateReducer(this.reserveId, s);
    r.add(ev);
    return r.rejection(ev.id);
  }

  /** The verdict on one event: undefined if accepted (or unknown), else its rejection. */
  rejection(id: string): Rejection | undefined {
    this.#settle();
    return this.#rejected.get(id);
  }

  state(): ReserveState {
    this.#settle();
    if (this.#view === undefined) this.#view = this.#makeView();
    return this.#view;
  }

  /**
   * The summary of the base plus every added event (normalised: retention rules applied). Used for checkpoints,
   * on a reducer that was given exactly the covered events.
   */
  summary(): Summary {
    this.#settle();
    return normalizeSummary(cloneSummary(this.#w));
  }

  // -------------------------------------------------------------------------------------------- internals

  #insertMembership(ev: StateEvent): number {
    const list = this.#membership;
    const k = keyOf(ev);
    let lo = 0;
    let hi = list.length;
    if (hi > 0 && compareKey(keyOf(list[hi - 1]), k) < 0) lo = hi;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareKey(keyOf(list[mid]), k) < 0) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, ev);
    return lo;
  }

  #settle(): void {
    if (!this.#dirty) return;
    this.#rebuilds++;
    this.#w = cloneSummary(this.#base);
    this.#normals = new Map();
    this.#rejected = new Map();
    this.#rejectedByAuthor = new Map();
    this.#lastDataKey = new Map();
    this.#deferred = new Map();
    this.#dirty = false;
    for (const ev of this.#membership) this.#stepMembership(ev);
    for (const ev of this.#events.values()) if (!MEMBERSHIP_KINDS.has(ev.kind)) this.#applyData(ev);
    this.#view = undefined;
  }

  /** A Box's membership changed: lift rejections that no longer hold, or re-fold if an accepted event no longer holds. */
  #revisit(box: BoxId): void {
    const rec = this.#w.members.get(box);
    const last = this.#lastDataKey.get(box);
    if (rec !== undefined && last !== undefined && rec.status !== 'active' && compareKey(rec.statusAt, last) < 0) {
      this.#dirty = true;
      return;
    }
    const waiting = this.#rejectedByAuthor.get(box);
    if (waiting === undefined || waiting.size === 0) return;
    for (const id of [...waiting]) {
      const ev = this.#events.get(id);
      if (ev !== undefined) this.#applyData(ev);
    }
  }

  #reject(ev: StateEvent, f: Fail, byAuthor: boolean): void {
    this.#rejected.set(ev.id, { id: ev.id, kind: ev.kind, author: ev.author, error: f.name, message: f.message, pending: f.pending });
    if (byAuthor) {
      let set = this.#rejectedByAuthor.get(ev.author);
      if (set === undefined) this.#rejectedByAuthor.set(ev.author, (set = new Set()));
      set.add(ev.id);
    }
  }

  #accepted(ev: StateEvent, rec: MemberRecord, key: Key): void {
    if (this.#rejected.delete(ev.id)) this.#rejectedByAuthor.get(ev.author)?.delete(ev.id);
    if (ev.at.wall > rec.lastSeen.wall || (ev.at.wall === rec.lastSeen.wall && ev.at.logical > rec.lastSeen.logical)) rec.lastSeen = ev.at;
    if (compareKey(key, rec.lastKey) > 0) rec.lastKey = key;
  }

  // ---------------------------------------------------------------------------------- data events

  #applyData(ev: StateEvent): void {
    const key = keyOf(ev);
    const rec = this.#w.members.get(ev.author);
    if (!memberAt(rec, key)) {
      this.#reject(ev, notAMember(ev.author, rec), true);
      return;
    }
    const member = rec as MemberRecord;
    this.#accepted(ev, member, key);
    const last = this.#lastDataKey.get(ev.author);
    if (last === undefined || compareKey(key, last) > 0) this.#lastDataKey.set(ev.author, key);
    const w = this.#w;
    switch (ev.kind) {
      case 'box-updated': {
        if (compareKey(key, member.infoAt) > 0) {
          member.capacity = ev.body.capacity;
          member.addresses = [...ev.body.addresses];
          member.infoAt = key;
          if (ev.body.region === undefined) delete member.region;
          else member.region = ev.body.region;
        }
        break;
      }
      case 'config-changed': {
        for (const [path, value] of ev.body.set) {
          const cur = w.config.get(path);
          if (cur === undefined || compareKey(key, cur.at) > 0) w.config.set(path, { value, at: key, by: ev.author });
        }
        break;
      }
      case 'snapshot-published': {
        const b = ev.body;
        const root = b.root.toString();
        const cur = w.catalog.get(root);
        if (cur === undefined || compareKey(key, cur.at) < 0) {
          const rec: SnapshotRecord = { root, author: ev.author, time: b.time, size: b.size, files: b.files, chunks: b.chunks, at: key };
          if (b.parent !== null) rec.parent = b.parent.toString();
          w.catalog.set(root, rec);
        }
        const head = w.heads.get(ev.author);
        if (head === undefined || compareKey(key, head.at) > 0) w.heads.set(ev.author, { root, at: key });
        break;
      }
      case 'holder-report': {
        const cur = w.holders.get(ev.author);
        if (cur === undefined || compareKey(key, cur.at) > 0) {
          w.holders.set(ev.author, { box: ev.author, count: ev.body.count, bytes: ev.body.bytes, root: ev.body.root, at: key });
        }
        break;
      }
      case 'reserve-event': {
        const e = ev.body.event;
        const record: LogRecord = { event: e, by: ev.author, at: key };
        if (isImportant(e)) {
          const cur = w.important.get(e.id);
          if (cur === undefined || compareKey(key, cur.at) < 0) w.important.set(e.id, record);
          break;
        }
        const cur = this.#normals.get(e.id);
        if (cur !== undefined) {
          if (compareKey(key, cur.at) < 0) this.#normals.set(e.id, record);
          break;
        }
        this.#normals.set(e.id, record);
        const tk = totalKey(ev.author, e.source, e.kind);
        const t = w.totals.get(tk);
        const next: LogTotal =
          t === undefined
            ? { author: ev.author, source: e.source, kind: e.kind, count: 1, firstTime: e.time, lastTime: e.time }
            : { ...t, count: t.count + 1, firstTime: Math.min(t.firstTime, e.time), lastTime: Math.max(t.lastTime, e.time) };
        if (e.seq !== undefined) {
          next.firstSeq = next.firstSeq === undefined ? e.seq : Math.min(next.firstSeq, e.seq);
          next.lastSeq = next.lastSeq === undefined ? e.seq : Math.max(next.lastSeq, e.seq);
        }
        w.totals.set(tk, next);
        const day = Math.floor(e.time / DAY_MS);
        const dk = dayKey(ev.author, e.source, e.kind, day);
        const d = w.days.get(dk);
        w.days.set(dk, { author: ev.author, source: e.source, kind: e.kind, day, count: (d?.count ?? 0) + 1 });
        break;
      }
      default:
        break;
    }
  }

  // ---------------------------------------------------------------------------------- membership

  /** Fold one membership event (in key order). Returns the Boxes whose membership changed. */
  #stepMembership(ev: StateEvent): BoxId[] {
    const key = keyOf(ev);
    const w = this.#w;
    switch (ev.kind) {
      case 'box-joined':
        return this.#join(ev, key);
      case 'box-left': {
        const rec = w.members.get(ev.author);
        if (!memberAt(rec, key)) return this.#rejectM(ev, notAMember(ev.author, rec));
        const m = rec as MemberRecord;
        this.#accepted(ev, m, key);
        return this.#setStatus(m, 'left', key, ev.author, ev.body.reason) ? [m.id] : [];
      }
      case 'box-declared-dead':
      case 'box-decommissioned': {
        const author = w.members.get(ev.author);
        if (!memberAt(author, key)) return this.#rejectM(ev, notAMember(ev.author, author));
        const target = w.members.get(ev.body.box);
        if (target === undefined) return this.#rejectM(ev, fail(UnknownBoxError, `${ev.body.box} has not joined the reserve`, true));
        this.#accepted(ev, author as MemberRecord, key);
        const status: MemberStatus = ev.kind === 'box-declared-dead' ? 'dead' : 'decommissioned';
        return this.#setStatus(target, status, key, ev.author, ev.body.reason) ? [target.id] : [];
      }
      case 'secret-rotated':
        return this.#rotate(ev, key);
      default:
        return [];
    }
  }

  #rejectM(ev: StateEvent, f: Fail): BoxId[] {
    this.#reject(ev, f, false);
    return [];
  }

  #setStatus(rec: MemberRecord, status: MemberStatus, at: Key, by: BoxId, reason: string | undefined): boolean {
    if (!statusBeats({ status, statusAt: at }, rec)) return false;
    rec.status = status;
    rec.statusAt = at;
    rec.statusBy = by;
    if (reason === undefined) delete rec.statusReason;
    else rec.statusReason = reason;
    return true;
  }

  #join(ev: StateEventOf<'box-joined'>, key: Key): BoxId[] {
    const w = this.#w;
    const b = ev.body;
    if (b.generation > 0) {
      const g = w.generations.get(b.generation);
      if (g === undefined) {
        // The joiner got the secret from an invite after the rotation, so its join follows the rotation causally
        // even if its clock says otherwise: hold it until the rotation is folded.
        let list = this.#deferred.get(b.generation);
        if (list === undefined) this.#deferred.set(b.generation, (list = []));
        list.push(ev);
        return this.#rejectM(ev, fail(UnknownGenerationError, `secret generation ${b.generation} is not known (yet)`, true));
      }
      if (!equalBytes(g.joinKey, b.joinKey)) return this.#rejectM(ev, fail(BadJoinProofError, `the join key is not the one generation ${b.generation} published`));
    } else if (!w.generations.has(0)) {
      w.generations.set(0, { generation: 0, joinKey: b.joinKey, recipients: [], sealed: new Map() });
    }
    const next = w.generations.get(b.generation + 1);
    if (next?.at !== undefined && compareKey(next.at, key) < 0) {
      return this.#rejectM(ev, fail(StaleGenerationError, `generation ${b.generation} was rotated away before this join (the secret it proves is no longer the reserve's)`));
    }
    let rec = w.members.get(ev.author);
    if (rec?.status === 'decommissioned') return this.#rejectM(ev, fail(DecommissionedBoxError, `${ev.author} was decommissioned and cannot rejoin under the same identity`));
    if (rec === undefined) {
      rec = {
        id: ev.author,
        status: 'active',
        statusAt: key,
        statusBy: ev.author,
        generation: b.generation,
        xpub: b.xpub,
        keysAt: key,
        capacity: b.capacity,
        addresses: [...b.addresses],
        infoAt: key,
        joinedAt: key,
        lastSeen: ev.at,
        lastKey: key,
      };
      if (b.region !== undefined) rec.region = b.region;
      w.members.set(rec.id, rec);
    } else {
      this.#setStatus(rec, 'active', key, ev.author, undefined);
      if (compareKey(key, rec.keysAt) > 0) {
        rec.xpub = b.xpub;
        rec.keysAt = key;
      }
      if (compareKey(key, rec.infoAt) > 0) {
        rec.capacity = b.capacity;
        rec.addresses = [...b.addresses];
        rec.infoAt = key;
        if (b.region === undefined) delete rec.region;
        else rec.region = b.region;
      }
      rec.generation = Math.max(rec.generation, b.generation);
      if (compareKey(key, rec.joinedAt) < 0) rec.joinedAt = key;
    }
    this.#accepted(ev, rec, key);
    // A join made before rotations that included this Box, folded already because a checkpoint compacted them into
    // the summary this state starts from: the Box holds the newest of them, as if they had been folded after it.
    for (const [g, r] of w.generations) {
      if (g > rec.generation && r.at !== undefined && compareKey(r.at, key) > 0 && r.recipients.includes(rec.id)) rec.generation = g;
    }
    // A join made before a rotation that did not include this Box (it was joining while the secret changed):
    // the Box is out as of that rotation, exactly as if the rotation had been folded after it.
    const cur = w.generations.get(currentGeneration(w.generations));
    if (cur?.at !== undefined && cur.generation > rec.generation && compareKey(cur.at, key) > 0 && !cur.recipients.includes(rec.id)) {
      this.#setStatus(rec, 'left', cur.at, cur.by ?? rec.id, 'missed-rotation');
    }
    return [rec.id];
  }

  #rotate(ev: StateEventOf<'secret-rotated'>, key: Key): BoxId[] {
    const w = this.#w;
    const b = ev.body;
    const author = w.members.get(ev.author);
    if (!memberAt(author, key)) return this.#rejectM(ev, notAMember(ev.author, author));
    const a = author as MemberRecord;
    const prev = w.generations.get(b.generation - 1);
    if (prev === undefined) return this.#rejectM(ev, fail(UnknownGenerationError, `generation ${b.generation - 1} is not known (yet)`, true));
    const existing = w.generations.get(b.generation);
    if (existing !== undefined) {
      if (existing.at?.id === ev.id) return [];
      return this.#rejectM(ev, fail(StaleGenerationError, `generation ${b.generation} was already started by ${existing.by ?? 'the founder'}`));
    }
    if (prev.at !== undefined && compareKey(prev.at, key) > 0) {
      return this.#rejectM(ev, fail(StaleGenerationError, `rotation to ${b.generation} predates generation ${b.generation - 1}`));
    }
    if (a.generation < b.generation - 1) {
      return this.#rejectM(ev, fail(StaleGenerationError, `${ev.author} does not hold generation ${b.generation - 1}`));
    }
    const recipients = [...new Set([ev.author, ...b.sealed.map(([box]) => box)])].sort();
    w.generations.set(b.generation, { generation: b.generation, joinKey: b.joinKey, at: key, by: ev.author, recipients, sealed: new Map(b.sealed) });
    for (const [g, rec] of w.generations) if (g < b.generation && rec.sealed.size > 0) w.generations.set(g, { ...rec, sealed: new Map() });
    this.#accepted(ev, a, key);
    const inRotation = new Set(recipients);
    const touched: BoxId[] = [];
    for (const rec of w.members.values()) {
      if (inRotation.has(rec.id)) {
        rec.generation = Math.max(rec.generation, b.generation);
      } else if (rec.status === 'active' && rec.generation < b.generation && this.#setStatus(rec, 'left', key, ev.author, 'missed-rotation')) {
        touched.push(rec.id);
      }
    }
    const waiting = this.#deferred.get(b.generation);
    if (waiting !== undefined) {
      this.#deferred.delete(b.generation);
      for (const join of waiting) touched.push(...this.#join(join, keyOf(join)));
    }
    return touched;
  }

  // ---------------------------------------------------------------------------------- view

  #makeView(): ReserveState {
    const w = this.#w;
    const members = new Map<BoxId, MemberRecord>();
    for (const id of [...w.members.keys()].sort()) {
      const m = w.members.get(id) as MemberRecord;
      members.set(id, { ...m, addresses: [...m.addresses] });
    }
    const { config, issues } = materializeConfig(new Map([...w.config].map(([p, e]) => [p, e.value])));
    const configIssues = [...issues];
    if (config.regions !== undefined) {
      const known = new Set(config.regions);
      for (const m of members.values()) {
        if (m.status === 'active' && m.region !== undefined && !known.has(m.region)) {
          configIssues.push({ path: 'regions', message: `member ${m.id} is in region ${JSON.stringify(m.region)}, which is not listed` });
        }
      }
    }
    const entries = [...w.important.values(), ...this.#normals.values()].sort((x, y) => compareKey(x.at, y.at));
    const sortedBy = <T>(m: ReadonlyMap<string, T>): Map<string, T> => new Map([...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return Object.freeze({
      reserveId: this.reserveId,
      members,
      generation: currentGeneration(w.generations),
      generations: new Map([...w.generations.entries()].sort(([a], [b]) => a - b).map(([g, r]) => [g, { ...r, recipients: [...r.recipients], sealed: new Map(r.sealed) }])),
      config,
      configIssues,
      configFields: sortedBy(w.config),
      catalog: sortedBy(w.catalog),
      heads: sortedBy(w.heads),
      holders: sortedBy(w.holders),
      log: {
        entries,
        totals: [...sortedBy(w.totals).values()],
        days: [...sortedBy(w.days).values()],
      },
      rejected: sortedBy(this.#rejected),
      cut: new Map([...w.cut.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    });
  }
}

/** The state of a set of events (on top of a compacted summary, if any). Pure: same input, same output. */
export function reduce(reserveId: string, events: Iterable<StateEvent>, base?: Summary): ReserveState {
  const r = new StateReducer(reserveId, base);
  r.addAll(events);
  return r.state();
}

/** What placement needs: every member as a keeper (live = active), and the target replication factor. */
export function toPlacementView(state: ReserveState): PlacementView {
  const keepers: KeeperView[] = [];
  for (const m of state.members.values()) {
    if (m.status === 'decommissioned' || m.capacity <= 0) continue;
    const k: KeeperView = { id: m.id, capacity: m.capacity, live: m.status === 'active' };
    if (m.region !== undefined) k.region = m.region;
    keepers.push(k);
  }
  keepers.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { keepers, rf: state.config.replication.target };
}

/** Members whose status is active, sorted by id. */
export function activeMembers(state: ReserveState): BoxId[] {
  return [...state.members.values()].filter((m) => m.status === 'active').map((m) => m.id);
}

/**
 * Would `ev` be accepted on top of `state` (as the newest event)? Throws the named error a reducer would record
 * (NotAMemberError, BadJoinProofError, StaleGenerationError, UnknownGenerationError, UnknownBoxError,
 * DecommissionedBoxError); returns quietly otherwise. For callers that want to refuse an event outright (a Box
 * checking its own event before publishing, a gossip handler); the reducer itself never throws.
 */
export function checkEvent(state: ReserveState, ev: StateEvent): void {
  const r = new StateReducer(state.reserveId, summaryOfState(state));
  r.add(ev);
  throwRejection(r.rejection(ev.id));
}

/** Throw a rejection as its named error (no-op for undefined). */
export function throwRejection(rej: Rejection | undefined): void {
  if (rej === undefined) return;
  const E = ERRORS[rej.error] ?? NotAMemberError;
  throw new E(rej.message);
}

const ERRORS: Record<string, new (message: string) => ReserveError> = {
  NotAMemberError,
  BadJoinProofError,
  StaleGenerationError,
  UnknownGenerationError,
  UnknownBoxError,
  DecommissionedBoxError,
};

/** The membership and generation parts of a state as a summary (enough to judge one more event). */
function summaryOfState(state: ReserveState): Summary {
  const s = emptySummary();
  for (const [id, m] of state.members) s.members.set(id, { ...m, addresses: [...m.addresses] });
  for (const [g, r] of state.generations) s.generations.set(g, { ...r, recipients: [...r.recipients], sealed: new Map(r.sealed) });
  return s;
}

/** Convenience for callers holding hybrid times rather than keys. */
export function hlcOfKey(k: Key): Hlc {
  return { wall: k.wall, logical: k.logical };
}
