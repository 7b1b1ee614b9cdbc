/** The simulated network: timing, bandwidth, every fault kind, request outcomes, discovery and accounting. */
import { describe, expect, it } from 'vitest';
import type { BoxId } from '../../core/net.ts';
import { Life } from './scheduler.ts';
import { SimWorld } from './world.ts';
import type { NetOptions, SimEndpoint } from './net.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

interface Rig {
  world: SimWorld;
  ep: Record<string, SimEndpoint>;
  life: Record<string, Life>;
  /** Gossip received on topic 't', per Box: [from, text, virtual ms]. */
  got: Record<string, Array<[BoxId, string, number]>>;
  up(id: string): SimEndpoint;
}

function rig(ids: string[], net: Partial<NetOptions> = {}, seed = 1): Rig {
  const world = new SimWorld({
    seed,
    net: { latency: { kind: 'fixed', ms: 10 }, upBytesPerSec: Infinity, downBytesPerSec: Infinity, discovery: 'all', ...net },
  });
  const r: Rig = {
    world,
    ep: {},
    life: {},
    got: {},
    up(id) {
      const life = new Life(id);
      const ep = world.net.attach(id, life);
      r.ep[id] = ep;
      r.life[id] = life;
      r.got[id] ??= [];
      ep.subscribe('t', (from, data) => r.got[id].push([from, dec.decode(data), world.elapsed]));
      ep.handle('echo', async (from, data) => enc.encode(`${from}:${dec.decode(data)}`));
      return ep;
    },
  };
  for (const id of ids) world.net.register(id, { bootstrap: ids });
  for (const id of ids) r.up(id);
  return r;
}

function crash(r: Rig, id: string): void {
  r.life[id].kill();
  r.world.net.detach(id);
}

async function outcome(p: Promise<Uint8Array>): Promise<{ at?: number; ok?: string; error?: string; detail?: string }> {
  try {
    return { ok: dec.decode(await p) };
  } catch (e) {
    const err = e as Error & { remoteName?: string };
    return { error: err.name, detail: err.remoteName ?? err.message };
  }
}

describe('SimNet timing', () => {
  it('delivers after the path latency; a request round trip takes two', async () => {
    const r = rig(['a', 'b']);
    r.ep.a.publish('t', enc.encode('hi'));
    const answer = r.ep.a.request('b', 'echo', enc.encode('x'));
    let answeredAt = -1;
    void answer.then(() => (answeredAt = r.world.elapsed));
    await r.world.runFor(100);
    expect(r.got.b).toEqual([['a', 'hi', 10]]);
    expect(r.got.a).toEqual([]);
    expect(dec.decode(await answer)).toBe('a:x');
    expect(answeredAt).toBe(20);
  });

  it("serialises on the sender's uplink and the receiver's downlink", async () => {
    const r = rig(['a', 'b', 'c', 'd', 'e'], { upBytesPerSec: 1_000_000 });
    const payload = new Uint8Array(100_000 - 64 - 1); // 100 kB on the wire with header and topic
    for (let i = 0; i < 5; i++) r.ep.a.publish('t', payload); // to b, c, d, e: 20 messages of 100 kB
    await r.world.runFor(10_000);
    const last = Math.max(...['b', 'c', 'd', 'e'].flatMap((id) => r.got[id].map((g) => g[2])));
    expect(last).toBeCloseTo(2000 + 10, 6); // 2 MB at 1 MB/s, then the latency

    const r2 = rig(['a', 'b', 'c', 'd', 'e'], { downBytesPerSec: 1_000_000 });
    for (const id of ['a', 'b', 'c', 'd']) r2.ep[id].request('e', 'echo', payload).catch(() => undefined);
    await r2.world.runFor(10_000);
    const into = ['a', 'b', 'c', 'd'].map((id) => r2.world.net.path(id, 'e'));
    expect(into.every((p) => p.delivered === 1)).toBe(true);
    // Four 100 kB requests share e's 1 MB/s downlink: the replies (small) come back after ~0.4 s, not ~0.1 s.
    const e = r2.world.net.stats().total;
    expect(e.delivered).toBe(8);
    expect(r2.world.elapsed).toBe(10_000);
  });

  it('moves 10,000 blocks of 1 MiB in the time the link rate implies', async () => {
    const r = rig(['a', 'b'], { upBytesPerSec: 12_500_000, downBytesPerSec: 12_500_000, copyPayloads: false });
    const block = new Uint8Array(1 << 20);
    let received = 0;
    r.ep.b.subscribe('blocks', () => received++);
    for (let i = 0; i < 10_000; i++) r.ep.a.publish('blocks', block);
    const done = await r.world.runUntil(() => received === 10_000, { maxMs: 3_600_000 });
    expect(done.ok).toBe(true);
    const seconds = done.elapsedMs / 1000;
    const wire = (10_000 * ((1 << 20) + 64 + 6)) / 12_500_000; // ~839 s at 100 Mbit/s
    expect(seconds).toBeGreaterThanOrEqual(wire);
    expect(seconds).toBeLessThan(wire + 1);
    expect(r.world.net.path('a', 'b').bytes).toBe(10_000 * ((1 << 20) + 64 + 6));
  });
});

