/**
 * `DaemonApi` (adapters/daemon/api.ts) over a running Box runtime: what `reserve daemon` serves over HTTP, and what
 * the CLI calls in-process when no daemon runs.
 *
 * status: every member (reachable, capacity, bytes held here, last seen, this Box's health), every snapshot with
 * the keeper's protection count (copies among the Boxes that answer), and the open conditions. Events: the reserve's
 * shared log (every Box's warnings, failures, resolutions and recent normal events) merged with this Box's own
 * events not yet in it.
 */
import { resolve as resolvePath } from 'node:path';
import { UnknownSnapshotError } from '../../core/box/box.ts';
import type { EventEnvelope } from '../../core/events/types.ts';
import { compareEvents, fromStoredEvent, isConditionKind } from '../../core/events/types.ts';
import { matchesFilter } from '../../core/events/inbox.ts';
import type { Progress } from '../../core/ports.ts';
import { parsePath } from '../../core/snapshot/names.ts';
import type {
  BackupReport,
  BackupRequest,
  BoxView,
  DaemonApi,
  EventQuery,
  LeaveReport,
  LeaveRequest,
  ProgressReport,
  RemoveReport,
  RemoveRequest,
  ReserveStatus,
  RestoreReport,
  RestoreRequest,
  SnapshotView,
} from '../daemon/api.ts';
import { LocalSourceTree, LocalTargetTree } from '../fs/local-tree.ts';
import { scanSize } from '../fs/scan.ts';
import type { BoxRuntime } from './runtime.ts';

export interface BoxDaemonApiOptions {
  /**
   * After a backup: 'background' (the keeper pushes the new blocks to their keepers; a daemon) or 'wait' (push
   * before answering; a CLI process that stops right after).
   */
  protect?: 'background' | 'wait';
  /** How often `follow` looks at the shared log for other Boxes' events (default 500 ms). */
  followPollMs?: number;
  /** Called once this Box has left the reserve (a daemon stops then: it is no longer a member). */
  onLeft?: (report: LeaveReport) => void;
}


function progressOf(onProgress: ((p: ProgressReport) => void) | undefined): Progress {
  let done = 0;
  let total: number | undefined;
  return {
    total(units: number) {
      total = units;
      onProgress?.(total === undefined ? { done } : { done, total });
    },
    advance(units: number) {
      done += units;
      onProgress?.(total === undefined ? { done } : { done, total });
    },
  };
}

export class BoxDaemonApi implements DaemonApi {
  readonly #rt: BoxRuntime;
  readonly #o: BoxDaemonApiOptions;

  constructor(rt: BoxRuntime, options: BoxDaemonApiOptions = {}) {
    this.#rt = rt;
    this.#o = options;
  }

  async status(): Promise<ReserveStatus> {
    const rt = this.#rt;
    const box = rt.box;
    const state = box.state();
    const now = Date.now();
    const connected = new Set(rt.network.peers());
    const book = rt.network.knownPeers();
    const members = box.members();
    // Every reachable member's own report (bytes held, health), asked in parallel, a short deadline each.
    const reports = new Map(
      await Promise.all(
        members.map(async (m) => [m.id, m.self ? await rt.selfReport() : m.reachable || connected.has(m.id) ? await rt.peerReport(m.id) : undefined] as const),
      ),
    );
    const boxes: BoxView[] = members.map((m) => {
      const rec = state.members.get(m.id);
      const heard = Math.max(book[m.id]?.lastSeen ?? 0, rec?.lastSeen.wall ?? 0);
      const v: BoxView = {
        id: m.id,
        status: m.status,
        self: m.self,
        reachable: m.self || m.reachable || connected.has(m.id),
        capacity: m.capacity,
        addresses: m.addresses,
        lastSeen: m.self || connected.has(m.id) ? now : heard > 0 ? heard : null,
      };
      if (m.region !== undefined) v.region = m.region;
      const report = reports.get(m.id);
      if (report?.used !== undefined) v.used = report.used;
      if (report?.health) v.health = report.health;
      return v;
    });
    const protection = new Map((await box.protection()).map((p) => [p.root, p]));
    const snapshots: SnapshotView[] = box.snapshots().map((s) => {
      const p = protection.get(s.root)!;
      // distinct chunks: the ones whose copies `protection` counts (duplicate chunks are stored, and counted, once)
      return { root: s.root, author: s.author, time: s.time, size: s.size, files: s.files, chunks: p.chunks, protection: p };
    });
    return {
      reserveId: rt.reserveId,
      self: rt.id,
      time: now,
      replication: { target: state.config.replication.target, minimum: state.config.replication.minimum },
      boxes,
      snapshots,
      open: openConditions(this.#allEvents()),
    };
  }

  /** The shared log (every Box's events) and this Box's own events, oldest first, each once. */
  #allEvents(): EventEnvelope[] {
    const box = this.#rt.box;
    const byId = new Map<string, EventEnvelope>();
    for (const r of box.state().log.entries) {
      try {
        const e = fromStoredEvent(r.event);
        byId.set(e.id, e);
      } catch {
        // a record this build cannot read: skip it
      }
    }
    for (const e of box.events.inbox.list()) if (!byId.has(e.id)) byId.set(e.id, e);
    return [...byId.values()].sort(compareEvents);
  }

