/**
 * LocalSourceTree.list through its walk worker: the same entries, names (raw bytes) and lstat facts as lstat on
 * this thread gives, for every kind of entry; a vanished or unreadable directory fails with the errno code and
 * syscall the backup engine acts on.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalSourceTree, LocalTargetTree } from './local-tree.ts';
import { nsToTime } from '../../core/snapshot/model.ts';

const enc = (s: string) => new Uint8Array(Buffer.from(s));

describe('LocalSourceTree.list (walk worker)', () => {
  let root: string;
  beforeAll(async () => {
    root = await fs.mkdtemp('/tmp/reserve-walk-');
    await fs.mkdir(join(root, 'dir', 'sub'), { recursive: true });
    await fs.writeFile(join(root, 'dir', 'a file'), 'hello');
    await fs.writeFile(Buffer.concat([Buffer.from(join(root, 'dir') + '/'), Buffer.from([0xff, 0xfe, 0x41])]), 'not utf-8');
    await fs.writeFile(join(root, 'dir', 'big'), Buffer.alloc(3 * 1024 * 1024, 1));
    await fs.symlink('a file', join(root, 'dir', 'link'));
    await fs.link(join(root, 'dir', 'a file'), join(root, 'dir', 'hard'));
    execFileSync('mkfifo', [join(root, 'dir', 'fifo')]);
    await fs.chmod(join(root, 'dir', 'a file'), 0o4751);
    await fs.utimes(join(root, 'dir', 'big'), 1.5, '-12345.25'); // a string: Node turns a negative number into now
  });
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('lists every entry with the facts lstat gives', async () => {
    const tree = new LocalSourceTree(root);
    const got = await tree.list([enc('dir')]);
    const names = await fs.readdir(join(root, 'dir'), { encoding: 'buffer' });
    expect(got.map((e) => Buffer.from(e.name).toString('hex')).sort()).toEqual(names.map((n) => n.toString('hex')).sort());
    for (const e of got) {
      const st = await fs.lstat(Buffer.concat([Buffer.from(join(root, 'dir') + '/'), Buffer.from(e.name)]), { bigint: true });
      const kind = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
      expect(e).toMatchObject({
        kind,
        mode: Number(st.mode & 0o7777n),
        uid: Number(st.uid),
        gid: Number(st.gid),
        size: Number(st.size),
        mtimeNs: st.mtimeNs,
        ctimeNs: st.ctimeNs,
        dev: st.dev,
        ino: st.ino,
        nlink: Number(st.nlink),
      });
      if (kind === 'other') expect(e.otherKind).toBe('FIFO');
      // The precomputed forms agree with the nanosecond ones.
      expect(e.mtime).toEqual(nsToTime(st.mtimeNs));
      expect(e.ctime).toEqual(nsToTime(st.ctimeNs));
      expect(e.inode).toBe(Number(st.ino));
    }
    expect(got.find((e) => Buffer.from(e.name).toString() === 'big')?.mtimeNs).toBe(-12_345_250_000_000n);
    expect(await tree.list([enc('dir'), enc('sub')])).toEqual([]);
  });

  it('a subdirectory listed with its parent is not served to a later walk', async () => {
    const first = new LocalSourceTree(root);
    await first.list([enc('dir')]); // brings dir/sub's listing along
    await fs.writeFile(join(root, 'dir', 'sub', 'later'), 'x');
    const second = new LocalSourceTree(root);
    expect((await second.list([enc('dir'), enc('sub')])).map((e) => Buffer.from(e.name).toString())).toEqual(['later']);
    await fs.rm(join(root, 'dir', 'sub', 'later'));
  });

  it('fails with the errno code and syscall of a missing or non-directory path', async () => {
    const tree = new LocalSourceTree(root);
    await expect(tree.list([enc('nope')])).rejects.toMatchObject({ code: 'ENOENT', syscall: 'scandir' });
    await expect(tree.list([enc('dir'), enc('big')])).rejects.toMatchObject({ code: 'ENOTDIR', syscall: 'scandir' });
  });
});

describe('LocalTargetTree.writeFiles', () => {
  let root: string;
  beforeAll(async () => {
    root = await fs.mkdtemp('/tmp/reserve-target-');
  });
  afterAll(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  it('creates whole files with their bytes, modes and mtimes, and never overwrites one', async () => {
    const target = await LocalTargetTree.prepare(join(root, 't'));
    await target.begin('snapshot-id');
    await target.mkdir([enc('d')]);
    const name = Buffer.from([0x66, 0xff, 0x20, 0x0a]); // not UTF-8, a space, a newline
    const files = [
      { path: [enc('d'), enc('plain')], data: enc('hello'), meta: { kind: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtimeNs: 1_600_000_000_123_456_000n } },
      { path: [enc('d'), new Uint8Array(name)], data: new Uint8Array(70_000).fill(7), meta: { kind: 'file' as const, mode: 0o4751, uid: 0, gid: 0, mtimeNs: -12_345_250_000_000n } },
      { path: [enc('d'), enc('empty')], data: new Uint8Array(0), meta: { kind: 'file' as const, mode: 0o400, uid: 0, gid: 0, mtimeNs: 0n } },
    ];
    await target.writeFiles(files);
    for (const f of files) {
      const p = Buffer.concat([Buffer.from(join(root, 't', 'd') + '/'), Buffer.from(f.path[1])]);
      expect(Buffer.from(await fs.readFile(p)).equals(Buffer.from(f.data))).toBe(true);
      const st = await fs.lstat(p, { bigint: true });
      expect(Number(st.mode & 0o7777n)).toBe(f.meta.mode);
      expect(st.mtimeNs).toBe(f.meta.mtimeNs);
    }
    await expect(target.writeFiles([{ ...files[0], data: enc('other') }])).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await fs.readFile(join(root, 't', 'd', 'plain'), 'utf8')).toBe('hello');
  });
});
