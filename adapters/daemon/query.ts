/**
 * The event query in a URL: `severity=warning&kind=a,b&source=<box>&since=<ms>&limit=<n>` (+ `after=<event id>` on
 * the stream). Written by the client, read by the server, each parameter checked with a message that says what is
 * allowed.
 */
import { EventKind, Severity, parseEventId } from '../../core/events/types.ts';
import type { EventQuery } from './api.ts';
import { DaemonRequestError } from './errors.ts';

const KINDS = Object.values(EventKind) as string[];
const SEVERITIES = Object.values(Severity) as string[];
/** The most events one request returns or replays. */
export const MAX_EVENT_LIMIT = 100_000;

export type StreamQuery = EventQuery & { after?: string };

/** URL parameters for a query (the order is fixed, so equal queries give equal URLs). */
export function eventQueryParams(query: StreamQuery = {}): URLSearchParams {
  const p = new URLSearchParams();
  if (query.minSeverity !== undefined) p.set('severity', query.minSeverity);
  if (query.kinds !== undefined) p.set('kind', query.kinds.join(','));
  if (query.source !== undefined) p.set('source', query.source);
  if (query.since !== undefined) p.set('since', String(query.since));
  if (query.limit !== undefined) p.set('limit', String(query.limit));
  if (query.after !== undefined) p.set('after', query.after);
  return p;
}

function single(params: URLSearchParams, name: string): string | undefined {
  const all = params.getAll(name);
  if (all.length > 1) throw new DaemonRequestError(`query parameter ${name} is given ${all.length} times; give it once`);
  return all[0];
}

function integer(name: string, text: string, min: number, max: number): number {
  if (!/^-?\d{1,16}$/.test(text)) throw new DaemonRequestError(`query parameter ${name}=${JSON.stringify(text)} is not a whole number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new DaemonRequestError(`query parameter ${name}=${text} is out of range (${min}..${max})`);
  return n;
}

/**
 * Read an event query from URL parameters. `token` is ignored (it is the credential); `after` is accepted only
 * when `stream` is set. Throws DaemonRequestError naming the bad parameter.
 */
export function parseEventQuery(params: URLSearchParams, options: { stream?: boolean } = {}): StreamQuery {
  const allowed = ['severity', 'kind', 'source', 'since', 'limit', 'token', ...(options.stream ? ['after'] : [])];
  for (const name of new Set(params.keys())) {
    if (!allowed.includes(name)) {
      throw new DaemonRequestError(`unknown query parameter ${JSON.stringify(name)} (allowed: ${allowed.filter((a) => a !== 'token').join(', ')})`);
    }
  }
  const q: StreamQuery = {};
  const severity = single(params, 'severity');
  if (severity !== undefined) {
    if (!SEVERITIES.includes(severity)) throw new DaemonRequestError(`severity=${JSON.stringify(severity)} is not one of ${SEVERITIES.join(', ')}`);
    q.minSeverity = severity as Severity;
  }
  const kind = single(params, 'kind');
  if (kind !== undefined) {
    const kinds = kind.split(',').map((k) => k.trim()).filter((k) => k !== '');
    const bad = kinds.filter((k) => !KINDS.includes(k));
    if (kinds.length === 0) throw new DaemonRequestError('kind= names no kind');
    if (bad.length > 0) throw new DaemonRequestError(`unknown event kind ${bad.map((b) => JSON.stringify(b)).join(', ')} (kinds: ${KINDS.join(', ')})`);
    q.kinds = kinds as EventKind[];
  }
  const source = single(params, 'source');
  if (source !== undefined) {
    if (source === '' || /[\s/]/.test(source) || source.length > 256) throw new DaemonRequestError(`source=${JSON.stringify(source)} is not a Box id`);
    q.source = source;
  }
  const since = single(params, 'since');
  if (since !== undefined) q.since = integer('since', since, 0, Number.MAX_SAFE_INTEGER);
  const limit = single(params, 'limit');
  if (limit !== undefined) q.limit = integer('limit', limit, 1, MAX_EVENT_LIMIT);
  const after = options.stream ? single(params, 'after') : undefined;
  if (after !== undefined) q.after = checkEventId(after, 'after');
  return q;
}

/** An event id from a client (`?after=` or `Last-Event-ID`): `<box>/<seq>`, or the id of a summary event. */
export function checkEventId(id: string, what: string): string {
  const ok = parseEventId(id) !== undefined || (id.startsWith('summary/') && id.length <= 1024 && !/[\s]/.test(id));
  if (!ok) throw new DaemonRequestError(`${what}=${JSON.stringify(id)} is not an event id (<box>/<seq>)`);
  return id;
}
