/**
 * Serve any DaemonApi over HTTP on 127.0.0.1 (the routes are listed in api.ts): JSON for status, events and
 * removing a Box, Server-Sent Events for the live feed, NDJSON for the progress of a backup, a restore or a leave,
 * and the admin page at `/`.
 *
 * - Every /api route needs the token (`Authorization: Bearer <token>` or `?token=`), compared in constant time;
 *   without it the answer is 401 whatever the route, so nothing is learned about the API without the token.
 * - Errors are `{error: {name, message}}` with the status of the error class (errors.ts): 400 bad input, 401,
 *   404 (no such route, an unknown snapshot or Box), 405, 409 busy or refused (a leave or removal that cannot be
 *   done), 413, else 500.
 * - The event stream sends `id:`/`event: reserve-event`/`data:` records, a `: keep-alive` comment every
 *   `keepAliveMs` (15 s), and first replays the kept events after `Last-Event-ID` (or `?after=`; the newest `limit`
 *   of them with `?limit=`, or the newest `limit` kept events when no id is given). Events that arrive while the
 *   replay is read are held and sent after it; an id is never sent twice on one connection. A client that reads
 *   too slowly (over 4 MiB unsent) is disconnected and reconnects with its last id.
 * - One backup, restore or leave at a time (else 409). Its response is NDJSON: progress lines (at most one per
 *   `progressIntervalMs`, and the last one), then one `result` or `error` line. If the client goes away the
 *   operation is aborted through its AbortSignal.
 * - `close()` aborts a running operation, ends open event streams and closes every connection.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AbortedError, InvalidInputError, ReserveError } from '../../core/errors.ts';
import type { EventEnvelope } from '../../core/events/types.ts';
import { ADMIN_PAGE } from './admin-page.ts';
import type { BackupRequest, DaemonApi, LeaveRequest, ProgressReport, RemoveRequest, RestoreRequest } from './api.ts';

type OperationKind = 'backup' | 'restore' | 'leave';
import {
  DaemonBusyError,
  DaemonHttpError,
  DaemonMethodNotAllowedError,
  DaemonRequestError,
  DaemonRequestTooLargeError,
  DaemonRouteNotFoundError,
  DaemonUnauthorizedError,
} from './errors.ts';
import { checkEventId, parseEventQuery } from './query.ts';

export interface ServeDaemonOptions {
  /** Only loopback is served. */
  host?: '127.0.0.1';
  /** Default 0: any free port. */
  port?: number;
  token: string;
  /** Between keep-alive comments on event streams. Default 15 s. */
  keepAliveMs?: number;
  /** At most one progress line per this. Default 100 ms. */
  progressIntervalMs?: number;
  /** Largest request body. Default 64 KiB. */
  maxBodyBytes?: number;
  /** Unexpected failures (a bug in the API, a broken socket), for the daemon's log. */
  onError?: (error: unknown) => void;
}

export interface DaemonServer {
  /** http://127.0.0.1:<port> */
  url: string;
  close(): Promise<void>;
}

/** Unsent bytes after which a slow event-stream client is dropped. */
const MAX_UNSENT_BYTES = 4 * 1024 * 1024;
/** Ids remembered per stream for de-duplication. */
const SENT_IDS = 20_000;

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function statusOf(error: unknown): number {
  if (error instanceof DaemonHttpError) return error.status;
  const name = error instanceof Error ? error.name : '';
  if (error instanceof InvalidInputError || /^(InvalidInput|Config|LimitExceeded|SourceNotFound|SourceNotADirectory|TargetNotEmpty|NotJoined)Error$/.test(name)) return 400;
  if (/^Unknown[A-Za-z]*Error$|NotFoundError$/.test(name)) return 404;
  if (/^(LeaveRefused|RemoveRefused)Error$/.test(name)) return 409;
  return 500;
}

function errorBody(error: unknown): { name: string; message: string } {
  if (error instanceof Error) return { name: error.name || 'Error', message: error.message };
  return { name: 'Error', message: String(error) };
}

const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

