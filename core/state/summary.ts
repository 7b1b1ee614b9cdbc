/**
 * The reserve's state as a join-semilattice: every part is a map of records merged by a rule that is commutative,
 * associative and idempotent (last-writer-wins by event key, first-writer-wins, max, min, union). That one choice
 * gives three things at once:
 *
 * - the reducer may apply data events in any order (only membership events are folded in key order),
 * - a checkpoint is just the summary of the events it covers, and two checkpoints made concurrently on both sides
 *   of a partition merge with `joinSummaries` instead of one of them being thrown away (no fork choice, no lost
 *   history: IPFS Cluster's CRDT DAG has neither online compaction nor this),
 * - the summary has a canonical dag-cbor encoding, so it travels inside a signed checkpoint event.
 *
 * Ordering: an event's key is (hlc wall, hlc logical, event id). Per-part merge rules:
 *   members       status: decommissioned absorbs (first decommission wins), otherwise latest status event;
 *                 address/capacity/region: latest; keys (X25519) and generation: from the latest join / max;
 *                 joinedAt: min; lastSeen / lastKey: max
 *   generations   per generation, the rotation with the smallest key (the first); sealed copies: union, and
 *                 dropped for every generation but the current one
 *   config        per field path, latest
 *   catalog       per snapshot root, first publication; heads: per author, latest
 *   holders       per Box, latest report
 *   log           warnings, failures and resolutions: union by envelope id (first copy), newest MAX_LOG_RECORDS
 *                 kept; normal events: per (author, source, kind) totals and per-day counts for LOG_DAYS days,
 *                 merged by max (an author's covered events form a prefix of its sequence, so a larger count
 *                 always comes from a superset of the same events)
 *   cut           per author, max covered sequence number
 */
import { CID } from 'multiformats/cid';
import { z } from 'zod';
import { equalBytes } from '../blocks/cid.ts';
import { ReserveError } from '../errors.ts';
import type { BoxId } from '../net.ts';
import type { Hlc } from './hlc.ts';

/** The total order of shared-state events: hybrid logical time, then event id. */
export interface Key {
  readonly wall: number;
  readonly logical: number;
  readonly id: string;
}

export function compareKey(a: Key, b: Key): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1;
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function maxKey(a: Key, b: Key): Key {
  return compareKey(a, b) >= 0 ? a : b;
}

export function minKey(a: Key, b: Key): Key {
  return compareKey(a, b) <= 0 ? a : b;
}

export type MemberStatus = 'active' | 'left' | 'dead' | 'decommissioned';

export interface MemberRecord {
  id: BoxId;
  status: MemberStatus;
  /** Key of the event that set `status`. */
  statusAt: Key;
  /** Author of that event (the Box itself, or the member who declared it dead / decommissioned it). */
  statusBy: BoxId;
  statusReason?: string;
  /** Newest secret generation this Box is known to hold (joined with it, or was sent it in a rotation). */
  generation: number;
  /** X25519 public key that rotated secrets are sealed to. */
  xpub: Uint8Array;
  keysAt: Key;
  /** Bytes offered to the reserve. */
  capacity: number;
  region?: string;
  addresses: string[];
  infoAt: Key;
  /** Key of its first valid join. */
  joinedAt: Key;
  /** Latest hybrid time of an accepted event it signed. */
  lastSeen: Hlc;
  /** Key of the latest accepted event it signed. */
  lastKey: Key;
}

export interface GenerationRecord {
  generation: number;
  /** Public half of this generation's join key. */
  joinKey: Uint8Array;
  /** Key of the rotation that started it (absent for generation 0). */
  at?: Key;
  by?: BoxId;
  /** Boxes the secret was sealed to (the rotation's author included). */
  recipients: BoxId[];
  /** Sealed copies by recipient; kept only for the current generation. */
  sealed: Map<BoxId, Uint8Array>;
}

export interface ConfigEntry {
  value: unknown;
  at: Key;
  by: BoxId;
}

export interface SnapshotRecord {
  /** Root CID (string form). */
  root: string;
  parent?: string;
  author: BoxId;
  /** When the snapshot was taken (ms, the author's clock). */
  time: number;
  size: number;
  files: number;
  chunks: number;
  at: Key;
}

