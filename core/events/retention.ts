/**
 * Retention for the shared event log: compact a list of envelopes to at most `bound` entries.
 *
 * What is kept, in order of priority:
 * 1. "Critical" events: every warning and failure, every resolution, and every event a kept resolution links to.
 * 2. The newest normal events.
 * Older normal events are folded into summaries (`events-summary` envelopes), one per (source, kind), holding the
 * count (by severity) and the first/last time (and seq range, for a single source). Summaries already in the input
 * are merged with new folds of the same group, so compacting twice changes nothing.
 *
 * The bound always wins. If critical events and per-(source, kind) summaries alone do not fit, summaries are first
 * merged per kind (source '*'), then into one summary of everything ('*', '*'); only then are critical events
 * folded too, whole resolved conditions first (the resolution with the events it links), oldest first, then
 * unresolved ones, oldest first. Event counts are conserved: kept events plus summary counts equal the input's.
 *
 * Pure and deterministic: the result depends only on the set of input envelopes (duplicates by id are dropped),
 * never on their order, so Boxes compacting the same log agree. Output is in canonical order (compareEvents).
 */
import { InvalidInputError } from '../errors.ts';
import { compareEvents, SEVERITY_RANK } from './types.ts';
import type { EventEnvelope, EventKind, SummaryPayload } from './types.ts';

type Summary = EventEnvelope<'events-summary'>;

interface Group {
  source: string;
  of: EventKind | '*';
  count: number;
  bySeverity: { normal: number; warning: number; failure: number };
  firstTime: number;
  lastTime: number;
  /** undefined: unknown for some member; null: no member yet. */
  firstSeq: number | undefined | null;
  lastSeq: number | undefined | null;
}

/** Coarseness of summary groups: 0 = (source, kind), 1 = ('*', kind), 2 = ('*', '*'). */
type Level = 0 | 1 | 2;

function canonical(a: EventEnvelope, b: EventEnvelope): number {
  const c = compareEvents(a, b);
  if (c !== 0) return c;
  const ja = JSON.stringify(a);
  const jb = JSON.stringify(b);
  return ja < jb ? -1 : ja > jb ? 1 : 0;
}

class Groups {
  readonly map = new Map<string, Group>();
  constructor(readonly level: Level) {}

  #keyOf(source: string, of: EventKind | '*'): [string, EventKind | '*'] {
    if (this.level === 0) return [source, of];
    if (this.level === 1) return ['*', of];
    return ['*', '*'];
  }

  #group(source: string, of: EventKind | '*'): Group {
    const [s, k] = this.#keyOf(source, of);
    const id = `${s}\u0000${k}`;
    let g = this.map.get(id);
    if (!g) {
      g = { source: s, of: k, count: 0, bySeverity: { normal: 0, warning: 0, failure: 0 }, firstTime: Infinity, lastTime: -Infinity, firstSeq: null, lastSeq: null };
      this.map.set(id, g);
    }
    return g;
  }

  #seqs(g: Group, first: number | undefined, last: number | undefined): void {
    if (g.source === '*' || first === undefined || last === undefined || g.firstSeq === undefined || g.lastSeq === undefined) {
      g.firstSeq = undefined;
      g.lastSeq = undefined;
      return;
    }
    g.firstSeq = g.firstSeq === null ? first : Math.min(g.firstSeq, first);
    g.lastSeq = g.lastSeq === null ? last : Math.max(g.lastSeq as number, last);
  }

  addEvent(e: EventEnvelope): void {
    if (e.kind === 'events-summary') return this.addSummary(e);
    const g = this.#group(e.source, e.kind);
    g.count++;
    g.bySeverity[e.severity]++;
    g.firstTime = Math.min(g.firstTime, e.time);
    g.lastTime = Math.max(g.lastTime, e.time);
    this.#seqs(g, e.seq, e.seq);
  }

  addSummary(s: Summary): void {
    const p = s.payload;
    const g = this.#group(s.source, p.of);
    g.count += p.count;
    g.bySeverity.normal += p.bySeverity.normal;
    g.bySeverity.warning += p.bySeverity.warning;
    g.bySeverity.failure += p.bySeverity.failure;
    g.firstTime = Math.min(g.firstTime, p.firstTime);
    g.lastTime = Math.max(g.lastTime, p.lastTime);
    this.#seqs(g, p.firstSeq, p.lastSeq);
  }

  get size(): number {
    return this.map.size;
  }

  envelopes(): Summary[] {
    return [...this.map.values()].map((g) => {
      const payload: SummaryPayload = { of: g.of, count: g.count, bySeverity: { ...g.bySeverity }, firstTime: g.firstTime, lastTime: g.lastTime };
      if (typeof g.firstSeq === 'number' && typeof g.lastSeq === 'number') {
        payload.firstSeq = g.firstSeq;
        payload.lastSeq = g.lastSeq;
      }
      return {
        id: `summary/${g.source}/${g.of}/${g.firstTime}-${g.lastTime}/${g.count}`,
        source: g.source,
        seq: 0,
        time: g.firstTime,
        severity: 'normal',
        kind: 'events-summary',
        payload,
      };
    });
  }
}

