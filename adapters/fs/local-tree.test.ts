/**
 * LocalSourceTree.list through its walk worker: the same entries, names (raw bytes) and lstat facts as lstat on
 * this thread gives, for every kind of entry; a vanished or unreadable directory fails with the errno code and
 * syscall the backup engine acts on.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalSourceTree } from './local-tree.ts';
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
