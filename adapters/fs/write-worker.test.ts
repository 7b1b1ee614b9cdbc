/**
 * Small files written by LocalTargetTree.writeFiles on its write worker, and by the same code on this thread (where
 * no worker can be had): contents, modes and mtimes as asked, batches larger than the shared buffers, many batches
 * at once, and a failure in the middle of a batch that stops it there with the errno code the restore reports.
 */
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalTargetTree } from './local-tree.ts';
import { type BatchFile, packBatch, readBatch } from './write-format.ts';
import { writeBatch } from './write-worker.ts';

const enc = (s: string) => new Uint8Array(Buffer.from(s));

describe('write worker', () => {
  let root: string;
  beforeAll(async () => {
    root = await fs.mkdtemp('/tmp/reserve-writer-');
  });
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  const file = (path: string, data: Uint8Array, mode: number, time: number | string): BatchFile => ({
    path: Buffer.from(path),
    data,
    createMode: mode & 0o777,
    mode,
    uid: 0,
    gid: 0,
    chown: false,
    chmod: true,
    time,
  });

  it('packs a batch into flat buffers and reads back the same files', () => {
    const files = [file('/a', enc('one'), 0o644, 1.5), file('/b/c', new Uint8Array(0), 0o4700, '-2.5'), file('/d', new Uint8Array(9).fill(3), 0o600, 0)];
    const back = readBatch(packBatch(7, files).req);
    expect(back.map((f) => [f.path.toString(), Buffer.from(f.data).toString('hex'), f.createMode, f.mode, f.chmod, f.time])).toEqual(
      files.map((f) => [f.path.toString(), Buffer.from(f.data).toString('hex'), f.createMode, f.mode, f.chmod, f.time]),
    );
  });

  it('on this thread: writes each file in order and stops at the first that fails, naming it', async () => {
    const dir = join(root, 'here');
    await fs.mkdir(dir);
    await fs.writeFile(join(dir, 'taken'), 'keep me');
    const files = [file(join(dir, 'first'), enc('1'), 0o640, 1_000_000), file(join(dir, 'taken'), enc('2'), 0o600, 0), file(join(dir, 'third'), enc('3'), 0o600, 0)];
    const res = writeBatch(packBatch(1, files).req);
    expect(res).toMatchObject({ id: 1, done: 1, error: { code: 'EEXIST', syscall: 'open' } });
    expect(await fs.readFile(join(dir, 'first'), 'utf8')).toBe('1');
    expect((await fs.stat(join(dir, 'first'))).mode & 0o7777).toBe(0o640);
    expect((await fs.stat(join(dir, 'first'))).mtimeMs).toBe(1_000_000_000);
    expect(await fs.readFile(join(dir, 'taken'), 'utf8')).toBe('keep me');
    await expect(fs.stat(join(dir, 'third'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('through the worker: many batches at once, one larger than a shared buffer, all land intact', async () => {
    const target = await LocalTargetTree.prepare(join(root, 't'));
    await target.begin('snapshot-id');
    const batches = Array.from({ length: 12 }, (_, b) =>
      Array.from({ length: b === 5 ? 3 : 20 }, (_, i) => ({
        path: [enc(`b${b}-f${i}`)],
        // Batch 5 holds 3 files of 600 KB: 1.8 MB, more than a shared buffer, so its contents are moved instead.
        data: new Uint8Array(b === 5 ? 600_000 : 1000 + i).fill((b * 31 + i) & 0xff),
        meta: { kind: 'file' as const, mode: 0o600 | (i % 2 ? 0o044 : 0), uid: 0, gid: 0, mtimeNs: BigInt(1_700_000_000 + b * 100 + i) * 1_000_000_000n },
      })),
    );
    await Promise.all(batches.map((files) => target.writeFiles(files)));
    for (const files of batches) {
      for (const f of files) {
        const p = join(root, 't', Buffer.from(f.path[0]).toString());
        expect(Buffer.from(await fs.readFile(p)).equals(Buffer.from(f.data))).toBe(true);
        const st = await fs.lstat(p, { bigint: true });
        expect(Number(st.mode & 0o7777n)).toBe(f.meta.mode);
        expect(st.mtimeNs).toBe(f.meta.mtimeNs);
      }
    }
  });

  it('through the worker: a file that cannot be created fails its batch with the errno code, the files before it stay', async () => {
    const target = await LocalTargetTree.prepare(join(root, 'u'));
    await target.begin('snapshot-id');
    const meta = { kind: 'file' as const, mode: 0o600, uid: 0, gid: 0, mtimeNs: 0n };
    await expect(target.writeFiles([{ path: [enc('ok')], data: enc('x'), meta }, { path: [enc('no-such-dir'), enc('f')], data: enc('y'), meta }])).rejects.toMatchObject({
      code: 'ENOENT',
      syscall: 'open',
    });
    expect(await fs.readFile(join(root, 'u', 'ok'), 'utf8')).toBe('x');
  });
});