export interface HeadRecord {
  root: string;
  at: Key;
}

export interface HolderRecord {
  box: BoxId;
  count: number;
  bytes: number;
  /** Hash root of the Box's holdings (e.g. a Merkle root over sorted chunk CIDs). */
  root: Uint8Array;
  at: Key;
}

export type LogSeverity = 'normal' | 'warning' | 'failure';

/** The event-log record as the shared state stores it: an opaque envelope (core/events owns the kinds). */
export interface LogEnvelope {
  id: string;
  source: string;
  seq?: number;
  time: number;
  severity: LogSeverity;
  kind: string;
  payload: unknown;
}

export interface LogRecord {
  event: LogEnvelope;
  /** Box that put it into the shared log. */
  by: BoxId;
  at: Key;
}

/** All-time count of normal events per (author, source, kind). */
export interface LogTotal {
  author: BoxId;
  source: string;
  kind: string;
  count: number;
  firstTime: number;
  lastTime: number;
  firstSeq?: number;
  lastSeq?: number;
}

/** Normal events per (author, source, kind, UTC day) for the last LOG_DAYS days of each author. */
export interface LogDay {
  author: BoxId;
  source: string;
  kind: string;
  /** floor(time / 86,400,000). */
  day: number;
  count: number;
}

export interface Summary {
  cut: Map<BoxId, number>;
  members: Map<BoxId, MemberRecord>;
  generations: Map<number, GenerationRecord>;
  config: Map<string, ConfigEntry>;
  catalog: Map<string, SnapshotRecord>;
  heads: Map<BoxId, HeadRecord>;
  holders: Map<BoxId, HolderRecord>;
  important: Map<string, LogRecord>;
  totals: Map<string, LogTotal>;
  days: Map<string, LogDay>;
}

/** Warnings, failures and resolutions kept in a compacted log (the newest). */
export const MAX_LOG_RECORDS = 2_000;
/** Days of per-day normal-event counts kept per author. */
export const LOG_DAYS = 30;
export const DAY_MS = 86_400_000;

/** A summary (inside a checkpoint) that does not decode. */
export class MalformedSummaryError extends ReserveError {
  static override readonly name = 'MalformedSummaryError';
}

export function emptySummary(): Summary {
  return {
    cut: new Map(),
    members: new Map(),
    generations: new Map(),
    config: new Map(),
    catalog: new Map(),
    heads: new Map(),
    holders: new Map(),
    important: new Map(),
    totals: new Map(),
    days: new Map(),
  };
}

/** Log records that survive compaction: anything but a normal event, and resolutions. */
export function isImportant(e: LogEnvelope): boolean {
  return e.severity !== 'normal' || e.kind === 'resolved';
}

export function totalKey(author: BoxId, source: string, kind: string): string {
  return `${author}\n${source}\n${kind}`;
}

export function dayKey(author: BoxId, source: string, kind: string, day: number): string {
  return `${author}\n${source}\n${kind}\n${day}`;
}

// ------------------------------------------------------------------------------------------------ merge rules

/** Status precedence: decommissioned absorbs (earliest wins), otherwise latest wins. True when `a` beats `b`. */
export function statusBeats(a: { status: MemberStatus; statusAt: Key }, b: { status: MemberStatus; statusAt: Key }): boolean {
  const ad = a.status === 'decommissioned';
  const bd = b.status === 'decommissioned';
  if (ad !== bd) return ad;
  const c = compareKey(a.statusAt, b.statusAt);
  return ad ? c < 0 : c > 0;
}

function cloneMember(m: MemberRecord): MemberRecord {
  return { ...m, addresses: [...m.addresses] };
}

