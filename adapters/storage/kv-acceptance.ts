/**
 * The shared acceptance suite every KvStore backend runs (same style as blockstore-acceptance.ts): one
 * `*.test.ts` per backend calls `runKvAcceptance` with a factory for fresh, empty stores.
 *
 * Contract for `setup`: each call returns a new empty store. `reopen` (durable stores) opens a new store over the
 * same data; the suite closes the previous store first. `crash` (stores with a crash model) must leave the data
 * exactly as `batch(ops)` would if the process died at `stage`, then open and return a new store; the suite
 * closes the previous store first. `teardown` closes whatever is open (closing twice must be harmless) and
 * removes the data.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KvOp, KvStore } from '../../core/kv.ts';
import { AbortedError } from '../../core/errors.ts';
import { propertyOptions } from '../../proofs/support/fc.ts';

export type KvCrashStage = { stage: 'before-commit' } | { stage: 'after-commit'; applied: number };

export interface KvFixture {
  store: KvStore;
  reopen?: () => Promise<KvStore>;
  crash?: (ops: readonly KvOp[], at: KvCrashStage) => Promise<KvStore>;
  teardown: () => Promise<void>;
}

export interface KvAcceptanceOptions {
  /** Keeps entries across close/reopen: declares the persistence tests (then `reopen` is required). */
  durable?: boolean;
  /** Has a crash model for `batch`: declares the crash-atomicity tests (then `crash` is required). */
  crashable?: boolean;
  /** Runs of the random-operations property (default 100). */
  numRuns?: number;
}

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);

/** Keys chosen to break naive file-name or ordering schemes. */
export const AWKWARD_KEYS: readonly string[] = [
  '',
  '/',
  'a',
  'A',
  'a/b/c',
  '.',
  '..',
  '.hidden',
  'k',
  'h',
  '%',
  '%41',
  '%u0041',
  'with space',
  'new\nline',
  'nul\0byte',
  'back\\slash',
  'caf\u00e9', // NFC
  'cafe\u0301', // NFD: a different key
  '\u{1f600}',
  '\ud800', // a lone surrogate
  '\uffff',
  'CON',
  'x'.repeat(100),
  'y'.repeat(1000),
  '\u00e9'.repeat(300),
];

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of source) out.push(x);
  return out;
}

