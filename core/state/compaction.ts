/**
 * Online compaction: epochs started by checkpoints, so the shared document stays bounded while Boxes keep
 * working, with no coordinator and no offline step.
 *
 * - Every event carries its author's sequence number (1, 2, 3, ...). A *cut* maps each author to a sequence
 *   number; an event is covered by a cut when its seq is at most the cut's entry for its author.
 * - A checkpoint is a signed event whose body is the summary (summary.ts) of the events it covers. Its cut is,
 *   per author, the longest run of consecutive sequence numbers the proposer holds and has a final verdict on
 *   (no event waiting for a join or a rotation it has not seen; waiting events and gaps older than
 *   PENDING_GRACE_MS are given up). It is then shrunk until judging the covered events alone gives every one of
 *   them the verdict it has with everything the proposer knows, so compaction changes nothing the proposer can
 *   see.
 * - A Box adopts every checkpoint whose author is an active member in the checkpoint's own summary. Its base is
 *   the lattice join of all adopted summaries (joinSummaries), so checkpoints made concurrently (say on both
 *   sides of a partition) merge instead of competing: there is no fork choice and nothing is thrown away.
 * - The document of an epoch starts from the base checkpoints that no other adopted checkpoint covers (their
 *   events, written deterministically), and holds every known event not covered by the base's cut. Its id is the
 *   hash of those checkpoints' ids. Adopting a checkpoint starts a new document: uncovered events are carried
 *   over; covered ones are dropped, since the summary already holds their effect.
 * - An event from an old epoch that arrives late is decoded and, unless covered, added to the current document.
 *
 * What a summary cannot do: an event the proposer had not seen that, by its key, would have changed the verdict
 * on a covered event (a Box declared dead before events it signed which are already compacted) no longer
 * retracts them. All Boxes still agree, because every Box computes the same join of the same checkpoints.
 * Checkpoints carry whole summaries; the catalog in them grows with the number of snapshots kept.
 */
import { createHash } from 'node:crypto';
import type { BoxId } from '../net.ts';
import type { StateEvent, StateEventOf } from './events.ts';
import { StateReducer } from './reducer.ts';
import { cloneSummary, joinSummaries } from './summary.ts';
import type { Summary } from './summary.ts';

export type CheckpointEvent = StateEventOf<'checkpoint'>;

/** The epoch whose document starts from no checkpoint. */
export const GENESIS_EPOCH = 'genesis';

/**
 * An event still waiting (for its author's join, a rotation, a target Box) this long after the newest event of
 * the epoch is given up: a checkpoint may cover it, which drops it. Likewise a gap in an author's sequence
 * numbers older than this is skipped. Without this, one event that can never be decided would stop its
 * author's events from ever being compacted.
 */
export const PENDING_GRACE_MS = 24 * 60 * 60 * 1000;

/** Default number of uncompacted events that makes a Box propose a checkpoint. */
export const DEFAULT_CHECKPOINT_EVERY = 10_000;

export function isCovered(cut: ReadonlyMap<BoxId, number>, author: BoxId, seq: number): boolean {
  return seq <= (cut.get(author) ?? 0);
}

/** A checkpoint counts when its author is an active member in the summary it signed. */
export function checkpointAuthorized(cp: CheckpointEvent): boolean {
  return cp.body.summary.members.get(cp.author)?.status === 'active';
}