/** Merge `b` into member record `a` (mutates and returns `a`). */
export function mergeMember(a: MemberRecord, b: MemberRecord): MemberRecord {
  if (statusBeats(b, a)) {
    a.status = b.status;
    a.statusAt = b.statusAt;
    a.statusBy = b.statusBy;
    if (b.statusReason === undefined) delete a.statusReason;
    else a.statusReason = b.statusReason;
  }
  if (compareKey(b.keysAt, a.keysAt) > 0) {
    a.xpub = b.xpub;
    a.keysAt = b.keysAt;
  }
  if (compareKey(b.infoAt, a.infoAt) > 0) {
    a.capacity = b.capacity;
    a.addresses = [...b.addresses];
    a.infoAt = b.infoAt;
    if (b.region === undefined) delete a.region;
    else a.region = b.region;
  }
  a.generation = Math.max(a.generation, b.generation);
  a.joinedAt = minKey(a.joinedAt, b.joinedAt);
  if (b.lastSeen.wall > a.lastSeen.wall || (b.lastSeen.wall === a.lastSeen.wall && b.lastSeen.logical > a.lastSeen.logical)) a.lastSeen = b.lastSeen;
  a.lastKey = maxKey(a.lastKey, b.lastKey);
  return a;
}

function cloneGeneration(g: GenerationRecord): GenerationRecord {
  return { ...g, recipients: [...g.recipients], sealed: new Map(g.sealed) };
}

/** Merge generation `b` into `a` when both describe the same generation (mutates and returns the winner). */
export function mergeGeneration(a: GenerationRecord, b: GenerationRecord): GenerationRecord {
  const sameRotation = a.at === undefined ? b.at === undefined : b.at !== undefined && compareKey(a.at, b.at) === 0;
  if (sameRotation) {
    for (const [box, s] of b.sealed) if (!a.sealed.has(box)) a.sealed.set(box, s);
    return a;
  }
  // Two different rotations to the same generation: the first (smallest key) stands.
  if (a.at === undefined || (b.at !== undefined && compareKey(b.at, a.at) < 0)) return cloneGeneration(b);
  return a;
}

export function currentGeneration(generations: ReadonlyMap<number, GenerationRecord>): number {
  let g = -1;
  for (const k of generations.keys()) if (k > g) g = k;
  return g;
}

function joinMap<K, V>(a: Map<K, V>, b: ReadonlyMap<K, V>, pick: (x: V, y: V) => V, clone: (v: V) => V): void {
  for (const [k, v] of b) {
    const mine = a.get(k);
    a.set(k, mine === undefined ? clone(v) : pick(mine, v));
  }
}

const same = <V>(v: V): V => v;
const laterAt = <V extends { at: Key }>(x: V, y: V): V => (compareKey(y.at, x.at) > 0 ? y : x);
const earlierAt = <V extends { at: Key }>(x: V, y: V): V => (compareKey(y.at, x.at) < 0 ? y : x);

function largerTotal(x: LogTotal, y: LogTotal): LogTotal {
  if (y.count !== x.count) return y.count > x.count ? y : x;
  return y.lastTime > x.lastTime ? y : x;
}

export function cloneSummary(s: Summary): Summary {
  const out = emptySummary();
  joinInto(out, s);
  return out;
}

/** Merge `b` into `a` (mutates `a`), then normalise. */
export function joinInto(a: Summary, b: Summary): Summary {
  for (const [box, seq] of b.cut) a.cut.set(box, Math.max(a.cut.get(box) ?? 0, seq));
  joinMap(a.members, b.members, (x, y) => mergeMember(x, y), cloneMember);
  joinMap(a.generations, b.generations, (x, y) => mergeGeneration(x, y), cloneGeneration);
  joinMap(a.config, b.config, laterAt, same);
  joinMap(a.catalog, b.catalog, earlierAt, same);
  joinMap(a.heads, b.heads, laterAt, same);
  joinMap(a.holders, b.holders, laterAt, same);
  joinMap(a.important, b.important, earlierAt, same);
  joinMap(a.totals, b.totals, largerTotal, same);
  joinMap(a.days, b.days, (x, y) => (y.count > x.count ? y : x), same);
  return normalizeSummary(a);
}

/** The lattice join of summaries (a new summary; inputs untouched). */
export function joinSummaries(...summaries: Summary[]): Summary {
  const out = emptySummary();
  for (const s of summaries) joinInto(out, s);
  return out;
}