function codeUnitSort(keys: string[]): string[] {
  return [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function expectValue(actual: Uint8Array | undefined, expected: Uint8Array): void {
  expect(actual).toBeInstanceOf(Uint8Array);
  if (actual === undefined) return;
  expect(actual.byteLength).toBe(expected.byteLength);
  if (Buffer.compare(actual, expected) !== 0) expect.fail(`value differs (${actual.byteLength} bytes)`);
}

async function listed(store: KvStore, prefix: string): Promise<Array<[string, string]>> {
  return (await collect(store.list(prefix))).map(([k, v]) => [k, Buffer.from(v).toString('hex')]);
}

export function runKvAcceptance(name: string, setup: () => Promise<KvFixture>, options: KvAcceptanceOptions = {}): void {
  describe(`KvStore acceptance: ${name}`, () => {
    let fixture: KvFixture;
    let store: KvStore;

    beforeEach(async () => {
      fixture = await setup();
      store = fixture.store;
    });
    afterEach(async () => {
      await fixture.teardown();
    });

    async function reopen(): Promise<KvStore> {
      if (fixture.reopen === undefined) throw new Error(`${name} is declared durable but its fixture has no reopen()`);
      await store.close();
      store = await fixture.reopen();
      return store;
    }

    it('get of an absent key is undefined', async () => {
      expect(await store.get('nothing/here')).toBeUndefined();
    });

    it('put then get returns the value; a second put replaces it', async () => {
      await store.put('a/b', bytes('one'));
      expectValue(await store.get('a/b'), bytes('one'));
      await store.put('a/b', bytes('two, longer'));
      expectValue(await store.get('a/b'), bytes('two, longer'));
      await store.put('a/b', new Uint8Array(0));
      expectValue(await store.get('a/b'), new Uint8Array(0));
    });

    it('delete removes a key; deleting an absent key is not an error', async () => {
      await store.put('k1', bytes('v'));
      await store.delete('k1');
      expect(await store.get('k1')).toBeUndefined();
      await expect(store.delete('k1')).resolves.toBeUndefined();
      await expect(store.delete('never')).resolves.toBeUndefined();
    });

    it('copies values in and out', async () => {
      const v = bytes('original');
      await store.put('copy', v);
      v.fill(0);
      const got = await store.get('copy');
      expectValue(got, bytes('original'));
      got?.fill(1);
      expectValue(await store.get('copy'), bytes('original'));
      const bv = bytes('batched');
      await store.batch([{ type: 'put', key: 'copy2', value: bv }]);
      bv.fill(0);
      expectValue(await store.get('copy2'), bytes('batched'));
    });

    it('stores a 1 MiB value', async () => {
      const big = new Uint8Array(1024 * 1024).map((_, i) => (i * 31) & 0xff);
      await store.put('big', big);
      expectValue(await store.get('big'), big);
    });

    it('keeps awkward keys distinct, round-trips them and lists them in code-unit order', async () => {
      for (const [i, key] of AWKWARD_KEYS.entries()) await store.put(key, bytes(`value ${i}`));
      for (const [i, key] of AWKWARD_KEYS.entries()) expectValue(await store.get(key), bytes(`value ${i}`));
      const all = await listed(store, '');
      expect(all.map(([k]) => k)).toEqual(codeUnitSort([...AWKWARD_KEYS]));
      for (const [k, v] of all) expect(v).toBe(Buffer.from(`value ${AWKWARD_KEYS.indexOf(k)}`).toString('hex'));
    });

    it('list returns the keys with a prefix, in ascending UTF-16 code-unit order', async () => {
      // '\u{1f600}' (surrogates d83d de00) sorts before '\uffff' in code units though not in code points.
      const keys = ['b', 'a/2', 'a/10', 'a/1', 'a', 'ab', 'a/\uffff', 'a/\u{1f600}', 'a/', 'c/a'];
      for (const k of keys) await store.put(k, bytes(k));
      expect((await listed(store, 'a/')).map(([k]) => k)).toEqual(['a/', 'a/1', 'a/10', 'a/2', 'a/\u{1f600}', 'a/\uffff']);
      expect((await listed(store, 'a')).map(([k]) => k)).toEqual(codeUnitSort(keys.filter((k) => k.startsWith('a'))));
      expect((await listed(store, '')).map(([k]) => k)).toEqual(codeUnitSort(keys));
      expect(await listed(store, 'zzz')).toEqual([]);
      const [entry] = await collect(store.list('c/'));
      expect(entry[0]).toBe('c/a');
      expectValue(entry[1], bytes('c/a'));
    });

    it('lists more entries than fit in one page, in order', async () => {
      const keys = Array.from({ length: 600 }, (_, i) => `page/${String(i).padStart(4, '0')}`);
      await store.batch(keys.map((key) => ({ type: 'put', key, value: bytes(key) })));
      await store.put('pagf', bytes('after'));
      const got = await listed(store, 'page/');
      expect(got.map(([k]) => k)).toEqual(keys);
    });

    it('batch applies puts and deletes in order; the last op on a key wins', async () => {
      await store.put('x', bytes('old x'));
      await store.put('y', bytes('old y'));
      await store.batch([
        { type: 'put', key: 'a', value: bytes('a1') },
        { type: 'delete', key: 'x' },
        { type: 'put', key: 'a', value: bytes('a2') },
        { type: 'put', key: 'z', value: bytes('z') },
        { type: 'delete', key: 'z' },
        { type: 'delete', key: 'y' },
        { type: 'put', key: 'y', value: bytes('new y') },
        { type: 'delete', key: 'absent' },
      ]);
      expect(await listed(store, '')).toEqual([
        ['a', Buffer.from('a2').toString('hex')],
        ['y', Buffer.from('new y').toString('hex')],
      ]);
      await store.batch([]);
      expect((await listed(store, '')).length).toBe(2);
    });

    it('a read issued after a write sees it', async () => {
      const writes = [store.put('seq', bytes('1')), store.batch([{ type: 'put', key: 'seq', value: bytes('2') }, { type: 'put', key: 'seq2', value: bytes('2') }])];
      const read = store.get('seq');
      await Promise.all(writes);
      expectValue(await read, bytes('2'));
    });

    it('an already aborted signal stops an operation with AbortedError', async () => {
      const signal = AbortSignal.abort();
      const attempts: Array<Promise<unknown>> = [
        store.put('ab', bytes('x'), { signal }),
        store.get('ab', { signal }),
        store.batch([{ type: 'put', key: 'ab', value: bytes('x') }], { signal }),
        collect(store.list('', { signal })),
      ];
      for (const attempt of attempts) {
        const err = await attempt.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(AbortedError);
        expect((err as Error).name).toBe('AbortedError');
      }
      expect(await store.get('ab')).toBeUndefined();
    });

    it('is unusable after close', async () => {
      await store.put('k', bytes('v'));
      await store.close();
      await expect(store.get('k')).rejects.toThrow();
    });

    if (options.durable === true) {
      it('keeps its entries across close and reopen', async () => {
        for (const [i, key] of AWKWARD_KEYS.entries()) await store.put(key, bytes(`v${i}`));
        await store.delete('a');
        await store.batch([
          { type: 'put', key: 'batch/1', value: bytes('b1') },
          { type: 'delete', key: 'A' },
          { type: 'put', key: 'batch/2', value: bytes('b2') },
        ]);
        const before = await listed(store, '');
        const reopened = await reopen();
        expect(await listed(reopened, '')).toEqual(before);
        expect(await reopened.get('a')).toBeUndefined();
        expectValue(await reopened.get('batch/2'), bytes('b2'));
      });
    }

    if (options.crashable === true) {
      const ops: KvOp[] = [
        { type: 'put', key: 'acct/alice', value: bytes('90') },
        { type: 'put', key: 'acct/bob', value: bytes('110') },
        { type: 'delete', key: 'pending/transfer-7' },
        { type: 'put', key: 'log/\u{1f600}/' + 'z'.repeat(400), value: bytes('long key in the batch') },
      ];
      const seed = async (): Promise<void> => {
        await store.put('acct/alice', bytes('100'));
        await store.put('acct/bob', bytes('100'));
        await store.put('pending/transfer-7', bytes('alice->bob 10'));
      };
      const crash = async (at: KvCrashStage): Promise<KvStore> => {
        if (fixture.crash === undefined) throw new Error(`${name} is declared crashable but its fixture has no crash()`);
        await store.close();
        store = await fixture.crash(ops, at);
        return store;
      };
      const before: Array<[string, string]> = [
        ['acct/alice', Buffer.from('100').toString('hex')],
        ['acct/bob', Buffer.from('100').toString('hex')],
        ['pending/transfer-7', Buffer.from('alice->bob 10').toString('hex')],
      ];
      const after: Array<[string, string]> = [
        ['acct/alice', Buffer.from('90').toString('hex')],
        ['acct/bob', Buffer.from('110').toString('hex')],
        ['log/\u{1f600}/' + 'z'.repeat(400), Buffer.from('long key in the batch').toString('hex')],
      ];

      it('a batch that crashed before its commit point leaves none of its changes', async () => {
        await seed();
        const s = await crash({ stage: 'before-commit' });
        expect(await listed(s, '')).toEqual(before);
      });

      for (const applied of [0, 1, 2, ops.length]) {
        it(`a batch that crashed after its commit point with ${applied} of ${ops.length} ops applied is completed on reopen`, async () => {
          await seed();
          const s = await crash({ stage: 'after-commit', applied });
          expect(await listed(s, '')).toEqual(after);
          // And the recovery itself is durable: nothing changes on a further reopen.
          expect(await listed(await reopen(), '')).toEqual(after);
        });
      }
    }

    it('random put/delete/batch sequences agree with a Map model', async () => {
      const key = fc.string({ unit: fc.constantFrom('a', 'b', 'A', '/', '%', '.', 'k', '\u00e9', '\ud800', '\u{1f600}'), maxLength: 5 });
      const value = fc.uint8Array({ maxLength: 40 });
      const op: fc.Arbitrary<KvOp> = fc.oneof(
        fc.record({ type: fc.constant('put' as const), key, value }),
        fc.record({ type: fc.constant('delete' as const), key }),
      );
      type Step = { kind: 'op'; op: KvOp } | { kind: 'batch'; ops: KvOp[] } | { kind: 'reopen' };
      const steps: Array<fc.Arbitrary<Step>> = [
        op.map((o): Step => ({ kind: 'op', op: o })),
        fc.array(op, { maxLength: 6 }).map((ops): Step => ({ kind: 'batch', ops })),
      ];
      if (options.durable === true) steps.push(fc.constant<Step>({ kind: 'reopen' }));
      const prefixes = fc.array(fc.string({ unit: fc.constantFrom('a', 'A', '/', '%', '\ud800'), maxLength: 2 }), { minLength: 1, maxLength: 3 });

      await fc.assert(
        fc.asyncProperty(fc.array(fc.oneof(...steps), { maxLength: 20 }), prefixes, async (sequence, listPrefixes) => {
          const run = await setup();
          let s = run.store;
          try {
            const model = new Map<string, Uint8Array>();
            const applyModel = (o: KvOp): void => {
              if (o.type === 'put') model.set(o.key, o.value);
              else model.delete(o.key);
            };
            for (const step of sequence) {
              if (step.kind === 'op') {
                if (step.op.type === 'put') await s.put(step.op.key, step.op.value);
                else await s.delete(step.op.key);
                applyModel(step.op);
              } else if (step.kind === 'batch') {
                await s.batch(step.ops);
                step.ops.forEach(applyModel);
              } else {
                await s.close();
                if (run.reopen === undefined) throw new Error(`${name} is declared durable but its fixture has no reopen()`);
                s = await run.reopen();
              }
            }
            const hex = (v: Uint8Array): string => Buffer.from(v).toString('hex');
            for (const prefix of ['', ...listPrefixes]) {
              const expected = codeUnitSort([...model.keys()].filter((k) => k.startsWith(prefix))).map((k): [string, string] => [k, hex(model.get(k) as Uint8Array)]);
              expect(await listed(s, prefix)).toEqual(expected);
            }
            for (const [k, v] of model) expectValue(await s.get(k), v);
          } finally {
            await run.teardown();
          }
        }),
        propertyOptions(`kv acceptance (${name}): random ops agree with a Map model`, { numRuns: options.numRuns ?? 100 }),
      );
    });
  });
}