describe('SimNet faults', () => {
  it('loses messages at the configured rate (within tolerance) and counts them', async () => {
    const r = rig(['a', 'b'], { loss: 0.1 });
    const n = 20_000;
    for (let i = 0; i < n; i++) r.ep.a.publish('t', enc.encode(String(i)));
    await r.world.runFor(1000);
    const s = r.world.net.path('a', 'b');
    expect(s.sent).toBe(n);
    expect(s.lost + s.delivered).toBe(n);
    expect(r.got.b.length).toBe(s.delivered);
    expect(Math.abs(s.lost - n * 0.1)).toBeLessThan(6 * Math.sqrt(n * 0.1 * 0.9));
  });

  it('duplicates messages at the configured rate', async () => {
    const r = rig(['a', 'b'], { duplicate: 0.05 });
    const n = 20_000;
    for (let i = 0; i < n; i++) r.ep.a.publish('t', enc.encode(String(i)));
    await r.world.runFor(1000);
    const s = r.world.net.path('a', 'b');
    expect(r.got.b.length).toBe(n + s.duplicated);
    expect(Math.abs(s.duplicated - n * 0.05)).toBeLessThan(6 * Math.sqrt(n * 0.05 * 0.95));
    expect(new Set(r.got.b.map((g) => g[1])).size).toBe(n);
  });

  it('keeps order on a fixed-latency path and reorders with reordering on (or with latency jitter)', async () => {
    const order = async (net: Partial<NetOptions>): Promise<number> => {
      const r = rig(['a', 'b'], net);
      for (let i = 0; i < 500; i++) {
        r.ep.a.publish('t', enc.encode(String(i)));
        await r.world.runFor(1);
      }
      await r.world.runFor(5000);
      const seq = r.got.b.map((g) => Number(g[1]));
      expect(seq).toHaveLength(500);
      let inversions = 0;
      for (let i = 1; i < seq.length; i++) if (seq[i] < seq[i - 1]) inversions++;
      return inversions;
    };
    expect(await order({})).toBe(0);
    expect(await order({ reorder: 0.3, reorderMaxMs: 50 })).toBeGreaterThan(10);
    expect(await order({ latency: { kind: 'uniform', minMs: 5, maxMs: 30 } })).toBeGreaterThan(10);
    expect(await order({ latency: { kind: 'lognormal', medianMs: 10, sigma: 0.8, maxMs: 500 } })).toBeGreaterThan(10);
  });

  it('a one-way block stops exactly one direction, for gossip and for requests', async () => {
    const r = rig(['a', 'b', 'c'], { dialTimeoutMs: 3000 });
    r.world.net.block('a', 'b');
    r.ep.a.publish('t', enc.encode('from a'));
    r.ep.b.publish('t', enc.encode('from b'));
    const aToB = outcome(r.ep.a.request('b', 'echo', enc.encode('1'), { timeoutMs: 8000 }));
    let bServed = 0;
    r.ep.a.handle('count', async () => {
      bServed++;
      return new Uint8Array(0);
    });
    const bToA = outcome(r.ep.b.request('a', 'count', enc.encode('2'), { timeoutMs: 8000 }));
    expect(r.ep.a.peers()).toEqual(['c']);
    expect(r.ep.b.peers()).toEqual(['a', 'c']);
    await r.world.runFor(10_000);
    expect(r.got.b.map((g) => g[1])).toEqual([]);
    expect(r.got.a.map((g) => g[1])).toEqual(['from b']);
    expect(r.got.c.map((g) => g[1]).sort()).toEqual(['from a', 'from b']);
    expect(await aToB).toMatchObject({ error: 'PeerUnreachableError' });
    expect(await bToA).toMatchObject({ error: 'RequestTimeoutError' }); // the request got through, the answer did not
    expect(bServed).toBe(1);
    expect(r.world.net.path('a', 'b').blocked).toBe(2); // the gossip and a's answer to b
    expect(r.world.net.blockedPaths()).toEqual([['a', 'b']]);
  });

  it('partitions into groups, isolates one Box, splits random halves; heal restores everything', async () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const r = rig(ids);
    const canTalk = (): string[] => {
      const pairs: string[] = [];
      for (const x of ids) for (const y of ids) if (x !== y && r.world.net.reachable(x, y)) pairs.push(`${x}${y}`);
      return pairs;
    };
    r.world.net.partition([['a', 'b'], ['c', 'd']]); // e is in a group of its own
    expect(canTalk()).toEqual(['ab', 'ba', 'cd', 'dc']);
    for (const id of ids) r.ep[id].publish('t', enc.encode(id));
    await r.world.runFor(100);
    expect(Object.fromEntries(ids.map((id) => [id, r.got[id].map((g) => g[1]).sort().join('')]))).toEqual({ a: 'b', b: 'a', c: 'd', d: 'c', e: '' });

    r.world.net.heal();
    expect(canTalk()).toHaveLength(20);
    r.world.net.isolate('c');
    expect(canTalk().filter((p) => p.includes('c'))).toEqual([]);
    expect(canTalk()).toHaveLength(12);

    r.world.net.heal();
    const [h1, h2] = r.world.net.partitionHalves();
    expect(h1.length).toBeGreaterThan(0);
    expect(h2.length).toBeGreaterThan(0);
    expect([...h1, ...h2].sort()).toEqual(ids);
    expect(r.world.net.blockedPaths()).toHaveLength(2 * h1.length * h2.length);
    for (const x of h1) for (const y of h2) expect(r.world.net.reachable(x, y) || r.world.net.reachable(y, x)).toBe(false);

    r.world.net.configure({ loss: 0.5, duplicate: 0.5, reorder: 0.5 });
    r.world.net.heal();
    expect(r.world.net.blockedPaths()).toEqual([]);
    expect(r.world.net.options).toMatchObject({ loss: 0, duplicate: 0, reorder: 0 });
    for (const g of Object.values(r.got)) g.length = 0;
    for (const id of ids) r.ep[id].publish('t', enc.encode(id));
    await r.world.runFor(100);
    for (const id of ids) expect(r.got[id]).toHaveLength(4);
  });

  it('drops messages already in flight when a partition starts', async () => {
    const r = rig(['a', 'b']);
    r.ep.a.publish('t', enc.encode('in flight'));
    await r.world.runFor(5);
    r.world.net.isolate('b');
    await r.world.runFor(100);
    expect(r.got.b).toEqual([]);
    expect(r.world.net.path('a', 'b')).toMatchObject({ sent: 1, blocked: 1, delivered: 0 });
  });

  it('a clog holds a path and then delivers everything in order; the other direction flows', async () => {
    const r = rig(['a', 'b']);
    r.world.net.clog('a', 'b', 1000);
    for (let i = 0; i < 3; i++) r.ep.a.publish('t', enc.encode(`m${i}`));
    r.ep.b.publish('t', enc.encode('back'));
    await r.world.runFor(500);
    r.ep.a.publish('t', enc.encode('m3'));
    await r.world.runFor(2000);
    expect(r.got.a).toEqual([['b', 'back', 10]]);
    expect(r.got.b.map((g) => [g[1], g[2]])).toEqual([
      ['m0', 1010],
      ['m1', 1010],
      ['m2', 1010],
      ['m3', 1010],
    ]);
    r.world.net.clog('a', 'b', 60_000);
    r.ep.a.publish('t', enc.encode('m4'));
    await r.world.runFor(100);
    r.world.net.unclogAll();
    await r.world.runFor(100);
    expect(r.got.b.at(-1)?.[1]).toBe('m4');
    expect(r.got.b.at(-1)?.[2]).toBeCloseTo(r.world.elapsed - 90, 6);
  });
});

