/**
 * A DaemonApi that talks to a running daemon over HTTP (http.ts), so the CLI runs the same code whether it opens a
 * data dir itself or a daemon holds it.
 *
 * - `connectDaemon(dataDir)` reads `<dataDir>/daemon.json` and returns null when there is no daemon to talk to:
 *   no file (or an unreadable one), a pid that is not alive, or a server that does not answer an authenticated
 *   request within ~1 s. Otherwise a client.
 * - Errors come back as DaemonError whose `name` is the daemon's error class (`LimitExceededError`, ...); a daemon
 *   that cannot be reached gives DaemonUnreachableError, a reply that is not the protocol DaemonProtocolError.
 * - `backup`/`restore`/`leave` read the NDJSON stream: progress lines go to `onProgress`, the result line resolves, an
 *   error line rejects. Aborting the signal closes the connection, which makes the daemon abort the operation.
 * - `follow` reads the Server-Sent Events stream and reconnects when it breaks (after 0.5 s, doubling up to 10 s),
 *   sending the last event id it received as `Last-Event-ID`, so the daemon replays what was missed; ids already
 *   delivered are dropped, so the listener sees each event once.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventEnvelope } from '../../core/events/types.ts';
import { DAEMON_FILE } from './api.ts';
import type {
  BackupReport,
  BackupRequest,
  DaemonApi,
  DaemonFile,
  EventQuery,
  LeaveReport,
  LeaveRequest,
  ProgressReport,
  RemoveReport,
  RemoveRequest,
  ReserveStatus,
  RestoreReport,
  RestoreRequest,
} from './api.ts';
import { DaemonError, DaemonProtocolError, DaemonUnreachableError } from './errors.ts';
import { eventQueryParams } from './query.ts';

export type DaemonClient = DaemonApi & {
  readonly url: string;
  /** Abort every request and stream of this client. */
  close(): void;
};

export interface DaemonClientOptions {
  /** Reconnection delays of `follow` (first, longest). Default 500 ms and 10 s. */
  reconnectMs?: { initial?: number; max?: number };
  /** Errors of `follow` streams (each is followed by a reconnection). */
  onStreamError?: (error: unknown) => void;
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'AbortedError' || error.name === 'TimeoutError');
}

/** The error a non-2xx response stands for. */
async function responseError(res: Response, what: string): Promise<Error> {
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  const e = (body as { error?: { name?: unknown; message?: unknown } } | undefined)?.error;
  if (e && typeof e.name === 'string' && typeof e.message === 'string') return new DaemonError(e.name, e.message, res.status);
  return new DaemonProtocolError(`${what}: the daemon answered HTTP ${res.status} without an error description`);
}

/** Lines of a byte stream (UTF-8, split on \n, a trailing \r dropped). */
async function* lines(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffered = '';
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffered += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      yield line.endsWith('\r') ? line.slice(0, -1) : line;
    }
  }
  buffered += decoder.decode();
  if (buffered !== '') yield buffered;
}

