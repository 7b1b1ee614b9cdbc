/**
 * Simulated disks: the shared Blockstore and KvStore acceptance suites (faults off, standalone and in virtual time),
 * capacity, exactly-the-unawaited-writes crash loss, torn writes, bit rot ground truth, bricking and dead handles.
 */
import { describe, expect, it } from 'vitest';
import { runBlockstoreAcceptance, block } from '../../adapters/storage/blockstore-acceptance.ts';
import { runKvAcceptance } from '../../adapters/storage/kv-acceptance.ts';
import { matchesCid } from '../../core/blocks/cid.ts';
import { DiskDevice, SimDisk, SimDrive, SimKv } from './disk.ts';
import { Life, Scheduler } from './scheduler.ts';
import { SimRandom } from './rng.ts';

runBlockstoreAcceptance(
  'SimDisk (standalone)',
  async () => {
    const disk = new SimDisk();
    let store = disk.open();
    return {
      store,
      reopen: async () => (store = disk.open()),
      teardown: () => store.close(),
    };
  },
  { durable: true, numRuns: 30 },
);

runBlockstoreAcceptance(
  'SimDisk (virtual-time disk, free-running)',
  async () => {
    const scheduler = new Scheduler();
    scheduler.autoRun(true);
    const disk = new SimDisk(new DiskDevice({ name: 'acceptance' }, scheduler));
    let store = disk.open();
    return {
      store,
      reopen: async () => (store = disk.open()),
      teardown: async () => {
        await store.close();
        scheduler.autoRun(false);
      },
    };
  },
  { durable: true, numRuns: 30 },
);

runKvAcceptance(
  'SimKv (virtual-time disk, free-running)',
  async () => {
    const scheduler = new Scheduler();
    scheduler.autoRun(true);
    const kv = new SimKv(new DiskDevice({ name: 'acceptance-kv', crashMode: 'lose' }, scheduler));
    let store = kv.open();
    return {
      store,
      reopen: async () => (store = kv.open()),
      crash: async (ops, at) => {
        if (at.stage === 'before-commit') {
          void kv.open().batch(ops); // issued, never durable: the crash comes first
        } else {
          await kv.open().batch(ops);
        }
        kv.crash();
        store = kv.open();
        return store;
      },
      teardown: async () => {
        await store.close();
        scheduler.autoRun(false);
      },
    };
  },
  { durable: true, crashable: true, numRuns: 30 },
);

function drive(options: ConstructorParameters<typeof SimDrive>[0] = {}, seed = 1): { s: Scheduler; d: SimDrive } {
  const s = new Scheduler();
  return { s, d: new SimDrive({ name: 'd', ...options }, s, new SimRandom(seed)) };
}

describe('SimDisk durability and crashes', () => {
  it('a crash loses exactly the writes whose promises had not resolved (mode lose)', async () => {
    const { s, d } = drive({ crashMode: 'lose', writeLatencyMs: 1, writeBytesPerSec: 1e6 });
    const store = d.blocks;
    const awaited = [block(1), block(2), block(3)];
    for (const b of awaited) await s.settle(store.put(b.cid, b.bytes));
    await s.settle(store.delete(awaited[2].cid));
    const unawaited = [block(4), block(5)];
    const resolved: string[] = [];
    for (const b of unawaited) void store.put(b.cid, b.bytes).then((c) => resolved.push(c.toString()));
    void store.delete(awaited[0].cid); // an un-awaited delete
    expect(store.hasNow(unawaited[0].cid)).toBe(true); // visible before durable
    expect(store.hasNow(awaited[0].cid)).toBe(false);
    expect(store.pendingWrites).toBe(3);
    const report = d.crash();
    expect(resolved).toEqual([]);
    expect(report.blocks.lost.map(String).sort()).toEqual(unawaited.map((b) => b.cid.toString()).sort());
    expect(report.blocks.undeleted.map(String)).toEqual([awaited[0].cid.toString()]);
    expect(
      d.blocks
        .cids()
        .map(String)
        .sort(),
    ).toEqual([awaited[0], awaited[1]].map((b) => b.cid.toString()).sort());
    await s.runFor(1000);
    expect(resolved).toEqual([]); // the lost writes' promises never settle
  });

  it('with crash mode none every issued write survives; with tear some are torn (truncated) and reported', async () => {
    const none = drive({ crashMode: 'none' });
    const bs = Array.from({ length: 10 }, (_, i) => block(10 + i, 1000));
    for (const b of bs) void none.d.blocks.put(b.cid, b.bytes);
    const kept = none.d.crash();
    expect(kept.blocks.survived).toHaveLength(10);
    expect(none.d.blocks.size).toBe(10);
    expect(none.d.blocks.audit()).toEqual([]);

    const tear = drive({ crashMode: 'tear' }, 3);
    const many = Array.from({ length: 60 }, (_, i) => block(100 + i, 1000));
    for (const b of many) void tear.d.blocks.put(b.cid, b.bytes);
    const r = tear.d.crash();
    expect(r.blocks.lost.length + r.blocks.torn.length + r.blocks.survived.length).toBe(60);
    expect(r.blocks.torn.length).toBeGreaterThan(5);
    expect(r.blocks.lost.length).toBeGreaterThan(5);
    for (const cid of r.blocks.torn) {
      const bytes = tear.d.blocks.peek(cid) as Uint8Array;
      expect(bytes.byteLength).toBeLessThan(1000);
      expect(matchesCid(cid, bytes)).toBe(false);
    }
    expect(tear.d.blocks.audit().map(String).sort()).toEqual(r.blocks.torn.map(String).sort());
    expect(tear.d.blocks.corrupted().map(String).sort()).toEqual(r.blocks.torn.map(String).sort());
  });

  it('the KV store keeps awaited writes and loses un-awaited ones whole (batches are atomic)', async () => {
    const { s, d } = drive({ crashMode: 'tear' }, 9);
    const kv = d.kv;
    await s.settle(kv.put('a', new Uint8Array([1])));
    await s.settle(kv.batch([{ type: 'put', key: 'b', value: new Uint8Array([2]) }, { type: 'delete', key: 'a' }]));
    for (let i = 0; i < 20; i++) void kv.batch([{ type: 'put', key: `x${i}`, value: new Uint8Array([i]) }, { type: 'put', key: `y${i}`, value: new Uint8Array([i]) }]);
    const r = d.crash();
    expect(r.kv.lostWrites + r.kv.survivedWrites).toBe(20);
    const keys = kv.keysNow();
    expect(keys).toContain('b');
    expect(keys).not.toContain('a');
    const xs = keys.filter((k) => k.startsWith('x')).length;
    expect(keys.filter((k) => k.startsWith('y')).length).toBe(xs);
    expect(xs).toBe(r.kv.survivedWrites);
    // Survivors are a prefix of the pending writes, in issue order.
    for (let i = 0; i < xs; i++) expect(keys).toContain(`x${i}`);
  });

  it('writes take virtual time: a serial queue at the write rate', async () => {
    const { s, d } = drive({ writeLatencyMs: 0, writeBytesPerSec: 1_000_000 });
    const done: number[] = [];
    for (let i = 0; i < 4; i++) {
      const b = block(200 + i, 250_000);
      void d.blocks.put(b.cid, b.bytes).then(() => done.push(s.elapsed));
    }
    await s.runFor(10_000);
    expect(done).toEqual([250, 500, 750, 1000]);
    expect(d.device.bytesWritten).toBe(1_000_000);
  });
});