  async events(query: EventQuery = {}): Promise<EventEnvelope[]> {
    const all = this.#allEvents().filter((e) => matchesFilter(e, query));
    return query.limit !== undefined && query.limit >= 0 ? all.slice(Math.max(0, all.length - query.limit)) : all;
  }

  follow(query: EventQuery & { after?: string }, listener: (events: readonly EventEnvelope[]) => void): () => void {
    const seen = new Set<string>();
    let stopped = false;
    const initial = this.#allEvents();
    const cut = query.after === undefined ? -1 : initial.findIndex((e) => e.id === query.after);
    // with `after`, replay what came after it; without, only what is new from now on
    const start = query.after === undefined ? initial.length : cut + 1;
    for (const e of initial.slice(0, start)) seen.add(e.id);
    const poll = () => {
      if (stopped) return;
      const fresh = this.#allEvents().filter((e) => !seen.has(e.id));
      for (const e of fresh) seen.add(e.id);
      const mine = fresh.filter((e) => matchesFilter(e, query));
      if (mine.length > 0) listener(mine);
    };
    poll();
    const unsubscribe = this.#rt.box.events.inbox.subscribe(() => poll());
    const timer = setInterval(poll, this.#o.followPollMs ?? 500);
    timer.unref?.();
    return () => {
      stopped = true;
      clearInterval(timer);
      unsubscribe();
    };
  }

  async backup(request: BackupRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal): Promise<BackupReport> {
    const path = resolvePath(request.path);
    const source = new LocalSourceTree(path);
    await source.stat([]); // a missing source fails before anything is written
    const progress = progressOf(onProgress);
    progress.total?.(await scanSize(path).catch(() => 0));
    const started = performance.now();
    const r = await this.#rt.box.backup(source, { progress, signal, protect: this.#o.protect ?? 'background' });
    return { root: r.root, parent: r.parent, stats: r.stats, warnings: r.warnings.map((w) => `${w.path}: ${w.message}`), seconds: (performance.now() - started) / 1000 };
  }

  async restore(request: RestoreRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal): Promise<RestoreReport> {
    const box = this.#rt.box;
    let rec;
    try {
      rec = box.resolve(request.ref);
    } catch (err) {
      if (!(err instanceof UnknownSnapshotError)) throw err;
      await box.syncAll(); // the catalog may lag behind a backup made on another Box a moment ago
      rec = box.resolve(request.ref);
    }
    const target = await LocalTargetTree.prepare(resolvePath(request.target));
    const progress = progressOf(onProgress);
    progress.total?.(rec.size);
    const started = performance.now();
    const r = await box.restore(rec.root, target, { subpath: request.subpath ? parsePath(request.subpath) : undefined, progress, signal });
    return { root: r.root, stats: r.stats, warnings: [], seconds: (performance.now() - started) / 1000 };
  }

  async leave(request: LeaveRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal): Promise<LeaveReport> {
    const started = performance.now();
    const r = await this.#rt.box.leave({ force: request.force, progress: progressOf(onProgress), signal });
    const report: LeaveReport = { box: this.#rt.id, ...r, seconds: (performance.now() - started) / 1000 };
    this.#o.onLeft?.(report);
    return report;
  }

  async remove(request: RemoveRequest): Promise<RemoveReport> {
    const r = await this.#rt.box.decommission(request.box, { reason: request.reason });
    await this.#rt.refresh(); // new connections use the new secret from now on: the removed Box cannot connect
    return r;
  }
}

/**
 * Conditions still open, newest first: condition events (warnings and failures that start a condition) that no
 * `resolved` event closed. A condition raised again is represented by its latest event only.
 */
export function openConditions(events: readonly EventEnvelope[]): EventEnvelope[] {
  const closed = new Set<string>();
  for (const e of events) {
    if (e.kind !== 'resolved') continue;
    closed.add(e.payload.resolves);
    if (e.payload.latest !== undefined) closed.add(e.payload.latest);
  }
  const open = events.filter((e) => isConditionKind(e.kind) && e.severity !== 'normal' && !closed.has(e.id));
  // one entry per (source, kind, payload subject): a re-raise supersedes the earlier event of the same condition
  const latest = new Map<string, EventEnvelope>();
  for (const e of open) latest.set(`${e.source} ${e.kind} ${subjectOf(e)}`, e);
  return [...latest.values()].sort((a, b) => compareEvents(b, a));
}

function subjectOf(e: EventEnvelope): string {
  const p = e.payload as unknown as Record<string, unknown>;
  for (const k of ['peers', 'metric', 'limitation', 'block', 'snapshots', 'keeper']) {
    if (p[k] !== undefined) return `${k}=${JSON.stringify(p[k]).slice(0, 200)}`;
  }
  return e.id;
}