describe('SimNet requests', () => {
  it('refuses a request to a crashed, removed, unknown or own Box with PeerUnreachableError after a round trip', async () => {
    const r = rig(['a', 'b', 'c']);
    crash(r, 'b');
    r.world.net.unregister('c');
    const t0 = r.world.elapsed;
    const results = [r.ep.a.request('b', 'echo', enc.encode('')), r.ep.a.request('c', 'echo', enc.encode('')), r.ep.a.request('zz', 'echo', enc.encode('')), r.ep.a.request('a', 'echo', enc.encode(''))].map(
      async (p) => {
        const o = await outcome(p);
        return { ...o, at: r.world.elapsed - t0 };
      },
    );
    await r.world.runFor(1000);
    const got = await Promise.all(results);
    expect(got.map((g) => g.error)).toEqual(['PeerUnreachableError', 'PeerUnreachableError', 'PeerUnreachableError', 'PeerUnreachableError']);
    expect(got[0].detail).toContain('connection refused');
    expect(got[0].at).toBe(20);
    expect(got[3].at).toBe(0);
  });

  it("times out at the caller's timeoutMs when the target dies after receiving, or the answer is lost", async () => {
    const r = rig(['a', 'b'], { defaultTimeoutMs: 7000 });
    r.ep.b.handle('slow', () => new Promise(() => undefined));
    const t0 = r.world.elapsed;
    let at = -1;
    const p = outcome(r.ep.a.request('b', 'slow', enc.encode(''), { timeoutMs: 3000 }));
    void p.then(() => (at = r.world.elapsed - t0));
    await r.world.runFor(50);
    crash(r, 'b');
    await r.world.runFor(10_000);
    expect(await p).toMatchObject({ error: 'RequestTimeoutError' });
    expect(at).toBe(3000);

    const r2 = rig(['a', 'b'], { defaultTimeoutMs: 7000, loss: 1 });
    const t1 = r2.world.elapsed;
    let at2 = -1;
    const p2 = outcome(r2.ep.a.request('b', 'echo', enc.encode('')));
    void p2.then(() => (at2 = r2.world.elapsed - t1));
    await r2.world.runFor(10_000);
    expect(await p2).toMatchObject({ error: 'RequestTimeoutError' });
    expect(at2).toBe(7000);
  });

  it("reports the remote handler's error by name, and a missing protocol as UnsupportedProtocolError", async () => {
    const r = rig(['a', 'b']);
    class ThingMissingError extends Error {
      override name = 'ThingMissingError';
    }
    r.ep.b.handle('fail', async () => {
      throw new ThingMissingError('no such thing');
    });
    r.ep.b.handle('throwsSync', () => {
      throw new ThingMissingError('sync');
    });
    const a = outcome(r.ep.a.request('b', 'fail', enc.encode('')));
    const b = outcome(r.ep.a.request('b', 'throwsSync', enc.encode('')));
    const c = outcome(r.ep.a.request('b', 'nothing-here', enc.encode('')));
    await r.world.runFor(100);
    expect(await a).toEqual({ error: 'RemoteError', detail: 'ThingMissingError' });
    expect(await b).toEqual({ error: 'RemoteError', detail: 'ThingMissingError' });
    expect(await c).toEqual({ error: 'RemoteError', detail: 'UnsupportedProtocolError' });
  });

  it('aborts a request with AbortedError', async () => {
    const r = rig(['a', 'b']);
    r.ep.b.handle('slow', () => new Promise(() => undefined));
    const ctl = new AbortController();
    const p = outcome(r.ep.a.request('b', 'slow', enc.encode(''), { signal: ctl.signal }));
    await r.world.runFor(100);
    ctl.abort();
    expect(await p).toMatchObject({ error: 'AbortedError' });
    expect(await outcome(r.ep.a.request('b', 'echo', enc.encode(''), { signal: AbortSignal.abort() }))).toMatchObject({ error: 'AbortedError' });
  });

  it('runs a duplicated request twice but answers the caller once', async () => {
    const r = rig(['a', 'b'], { duplicate: 1 });
    let served = 0;
    r.ep.b.handle('count', async () => enc.encode(String(++served)));
    const answers: string[] = [];
    void r.ep.a.request('b', 'count', enc.encode('')).then((d) => answers.push(dec.decode(d)));
    await r.world.runFor(1000);
    expect(served).toBe(2);
    expect(answers).toEqual(['1']);
  });

  it('never delivers an answer to a later incarnation of the caller', async () => {
    const r = rig(['a', 'b'], { latency: { kind: 'fixed', ms: 100 } });
    const settled: string[] = [];
    r.ep.a.request('b', 'echo', enc.encode('')).then(
      () => settled.push('ok'),
      () => settled.push('err'),
    );
    await r.world.runFor(150); // b has answered; the answer is on its way
    crash(r, 'a');
    r.up('a');
    await r.world.runFor(20_000);
    expect(settled).toEqual([]);
    expect(r.world.net.path('b', 'a').undeliverable).toBe(1);
  });
});

