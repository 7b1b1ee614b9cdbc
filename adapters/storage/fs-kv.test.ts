/**
 * FsKvStore: the shared KvStore acceptance suite (durable, with its batch crash model), then the on-disk details:
 * file-name encoding, foreign files, leftovers, a damaged batch log.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { propertyOptions } from '../../proofs/support/fc.ts';
import { decodeBatchLog, encodeBatchLog, fileNameOf, FsKvStore, keyOfFileName, KvRecoveryNeededError, simulateBatchCrash } from './fs-kv.ts';
import { AWKWARD_KEYS, runKvAcceptance } from './kv-acceptance.ts';
import { KvFormatError } from './support.ts';

async function fixtureDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'reserve-fs-kv-'));
}

runKvAcceptance(
  'FsKvStore',
  async () => {
    const dir = await fixtureDir();
    const opened: FsKvStore[] = [];
    const open = async (): Promise<FsKvStore> => {
      const store = await FsKvStore.open(dir);
      opened.push(store);
      return store;
    };
    return {
      store: await open(),
      reopen: open,
      crash: async (ops, at) => {
        await simulateBatchCrash(dir, ops, at);
        return open();
      },
      teardown: async () => {
        for (const s of opened) await s.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
  { durable: true, crashable: true, numRuns: 60 },
);

describe('FsKvStore file names', () => {
  it('round-trip every key, stay within 201 safe characters, and never collide', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), (a, b) => {
        for (const key of [a, b]) {
          const name = fileNameOf(key);
          expect(name.length).toBeLessThanOrEqual(201);
          expect(name).toMatch(/^(k[0-9a-z._%-]*|h[0-9a-f]{64})$/);
          if (name.startsWith('k')) expect(keyOfFileName(name)).toBe(key);
        }
        if (a !== b) expect(fileNameOf(a)).not.toBe(fileNameOf(b));
      }),
      propertyOptions('fs-kv file names round-trip and never collide'),
    );
  });

  it('escape what file systems treat specially and keep case apart', () => {
    expect(fileNameOf('')).toBe('k');
    expect(fileNameOf('outbox/0001')).toBe('koutbox%2f0001');
    expect(fileNameOf('..')).toBe('k..');
    expect(fileNameOf('A')).not.toBe(fileNameOf('a'));
    expect(fileNameOf('\ud800')).toBe('k%ud800');
    for (const key of AWKWARD_KEYS) expect(fileNameOf(key)).not.toMatch(/[/\0\\A-Z]/);
  });

  it('recognise names this store never writes as foreign', () => {
    for (const name of ['', 'x', 'k%', 'k%4', 'k%zz', 'k%u12', 'kA', 'k%61', 'k%u0061', 'h1234']) expect(keyOfFileName(name)).toBeUndefined();
  });
});

describe('FsKvStore on disk', () => {
  let dir: string;
  let store: FsKvStore;
  const enc = new TextEncoder();

  beforeEach(async () => {
    dir = await fixtureDir();
    store = await FsKvStore.open(dir);
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps one file per key under data/, and long keys under hashed names', async () => {
    await store.put('a/b', enc.encode('v'));
    await store.put('long/' + 'q'.repeat(500), enc.encode('w'));
    const names = (await readdir(join(dir, 'data'))).sort();
    expect(names).toHaveLength(2);
    expect(names[0]).toMatch(/^h[0-9a-f]{64}$/);
    expect(names[1]).toBe('ka%2fb');
    expect((await readFile(join(dir, 'data', 'ka%2fb'))).subarray(0, 4).toString()).toBe('rkv1');
  });

  it('skips foreign files when listing and clears leftovers and temp files on open', async () => {
    await store.put('real', enc.encode('1'));
    await writeFile(join(dir, 'data', 'README'), 'not an entry');
    await writeFile(join(dir, 'data', 'k%zz'), 'not canonical');
    await writeFile(join(dir, 'tmp', 'half-written'), 'xx');
    expect((await collectKeys(store)).sort()).toEqual(['real']);
    await store.close();
    store = await FsKvStore.open(dir);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(await collectKeys(store)).toEqual(['real']);
  });

  it('leaves no batch log behind after a batch or a replay', async () => {
    await store.batch([
      { type: 'put', key: 'a', value: enc.encode('1') },
      { type: 'put', key: 'b', value: enc.encode('2') },
    ]);
    expect((await readdir(dir)).sort()).toEqual(['data', 'tmp']);
    await store.close();
    await simulateBatchCrash(dir, [{ type: 'delete', key: 'a' }, { type: 'put', key: 'c', value: enc.encode('3') }], { stage: 'after-commit', applied: 1 });
    expect((await readdir(dir)).sort()).toEqual(['batch.wal', 'data', 'tmp']);
    store = await FsKvStore.open(dir);
    expect((await readdir(dir)).sort()).toEqual(['data', 'tmp']);
    expect(await collectKeys(store)).toEqual(['b', 'c']);
  });

  it('refuses every operation after a committed batch fails to apply, and finishes the batch on reopen', async () => {
    await store.put('b', enc.encode('old b'));
    // An obstacle only the apply step trips over: a non-empty directory where key 'c' must be renamed into place.
    await mkdir(join(dir, 'data', fileNameOf('c'), 'in-the-way'), { recursive: true });
    const failed = await store
      .batch([
        { type: 'put', key: 'a', value: enc.encode('new a') },
        { type: 'put', key: 'b', value: enc.encode('new b') },
        { type: 'put', key: 'c', value: enc.encode('new c') },
      ])
      .catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(Error);
    for (const attempt of [store.get('b'), store.put('b', enc.encode('later b')), store.batch([]), collectKeys(store)]) {
      const err = await attempt.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(KvRecoveryNeededError);
      expect((err as Error).name).toBe('KvRecoveryNeededError');
    }
    await store.close();
    await rm(join(dir, 'data', fileNameOf('c')), { recursive: true });
    store = await FsKvStore.open(dir);
    expect(await collectKeys(store)).toEqual(['a', 'b', 'c']);
    expect(new TextDecoder().decode(await store.get('b'))).toBe('new b');
  });

  it('refuses to open over a damaged batch log rather than guess', async () => {
    await store.close();
    const log = encodeBatchLog([{ type: 'put', key: 'a', value: enc.encode('1') }]);
    log[10] ^= 0xff;
    await writeFile(join(dir, 'batch.wal'), log);
    const err = await FsKvStore.open(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KvFormatError);
    expect((err as Error).name).toBe('KvFormatError');
    await rm(join(dir, 'batch.wal'));
    store = await FsKvStore.open(dir);
  });

  it('encodes and decodes batch logs exactly', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ type: fc.constant('put' as const), key: fc.string({ unit: 'binary' }), value: fc.uint8Array({ maxLength: 50 }) }),
            fc.record({ type: fc.constant('delete' as const), key: fc.string({ unit: 'binary' }) }),
          ),
          { maxLength: 10 },
        ),
        (ops) => {
          const back = decodeBatchLog(encodeBatchLog(ops), 'test');
          expect(back.map((o) => (o.type === 'put' ? { ...o, value: [...o.value] } : o))).toEqual(
            ops.map((o) => (o.type === 'put' ? { ...o, value: [...o.value] } : o)),
          );
        },
      ),
      propertyOptions('fs-kv batch log encode/decode round trip'),
    );
  });
});

async function collectKeys(store: FsKvStore): Promise<string[]> {
  const out: string[] = [];
  for await (const [k] of store.list('')) out.push(k);
  return out;
}
