/** Box lifecycle end to end with the demonstration behaviour: gossip, block fetch, crash, brick, replace, remove. */
import { describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import { cidOf, RAW_CODE } from '../../core/blocks/cid.ts';
import { SimCluster, type BoxBehaviour, type BoxPorts } from './cluster.ts';
import { DemoBox, type DemoInit } from './demo.ts';
import { SimWorld } from './world.ts';

const init: DemoInit = { secret: 's3cret', periodMs: 1000 };

async function demoCluster(n: number, seed = 1): Promise<{ world: SimWorld; cluster: SimCluster<DemoBox, DemoInit> }> {
  const world = new SimWorld({ seed });
  const cluster = new SimCluster<DemoBox, DemoInit>(world, (ports) => new DemoBox(ports));
  for (let i = 0; i < n; i++) cluster.add({ init });
  for (const b of cluster.all()) await cluster.settle(b.starting);
  return { world, cluster };
}

const counters = (c: SimCluster<DemoBox, DemoInit>): number[] => c.upBoxes().map((b) => b.running.counter);

describe('SimCluster with the demo behaviour', () => {
  it('Boxes gossip a counter and replicate blocks to each other', async () => {
    const { world, cluster } = await demoCluster(4);
    expect(cluster.ids()).toEqual(['box-1', 'box-2', 'box-3', 'box-4']);
    const v = await cluster.settle(cluster.box('box-2').running.bump());
    expect(v).toBe(1);
    const bytes = world.rng.fork('data').bytes(5000);
    const cid = await cluster.settle(cluster.box('box-3').running.store(bytes));
    const r = await cluster.runUntil(() => cluster.all().every((b) => b.blocks.intact(cid)) && counters(cluster).every((c) => c === 1), { maxMs: 30_000 });
    expect(r.ok).toBe(true);
    expect(cid.equals(cidOf(RAW_CODE, bytes))).toBe(true);
    expect(world.net.stats().total.delivered).toBeGreaterThan(10);
  });

  it('crash and restart: same disk, volatile state gone, the old incarnation is silent forever', async () => {
    const { world, cluster } = await demoCluster(3);
    const box = cluster.box('box-1');
    await cluster.settle(box.running.bump());
    await cluster.settle(box.running.bump());
    expect((await cluster.runUntil(() => counters(cluster).every((c) => c === 2), { maxMs: 10_000 })).ok).toBe(true);
    const old = box.running;
    const report = cluster.crash('box-1');
    expect(report.blocks.lost).toEqual([]);
    expect(box.state).toBe('down');
    expect(() => box.running).toThrow(/down/);
    expect(await cluster.settle(cluster.box('box-2').running.bump())).toBe(3); // gossiped while box-1 is down
    const before = world.trace.count;
    await cluster.runFor(10_000);
    expect(old.counter).toBe(2); // the dead incarnation heard nothing and did nothing
    expect(world.trace.tail(world.trace.count - before).filter((e) => e.box === 'box-1' && e.kind.startsWith('log'))).toEqual([]);
    cluster.restart('box-1');
    await cluster.settle(box.starting);
    expect(box.incarnation).toBe(2);
    expect(box.running).not.toBe(old);
    expect(box.running.counter).toBe(2); // from its own disk
    expect((await cluster.runUntil(() => box.running.counter === 3, { maxMs: 10_000 })).ok).toBe(true);
  });

  it('brick, then replace with a factory-new Box that knows one peer: it finds the others and catches up', async () => {
    const { world, cluster } = await demoCluster(3, 2);
    const data = world.rng.fork('data');
    const cids: CID[] = [];
    for (let i = 0; i < 5; i++) cids.push(await cluster.settle(cluster.box('box-1').running.store(data.bytes(2000))));
    await cluster.runUntil(() => cluster.all().every((b) => cids.every((c) => b.blocks.intact(c))), { maxMs: 30_000 });
    cluster.brick('box-3');
    expect(cluster.box('box-3').state).toBe('bricked');
    expect(cluster.box('box-3').blocks.size).toBe(0);
    expect(() => cluster.restart('box-3')).toThrow(/bricked/);
    expect(world.net.members()).toEqual(['box-1', 'box-2']);
    const fresh = cluster.replace('box-3', { init, bootstrap: ['box-2'] });
    expect(fresh.id).toBe('box-4');
    expect(fresh.bootstrap).toEqual(['box-2']);
    expect(world.net.known('box-4')).toEqual(['box-2']);
    expect(fresh.blocks.size).toBe(0);
    const r = await cluster.runUntil(() => cids.every((c) => fresh.blocks.intact(c)), { maxMs: 60_000 });
    expect(r.ok).toBe(true);
    expect(world.net.known('box-4')).toEqual(['box-1', 'box-2']);
    expect(cluster.ids()).toEqual(['box-1', 'box-2', 'box-4']);
  });

  it('remove: graceful runs stop(); sudden crashes; either way the Box and its disk are gone', async () => {
    const { world, cluster } = await demoCluster(3);
    await cluster.remove('box-2', { graceful: true });
    expect(cluster.box('box-2').state).toBe('removed');
    await cluster.remove('box-3', { graceful: false });
    expect(cluster.box('box-3').state).toBe('removed');
    expect(world.net.members()).toEqual(['box-1']);
    await expect(cluster.remove('box-3', { graceful: true })).rejects.toMatchObject({ name: 'BoxStateError' });
    const kinds = world.trace.tail().filter((e) => e.kind === 'box.remove').map((e) => `${e.box} ${e.detail}`);
    expect(kinds).toEqual(['box-2 graceful', 'box-3 sudden']);
  });

  it('a clean stop flushes writes that were not awaited; a crash under mode lose does not', async () => {
    const world = new SimWorld({ seed: 4 });
    class Writer implements BoxBehaviour {
      constructor(readonly ports: BoxPorts) {}
      async start(): Promise<void> {}
      async stop(): Promise<void> {}
      scribble(key: string): void {
        void this.ports.kv.put(key, new Uint8Array([1]));
      }
    }
    const cluster = new SimCluster(world, (ports) => new Writer(ports), { disk: { crashMode: 'lose' } });
    const a = cluster.add();
    const b = cluster.add();
    await cluster.runFor(1);
    a.running.scribble('k');
    b.running.scribble('k');
    await cluster.stop(a.id);
    cluster.crash(b.id);
    expect(a.kv.peekDurable('k')).toBeDefined();
    expect(b.kv.peekDurable('k')).toBeUndefined();
    expect(() => cluster.crash(b.id)).toThrow(/down/);
  });

  it('a start() that rejects, or ports.panic, fails the run as a crash', async () => {
    const world = new SimWorld({ seed: 1 });
    const cluster = new SimCluster(world, (ports) => ({
      async start() {
        ports.clock.setTimer(100, () => ports.panic(new Error('invariant broken')));
      },
      async stop() {},
    }));
    cluster.add();
    await expect(cluster.runFor(1000)).rejects.toMatchObject({ name: 'SimPanicError', message: expect.stringContaining('invariant broken') });

    const w2 = new SimWorld({ seed: 1 });
    const c2 = new SimCluster(w2, () => ({
      start: () => Promise.reject(new Error('no config')),
      stop: async () => undefined,
    }));
    c2.add();
    await expect(c2.runFor(10)).rejects.toMatchObject({ name: 'SimPanicError', message: expect.stringContaining('no config') });
  });
});