function sendError(res: ServerResponse, error: unknown): void {
  const extra: Record<string, string> = {};
  if (error instanceof DaemonUnauthorizedError) extra['www-authenticate'] = 'Bearer realm="reserve"';
  if (error instanceof DaemonMethodNotAllowedError) extra.allow = error.allowed.join(', ');
  sendJson(res, statusOf(error), { error: errorBody(error) }, extra);
}

async function readBody(req: IncomingMessage, max: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > max) throw new DaemonRequestTooLargeError(`the request body is ${declared} bytes; at most ${max} are accepted`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) throw new DaemonRequestTooLargeError(`the request body is over ${max} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') throw new DaemonRequestError('the request needs a JSON body');
  try {
    return JSON.parse(text);
  } catch {
    throw new DaemonRequestError('the request body is not valid JSON');
  }
}

function object(body: unknown, what: string): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new DaemonRequestError(`${what} takes a JSON object`);
  return body as Record<string, unknown>;
}

function onlyKeys(o: Record<string, unknown>, allowed: readonly string[], what: string): void {
  const extra = Object.keys(o).filter((k) => !allowed.includes(k));
  if (extra.length > 0) throw new DaemonRequestError(`${what}: unknown field ${extra.map((k) => JSON.stringify(k)).join(', ')} (fields: ${allowed.join(', ')})`);
}

function absolutePath(o: Record<string, unknown>, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') throw new DaemonRequestError(`${what} needs "${key}": an absolute path`);
  if (!v.startsWith('/')) throw new DaemonRequestError(`${what}: "${key}" must be an absolute path on the daemon's machine, not ${JSON.stringify(v)}`);
  if (v.includes('\0')) throw new DaemonRequestError(`${what}: "${key}" contains a NUL byte`);
  return v;
}

export function parseBackupRequest(body: unknown): BackupRequest {
  const o = object(body, 'POST /api/backup');
  onlyKeys(o, ['path'], 'POST /api/backup');
  return { path: absolutePath(o, 'path', 'POST /api/backup') };
}

export function parseRestoreRequest(body: unknown): RestoreRequest {
  const o = object(body, 'POST /api/restore');
  onlyKeys(o, ['ref', 'target', 'subpath'], 'POST /api/restore');
  if (typeof o.ref !== 'string' || o.ref.trim() === '') throw new DaemonRequestError('POST /api/restore needs "ref": latest, a snapshot id or an ISO time');
  const target = absolutePath(o, 'target', 'POST /api/restore');
  if (o.subpath !== undefined && (typeof o.subpath !== 'string' || o.subpath.includes('\0'))) throw new DaemonRequestError('POST /api/restore: "subpath" must be a path inside the snapshot');
  return { ref: o.ref, target, ...(o.subpath !== undefined ? { subpath: o.subpath as string } : {}) };
}

export function parseLeaveRequest(body: unknown): LeaveRequest {
  const o = object(body, 'POST /api/leave');
  onlyKeys(o, ['force'], 'POST /api/leave');
  if (o.force !== undefined && typeof o.force !== 'boolean') throw new DaemonRequestError('POST /api/leave: "force" must be true or false');
  return o.force === true ? { force: true } : {};
}

export function parseRemoveRequest(body: unknown): RemoveRequest {
  const o = object(body, 'POST /api/remove');
  onlyKeys(o, ['box', 'reason'], 'POST /api/remove');
  if (typeof o.box !== 'string' || o.box.trim() === '') throw new DaemonRequestError('POST /api/remove needs "box": the id of the Box to remove (or a unique start or end of it)');
  if (o.reason !== undefined && (typeof o.reason !== 'string' || o.reason.length > 500)) throw new DaemonRequestError('POST /api/remove: "reason" must be text of at most 500 characters');
  return { box: o.box, ...(o.reason !== undefined ? { reason: o.reason as string } : {}) };
}