/** A client for the daemon described by `file` (no check that it runs: see connectDaemon). */
export function createDaemonClient(file: Pick<DaemonFile, 'url' | 'token'>, options: DaemonClientOptions = {}): DaemonClient {
  const base = file.url.replace(/\/+$/, '');
  const auth = { authorization: `Bearer ${file.token}` };
  const closer = new AbortController();
  const initialDelay = options.reconnectMs?.initial ?? 500;
  const maxDelay = options.reconnectMs?.max ?? 10_000;

  const signalFor = (signal?: AbortSignal): AbortSignal => (signal ? AbortSignal.any([signal, closer.signal]) : closer.signal);

  const send = async (path: string, init: RequestInit & { signal?: AbortSignal }, what: string): Promise<Response> => {
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { ...init, headers: { ...auth, ...(init.headers as Record<string, string> | undefined) }, signal: signalFor(init.signal) });
    } catch (error) {
      if (isAbort(error)) throw error;
      throw new DaemonUnreachableError(`${what}: the daemon at ${base} did not answer (${(error as Error)?.cause instanceof Error ? ((error as Error).cause as Error).message : String(error)})`, { cause: error });
    }
    if (!res.ok) throw await responseError(res, what);
    return res;
  };

  const getJson = async <T>(path: string, what: string): Promise<T> => json<T>(await send(path, { method: 'GET' }, what), what);

  const json = async <T>(res: Response, what: string): Promise<T> => {
    try {
      return (await res.json()) as T;
    } catch (error) {
      if (isAbort(error)) throw error;
      throw new DaemonProtocolError(`${what}: the daemon's answer is not JSON`, { cause: error });
    }
  };

  const operation = async <T>(path: string, body: unknown, what: string, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal): Promise<T> => {
    const res = await send(path, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal }, what);
    if (!res.body) throw new DaemonProtocolError(`${what}: the daemon sent no progress stream`);
    try {
      for await (const line of lines(res.body)) {
        if (line.trim() === '') continue;
        let msg: { type?: unknown; [k: string]: unknown };
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          throw new DaemonProtocolError(`${what}: the daemon sent a line that is not JSON: ${line.slice(0, 80)}`);
        }
        if (msg.type === 'progress') {
          if (typeof msg.done === 'number') onProgress?.({ done: msg.done, ...(typeof msg.total === 'number' ? { total: msg.total } : {}) });
        } else if (msg.type === 'result') {
          const { type: _type, ...report } = msg;
          return report as T;
        } else if (msg.type === 'error') {
          throw new DaemonError(typeof msg.name === 'string' ? msg.name : 'Error', typeof msg.message === 'string' ? msg.message : `the ${what} failed`, 0);
        }
      }
    } catch (error) {
      if (error instanceof DaemonError || error instanceof DaemonProtocolError || isAbort(error)) throw error;
      if (signal?.aborted || closer.signal.aborted) throw error;
      throw new DaemonUnreachableError(`${what}: the connection to the daemon broke before the ${what} finished`, { cause: error });
    }
    throw new DaemonProtocolError(`${what}: the daemon's stream ended without a result`);
  };

  const follow = (query: EventQuery & { after?: string }, listener: (events: readonly EventEnvelope[]) => void): (() => void) => {
    const stop = new AbortController();
    const signal = AbortSignal.any([stop.signal, closer.signal]);
    const seen = new Set<string>();
    const remember = (id: string): void => {
      seen.add(id);
      if (seen.size > 20_000) seen.delete(seen.values().next().value as string);
    };
    let lastId = query.after;
    let delay = initialDelay;
    const { after: _after, ...filter } = query;
    const path = (): string => {
      const p = eventQueryParams(filter);
      return `/api/events/stream${p.size > 0 ? `?${p}` : ''}`;
    };
    const once = async (): Promise<void> => {
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (lastId !== undefined) headers['last-event-id'] = lastId;
      const res = await send(path(), { method: 'GET', headers, signal }, 'events --follow');
      if (!res.body) throw new DaemonProtocolError('events --follow: the daemon sent no stream');
      delay = initialDelay;
      let id: string | undefined;
      let event = 'message';
      let data: string[] = [];
      let batch: EventEnvelope[] = [];
      const flush = (): void => {
        if (batch.length === 0) return;
        const out = batch;
        batch = [];
        try {
          listener(out);
        } catch (error) {
          options.onStreamError?.(error); // a failing listener must not cut the stream
        }
      };
      const it = lines(res.body)[Symbol.asyncIterator]();
      for (;;) {
        // Deliver what is parsed whenever the stream pauses (a batch is what arrived together).
        const next = it.next();
        const ready = await Promise.race([next, new Promise<'idle'>((resolve) => setImmediate(() => resolve('idle')))]);
        const r = ready === 'idle' ? (flush(), await next) : ready;
        if (r.done) break;
        const line = r.value;
        if (line === '') {
          if (event === 'reserve-event' && data.length > 0) {
            let e: EventEnvelope;
            try {
              e = JSON.parse(data.join('\n')) as EventEnvelope;
            } catch {
              throw new DaemonProtocolError('events --follow: an event is not JSON');
            }
            const key = id ?? e.id;
            if (key !== undefined) lastId = key;
            if (typeof e.id === 'string' && !seen.has(e.id)) {
              remember(e.id);
              batch.push(e);
            }
          }
          id = undefined;
          event = 'message';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'id') id = value;
        else if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
      }
      flush();
    };
    void (async () => {
      while (!signal.aborted) {
        try {
          await once();
        } catch (error) {
          if (signal.aborted) return;
          options.onStreamError?.(error);
        }
        if (signal.aborted) return;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          signal.addEventListener('abort', () => {
            clearTimeout(t);
            resolve();
          }, { once: true });
        });
        delay = Math.min(maxDelay, delay * 2);
      }
    })();
    return () => stop.abort();
  };

  return {
    url: base,
    status: () => getJson<ReserveStatus>('/api/status', 'status'),
    events: (query: EventQuery = {}) => {
      const p = eventQueryParams(query);
      return getJson<EventEnvelope[]>(`/api/events${p.size > 0 ? `?${p}` : ''}`, 'events');
    },
    follow,
    backup: (request: BackupRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal) =>
      operation<BackupReport>('/api/backup', request, 'backup', onProgress, signal),
    restore: (request: RestoreRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal) =>
      operation<RestoreReport>('/api/restore', request, 'restore', onProgress, signal),
    leave: (request: LeaveRequest, onProgress?: (p: ProgressReport) => void, signal?: AbortSignal) =>
      operation<LeaveReport>('/api/leave', request, 'leave', onProgress, signal),
    remove: async (request: RemoveRequest) =>
      json<RemoveReport>(await send('/api/remove', { method: 'POST', body: JSON.stringify(request), headers: { 'content-type': 'application/json' } }, 'remove'), 'remove'),
    close: () => closer.abort(),
  };
}

function parseDaemonFile(text: string): DaemonFile | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  const f = v as Partial<DaemonFile> | null;
  if (!f || typeof f !== 'object') return null;
  if (typeof f.pid !== 'number' || typeof f.url !== 'string' || typeof f.token !== 'string') return null;
  if (!/^http:\/\/127\.0\.0\.1:\d+\/?$/.test(f.url)) return null;
  return f as DaemonFile;
}

function alive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // it exists, owned by someone else
  }
}

/**
 * The daemon serving `dataDir`, or null when none answers: no `daemon.json`, its pid is gone, or the server does
 * not answer an authenticated request within `timeoutMs` (default 1 s).
 */
export async function connectDaemon(dataDir: string, options: DaemonClientOptions & { timeoutMs?: number } = {}): Promise<DaemonClient | null> {
  let text: string;
  try {
    text = await readFile(join(dataDir, DAEMON_FILE), 'utf8');
  } catch {
    return null;
  }
  const file = parseDaemonFile(text);
  if (!file || !alive(file.pid)) return null;
  const base = file.url.replace(/\/+$/, '');
  try {
    const res = await fetch(`${base}/api/events?limit=1`, {
      headers: { authorization: `Bearer ${file.token}` },
      signal: AbortSignal.timeout(options.timeoutMs ?? 1_000),
    });
    await res.body?.cancel();
    if (!res.ok) return null;
  } catch {
    return null;
  }
  return createDaemonClient(file, options);
}
