/** The shared helpers: batching a source without stalling on it, bounded concurrency, errno mapping. */
import { describe, expect, it } from 'vitest';
import { errnoCode, forEachLimit, isNoSpace, readyBatches } from './support.ts';
import { isQuotaExceeded } from './idb-types.ts';

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of source) out.push(x);
  return out;
}

describe('readyBatches', () => {
  it('fills batches from a source whose items are at hand', async () => {
    const items = Array.from({ length: 10 }, (_, i) => i);
    expect(await collect(readyBatches(items, 4))).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    async function* asyncItems(): AsyncIterable<number> {
      yield* items;
    }
    expect(await collect(readyBatches(asyncItems(), 5))).toEqual([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]);
    expect(await collect(readyBatches([], 3))).toEqual([]);
  });

  it('hands out a partial batch instead of waiting on a slow source', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    async function* slow(): AsyncIterable<string> {
      yield 'a';
      yield 'b';
      await gate; // only opens once the consumer has seen the first batch
      yield 'c';
    }
    const batches: string[][] = [];
    for await (const batch of readyBatches(slow(), 10)) {
      batches.push(batch);
      release();
    }
    expect(batches).toEqual([['a', 'b'], ['c']]);
  });

  it('passes a source failure on and closes the source when the consumer stops early', async () => {
    async function* failing(): AsyncIterable<number> {
      yield 1;
      throw new Error('source broke');
    }
    await expect(collect(readyBatches(failing(), 4))).rejects.toThrow('source broke');
    let closed = false;
    function* endless(): Iterable<number> {
      try {
        for (let i = 0; ; i++) yield i;
      } finally {
        closed = true;
      }
    }
    for await (const batch of readyBatches(endless(), 3)) {
      expect(batch).toEqual([0, 1, 2]);
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(closed).toBe(true);
  });
});

describe('forEachLimit', () => {
  it('never runs more than `limit` at once and runs every item', async () => {
    let running = 0;
    let peak = 0;
    const seen: number[] = [];
    await forEachLimit(
      Array.from({ length: 20 }, (_, i) => i),
      3,
      async (i) => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((resolve) => setTimeout(resolve, 1));
        seen.push(i);
        running--;
      },
    );
    expect(peak).toBe(3);
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('rejects with the first failure', async () => {
    await expect(
      forEachLimit([1, 2, 3], 2, async (i) => {
        if (i === 2) throw new Error('two failed');
      }),
    ).rejects.toThrow('two failed');
  });
});

describe('error recognition', () => {
  it('knows a full disk, a quota and an IndexedDB quota', () => {
    expect(isNoSpace(Object.assign(new Error('x'), { code: 'ENOSPC' }))).toBe(true);
    expect(isNoSpace(Object.assign(new Error('x'), { code: 'EDQUOT' }))).toBe(true);
    expect(isNoSpace(Object.assign(new Error('x'), { code: 'EIO' }))).toBe(false);
    expect(isNoSpace('ENOSPC')).toBe(false);
    expect(errnoCode(new Error('plain'))).toBeUndefined();
    expect(isQuotaExceeded(Object.assign(new Error('x'), { name: 'QuotaExceededError' }))).toBe(true);
    expect(isQuotaExceeded(new Error('x'))).toBe(false);
  });
});