/** The checkpoints no other one covers (the antichain an epoch starts from), sorted by id. */
export function frontier(checkpoints: Iterable<CheckpointEvent>): CheckpointEvent[] {
  const all = [...checkpoints];
  return all
    .filter((c) => !all.some((o) => o !== c && o.id !== c.id && isCovered(o.body.summary.cut, c.author, c.seq)))
    .filter((c, i, arr) => arr.findIndex((x) => x.id === c.id) === i)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** An epoch's id: the hash of its starting checkpoints' ids. */
export function epochIdOf(checkpoints: readonly CheckpointEvent[]): string {
  if (checkpoints.length === 0) return GENESIS_EPOCH;
  const h = createHash('sha256');
  for (const c of checkpoints) h.update(c.id).update('\n');
  return 'e' + h.digest('hex').slice(0, 32);
}

/** The base an epoch starts from: the join of its checkpoints' summaries. */
export function baseOf(checkpoints: readonly CheckpointEvent[]): Summary {
  return joinSummaries(...checkpoints.map((c) => c.body.summary));
}

/** The Box that should propose the next checkpoint of an epoch (rendezvous hash over the active members). */
export function designatedProposer(epoch: string, active: readonly BoxId[]): BoxId | undefined {
  let best: BoxId | undefined;
  let bestScore = '';
  for (const id of active) {
    const score = createHash('sha256').update(epoch).update('\n').update(id).digest('hex');
    if (best === undefined || score > bestScore) {
      best = id;
      bestScore = score;
    }
  }
  return best;
}

export interface CutInput {
  /** The base the epoch started from. */
  base: Summary;
  /** The epoch's events: uncovered raw events (checkpoints excluded). */
  events: readonly StateEvent[];
  /** Sequence numbers taken by checkpoint events present in the epoch (they count as held). */
  checkpointSeqs: ReadonlyMap<BoxId, ReadonlySet<number>>;
  /** The verdicts with everything known (the epoch's full reducer). */
  full: StateReducer;
  /** Override PENDING_GRACE_MS. */
  pendingGraceMs?: number;
}

export interface Proposal {
  /** New cut (covering the base's). */
  cut: Map<BoxId, number>;
  /** Summary of the base plus the covered events, with `cut` set. */
  summary: Summary;
  /** Number of events of the epoch it covers. */
  covered: number;
}

/**
 * The largest cut the proposer can vouch for (see the module comment), and the summary it yields. Pure and
 * deterministic: the same epoch contents give the same proposal on every Box.
 */
export function proposeCut(input: CutInput): Proposal {
  const { base, events, checkpointSeqs, full } = input;
  const bySeq = new Map<BoxId, Map<number, StateEvent[]>>();
  for (const ev of events) {
    let m = bySeq.get(ev.author);
    if (m === undefined) bySeq.set(ev.author, (m = new Map()));
    const list = m.get(ev.seq);
    if (list === undefined) m.set(ev.seq, [ev]);
    else list.push(ev);
  }
  const grace = input.pendingGraceMs ?? PENDING_GRACE_MS;
  let newest = 0;
  for (const ev of events) if (ev.at.wall > newest) newest = ev.at.wall;
  const stale = (wall: number): boolean => wall < newest - grace;
  const cut = new Map(base.cut);
  const authors = new Set([...bySeq.keys(), ...checkpointSeqs.keys()]);
  for (const author of [...authors].sort()) {
    const seqs = bySeq.get(author);
    const cps = checkpointSeqs.get(author);
    const held = [...(seqs?.keys() ?? []), ...(cps ?? [])].sort((x, y) => x - y);
    let s = base.cut.get(author) ?? 0;
    for (;;) {
      const next = s + 1;
      const evs = seqs?.get(next);
      if (evs === undefined) {
        if (cps?.has(next) === true) {
          s = next;
          continue;
        }
        // A gap: skip it only when the author has long since moved on.
        const after = held.find((n) => n > next);
        const afterEvents = after === undefined ? undefined : seqs?.get(after);
        if (afterEvents !== undefined && afterEvents.every((e) => stale(e.at.wall))) {
          s = next;
          continue;
        }
        break;
      }
      if (evs.some((e) => full.rejection(e.id)?.pending === true && !stale(e.at.wall))) break;
      s = next;
    }
    if (s > (base.cut.get(author) ?? 0)) cut.set(author, s);
  }
  // Shrink until the covered events alone get the verdicts they get with everything known.
  for (;;) {
    const covered = events.filter((e) => isCovered(cut, e.author, e.seq));
    const alone = new StateReducer(full.reserveId, base);
    alone.addAll(covered);
    let changed = false;
    for (const e of covered) {
      const a = alone.rejection(e.id);
      const f = full.rejection(e.id);
      if ((a === undefined) !== (f === undefined) || (a !== undefined && f !== undefined && a.error !== f.error)) {
        const limit = Math.max(base.cut.get(e.author) ?? 0, e.seq - 1);
        if ((cut.get(e.author) ?? 0) > limit) {
          cut.set(e.author, limit);
          changed = true;
        }
      }
    }
    if (!changed) {
      const summary = alone.summary();
      summary.cut = new Map([...cut].filter(([, n]) => n > 0));
      return { cut, summary, covered: covered.length };
    }
  }
}

/** A copy of a summary with a different cut (for tests and tools). */
export function withCut(summary: Summary, cut: ReadonlyMap<BoxId, number>): Summary {
  const s = cloneSummary(summary);
  s.cut = new Map(cut);
  return s;
}
