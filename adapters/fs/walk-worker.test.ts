import * as fs from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ENTRY_FIXED } from './walk-format.ts';
import { list, type Lstat, type Out } from './walk-worker.ts';

function listed(dir: string, lstat?: Lstat): Promise<Out> {
  return new Promise((resolve, reject) => list(Buffer.from(dir), (err, out) => (err ? reject(err) : resolve(out!)), lstat));
}

/** The listing's entries, each as its name and its whole record. */
function records(out: Out): Array<{ name: string; bytes: Buffer }> {
  const all = Buffer.from(out.buffer);
  const got: Array<{ name: string; bytes: Buffer }> = [];
  let p = 0;
  for (let i = 0; i < out.count; i++) {
    const n = all.readUInt16LE(p);
    got.push({ name: all.subarray(p + 2, p + 2 + n).toString('latin1'), bytes: all.subarray(p, p + ENTRY_FIXED + n) });
    p += ENTRY_FIXED + n;
  }
  expect(p).toBe(all.byteLength);
  return got;
}

describe('walk worker listing', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'walk-'));
    await writeFile(join(dir, 'a'), 'x');
    await mkdir(join(dir, 'bb'));
    await writeFile(join(dir, 'ccc'), 'yy');
    await mkdir(join(dir, 'dddd'));
    await writeFile(join(dir, 'e'), 'zzz');
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('writes every entry in readdir order, with its subdirectories named', async () => {
    const out = await listed(dir);
    const names = fs.readdirSync(dir);
    expect(records(out).map((r) => r.name)).toEqual(names);
    expect(out.dirs.map((d) => d.toString()).sort()).toEqual(['bb', 'dddd']);
  });

  it('leaves out entries that vanish before their lstat, the others byte for byte as a full listing has them', async () => {
    const full = records(await listed(dir));
    const gone = new Set(['bb', 'a', 'e']);
    const vanishing: Lstat = (path, cb) => {
      const name = path.toString().split('/').pop()!;
      if (gone.has(name)) {
        const err = Object.assign(new Error('gone'), { code: 'ENOENT' }) as NodeJS.ErrnoException;
        setImmediate(() => cb(err, undefined as never));
      } else fs.lstat(path, { bigint: true }, cb);
    };
    const out = await listed(dir, vanishing);
    const kept = full.filter((r) => !gone.has(r.name));
    expect(out.count).toBe(kept.length);
    expect(records(out).map((r) => r.bytes)).toEqual(kept.map((r) => r.bytes));
    expect(out.dirs.map((d) => d.toString())).toEqual(['dddd']);
  });

  it('fails on an lstat error other than a vanished entry', async () => {
    const denied: Lstat = (path, cb) => cb(Object.assign(new Error('denied'), { code: 'EACCES' }) as NodeJS.ErrnoException, undefined as never);
    await expect(listed(dir, denied)).rejects.toThrow('denied');
  });
});