describe('SimNet discovery and accounting', () => {
  it('a Box that knows one peer address finds the rest through it', async () => {
    const world = new SimWorld({ seed: 5, net: { latency: { kind: 'fixed', ms: 10 } } });
    const eps: Record<string, SimEndpoint> = {};
    world.net.register('a', { bootstrap: ['b'] });
    world.net.register('b', { bootstrap: ['a'] });
    world.net.register('n', { bootstrap: ['a'] });
    for (const id of ['a', 'b', 'n']) {
      eps[id] = world.net.attach(id, new Life(id));
      eps[id].handle('hello', async () => new Uint8Array(0));
    }
    expect(eps.n.peers()).toEqual(['a']);
    expect(eps.b.peers()).toEqual(['a']);
    const unknown = outcome(eps.n.request('b', 'hello', new Uint8Array(0)));
    await world.runFor(100);
    expect(await unknown).toMatchObject({ error: 'PeerUnreachableError', detail: expect.stringContaining('no known address') });
    const hello = eps.n.request('a', 'hello', new Uint8Array(0));
    await world.runFor(100);
    await hello;
    expect(eps.n.peers()).toEqual(['a', 'b']); // learnt from a's answer
    expect(eps.a.peers()).toEqual(['b', 'n']); // learnt from n's request
    const toB = eps.n.request('b', 'hello', new Uint8Array(0));
    await world.runFor(100);
    await toB;
    expect(eps.b.peers()).toEqual(['a', 'n']);
  });

  it('counts messages and bytes (payload + topic + header) per directed path', async () => {
    const r = rig(['a', 'b', 'c'], { headerBytes: 64 });
    r.ep.a.publish('t', new Uint8Array(100));
    const p = r.ep.a.request('b', 'echo', enc.encode('xyz'));
    await r.world.runFor(100);
    await p;
    expect(r.world.net.path('a', 'b')).toMatchObject({ sent: 2, delivered: 2, bytes: 100 + 1 + 64 + (3 + 4 + 64) });
    expect(r.world.net.path('b', 'a')).toMatchObject({ sent: 1, bytes: 5 + 64 }); // "a:xyz"
    expect(r.world.net.path('a', 'c')).toMatchObject({ sent: 1, bytes: 165 });
    const { total, paths } = r.world.net.stats();
    expect(total.sent).toBe(4);
    expect(Object.keys(paths)).toEqual(['a -> b', 'a -> c', 'b -> a']);
  });
});
