/**
 * The shared acceptance suite every Blockstore backend runs (in the style of automerge-repo's storage adapter
 * tests): one `*.test.ts` per backend calls `runBlockstoreAcceptance` with a factory for fresh, empty stores.
 *
 * Contract for `setup`: each call returns a new empty store. `reopen`, for durable stores, opens a new store over
 * the same data; the suite closes the previous store before calling it. `teardown` closes whatever store is still
 * open (closing twice must be harmless) and removes the data.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import { BlockNotFoundError, type Blockstore, type Pair } from '../../core/blocks/blockstore.ts';
import { AbortedError } from '../../core/errors.ts';
import { propertyOptions } from '../../proofs/support/fc.ts';
import { block } from './test-blocks.ts';

export { block, pseudoRandomBytes } from './test-blocks.ts';

export interface BlockstoreFixture {
  store: Blockstore;
  reopen?: () => Promise<Blockstore>;
  teardown: () => Promise<void>;
}

export interface BlockstoreAcceptanceOptions {
  /** The store keeps its blocks across close/reopen: declares the persistence tests (then `reopen` is required). */
  durable?: boolean;
  /** Runs of the random put/delete property (default 100; slow backends may ask for fewer). */
  numRuns?: number;
}

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of source) out.push(x);
  return out;
}

async function keyStrings(store: Blockstore): Promise<string[]> {
  return (await collect(store.keys())).map((c) => c.toString()).sort();
}

function sortedStrings(cids: CID[]): string[] {
  return cids.map((c) => c.toString()).sort();
}

/**
 * Byte-for-byte equality, fast (vitest's deep equality walks typed arrays element by element) and strict about
 * the type: a plain Uint8Array or a subclass of it.
 */
export function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual).toBeInstanceOf(Uint8Array);
  expect(actual.byteLength).toBe(expected.byteLength);
  const same = Buffer.compare(actual, expected) === 0;
  if (!same) expect.fail(`stored bytes differ (${actual.byteLength} bytes)`);
}

async function expectNotFound(promise: Promise<unknown>): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BlockNotFoundError);
  expect((err as Error).name).toBe('BlockNotFoundError');
}

