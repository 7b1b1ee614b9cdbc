/**
 * The contract between a running Box (`reserve daemon`) and its local clients: the `reserve` CLI and the admin web
 * page. The daemon implements `DaemonApi` over its Box (adapters/runtime); http.ts serves any `DaemonApi` as JSON
 * over HTTP on 127.0.0.1 (plus Server-Sent Events for the live event feed and the admin page); client.ts is a
 * `DaemonApi` that talks to that server, so the CLI runs the same code against a data dir or a daemon.
 *
 * HTTP (every /api route needs `Authorization: Bearer <token>` or `?token=<token>`; the token is in
 * `<data>/daemon.json`, mode 0600):
 *
 *   GET  /                      the admin page (asks for nothing else than /api routes with the token in its URL)
 *   GET  /api/status            ReserveStatus
 *   GET  /api/events?severity=warning&kind=a,b&source=<box>&since=<ms>&limit=<n>   EventEnvelope[] (oldest first)
 *   GET  /api/events/stream     text/event-stream: `id: <event id>`, `event: reserve-event`, `data: <envelope JSON>`;
 *                               same query filters; replays kept events after `Last-Event-ID` (or `?after=`)
 *   POST /api/backup  {path}    application/x-ndjson: {type:'progress',done,total?}* then {type:'result',...} or
 *   POST /api/restore {ref,target,subpath?}           {type:'error',name,message}
 *   POST /api/leave   {force?}  (the same stream; progress counts the copies made elsewhere) this Box leaves the reserve
 *                               gracefully; a daemon stops once it has left
 *   POST /api/remove  {box,reason?}   RemoveReport: another Box is decommissioned (the secret rotates past it)
 *
 * Errors are JSON `{error: {name, message}}` with 400 (bad input), 401 (token), 404, 409 (busy) or 500; the
 * client turns them back into an Error whose `name` is the daemon's error class name.
 */
import type { EventEnvelope } from '../../core/events/types.ts';
import type { EventFilter } from '../../core/events/inbox.ts';
import type { Protection } from '../../core/keeper/keeper.ts';
import type { BackupStats } from '../../core/snapshot/backup.ts';
import type { RestoreStats } from '../../core/snapshot/restore.ts';

export const DAEMON_FILE = 'daemon.json';

/** What `reserve daemon` writes to `<data>/daemon.json` (mode 0600) once it serves, and removes when it stops. */
export interface DaemonFile {
  pid: number;
  /** http://127.0.0.1:<port> */
  url: string;
  token: string;
  box: string;
  reserveId: string;
  /** The Box's libp2p listen addresses (with /p2p/<id>). */
  addresses: string[];
  started: number;
}

export interface HealthView {
  /** Fractions 0..1 where known. */
  memoryUsed?: number;
  cpuBusy?: number;
  /** Bytes per second read+written on the Box's disk. */
  diskIoBytesPerSecond?: number;
  diskFreeBytes?: number;
  diskTotalBytes?: number;
  sampledAt?: number;
}

export interface BoxView {
  id: string;
  /** A human name for the Box (its host name or the name it joined with), when known. */
  name?: string;
  /** active | dead | left | decommissioned ... (the membership status in the shared state) */
  status: string;
  self: boolean;
  reachable: boolean;
  /** Bytes the Box offers to the reserve. */
  capacity: number;
  /** Bytes of blocks it holds, when known (exact for this Box, last report for others). */
  used?: number;
  region?: string;
  addresses: string[];
  /** Last time this Box heard from it (ms since epoch); null when never. */
  lastSeen: number | null;
  health?: HealthView;
}

export interface SnapshotView {
  root: string;
  author: string;
  time: number;
  size: number;
  files: number;
  chunks: number;
  protection: Protection;
}

export interface ReserveStatus {
  reserveId: string;
  self: string;
  time: number;
  replication: { target: number; minimum: number };
  boxes: BoxView[];
  snapshots: SnapshotView[];
  /** Open conditions (warnings and failures not yet resolved), newest first. */
  open: EventEnvelope[];
}

export interface EventQuery extends EventFilter {
  /** At most this many, the newest ones (still returned oldest first). */
  limit?: number;
}

export interface ProgressReport {
  done: number;
  total?: number;
}

export interface BackupRequest {
  /** Absolute path of the directory to back up, on the daemon's machine. */
  path: string;
}

export interface BackupReport {
  root: string;
  parent: string | null;
  stats: BackupStats;
  warnings: string[];
  seconds: number;
}

export interface RestoreRequest {
  /** `latest`, a snapshot id or unique part of one, or an ISO time. */
  ref: string;
  /** Absolute path of a new or empty directory. */
  target: string;
  subpath?: string;
}

export interface RestoreReport {
  root: string;
  stats: RestoreStats;
  warnings: string[];
  seconds: number;
}

export interface LeaveRequest {
  /** Leave even when fewer Boxes would remain than the minimum number of copies. */
  force?: boolean;
}

export interface LeaveReport {
  box: string;
  /** Referenced blocks this Box held. */
  held: number;
  /** Copies of them the Boxes that keep them now lacked, and made before this Box left. */
  copies: number;
  /** Active members left in the reserve. */
  remaining: number;
  /** Members that confirmed they know of the departure (the others learn it from them). */
  confirmedBy: string[];
  unconfirmed: string[];
  seconds: number;
}

export interface RemoveRequest {
  /** The Box's id, or a unique start or end of it. */
  box: string;
  reason?: string;
}

export interface RemoveReport {
  box: string;
  /** Its membership status before: active, dead or left. */
  was: string;
  /** The new secret generation, which the removed Box does not have. */
  generation: number;
  /** Active members now, and the minimum number of copies. */
  active: number;
  minimum: number;
  confirmedBy: string[];
  unconfirmed: string[];
}

export interface DaemonApi {
  status(): Promise<ReserveStatus>;
  events(query?: EventQuery): Promise<EventEnvelope[]>;
  /** New events as they arrive (after `after`, an event id, when given); returns an unsubscribe function. */
  follow(query: EventQuery & { after?: string }, listener: (events: readonly EventEnvelope[]) => void): () => void;
  backup(request: BackupRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal): Promise<BackupReport>;
  restore(request: RestoreRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal): Promise<RestoreReport>;
  /** This Box hands its blocks over and leaves the reserve (LeaveRefusedError, DrainIncompleteError, AbortedError). */
  leave(request: LeaveRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal): Promise<LeaveReport>;
  /** Decommission another Box (UnknownBoxError, RemoveRefusedError). */
  remove(request: RemoveRequest): Promise<RemoveReport>;
}
