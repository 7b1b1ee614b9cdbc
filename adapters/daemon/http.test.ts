/**
 * The daemon's HTTP surface without a browser: routes, token, JSON errors and their status codes, query checks,
 * the event stream (format, replay after Last-Event-ID, de-duplication, keep-alive, cleanup on disconnect, close),
 * NDJSON progress of backup/restore/leave (errors, abort on disconnect, one at a time), remove, and the client over all of it
 * (errors by name, follow with reconnection, connectDaemon's checks). Everything on 127.0.0.1.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AbortedError } from '../../core/errors.ts';
import type { EventEnvelope } from '../../core/events/types.ts';
import { LimitExceededError } from '../../core/forecast/limits.ts';
import { LeaveRefusedError, RemoveRefusedError } from '../../core/box/box.ts';
import { UnknownBoxError } from '../../core/state/events.ts';
import { DAEMON_FILE, type BackupReport, type DaemonApi, type DaemonFile, type LeaveReport, type ProgressReport, type RemoveReport, type RestoreReport } from './api.ts';
import { connectDaemon, createDaemonClient } from './client.ts';
import { demoBoxId, demoReserve } from './demo-reserve.ts';
import { DaemonError } from './errors.ts';
import { serveDaemon, type DaemonServer, type ServeDaemonOptions } from './http.ts';
import { EventMaker, MemoryDaemon, type Operation } from './memory-daemon.ts';

const TOKEN = 'test-token-0123456789abcdef';
const NOW = Date.UTC(2026, 10, 20, 12, 0, 0);
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function serve(api: DaemonApi, options: Partial<ServeDaemonOptions> = {}): Promise<DaemonServer> {
  const server = await serveDaemon(api, { token: TOKEN, progressIntervalMs: 0, ...options });
  cleanup.push(() => server.close());
  return server;
}

function daemon(extra: { backup?: Operation<never, BackupReport>; restore?: Operation<never, RestoreReport>; leave?: unknown; remove?: unknown } = {}) {
  const demo = demoReserve(NOW);
  const d = new MemoryDaemon({ status: demo.status, events: demo.events, now: () => NOW, ...(extra as object) });
  return { demo, d };
}

const auth = { authorization: `Bearer ${TOKEN}` };

async function json(res: Response): Promise<unknown> {
  return res.json();
}

const until = async (cond: () => boolean, what: string, ms = 5_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

const report: BackupReport = {
  root: 'bafyreib4pff766vhpbxbhjbqqnsh5emeznvujayjj4z2iu533cprgbz23m',
  parent: null,
  stats: { files: 3, dirs: 1, symlinks: 0, hardlinks: 0, skipped: 0, bytes: 300, bytesRead: 300, bytesNew: 300, chunks: 3, chunksNew: 3, chunksDedup: 0, filesUnchanged: 0 },
  warnings: [],
  seconds: 0.01,
};

/** Read a text/event-stream response into records, until `stop` says enough. */
async function readSse(res: Response, stop: (records: Array<Record<string, string>>, comments: string[]) => boolean) {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const records: Array<Record<string, string>> = [];
  const comments: string[] = [];
  let text = '';
  while (!stop(records, comments)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const rec: Record<string, string> = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) comments.push(line.slice(1).trim());
        else {
          const i = line.indexOf(':');
          rec[line.slice(0, i)] = line.slice(i + 1).trimStart();
        }
      }
      if (rec.event !== undefined || rec.data !== undefined) records.push(rec);
    }
  }
  await reader.cancel().catch(() => {});
  return { records, comments };
}