/**
 * Apply the retention rules (mutates): sealed secrets only for the current generation, the newest
 * MAX_LOG_RECORDS important log records, per-day counts only for each author's last LOG_DAYS days.
 * Each rule keeps "the top of" a monotone quantity, so normalising commutes with joining.
 */
export function normalizeSummary(s: Summary): Summary {
  const current = currentGeneration(s.generations);
  for (const [g, rec] of s.generations) if (g !== current && rec.sealed.size > 0) s.generations.set(g, { ...rec, sealed: new Map() });
  if (s.important.size > MAX_LOG_RECORDS) {
    const sorted = [...s.important.entries()].sort((x, y) => compareKey(y[1].at, x[1].at));
    for (const [id] of sorted.slice(MAX_LOG_RECORDS)) s.important.delete(id);
  }
  const newest = new Map<BoxId, number>();
  for (const d of s.days.values()) newest.set(d.author, Math.max(newest.get(d.author) ?? -Infinity, d.day));
  for (const [k, d] of s.days) if (d.day <= (newest.get(d.author) ?? 0) - LOG_DAYS) s.days.delete(k);
  return s;
}

// ------------------------------------------------------------------------------------------------ encoding
//
// Wire form (dag-cbor, every list sorted so the encoding is canonical). Box ids are interned: `boxes` is the
// sorted list of every Box id the summary mentions and records refer to them by index. Event keys are
// [wall, logical, CID of the event].

type KeyWire = [number, number, CID];

function keyToWire(k: Key): KeyWire {
  return [k.wall, k.logical, CID.parse(k.id)];
}