/** A set that forgets its oldest members past `bound`. */
class RecentIds {
  readonly #ids = new Set<string>();
  constructor(readonly bound: number) {}
  has(id: string): boolean {
    return this.#ids.has(id);
  }
  add(id: string): void {
    this.#ids.add(id);
    if (this.#ids.size > this.bound) this.#ids.delete(this.#ids.values().next().value as string);
  }
}

export async function serveDaemon(api: DaemonApi, options: ServeDaemonOptions): Promise<DaemonServer> {
  if (typeof options.token !== 'string' || options.token.length < 16) throw new InvalidInputError('the daemon needs a token of at least 16 characters');
  if (options.host !== undefined && options.host !== '127.0.0.1') throw new InvalidInputError('the daemon only listens on 127.0.0.1');
  const tokenDigest = digest(options.token);
  const keepAliveMs = options.keepAliveMs ?? 15_000;
  const progressMs = options.progressIntervalMs ?? 100;
  const maxBody = options.maxBodyBytes ?? 64 * 1024;
  const onError = options.onError ?? (() => {});
  const streams = new Set<() => void>();
  let operation: { kind: OperationKind; controller: AbortController } | null = null;
  let closing = false;

  const authorized = (req: IncomingMessage, url: URL): boolean => {
    const header = req.headers.authorization;
    let given: string | null = null;
    if (typeof header === 'string') {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      given = m ? m[1] : '';
    } else given = url.searchParams.get('token');
    if (given === null) return false;
    return timingSafeEqual(digest(given), tokenDigest);
  };

  const page = (req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(ADMIN_PAGE.html),
      'content-security-policy': ADMIN_PAGE.contentSecurityPolicy,
      'x-frame-options': 'DENY',
    });
    res.end(req.method === 'HEAD' ? undefined : ADMIN_PAGE.html);
  };

  const stream = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const q = parseEventQuery(url.searchParams, { stream: true });
    const header = req.headers['last-event-id'];
    const after = typeof header === 'string' && header.trim() !== '' ? checkEventId(header.trim(), 'Last-Event-ID') : q.after;
    const { after: _after, limit, ...filter } = q;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 2000\n: connected\n\n');
    const sent = new RecentIds(SENT_IDS);
    let replaying = true;
    let held: EventEnvelope[] = [];
    let ended = false;
    const send = (events: readonly EventEnvelope[]): void => {
      if (ended) return;
      let out = '';
      for (const e of events) {
        if (sent.has(e.id)) continue;
        sent.add(e.id);
        out += `id: ${e.id}\nevent: reserve-event\ndata: ${JSON.stringify(e)}\n\n`;
      }
      if (out === '') return;
      res.write(out);
      if (res.writableLength > MAX_UNSENT_BYTES) res.destroy(); // too slow: it reconnects with its last id
    };
    const unsubscribe = api.follow(filter, (events) => {
      if (replaying) held.push(...events);
      else send(events);
    });
    const keepAlive = setInterval(() => {
      if (!ended) res.write(': keep-alive\n\n');
    }, keepAliveMs);
    keepAlive.unref?.();
    const end = (): void => {
      if (ended) return;
      ended = true;
      clearInterval(keepAlive);
      unsubscribe();
      streams.delete(end);
      held = [];
      if (!res.writableEnded) res.end();
    };
    streams.add(end);
    res.on('close', end);
    res.on('error', end);
    if (after !== undefined || limit !== undefined) {
      let replay: EventEnvelope[];
      try {
        replay = await api.events(filter);
      } catch (error) {
        onError(error);
        replay = [];
      }
      if (after !== undefined) {
        const at = replay.findIndex((e) => e.id === after);
        // The client has everything up to `after`: never send it those, whichever way they come. An id no longer
        // kept (compacted away): send everything kept; the client drops what it already has.
        for (let i = 0; i <= at; i++) sent.add(replay[i].id);
        if (at >= 0) replay = replay.slice(at + 1);
        sent.add(after);
      }
      if (limit !== undefined && replay.length > limit) replay = replay.slice(replay.length - limit);
      send(replay);
    }
    replaying = false;
    const pending = held;
    held = [];
    send(pending);
  };

  const longOperation = async (kind: OperationKind, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const body = await readBody(req, maxBody);
    const request = kind === 'backup' ? parseBackupRequest(body) : kind === 'restore' ? parseRestoreRequest(body) : parseLeaveRequest(body);
    if (operation) throw new DaemonBusyError(`a ${operation.kind} is running on this Box; try again when it has finished`);
    if (closing) throw new DaemonBusyError('the daemon is stopping');
    const controller = new AbortController();
    operation = { kind, controller };
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'application/x-ndjson; charset=utf-8' });
    res.on('close', () => {
      if (!res.writableFinished) controller.abort(new AbortedError(`the ${kind} was aborted: its client disconnected`));
    });
    const line = (value: unknown): void => {
      if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(value)}\n`);
    };
    let latest: ProgressReport | null = null;
    let lastSent = -Infinity;
    const flushProgress = (): void => {
      if (latest === null) return;
      line({ type: 'progress', done: latest.done, ...(latest.total !== undefined ? { total: latest.total } : {}) });
      latest = null;
      lastSent = performance.now();
    };
    const onProgress = (p: ProgressReport): void => {
      latest = { done: p.done, ...(p.total !== undefined ? { total: p.total } : {}) };
      if (performance.now() - lastSent >= progressMs) flushProgress();
    };
    try {
      const report =
        kind === 'backup'
          ? await api.backup(request as BackupRequest, onProgress, controller.signal)
          : kind === 'restore'
            ? await api.restore(request as RestoreRequest, onProgress, controller.signal)
            : await api.leave(request as LeaveRequest, onProgress, controller.signal);
      flushProgress();
      line({ type: 'result', ...report });
    } catch (error) {
      flushProgress();
      line({ type: 'error', ...errorBody(error) });
      if (!(error instanceof ReserveError) && !controller.signal.aborted) onError(error);
    } finally {
      operation = null;
      if (!res.writableEnded) res.end();
    }
  };

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://127.0.0.1');
    } catch {
      throw new DaemonRequestError('the request URL is malformed');
    }
    const method = req.method ?? 'GET';
    const path = url.pathname;
    const only = (...allowed: string[]): void => {
      if (!allowed.includes(method)) throw new DaemonMethodNotAllowedError(method, allowed);
    };
    if (path === '/' || path === '/index.html') {
      only('GET', 'HEAD');
      return page(req, res);
    }
    if (path !== '/api' && !path.startsWith('/api/')) throw new DaemonRouteNotFoundError(`nothing at ${path}; the admin page is at / and the API under /api/`);
    if (!authorized(req, url)) {
      throw new DaemonUnauthorizedError(
        req.headers.authorization !== undefined || url.searchParams.has('token')
          ? 'the token is not this daemon\'s (it is in <data>/daemon.json)'
          : 'this needs the daemon\'s token (Authorization: Bearer <token> or ?token=; it is in <data>/daemon.json)',
      );
    }
    switch (path) {
      case '/api/status':
        only('GET');
        if (url.searchParams.size > (url.searchParams.has('token') ? 1 : 0)) throw new DaemonRequestError('/api/status takes no query parameters');
        return sendJson(res, 200, await api.status());
      case '/api/events': {
        only('GET');
        return sendJson(res, 200, await api.events(parseEventQuery(url.searchParams)));
      }
      case '/api/events/stream':
        only('GET');
        return stream(req, res, url);
      case '/api/backup':
        only('POST');
        return longOperation('backup', req, res);
      case '/api/restore':
        only('POST');
        return longOperation('restore', req, res);
      case '/api/leave':
        only('POST');
        return longOperation('leave', req, res);
      case '/api/remove': {
        only('POST');
        const request = parseRemoveRequest(await readBody(req, maxBody));
        if (closing) throw new DaemonBusyError('the daemon is stopping');
        return sendJson(res, 200, await api.remove(request));
      }
      default:
        throw new DaemonRouteNotFoundError(`no API route ${path} (routes: /api/status, /api/events, /api/events/stream, /api/backup, /api/restore, /api/leave, /api/remove)`);
    }
  };

  const server = createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      if (statusOf(error) === 500) onError(error);
      if (res.headersSent) {
        if (!res.writableEnded) res.end();
        return;
      }
      // Drain what is left of the request so the connection can be reused (or closed cleanly).
      req.resume();
      sendError(res, error);
    });
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy(); // a client that went away: nothing to answer, nothing to report
      return;
    }
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    onError(error);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      if (closing) return;
      closing = true;
      operation?.controller.abort(new AbortedError('the daemon is stopping'));
      for (const end of [...streams]) end();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Streams just ended flush first; whatever is still open after that is cut.
        setImmediate(() => server.closeAllConnections());
      });
    },
  };
}