describe('routes, token and errors', () => {
  it('serves the admin page without a token, with a strict content security policy', async () => {
    const { d } = daemon();
    const s = await serve(d);
    const res = await fetch(`${s.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/html');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).toContain("connect-src 'self'");
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await res.text();
    expect(html).toContain('<title>Reserve</title>');
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)=["']https?:/); // no external asset
  });

  it('requires the token on every /api route, in constant form, and says where it is', async () => {
    const { d } = daemon();
    const s = await serve(d);
    for (const path of ['/api/status', '/api/events', '/api/events/stream', '/api/nothing-here']) {
      const res = await fetch(`${s.url}${path}`);
      expect(res.status, path).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('Bearer');
      const body = (await json(res)) as { error: { name: string; message: string } };
      expect(body.error.name).toBe('DaemonUnauthorizedError');
      expect(body.error.message).toContain('daemon.json');
    }
    const wrong = await fetch(`${s.url}/api/status`, { headers: { authorization: `Bearer ${TOKEN}x` } });
    expect(wrong.status).toBe(401);
    expect(((await json(wrong)) as { error: { message: string } }).error.message).toContain('not this daemon');
    expect((await fetch(`${s.url}/api/status?token=nope`)).status).toBe(401);
    const bearer = await fetch(`${s.url}/api/status`, { headers: auth });
    expect(bearer.status).toBe(200);
    const byQuery = await fetch(`${s.url}/api/status?token=${TOKEN}`);
    expect(byQuery.status).toBe(200);
    const status = (await json(byQuery)) as { boxes: unknown[]; snapshots: unknown[]; open: unknown[]; time: number };
    expect(status.boxes).toHaveLength(4);
    expect(status.snapshots).toHaveLength(6);
    expect(status.time).toBe(NOW);
    expect(status.open.length).toBeGreaterThan(0);
  });

  it('answers unknown routes 404, wrong methods 405, and API failures with their status and class name', async () => {
    const { d } = daemon();
    const failing: DaemonApi = Object.assign(Object.create(d) as DaemonApi, {
      status: async () => {
        const e = new Error('no snapshot "zzz" in this reserve');
        e.name = 'UnknownSnapshotError';
        throw e;
      },
    });
    const s = await serve(failing);
    const notFound = await fetch(`${s.url}/api/snapshots`, { headers: auth });
    expect(notFound.status).toBe(404);
    expect(((await json(notFound)) as { error: { name: string } }).error.name).toBe('DaemonRouteNotFoundError');
    expect((await fetch(`${s.url}/favicon.ico`)).status).toBe(404);
    const method = await fetch(`${s.url}/api/events`, { method: 'DELETE', headers: auth });
    expect(method.status).toBe(405);
    expect(method.headers.get('allow')).toBe('GET');
    const post = await fetch(`${s.url}/api/backup`, { headers: auth });
    expect(post.status).toBe(405);
    const unknown = await fetch(`${s.url}/api/status`, { headers: auth });
    expect(unknown.status).toBe(404);
    expect(await json(unknown)).toEqual({ error: { name: 'UnknownSnapshotError', message: 'no snapshot "zzz" in this reserve' } });
    // The client turns it back into an error of that name.
    const client = createDaemonClient({ url: s.url, token: TOKEN });
    cleanup.push(() => client.close());
    const err = await client.status().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DaemonError);
    expect((err as DaemonError).name).toBe('UnknownSnapshotError');
    expect((err as DaemonError).status).toBe(404);
  });

  it('checks event queries with clear 400s and applies them', async () => {
    const { d, demo } = daemon();
    const s = await serve(d);
    const get = (q: string) => fetch(`${s.url}/api/events?${q}`, { headers: auth });
    const bad: Array<[string, RegExp]> = [
      ['severity=loud', /severity="loud" is not one of normal, warning, failure/],
      ['kind=keeper-added,nonsense', /unknown event kind "nonsense"/],
      ['since=yesterday', /since="yesterday" is not a whole number/],
      ['limit=0', /limit=0 is out of range/],
      ['limit=1&limit=2', /limit is given 2 times/],
      ['sevrity=warning', /unknown query parameter "sevrity"/],
      ['after=x/1', /unknown query parameter "after"/],
      ['source=a/b', /not a Box id/],
    ];
    for (const [q, message] of bad) {
      const res = await get(q);
      expect(res.status, q).toBe(400);
      const body = (await json(res)) as { error: { name: string; message: string } };
      expect(body.error.name, q).toBe('DaemonRequestError');
      expect(body.error.message, q).toMatch(message);
    }
    const warnings = (await json(await get('severity=warning'))) as EventEnvelope[];
    expect(warnings.length).toBeGreaterThan(0);
    expect(warnings.every((e) => e.severity !== 'normal')).toBe(true);
    const kinds = (await json(await get('kind=resolved,keeper-added'))) as EventEnvelope[];
    expect(new Set(kinds.map((e) => e.kind))).toEqual(new Set(['resolved', 'keeper-added']));
    const fromHome = (await json(await get(`source=${demo.boxes.home}`))) as EventEnvelope[];
    expect(fromHome.every((e) => e.source === demo.boxes.home)).toBe(true);
    const all = (await json(await get(''))) as EventEnvelope[];
    const last2 = (await json(await get('limit=2'))) as EventEnvelope[];
    expect(last2.map((e) => e.id)).toEqual(all.slice(-2).map((e) => e.id));
    const since = all[3].time;
    expect(((await json(await get(`since=${since}`))) as EventEnvelope[]).every((e) => e.time >= since)).toBe(true);
    // The client builds the same queries.
    const client = createDaemonClient({ url: s.url, token: TOKEN });
    cleanup.push(() => client.close());
    expect((await client.events({ minSeverity: 'failure' })).map((e) => e.id)).toEqual(all.filter((e) => e.severity === 'failure').map((e) => e.id));
    expect((await client.events({ limit: 2 })).map((e) => e.id)).toEqual(last2.map((e) => e.id));
  });
});

describe('the event stream', () => {
  it('sends records with id, event and data; replays after Last-Event-ID; then sends new events live', async () => {
    const { d, demo } = daemon();
    const s = await serve(d);
    const all = await d.events();
    const after = all[all.length - 4].id;
    const res = await fetch(`${s.url}/api/events/stream`, { headers: { ...auth, 'last-event-id': after } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const fresh = demo.maker.make(demo.boxes.office, NOW + 1000, { kind: 'keeper-health', severity: 'failure', payload: { metric: 'cpu', keeper: demo.boxes.office, busyFraction: 0.99, threshold: 0.95 } });
    setTimeout(() => d.publish([fresh]), 100);
    const { records } = await readSse(res, (r) => r.length >= 4);
    expect(records.map((r) => r.id)).toEqual([...all.slice(-3).map((e) => e.id), fresh.id]);
    expect(records.every((r) => r.event === 'reserve-event')).toBe(true);
    expect(JSON.parse(records[3].data)).toEqual(fresh);
  });

  it('replays the newest `limit` events, and ?after= like Last-Event-ID; an unknown id replays everything kept', async () => {
    const { d } = daemon();
    const s = await serve(d);
    const all = await d.events();
    const limited = await readSse(await fetch(`${s.url}/api/events/stream?limit=3&token=${TOKEN}`), (r) => r.length >= 3);
    expect(limited.records.map((r) => r.id)).toEqual(all.slice(-3).map((e) => e.id));
    const after = await readSse(await fetch(`${s.url}/api/events/stream?after=${encodeURIComponent(all[5].id)}&token=${TOKEN}`), (r) => r.length >= all.length - 6);
    expect(after.records.map((r) => r.id)).toEqual(all.slice(6).map((e) => e.id));
    const gone = await readSse(await fetch(`${s.url}/api/events/stream?after=${encodeURIComponent(`${demoBoxId('x')}/99`)}&token=${TOKEN}`), (r) => r.length >= all.length);
    expect(gone.records.map((r) => r.id)).toEqual(all.map((e) => e.id));
    const bad = await fetch(`${s.url}/api/events/stream`, { headers: { ...auth, 'last-event-id': 'not an id' } });
    expect(bad.status).toBe(400);
  });

  it('never sends an id twice, even when the API also replays through follow', async () => {
    const { d, demo } = daemon();
    // A follow that hands over everything it keeps first (as a Box's might) overlaps the server's own replay.
    const eager: DaemonApi = Object.assign(Object.create(d) as DaemonApi, {
      follow: (q: Parameters<DaemonApi['follow']>[0], l: Parameters<DaemonApi['follow']>[1]) => {
        const stop = d.follow(q, l);
        queueMicrotask(() => l(d.inbox.list()));
        return stop;
      },
    });
    const s = await serve(eager);
    const all = await d.events();
    const res = await fetch(`${s.url}/api/events/stream?after=${encodeURIComponent(all[1].id)}`, { headers: auth });
    const fresh = demo.maker.make(demo.boxes.home, NOW + 5, { kind: 'keeper-added', severity: 'normal', payload: { keeper: demoBoxId('new') } });
    setTimeout(() => {
      d.publish([fresh]);
      d.publish([fresh]); // a duplicate delivery (at least once) is dropped by the inbox, and by the stream
    }, 100);
    const { records } = await readSse(res, (r) => r.some((x) => x.id === fresh.id));
    const ids = records.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toContain(fresh.id);
    expect(ids).not.toContain(all[1].id);
    expect(ids).not.toContain(all[0].id);
  });

  it('sends keep-alive comments, unsubscribes when the client goes away, and close() ends open streams', async () => {
    const { d } = daemon();
    let subscribed = 0;
    const counting: DaemonApi = Object.assign(Object.create(d) as DaemonApi, {
      follow: (q: Parameters<DaemonApi['follow']>[0], l: Parameters<DaemonApi['follow']>[1]) => {
        subscribed++;
        const stop = d.follow(q, l);
        return () => {
          subscribed--;
          stop();
        };
      },
    });
    const s = await serveDaemon(counting, { token: TOKEN, keepAliveMs: 40 });
    cleanup.push(() => s.close());
    const controller = new AbortController();
    const res = await fetch(`${s.url}/api/events/stream`, { headers: auth, signal: controller.signal });
    const { comments } = await readSse(res, (_r, c) => c.filter((x) => x === 'keep-alive').length >= 2);
    expect(comments[0]).toBe('connected');
    expect(comments.filter((x) => x === 'keep-alive').length).toBeGreaterThanOrEqual(2);
    controller.abort();
    await until(() => subscribed === 0, 'the stream to unsubscribe');
    // close() ends a stream that is still open: its reader sees the end.
    const open = await fetch(`${s.url}/api/events/stream`, { headers: auth });
    await until(() => subscribed === 1, 'a new subscription');
    const reader = open.body!.getReader();
    await reader.read(); // 'connected'
    const closing = s.close();
    let done = false;
    while (!done) done = (await reader.read()).done;
    await closing;
    expect(subscribed).toBe(0);
  });
});

describe('backup and restore', () => {
  it('streams NDJSON progress then the result, and the client reports both', async () => {
    let seen: { path: string } | undefined;
    const { d } = daemon({
      backup: (async (request: { path: string }, onProgress: (p: ProgressReport) => void) => {
        seen = request;
        for (let done = 0; done <= 300; done += 100) {
          onProgress({ done, total: 300 });
          await new Promise((r) => setTimeout(r, 5));
        }
        return report;
      }) as never,
    });
    const s = await serve(d);
    const raw = await fetch(`${s.url}/api/backup`, { method: 'POST', headers: auth, body: JSON.stringify({ path: '/srv/photos' }) });
    expect(raw.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = (await raw.text()).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.slice(0, -1)).toEqual([0, 100, 200, 300].map((done) => ({ type: 'progress', done, total: 300 })));
    expect(lines[lines.length - 1]).toEqual({ type: 'result', ...report });
    expect(seen).toEqual({ path: '/srv/photos' });
    const client = createDaemonClient({ url: s.url, token: TOKEN });
    cleanup.push(() => client.close());
    const progress: ProgressReport[] = [];
    expect(await client.backup({ path: '/srv/photos' }, (p) => progress.push(p))).toEqual(report);
    expect(progress.map((p) => p.done)).toEqual([0, 100, 200, 300]);
  });

  it('reports a failure as an error line, which the client throws under the daemon\'s error name', async () => {
    const { d } = daemon({
      backup: (async (_r: unknown, onProgress: (p: ProgressReport) => void) => {
        onProgress({ done: 0 });
        throw new LimitExceededError([{ limitation: 'file-size', subject: 'big.mov', value: 80, limit: 64, message: 'big.mov is 80 B, over the 64 B file size limit' }]);
      }) as never,
    });
    const s = await serve(d);
    const client = createDaemonClient({ url: s.url, token: TOKEN });
    cleanup.push(() => client.close());
    const err = (await client.backup({ path: '/srv/photos' }).catch((e: unknown) => e)) as DaemonError;
    expect(err.name).toBe('LimitExceededError');
    expect(err.message).toContain('big.mov is 80 B, over the 64 B file size limit');
    const restore = (await client.restore({ ref: 'latest', target: '/tmp/x' }).catch((e: unknown) => e)) as DaemonError;
    expect(restore.name).toBe('OperationUnavailableError');
  });

  it('rejects bad bodies with 400 before starting anything', async () => {
    let started = 0;
    const { d } = daemon({ backup: (async () => (started++, report)) as never, restore: (async () => (started++, report)) as never });
    const s = await serve(d);
    const post = (path: string, body: string) => fetch(`${s.url}${path}`, { method: 'POST', headers: auth, body });
    const cases: Array<[string, string, RegExp]> = [
      ['/api/backup', 'not json', /not valid JSON/],
      ['/api/backup', '', /needs a JSON body/],
      ['/api/backup', '[]', /takes a JSON object/],
      ['/api/backup', '{}', /needs "path"/],
      ['/api/backup', '{"path":"photos"}', /must be an absolute path/],
      ['/api/backup', '{"path":"/a","force":true}', /unknown field "force"/],
      ['/api/restore', '{"target":"/t"}', /needs "ref"/],
      ['/api/restore', '{"ref":"latest","target":"/t","subpath":7}', /subpath/],
    ];
    for (const [path, body, message] of cases) {
      const res = await post(path, body);
      expect(res.status, body).toBe(400);
      expect(((await json(res)) as { error: { message: string } }).error.message, body).toMatch(message);
    }
    const big = await post('/api/backup', JSON.stringify({ path: `/${'a'.repeat(70_000)}` }));
    expect(big.status).toBe(413);
    expect(started).toBe(0);
  });

  it('runs one operation at a time (409) and aborts it when its client disconnects', async () => {
    let aborted: unknown;
    let running = false;
    const { d } = daemon({
      backup: ((_r: unknown, onProgress: (p: ProgressReport) => void, signal: AbortSignal) =>
        new Promise<BackupReport>((_resolve, reject) => {
          running = true;
          onProgress({ done: 1 });
          signal.addEventListener('abort', () => {
            aborted = signal.reason;
            running = false;
            reject(signal.reason);
          });
        })) as never,
      restore: (async () => ({ root: report.root, stats: { files: 1, dirs: 1, symlinks: 0, hardlinks: 0, bytes: 1, chunks: 1 }, warnings: [], seconds: 0 })) as never,
    });
    const s = await serve(d);
    const controller = new AbortController();
    const first = await fetch(`${s.url}/api/backup`, { method: 'POST', headers: auth, body: '{"path":"/data"}', signal: controller.signal });
    const reader = first.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('"progress"');
    const busy = await fetch(`${s.url}/api/restore`, { method: 'POST', headers: auth, body: '{"ref":"latest","target":"/r"}' });
    expect(busy.status).toBe(409);
    const body = (await json(busy)) as { error: { name: string; message: string } };
    expect(body.error.name).toBe('DaemonBusyError');
    expect(body.error.message).toContain('a backup is running');
    controller.abort();
    await until(() => !running, 'the backup to be aborted');
    expect(aborted).toBeInstanceOf(AbortedError);
    expect((aborted as Error).message).toContain('client disconnected');
    // Free again.
    const client = createDaemonClient({ url: s.url, token: TOKEN });
    cleanup.push(() => client.close());
    expect((await client.restore({ ref: 'latest', target: '/r' })).root).toBe(report.root);
  });

  it('a client abort cancels the daemon side through the same path', async () => {
    let sawAbort = false;
    const { d } = daemon({
      backup: ((_r: unknown, onProgress: (p: ProgressReport) => void, signal: AbortSignal) =>
        new Promise<BackupReport>((_resolve, reject) => {
          onProgress({ done: 0 });
          signal.addEventListener('abort', () => {
            sawAbort = true;
            reject(signal.reason);
          });
        })) as never,
    });
    const s = await serve(d);
    const client = createDaemonClient({ url: s.url, token: TOKEN });
    cleanup.push(() => client.close());
    const controller = new AbortController();
    const progress: ProgressReport[] = [];
    const run = client.backup({ path: '/data' }, (p) => {
      progress.push(p);
      controller.abort();
    }, controller.signal);
    await expect(run).rejects.toThrow();
    await until(() => sawAbort, 'the daemon to see the abort');
    expect(progress).toEqual([{ done: 0 }]);
  });
});

describe('leave and remove', () => {
  const left: LeaveReport = { box: 'box-c', held: 45, copies: 30, remaining: 2, confirmedBy: ['box-a', 'box-b'], unconfirmed: [], seconds: 1.5 };
  const removed: RemoveReport = { box: 'box-b', was: 'dead', generation: 3, active: 2, minimum: 2, confirmedBy: ['box-a'], unconfirmed: [] };

  it('leave streams progress in blocks then the result; remove answers JSON; the client returns both', async () => {
    const asked: unknown[] = [];
    const { d } = daemon({
      leave: (async (request: unknown, onProgress: (p: ProgressReport) => void) => {
        asked.push(request);
        onProgress({ done: 0, total: 30 });
        onProgress({ done: 30, total: 30 });
        return left;
      }) as never,
      remove: (async (request: unknown) => (asked.push(request), removed)) as never,
    });
    const s = await serve(d);
    const client = createDaemonClient({ url: s.url, token: TOKEN });
    cleanup.push(() => client.close());
    const progress: ProgressReport[] = [];
    expect(await client.leave({ force: true }, (p) => progress.push(p))).toEqual(left);
    expect(progress).toEqual([{ done: 0, total: 30 }, { done: 30, total: 30 }]);
    expect(await client.remove({ box: 'box-b', reason: 'stolen' })).toEqual(removed);
    expect(asked).toEqual([{ force: true }, { box: 'box-b', reason: 'stolen' }]);
  });

  it('checks bodies (400), answers refusals 409 and unknown Boxes 404 under their class names', async () => {
    const { d } = daemon({
      leave: (async () => {
        throw new LeaveRefusedError("this Box is the reserve's only member");
      }) as never,
      remove: (async () => {
        throw new UnknownBoxError('no Box of this reserve has the id "zz"');
      }) as never,
    });
    const s = await serve(d);
    const post = (path: string, body: string) => fetch(`${s.url}${path}`, { method: 'POST', headers: auth, body });
    const cases: Array<[string, string, RegExp]> = [
      ['/api/leave', '{"force":"yes"}', /"force" must be true or false/],
      ['/api/leave', '{"everything":true}', /unknown field "everything"/],
      ['/api/remove', '{}', /needs "box"/],
      ['/api/remove', '{"box":"  "}', /needs "box"/],
      ['/api/remove', `{"box":"b","reason":"${'x'.repeat(501)}"}`, /at most 500 characters/],
    ];
    for (const [path, body, message] of cases) {
      const res = await post(path, body);
      expect(res.status, body).toBe(400);
      expect(((await json(res)) as { error: { message: string } }).error.message, body).toMatch(message);
    }
    expect((await fetch(`${s.url}/api/remove`, { headers: auth })).status).toBe(405);
    const unknown = await post('/api/remove', '{"box":"zz"}');
    expect(unknown.status).toBe(404);
    expect(((await json(unknown)) as { error: { name: string } }).error.name).toBe('UnknownBoxError');
    const client = createDaemonClient({ url: s.url, token: TOKEN });
    cleanup.push(() => client.close());
    const refused = (await client.leave({}).catch((e: unknown) => e)) as DaemonError;
    expect(refused.name).toBe('LeaveRefusedError');
    expect(refused.message).toContain('only member');
    // a refusal before the stream starts (the Box refuses a remove outright) is a 409
    const { d: d2 } = daemon({
      remove: (async () => {
        throw new RemoveRefusedError('a Box cannot remove itself');
      }) as never,
    });
    const s2 = await serve(d2);
    const self = await fetch(`${s2.url}/api/remove`, { method: 'POST', headers: auth, body: '{"box":"me"}' });
    expect(self.status).toBe(409);
    expect(((await json(self)) as { error: { name: string } }).error.name).toBe('RemoveRefusedError');
  });
});

describe('the client', () => {
  it('follows the stream across a daemon restart, resuming after the last event it received', async () => {
    const { d, demo } = daemon();
    const first = await serveDaemon(d, { token: TOKEN });
    const port = Number(new URL(first.url).port);
    const client = createDaemonClient({ url: first.url, token: TOKEN }, { reconnectMs: { initial: 50, max: 200 } });
    cleanup.push(() => client.close());
    const got: EventEnvelope[] = [];
    const all = await d.events();
    const stop = client.follow({ after: all[all.length - 2].id }, (events) => got.push(...events));
    cleanup.push(stop);
    await until(() => got.length === 1, 'the replayed event');
    expect(got[0].id).toBe(all[all.length - 1].id);
    const m = demo.maker;
    const e1 = m.make(demo.boxes.home, NOW + 1, { kind: 'keeper-added', severity: 'normal', payload: { keeper: demoBoxId('a') } });
    d.publish([e1]);
    await until(() => got.length === 2, 'a live event');
    await first.close();
    // While the daemon is down, events happen; a new daemon on the same port serves them.
    const e2 = m.make(demo.boxes.home, NOW + 2, { kind: 'keeper-added', severity: 'normal', payload: { keeper: demoBoxId('b') } });
    const e3 = m.make(demo.boxes.home, NOW + 3, { kind: 'keeper-added', severity: 'warning', payload: { keeper: demoBoxId('c') } });
    d.publish([e2, e3]);
    const second = await serveDaemon(d, { token: TOKEN, port });
    cleanup.push(() => second.close());
    await until(() => got.length === 4, 'the missed events after reconnecting');
    expect(got.map((e) => e.id)).toEqual([all[all.length - 1].id, e1.id, e2.id, e3.id]);
    const e4 = m.make(demo.boxes.home, NOW + 4, { kind: 'keeper-added', severity: 'normal', payload: { keeper: demoBoxId('d') } });
    d.publish([e4]);
    await until(() => got.length === 5, 'live events again');
    stop();
  });

  it('connectDaemon: null without daemon.json, with a dead pid, a silent port or another token; a client otherwise', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'reserve-daemon-'));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    expect(await connectDaemon(dir)).toBeNull();
    const { d } = daemon();
    const s = await serve(d);
    const file: DaemonFile = { pid: process.pid, url: s.url, token: TOKEN, box: demoBoxId('home'), reserveId: 'r', addresses: [], started: NOW };
    const write = (f: Partial<DaemonFile>) => writeFile(join(dir, DAEMON_FILE), JSON.stringify({ ...file, ...f }), { mode: 0o600 });
    await write({});
    const client = await connectDaemon(dir);
    expect(client).not.toBeNull();
    cleanup.push(() => client!.close());
    expect((await client!.status()).boxes).toHaveLength(4);
    await write({ token: `${TOKEN}-other` });
    expect(await connectDaemon(dir)).toBeNull();
    const child = spawn(process.execPath, ['-e', '']);
    const deadPid = await new Promise<number>((resolve) => child.on('exit', () => resolve(child.pid!)));
    await write({ pid: deadPid });
    expect(await connectDaemon(dir)).toBeNull();
    // A port nobody answers on (a daemon that died without removing its file, the pid reused).
    const gone = await serveDaemon(d, { token: TOKEN });
    await gone.close();
    await write({ url: gone.url });
    const t0 = Date.now();
    expect(await connectDaemon(dir)).toBeNull();
    expect(Date.now() - t0).toBeLessThan(1_500);
    await writeFile(join(dir, DAEMON_FILE), '{"pid":');
    expect(await connectDaemon(dir)).toBeNull();
  });

  it('maps a broken connection to DaemonUnreachableError', async () => {
    const { d } = daemon();
    const s = await serveDaemon(d, { token: TOKEN });
    await s.close();
    const client = createDaemonClient({ url: s.url, token: TOKEN });
    cleanup.push(() => client.close());
    const err = (await client.status().catch((e: unknown) => e)) as Error;
    expect(err.name).toBe('DaemonUnreachableError');
  });
});

describe('the in-memory API', () => {
  it('derives open conditions from the events: resolved ones are not open', async () => {
    const { d, demo } = daemon();
    const status = await d.status();
    const kinds = status.open.map((e) => `${e.kind}:${e.severity}`);
    expect(kinds).toEqual(['unacceptable-replication:failure', 'network-disruption:warning', 'keeper-health:warning', 'limitation-imminent:warning']);
    const m = new EventMaker();
    expect(() => m.make(demo.boxes.home, NOW, { kind: 'resolved', severity: 'warning', payload: { of: 'keeper-health', condition: 'c', resolves: 'a/1', since: 0 } })).toThrow(/severity normal/);
  });
});