/** The number of events an entry stands for (a summary's count, else 1). */
export function eventCount(entries: readonly EventEnvelope[]): number {
  let n = 0;
  for (const e of entries) n += e.kind === 'events-summary' ? e.payload.count : 1;
  return n;
}

/** Compact `events` to at most `bound` entries (bound >= 1). See the module comment. */
export function compactEvents(events: readonly EventEnvelope[], bound: number): EventEnvelope[] {
  if (!Number.isInteger(bound) || bound < 1) throw new InvalidInputError(`a retention bound must be a positive integer, not ${bound}`);
  // Deterministic de-duplication by id.
  const byId = new Map<string, EventEnvelope>();
  for (const e of [...events].sort(canonical)) if (!byId.has(e.id)) byId.set(e.id, e);
  const all = [...byId.values()];
  if (all.length <= bound) return all;

  const summaries: Summary[] = [];
  const resolutions: EventEnvelope<'resolved'>[] = [];
  for (const e of all) {
    if (e.kind === 'events-summary') summaries.push(e);
    else if (e.kind === 'resolved') resolutions.push(e);
  }
  const linked = new Set<string>();
  for (const r of resolutions) {
    linked.add(r.payload.resolves);
    if (r.payload.latest !== undefined) linked.add(r.payload.latest);
  }
  const critical: EventEnvelope[] = [];
  const normal: EventEnvelope[] = [];
  for (const e of all) {
    if (e.kind === 'events-summary') continue;
    if (e.kind === 'resolved' || SEVERITY_RANK[e.severity] > 0 || linked.has(e.id)) critical.push(e);
    else normal.push(e);
  }

  // Fold normal events oldest first at the finest level that fits.
  for (const level of [0, 1, 2] as const) {
    const groups = new Groups(level);
    for (const s of summaries) groups.addSummary(s);
    let folded = 0;
    while (critical.length + groups.size + (normal.length - folded) > bound && folded < normal.length) {
      groups.addEvent(normal[folded]);
      folded++;
    }
    if (critical.length + groups.size + (normal.length - folded) <= bound) {
      return [...critical, ...normal.slice(folded), ...groups.envelopes()].sort(canonical);
    }
  }

  // Even one summary of all normal events plus every critical event is too many: fold critical events as well,
  // resolved conditions first (a resolution and the events it links, as a unit), then the rest, oldest first.
  const groups = new Groups(2);
  for (const s of summaries) groups.addSummary(s);
  for (const e of normal) groups.addEvent(e);
  const criticalById = new Map(critical.map((e) => [e.id, e]));
  const claimed = new Set<string>();
  const units: EventEnvelope[][] = [];
  for (const r of resolutions) {
    const unit: EventEnvelope[] = [r];
    claimed.add(r.id);
    for (const id of [r.payload.resolves, r.payload.latest]) {
      const e = id === undefined ? undefined : criticalById.get(id);
      if (e && !claimed.has(e.id)) {
        unit.push(e);
        claimed.add(e.id);
      }
    }
    units.push(unit);
  }
  for (const e of critical) if (!claimed.has(e.id)) units.push([e]);
  let kept = critical.length;
  const foldedIds = new Set<string>();
  for (const unit of units) {
    if (kept + groups.size <= bound) break;
    for (const e of unit) {
      groups.addEvent(e);
      foldedIds.add(e.id);
    }
    kept -= unit.length;
  }
  return [...critical.filter((e) => !foldedIds.has(e.id)), ...groups.envelopes()].sort(canonical);
}