export function runBlockstoreAcceptance(
  name: string,
  setup: () => Promise<BlockstoreFixture>,
  options: BlockstoreAcceptanceOptions = {},
): void {
  describe(`Blockstore acceptance: ${name}`, () => {
    let fixture: BlockstoreFixture;
    let store: Blockstore;

    beforeEach(async () => {
      fixture = await setup();
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.teardown();
    });

    /** Close the current store and open a new one over the same data. */
    async function reopen(): Promise<Blockstore> {
      if (fixture.reopen === undefined) throw new Error(`${name} is declared durable but its fixture has no reopen()`);
      await store.close();
      store = await fixture.reopen();
      return store;
    }

    it('put then get returns the same bytes, and put returns the CID', async () => {
      const b = block(1, 5000);
      const returned = await store.put(b.cid, b.bytes);
      expect(returned.equals(b.cid)).toBe(true);
      expectBytes(await store.get(b.cid), b.bytes);
    });

    it('put is idempotent', async () => {
      const b = block(2);
      await store.put(b.cid, b.bytes);
      await store.put(b.cid, b.bytes);
      expectBytes(await store.get(b.cid), b.bytes);
      expect(await keyStrings(store)).toEqual([b.cid.toString()]);
    });

    it('has reports presence before put, after put and after delete', async () => {
      const b = block(3);
      expect(await store.has(b.cid)).toBe(false);
      await store.put(b.cid, b.bytes);
      expect(await store.has(b.cid)).toBe(true);
      await store.delete(b.cid);
      expect(await store.has(b.cid)).toBe(false);
    });

    it('delete removes a block, and deleting an absent block is not an error', async () => {
      const kept = block(4);
      const gone = block(5);
      await store.put(kept.cid, kept.bytes);
      await store.put(gone.cid, gone.bytes);
      await store.delete(gone.cid);
      await expectNotFound(store.get(gone.cid));
      await expect(store.delete(gone.cid)).resolves.toBeUndefined();
      await expect(store.delete(block(6).cid)).resolves.toBeUndefined();
      expectBytes(await store.get(kept.cid), kept.bytes);
    });

    it('keys lists exactly the stored blocks', async () => {
      expect(await keyStrings(store)).toEqual([]);
      const blocks = Array.from({ length: 30 }, (_, i) => block(100 + i, 64 + i));
      for (const b of blocks) await store.put(b.cid, b.bytes);
      const deleted = blocks.filter((_, i) => i % 3 === 0);
      for (const b of deleted) await store.delete(b.cid);
      const expected = sortedStrings(blocks.filter((_, i) => i % 3 !== 0).map((b) => b.cid));
      expect(await keyStrings(store)).toEqual(expected);
    });

    it('putMany from a sync iterable yields every CID exactly once and stores every block', async () => {
      const blocks = Array.from({ length: 70 }, (_, i) => block(200 + i, (i * 97) % 3000));
      const yielded = await collect(store.putMany(blocks));
      expect(sortedStrings(yielded)).toEqual(sortedStrings(blocks.map((b) => b.cid)));
      for (const b of blocks) expectBytes(await store.get(b.cid), b.bytes);
      expect(await keyStrings(store)).toEqual(sortedStrings(blocks.map((b) => b.cid)));
    });

    it('putMany from an async iterable yields every CID exactly once, including already stored ones', async () => {
      const blocks = Array.from({ length: 40 }, (_, i) => block(300 + i, 100 + i));
      await store.put(blocks[0].cid, blocks[0].bytes);
      async function* source(): AsyncIterable<Pair> {
        for (const b of blocks) {
          await Promise.resolve();
          yield b;
        }
      }
      const yielded = await collect(store.putMany(source()));
      expect(sortedStrings(yielded)).toEqual(sortedStrings(blocks.map((b) => b.cid)));
      for (const b of blocks) expect(await store.has(b.cid)).toBe(true);
    });

    it('putMany yields a stored CID without waiting for the source to end', async () => {
      const first = block(400);
      const second = block(401);
      let sawFirst!: () => void;
      const firstYielded = new Promise<void>((resolve) => (sawFirst = resolve));
      let waitedTooLong = false;
      async function* source(): AsyncIterable<Pair> {
        yield first;
        // A consumer-paced producer: the next block comes only once the first is reported stored.
        await Promise.race([
          firstYielded,
          new Promise<void>((resolve) =>
            setTimeout(() => {
              waitedTooLong = true;
              resolve();
            }, 5000),
          ),
        ]);
        yield second;
      }
      const yielded: string[] = [];
      for await (const cid of store.putMany(source())) {
        yielded.push(cid.toString());
        if (cid.equals(first.cid)) sawFirst();
      }
      expect(waitedTooLong).toBe(false);
      expect(yielded).toEqual([first.cid.toString(), second.cid.toString()]);
    });

    it('putMany yields every CID to a slow consumer, including writes that finish while it waits', async () => {
      // Odd counts and a consumer that takes its time: the last writes finish while earlier CIDs are being handed
      // out, and must still be yielded.
      for (const count of [37, 101]) {
        const blocks = Array.from({ length: count }, (_, i) => block(count * 1000 + i, 50 + (i % 7) * 300));
        const yielded: CID[] = [];
        for await (const cid of store.putMany(blocks)) {
          yielded.push(cid);
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        expect(sortedStrings(yielded)).toEqual(sortedStrings(blocks.map((b) => b.cid)));
      }
    });

    it('putMany from an empty source yields nothing', async () => {
      expect(await collect(store.putMany([]))).toEqual([]);
    });

    it('get of an absent block throws BlockNotFoundError', async () => {
      await expectNotFound(store.get(block(7).cid));
    });

    it('stores a 0-byte block and a 2 MiB block', async () => {
      const empty = block(8, 0);
      const big = block(9, 2 * 1024 * 1024);
      await store.put(empty.cid, empty.bytes);
      await store.put(big.cid, big.bytes);
      const gotEmpty = await store.get(empty.cid);
      expect(gotEmpty.byteLength).toBe(0);
      expect(await store.has(empty.cid)).toBe(true);
      const gotBig = await store.get(big.cid);
      expectBytes(gotBig, big.bytes);
    });

    it('concurrent puts of the same CID store it once, intact', async () => {
      const b = block(10, 200_000);
      const results = await Promise.all(Array.from({ length: 8 }, () => store.put(b.cid, b.bytes)));
      for (const r of results) expect(r.equals(b.cid)).toBe(true);
      expectBytes(await store.get(b.cid), b.bytes);
      expect(await keyStrings(store)).toEqual([b.cid.toString()]);
    });

    it("mutating the caller's buffer after put does not change the stored bytes", async () => {
      const b = block(11, 256);
      const original = b.bytes.slice();
      await store.put(b.cid, b.bytes);
      b.bytes.fill(0xee);
      expectBytes(await store.get(b.cid), original);
    });

    it('mutating a returned buffer does not change the stored bytes', async () => {
      const b = block(12, 256);
      await store.put(b.cid, b.bytes);
      const got = await store.get(b.cid);
      got.fill(0);
      expectBytes(await store.get(b.cid), b.bytes);
    });

    it('an already aborted signal stops an operation with AbortedError', async () => {
      const b = block(13);
      const signal = AbortSignal.abort();
      for (const attempt of [store.put(b.cid, b.bytes, { signal }), store.get(b.cid, { signal }), collect(store.putMany([b], { signal }))]) {
        const err = await attempt.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(AbortedError);
        expect((err as Error).name).toBe('AbortedError');
      }
      expect(await store.has(b.cid)).toBe(false);
    });

    it('is unusable after close', async () => {
      const b = block(14);
      await store.put(b.cid, b.bytes);
      await store.close();
      await expect(store.get(b.cid)).rejects.toThrow();
    });

    if (options.durable === true) {
      it('keeps its blocks across close and reopen', async () => {
        const blocks = Array.from({ length: 20 }, (_, i) => block(500 + i, 10 + i * 50));
        for (const b of blocks.slice(0, 10)) await store.put(b.cid, b.bytes);
        await collect(store.putMany(blocks.slice(10)));
        await store.delete(blocks[3].cid);
        const reopened = await reopen();
        const expected = blocks.filter((_, i) => i !== 3);
        expect(await keyStrings(reopened)).toEqual(sortedStrings(expected.map((b) => b.cid)));
        for (const b of expected) expectBytes(await reopened.get(b.cid), b.bytes);
        await expectNotFound(reopened.get(blocks[3].cid));
      });
    }

    it('random put/putMany/delete sequences agree with a Map model', async () => {
      const pool = [0, 1, 33, 1000, 4096, 70_000].map((size, i) => block(900 + i, size));
      type Op = { kind: 'put' | 'delete'; i: number } | { kind: 'putMany'; is: number[] } | { kind: 'reopen' };
      const index = fc.integer({ min: 0, max: pool.length - 1 });
      const ops: Array<fc.Arbitrary<Op>> = [
        fc.record({ kind: fc.constant('put' as const), i: index }),
        fc.record({ kind: fc.constant('delete' as const), i: index }),
        fc.record({ kind: fc.constant('putMany' as const), is: fc.array(index, { maxLength: 4 }) }),
      ];
      if (options.durable === true) ops.push(fc.constant({ kind: 'reopen' as const }));
      const name_ = `blockstore acceptance (${name}): random ops agree with a Map model`;
      // The outer beforeEach store is unused here: every run gets its own fresh fixture.
      await fc.assert(
        fc.asyncProperty(fc.array(fc.oneof(...ops), { maxLength: 25 }), async (sequence) => {
          const run = await setup();
          let s = run.store;
          try {
            const model = new Map<string, Uint8Array>();
            for (const op of sequence) {
              if (op.kind === 'put') {
                const b = pool[op.i];
                await s.put(b.cid, b.bytes);
                model.set(b.cid.toString(), b.bytes);
              } else if (op.kind === 'delete') {
                const b = pool[op.i];
                await s.delete(b.cid);
                model.delete(b.cid.toString());
              } else if (op.kind === 'putMany') {
                const bs = op.is.map((i) => pool[i]);
                const yielded = await collect(s.putMany(bs));
                expect(sortedStrings(yielded)).toEqual(sortedStrings(bs.map((b) => b.cid)));
                for (const b of bs) model.set(b.cid.toString(), b.bytes);
              } else {
                await s.close();
                if (run.reopen === undefined) throw new Error(`${name} is declared durable but its fixture has no reopen()`);
                s = await run.reopen();
              }
            }
            expect(await keyStrings(s)).toEqual([...model.keys()].sort());
            for (const b of pool) {
              const expected = model.get(b.cid.toString());
              expect(await s.has(b.cid)).toBe(expected !== undefined);
              if (expected === undefined) await expectNotFound(s.get(b.cid));
              else expectBytes(await s.get(b.cid), expected);
            }
          } finally {
            await run.teardown();
          }
        }),
        propertyOptions(name_, { numRuns: options.numRuns ?? 100 }),
      );
    });
  });
}