describe('SimDisk capacity, rot, brick and handles', () => {
  it('fails a put with StorageFullError beyond capacity and frees space on delete', async () => {
    const disk = new SimDisk({ capacityBytes: 2500 });
    const [a, b, c] = [block(1, 1000), block(2, 1000), block(3, 1000)];
    await disk.put(a.cid, a.bytes);
    await disk.put(b.cid, b.bytes);
    await expect(disk.put(c.cid, c.bytes)).rejects.toMatchObject({ name: 'StorageFullError' });
    await disk.put(a.cid, a.bytes); // rewriting a block needs no extra space
    await disk.delete(a.cid);
    await disk.put(c.cid, c.bytes);
    expect(disk.usedBytes).toBe(2000);
  });

  it('bit rot flips bytes of stored blocks and reports exactly what it corrupted', async () => {
    const disk = new SimDisk({ name: 'rot' });
    const bs = Array.from({ length: 20 }, (_, i) => block(300 + i, 500));
    for (const b of bs) await disk.put(b.cid, b.bytes);
    const reports = disk.rot(5, 3, new SimRandom('rot'));
    expect(reports).toHaveLength(5);
    for (const r of reports) {
      expect(r.offsets).toHaveLength(3);
      const original = bs.find((b) => b.cid.equals(r.cid))?.bytes as Uint8Array;
      const now = await disk.get(r.cid);
      const changed = [...now].flatMap((v, i) => (v === original[i] ? [] : [i]));
      expect(changed.sort((x, y) => x - y)).toEqual([...r.offsets].sort((x, y) => x - y));
    }
    const truth = reports.map((r) => r.cid.toString()).sort();
    expect(disk.audit().map(String).sort()).toEqual(truth);
    expect(disk.corrupted().map(String).sort()).toEqual(truth);
    expect(bs.filter((b) => !disk.intact(b.cid)).map((b) => b.cid.toString()).sort()).toEqual(truth);
    // The same seed rots the same blocks; a rewrite repairs.
    const again = new SimDisk();
    for (const b of bs) await again.put(b.cid, b.bytes);
    expect(again.rot(5, 3, new SimRandom('rot')).map((r) => r.cid.toString())).toEqual(reports.map((r) => r.cid.toString()));
    const fixed = bs.find((b) => b.cid.equals(reports[0].cid)) as (typeof bs)[number];
    await disk.put(fixed.cid, fixed.bytes);
    expect(disk.intact(fixed.cid)).toBe(true);
    expect(disk.corrupted()).toHaveLength(4);
  });

  it('a bricked drive has nothing and refuses every operation', async () => {
    const { d } = drive();
    d.brick();
    expect(d.bricked).toBe(true);
    const h = d.open();
    await expect(h.blocks.get(block(1).cid)).rejects.toMatchObject({ name: 'DiskBrickedError' });
    await expect(h.kv.put('k', new Uint8Array(1))).rejects.toMatchObject({ name: 'DiskBrickedError' });
    expect(d.blocks.size).toBe(0);
  });

  it("a dead incarnation's handle never settles again; a new handle sees the data", async () => {
    const { s, d } = drive({ crashMode: 'none' });
    const life = new Life('x#1');
    const h = d.open(life);
    const b = block(1);
    await s.settle(h.blocks.put(b.cid, b.bytes));
    const pending = h.blocks.put(block(2).cid, block(2).bytes);
    life.kill();
    let settled = false;
    void pending.then(
      () => (settled = true),
      () => (settled = true),
    );
    void h.blocks.get(b.cid).then(() => (settled = true));
    await s.runFor(1000);
    expect(settled).toBe(false);
    const next = d.open(new Life('x#2'));
    expect(await next.blocks.has(b.cid)).toBe(true);
  });
});
