/**
 * Properties of the simulator's fault models. Disks: after a crash (mode `lose`) exactly the writes whose promises
 * resolved are on disk, for blocks and KV alike, and every awaited write resolved. Network: every message handed to
 * a path is accounted for exactly once (delivered, lost, blocked or undeliverable) under any mix of faults, and a
 * partition blocks exactly the cross-group directions.
 */
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { propertyOptions } from './support/fc.ts';
import { block } from '../adapters/storage/blockstore-acceptance.ts';
import { SimDrive } from '../simulations/sim/disk.ts';
import { Life, Scheduler } from '../simulations/sim/scheduler.ts';
import { SimRandom } from '../simulations/sim/rng.ts';
import { SimWorld } from '../simulations/sim/world.ts';
import type { SimEndpoint } from '../simulations/sim/net.ts';

const pool = Array.from({ length: 5 }, (_, i) => block(700 + i, 100 + i * 300));

describe('simulated disk crashes', () => {
  it('a crash keeps exactly the writes whose promises resolved, and every awaited write resolved', async () => {
    const name = 'sim: disk crash keeps exactly the writes whose promises resolved';
    type Op = { kind: 'put' | 'delete'; i: number; awaited: boolean } | { kind: 'kv'; key: string; del: boolean; awaited: boolean };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constantFrom<'put' | 'delete'>('put', 'delete'), i: fc.nat({ max: pool.length - 1 }), awaited: fc.boolean() }),
      fc.record({ kind: fc.constant<'kv'>('kv'), key: fc.constantFrom('a', 'b', 'c'), del: fc.boolean(), awaited: fc.boolean() }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 30 }), fc.integer({ min: 0, max: 1000 }), async (ops, seed) => {
        const s = new Scheduler();
        const d = new SimDrive({ name: 'p', crashMode: 'lose', writeLatencyMs: 0.5 }, s, new SimRandom(seed));
        const resolved: boolean[] = ops.map(() => false);
        for (const [n, o] of ops.entries()) {
          let p: Promise<unknown>;
          if (o.kind === 'kv') p = o.del ? d.kv.delete(o.key) : d.kv.put(o.key, new Uint8Array([n]));
          else p = o.kind === 'put' ? d.blocks.put(pool[o.i].cid, pool[o.i].bytes) : d.blocks.delete(pool[o.i].cid);
          const settled = p.then(() => void (resolved[n] = true));
          if (o.awaited) await s.settle(settled);
        }
        await new Promise<void>((resolve) => setImmediate(resolve)); // let resolutions already due be observed
        d.crash();
        // Model: apply, in issue order, exactly the operations whose promises resolved.
        const blocks = new Set<string>();
        const kv = new Map<string, number>();
        ops.forEach((o, n) => {
          if (!resolved[n]) return;
          if (o.kind === 'kv') {
            if (o.del) kv.delete(o.key);
            else kv.set(o.key, n);
          } else if (o.kind === 'put') blocks.add(pool[o.i].cid.toString());
          else blocks.delete(pool[o.i].cid.toString());
        });
        const gotBlocks = d.blocks
          .cids()
          .map(String)
          .sort();
        const gotKv = d.kv.keysNow().map((k) => `${k}=${(d.kv.peek(k) as Uint8Array)[0]}`);
        const wantKv = [...kv.keys()].sort().map((k) => `${k}=${kv.get(k)}`);
        const awaitedResolved = ops.every((o, n) => !o.awaited || resolved[n]);
        return awaitedResolved && JSON.stringify(gotBlocks) === JSON.stringify([...blocks].sort()) && JSON.stringify(gotKv) === JSON.stringify(wantKv) && d.blocks.audit().length === 0;
      }),
      propertyOptions(name, { numRuns: 100 }),
    );
  });
});