function byKey<T>(map: ReadonlyMap<string | number, T>): T[] {
  return [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}

function opt<T>(value: T | undefined): T | null {
  return value === undefined ? null : value;
}

export function envelopeToWire(e: LogEnvelope): Record<string, unknown> {
  const out: Record<string, unknown> = { id: e.id, source: e.source, time: e.time, severity: e.severity, kind: e.kind, payload: e.payload };
  if (e.seq !== undefined) out.seq = e.seq;
  return out;
}

/** The summary as a dag-cbor-encodable value with a canonical form. */
export function summaryToWire(s: Summary): unknown {
  const names = new Set<string>();
  for (const b of s.cut.keys()) names.add(b);
  for (const m of s.members.values()) names.add(m.id).add(m.statusBy);
  for (const g of s.generations.values()) {
    if (g.by !== undefined) names.add(g.by);
    for (const r of g.recipients) names.add(r);
    for (const r of g.sealed.keys()) names.add(r);
  }
  for (const e of s.config.values()) names.add(e.by);
  for (const r of s.catalog.values()) names.add(r.author);
  for (const a of s.heads.keys()) names.add(a);
  for (const h of s.holders.values()) names.add(h.box);
  for (const r of s.important.values()) names.add(r.by);
  for (const t of s.totals.values()) names.add(t.author);
  for (const d of s.days.values()) names.add(d.author);
  const boxes = [...names].sort();
  const ix = new Map(boxes.map((b, i) => [b, i]));
  const bx = (b: string): number => ix.get(b) as number;
  return {
    v: 2,
    boxes,
    cut: byKey(new Map([...s.cut].map(([b, n]) => [b, [bx(b), n]]))),
    members: byKey(s.members).map((m) => [
      bx(m.id),
      m.status,
      keyToWire(m.statusAt),
      bx(m.statusBy),
      opt(m.statusReason),
      m.generation,
      m.xpub,
      keyToWire(m.keysAt),
      m.capacity,
      opt(m.region),
      m.addresses,
      keyToWire(m.infoAt),
      keyToWire(m.joinedAt),
      [m.lastSeen.wall, m.lastSeen.logical],
      keyToWire(m.lastKey),
    ]),
    generations: byKey(s.generations).map((g) => [
      g.generation,
      g.joinKey,
      g.at === undefined ? null : keyToWire(g.at),
      g.by === undefined ? null : bx(g.by),
      [...g.recipients].sort().map(bx),
      byKey(new Map([...g.sealed].map(([b, v]) => [b, [bx(b), v]]))),
    ]),
    config: byKey(new Map([...s.config].map(([p, e]) => [p, [p, e.value, keyToWire(e.at), bx(e.by)]]))),
    catalog: byKey(s.catalog).map((r) => [CID.parse(r.root), r.parent === undefined ? null : CID.parse(r.parent), bx(r.author), r.time, r.size, r.files, r.chunks, keyToWire(r.at)]),
    heads: byKey(new Map([...s.heads].map(([a, h]) => [a, [bx(a), CID.parse(h.root), keyToWire(h.at)]]))),
    holders: byKey(s.holders).map((h) => [bx(h.box), h.count, h.bytes, h.root, keyToWire(h.at)]),
    important: byKey(s.important).map((r) => [envelopeToWire(r.event), bx(r.by), keyToWire(r.at)]),
    totals: byKey(new Map([...s.totals].map(([k, t]) => [k, [bx(t.author), t.source, t.kind, t.count, t.firstTime, t.lastTime, opt(t.firstSeq), opt(t.lastSeq)]]))),
    days: byKey(new Map([...s.days].map(([k, d]) => [k, [bx(d.author), d.source, d.kind, d.day, d.count]]))),
  };
}

const uint = z.int().min(0).max(Number.MAX_SAFE_INTEGER);
const severitySchema = z.enum(['normal', 'warning', 'failure']);

/** The opaque event-log envelope: the fields every log record has; the payload is not inspected. */
export const envelopeSchema = z.strictObject({
  id: z.string().min(1).max(1024),
  source: z.string().min(1).max(256),
  seq: uint.optional(),
  time: z.number().refine(Number.isFinite, 'must be a finite number'),
  severity: severitySchema,
  kind: z.string().min(1).max(128),
  payload: z.unknown(),
});

/**
 * A small hand-written validator for the summary's tuples: summaries are large (a whole catalog) and arrive from
 * peers, so they are checked field by field, but without a schema library's per-value overhead.
 */
class WireReader {
  constructor(readonly boxes: readonly string[]) {}
  fail(path: string, what: string): never {
    throw new MalformedSummaryError(`invalid checkpoint summary at ${path}: ${what}`);
  }
  tuple(v: unknown, n: number, path: string): unknown[] {
    if (!Array.isArray(v) || v.length !== n) this.fail(path, `expected a list of ${n}`);
    return v;
  }
  list(v: unknown, path: string, max = 10_000_000): unknown[] {
    if (!Array.isArray(v) || v.length > max) this.fail(path, 'expected a list');
    return v;
  }
  uint(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(path, 'expected a non-negative integer');
    return v;
  }
  int(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(path, 'expected an integer');
    return v;
  }
  num(v: unknown, path: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(path, 'expected a number');
    return v;
  }
  str(v: unknown, path: string, max = 1024): string {
    if (typeof v !== 'string' || v.length > max) this.fail(path, 'expected a string');
    return v;
  }
  bytes(v: unknown, path: string, max = 1024): Uint8Array {
    if (!(v instanceof Uint8Array) || v.byteLength > max) this.fail(path, 'expected bytes');
    return v;
  }
  cid(v: unknown, path: string): string {
    const c = CID.asCID(v);
    if (c === null) this.fail(path, 'expected a CID');
    return c.toString();
  }
  box(v: unknown, path: string): string {
    const i = this.uint(v, path);
    if (i >= this.boxes.length) this.fail(path, 'box index out of range');
    return this.boxes[i];
  }
  key(v: unknown, path: string): Key {
    const t = this.tuple(v, 3, path);
    return { wall: this.uint(t[0], `${path}.0`), logical: this.uint(t[1], `${path}.1`), id: this.cid(t[2], `${path}.2`) };
  }
  optional<T>(v: unknown, read: (x: unknown) => T): T | undefined {
    return v === null ? undefined : read(v);
  }
}

const STATUSES = new Set<MemberStatus>(['active', 'left', 'dead', 'decommissioned']);

/** Decode a summary from its wire value. Throws MalformedSummaryError. */
export function summaryFromWire(value: unknown): Summary {
  const w = value as Record<string, unknown>;
  const keys = ['v', 'boxes', 'cut', 'members', 'generations', 'config', 'catalog', 'heads', 'holders', 'important', 'totals', 'days'];
  if (w === null || typeof w !== 'object' || Array.isArray(w) || Object.keys(w).length !== keys.length || !keys.every((k) => Object.hasOwn(w, k))) {
    throw new MalformedSummaryError(`invalid checkpoint summary: expected exactly the fields ${keys.join(', ')}`);
  }
  if (w.v !== 2) throw new MalformedSummaryError(`checkpoint summary version ${JSON.stringify(w.v)} is not supported`);
  const boxList = new WireReader([]).list(w.boxes, 'boxes', 1_000_000).map((b, i) => new WireReader([]).str(b, `boxes.${i}`, 256));
  for (let i = 1; i < boxList.length; i++) if (!(boxList[i - 1] < boxList[i])) throw new MalformedSummaryError('invalid checkpoint summary at boxes: not sorted and unique');
  const r: WireReader = new WireReader(boxList);
  const s = emptySummary();
  r.list(w.cut, 'cut').forEach((x, i) => {
    const t = r.tuple(x, 2, `cut.${i}`);
    s.cut.set(r.box(t[0], `cut.${i}.0`), r.uint(t[1], `cut.${i}.1`));
  });
  r.list(w.members, 'members').forEach((x, i) => {
    const p = `members.${i}`;
    const m = r.tuple(x, 15, p);
    const status = r.str(m[1], `${p}.1`) as MemberStatus;
    if (!STATUSES.has(status)) r.fail(`${p}.1`, 'unknown status');
    const seen = r.tuple(m[13], 2, `${p}.13`);
    const rec: MemberRecord = {
      id: r.box(m[0], `${p}.0`),
      status,
      statusAt: r.key(m[2], `${p}.2`),
      statusBy: r.box(m[3], `${p}.3`),
      generation: r.uint(m[5], `${p}.5`),
      xpub: r.bytes(m[6], `${p}.6`, 32),
      keysAt: r.key(m[7], `${p}.7`),
      capacity: r.uint(m[8], `${p}.8`),
      addresses: r.list(m[10], `${p}.10`, 64).map((a, k) => r.str(a, `${p}.10.${k}`, 512)),
      infoAt: r.key(m[11], `${p}.11`),
      joinedAt: r.key(m[12], `${p}.12`),
      lastSeen: { wall: r.uint(seen[0], `${p}.13.0`), logical: r.uint(seen[1], `${p}.13.1`) },
      lastKey: r.key(m[14], `${p}.14`),
    };
    const reason = r.optional(m[4], (v) => r.str(v, `${p}.4`));
    if (reason !== undefined) rec.statusReason = reason;
    const region = r.optional(m[9], (v) => r.str(v, `${p}.9`, 64));
    if (region !== undefined) rec.region = region;
    s.members.set(rec.id, rec);
  });
  r.list(w.generations, 'generations').forEach((x, i) => {
    const p = `generations.${i}`;
    const g = r.tuple(x, 6, p);
    const rec: GenerationRecord = {
      generation: r.uint(g[0], `${p}.0`),
      joinKey: r.bytes(g[1], `${p}.1`, 32),
      recipients: r.list(g[4], `${p}.4`).map((b, k) => r.box(b, `${p}.4.${k}`)),
      sealed: new Map(
        r.list(g[5], `${p}.5`).map((e, k) => {
          const t = r.tuple(e, 2, `${p}.5.${k}`);
          return [r.box(t[0], `${p}.5.${k}.0`), r.bytes(t[1], `${p}.5.${k}.1`, 256)] as const;
        }),
      ),
    };
    const at = r.optional(g[2], (v) => r.key(v, `${p}.2`));
    if (at !== undefined) rec.at = at;
    const by = r.optional(g[3], (v) => r.box(v, `${p}.3`));
    if (by !== undefined) rec.by = by;
    s.generations.set(rec.generation, rec);
  });
  r.list(w.config, 'config').forEach((x, i) => {
    const p = `config.${i}`;
    const t = r.tuple(x, 4, p);
    s.config.set(r.str(t[0], `${p}.0`, 256), { value: t[1], at: r.key(t[2], `${p}.2`), by: r.box(t[3], `${p}.3`) });
  });
  r.list(w.catalog, 'catalog').forEach((x, i) => {
    const p = `catalog.${i}`;
    const c = r.tuple(x, 8, p);
    const rec: SnapshotRecord = {
      root: r.cid(c[0], `${p}.0`),
      author: r.box(c[2], `${p}.2`),
      time: r.uint(c[3], `${p}.3`),
      size: r.uint(c[4], `${p}.4`),
      files: r.uint(c[5], `${p}.5`),
      chunks: r.uint(c[6], `${p}.6`),
      at: r.key(c[7], `${p}.7`),
    };
    const parent = r.optional(c[1], (v) => r.cid(v, `${p}.1`));
    if (parent !== undefined) rec.parent = parent;
    s.catalog.set(rec.root, rec);
  });
  r.list(w.heads, 'heads').forEach((x, i) => {
    const p = `heads.${i}`;
    const t = r.tuple(x, 3, p);
    s.heads.set(r.box(t[0], `${p}.0`), { root: r.cid(t[1], `${p}.1`), at: r.key(t[2], `${p}.2`) });
  });
  r.list(w.holders, 'holders').forEach((x, i) => {
    const p = `holders.${i}`;
    const t = r.tuple(x, 5, p);
    const box = r.box(t[0], `${p}.0`);
    s.holders.set(box, { box, count: r.uint(t[1], `${p}.1`), bytes: r.uint(t[2], `${p}.2`), root: r.bytes(t[3], `${p}.3`, 64), at: r.key(t[4], `${p}.4`) });
  });
  r.list(w.important, 'important', MAX_LOG_RECORDS).forEach((x, i) => {
    const p = `important.${i}`;
    const t = r.tuple(x, 3, p);
    const env = envelopeSchema.safeParse(t[0]);
    if (!env.success) r.fail(`${p}.0`, env.error.issues[0]?.message ?? 'not a log envelope');
    const e: LogEnvelope = { id: env.data.id, source: env.data.source, time: env.data.time, severity: env.data.severity, kind: env.data.kind, payload: env.data.payload };
    if (env.data.seq !== undefined) e.seq = env.data.seq;
    s.important.set(e.id, { event: e, by: r.box(t[1], `${p}.1`), at: r.key(t[2], `${p}.2`) });
  });
  r.list(w.totals, 'totals').forEach((x, i) => {
    const p = `totals.${i}`;
    const t = r.tuple(x, 8, p);
    const rec: LogTotal = {
      author: r.box(t[0], `${p}.0`),
      source: r.str(t[1], `${p}.1`, 256),
      kind: r.str(t[2], `${p}.2`, 128),
      count: r.uint(t[3], `${p}.3`),
      firstTime: r.num(t[4], `${p}.4`),
      lastTime: r.num(t[5], `${p}.5`),
    };
    const fs = r.optional(t[6], (v) => r.uint(v, `${p}.6`));
    if (fs !== undefined) rec.firstSeq = fs;
    const ls = r.optional(t[7], (v) => r.uint(v, `${p}.7`));
    if (ls !== undefined) rec.lastSeq = ls;
    s.totals.set(totalKey(rec.author, rec.source, rec.kind), rec);
  });
  r.list(w.days, 'days').forEach((x, i) => {
    const p = `days.${i}`;
    const t = r.tuple(x, 5, p);
    const d: LogDay = { author: r.box(t[0], `${p}.0`), source: r.str(t[1], `${p}.1`, 256), kind: r.str(t[2], `${p}.2`, 128), day: r.int(t[3], `${p}.3`), count: r.uint(t[4], `${p}.4`) };
    s.days.set(dayKey(d.author, d.source, d.kind, d.day), d);
  });
  return s;
}

/** Structural equality of two summaries (same canonical encoding). */
export function sameSummary(a: Summary, b: Summary, encode: (v: unknown) => Uint8Array): boolean {
  return equalBytes(encode(summaryToWire(a)), encode(summaryToWire(b)));
}