describe('simulated network accounting', () => {
  it('every message handed to a path is delivered, lost, blocked or undeliverable, exactly once', async () => {
    const name = 'sim: network conserves messages under any mix of faults';
    const ids = ['a', 'b', 'c', 'd'];
    type Action = { kind: 'send'; from: number; n: number } | { kind: 'block'; from: number; to: number } | { kind: 'clog'; from: number; to: number; ms: number } | { kind: 'crash'; who: number } | { kind: 'heal' } | { kind: 'wait'; ms: number };
    const idx = fc.nat({ max: ids.length - 1 });
    const action: fc.Arbitrary<Action> = fc.oneof(
      { weight: 4, arbitrary: fc.record({ kind: fc.constant<'send'>('send'), from: idx, n: fc.integer({ min: 1, max: 5 }) }) },
      fc.record({ kind: fc.constant<'block'>('block'), from: idx, to: idx }),
      fc.record({ kind: fc.constant<'clog'>('clog'), from: idx, to: idx, ms: fc.integer({ min: 1, max: 500 }) }),
      fc.record({ kind: fc.constant<'crash'>('crash'), who: idx }),
      fc.constant<Action>({ kind: 'heal' }),
      { weight: 2, arbitrary: fc.record({ kind: fc.constant<'wait'>('wait'), ms: fc.integer({ min: 0, max: 100 }) }) },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(action, { maxLength: 40 }),
        fc.record({ loss: fc.double({ min: 0, max: 0.5, noNaN: true }), duplicate: fc.double({ min: 0, max: 0.5, noNaN: true }), reorder: fc.double({ min: 0, max: 0.5, noNaN: true }) }),
        fc.nat(),
        async (actions, faults, seed) => {
          const world = new SimWorld({ seed, net: { ...faults, discovery: 'all', latency: { kind: 'uniform', minMs: 1, maxMs: 40 } } });
          const lives: Record<string, Life> = {};
          const eps: Record<string, SimEndpoint> = {};
          let received = 0;
          const up = (id: string): void => {
            lives[id] = new Life(id);
            eps[id] = world.net.attach(id, lives[id]);
            eps[id].subscribe('t', () => received++);
          };
          for (const id of ids) world.net.register(id);
          for (const id of ids) up(id);
          for (const a of actions) {
            switch (a.kind) {
              case 'send': {
                const id = ids[a.from];
                if (lives[id].alive) for (let i = 0; i < a.n; i++) eps[id].publish('t', new Uint8Array(8));
                break;
              }
              case 'block':
                if (a.from !== a.to) world.net.block(ids[a.from], ids[a.to]);
                break;
              case 'clog':
                if (a.from !== a.to) world.net.clog(ids[a.from], ids[a.to], a.ms);
                break;
              case 'crash': {
                const id = ids[a.who];
                if (lives[id].alive) {
                  lives[id].kill();
                  world.net.detach(id);
                } else up(id);
                break;
              }
              case 'heal':
                world.net.heal();
                break;
              case 'wait':
                await world.runFor(a.ms);
                break;
            }
          }
          await world.runFor(10_000); // quiescence: every clog has ended, every message has landed
          const { total } = world.net.stats();
          return total.offered + total.duplicated === total.delivered + total.lost + total.blocked + total.undeliverable && total.delivered === received && world.scheduler.pending === 0;
        },
      ),
      propertyOptions(name, { numRuns: 100 }),
    );
  });

  it('a partition blocks exactly the directions between different groups', () => {
    const name = 'sim: partition blocks exactly the cross-group directions';
    const ids = ['a', 'b', 'c', 'd', 'e', 'f'];
    fc.assert(
      fc.property(fc.array(fc.integer({ min: -1, max: 2 }), { minLength: ids.length, maxLength: ids.length }), (groupOf) => {
        const world = new SimWorld({ seed: 1 });
        for (const id of ids) world.net.register(id);
        const groups = [0, 1, 2].map((g) => ids.filter((_, i) => groupOf[i] === g));
        world.net.partition(groups);
        return ids.every((x, i) => ids.every((y, j) => x === y || world.net.reachable(x, y) === (groupOf[i] === groupOf[j])));
      }),
      propertyOptions(name, { numRuns: 200 }),
    );
  });
});
