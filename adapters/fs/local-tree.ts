/**
 * SourceTree and TargetTree over the local file system. Paths are handled as Buffers end to end, so names are the
 * exact bytes the OS gives (no Unicode normalisation, invalid UTF-8 survives). Times use nanosecond lstat.
 */
import { constants as C } from 'node:fs';
import * as fs from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import { StorageFullError } from '../../core/blocks/blockstore.ts';
import { ReserveError } from '../../core/errors.ts';
import type { EntryKind, FileReader, FileWriter, SourceEntry, SourceStat, SourceTree, TargetTree, TreePath } from '../../core/snapshot/ports.ts';
import { mapLimit } from '../../core/util/limit.ts';

export class SourceNotFoundError extends ReserveError {
  static override readonly name = 'SourceNotFoundError';
}

export class TargetNotEmptyError extends ReserveError {
  static override readonly name = 'TargetNotEmptyError';
}

const SLASH = Buffer.from('/');

function join(root: Buffer, path: TreePath): Buffer {
  if (path.length === 0) return root;
  const parts: Buffer[] = [root];
  for (const p of path) parts.push(SLASH, Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  return Buffer.concat(parts);
}

function kindOf(st: BigIntStats): { kind: EntryKind; otherKind?: string } {
  if (st.isFile()) return { kind: 'file' };
  if (st.isDirectory()) return { kind: 'dir' };
  if (st.isSymbolicLink()) return { kind: 'symlink' };
  const otherKind = st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : st.isCharacterDevice() ? 'character device' : st.isBlockDevice() ? 'block device' : 'unknown file type';
  return { kind: 'other', otherKind };
}

function toStat(st: BigIntStats): SourceStat {
  return {
    ...kindOf(st),
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    mtimeNs: st.mtimeNs,
    ctimeNs: st.ctimeNs,
    dev: st.dev,
    ino: st.ino,
    nlink: Number(st.nlink),
  };
}

export class LocalSourceTree implements SourceTree {
  readonly description: string;
  readonly #root: Buffer;

  constructor(root: string) {
    this.description = root;
    this.#root = Buffer.from(root);
  }

  async stat(path: TreePath): Promise<SourceStat> {
    try {
      return toStat(await fs.lstat(join(this.#root, path), { bigint: true }));
    } catch (e) {
      if (path.length === 0 && (e as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new SourceNotFoundError(`${this.description} does not exist`);
      }
      throw e;
    }
  }

  async list(path: TreePath): Promise<SourceEntry[]> {
    const dir = join(this.#root, path);
    const names = await fs.readdir(dir, { encoding: 'buffer' });
    const out = await mapLimit(names, 32, async (name): Promise<SourceEntry | null> => {
      try {
        const st = await fs.lstat(Buffer.concat([dir, SLASH, name]), { bigint: true });
        return { name: new Uint8Array(name.buffer, name.byteOffset, name.byteLength), ...toStat(st) };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null; // vanished between readdir and lstat
        throw e;
      }
    });
    return out.filter((e): e is SourceEntry => e !== null);
  }

  async readlink(path: TreePath): Promise<Uint8Array> {
    const target = await fs.readlink(join(this.#root, path), { encoding: 'buffer' });
    return new Uint8Array(target.buffer, target.byteOffset, target.byteLength);
  }

  async open(path: TreePath): Promise<FileReader> {
    const fh = await fs.open(join(this.#root, path), C.O_RDONLY | (C.O_NOATIME ?? 0)).catch(async (e) => {
      if ((e as NodeJS.ErrnoException).code === 'EPERM') return fs.open(join(this.#root, path), C.O_RDONLY); // O_NOATIME needs ownership
      throw e;
    });
    return {
      async read(buf, offset, length, position) {
        const { bytesRead } = await fh.read(buf, offset, length, position);
        return bytesRead;
      },
      close: () => fh.close(),
    };
  }
}

function mapWriteError(e: unknown, where: string): never {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') throw new StorageFullError(`the disk holding ${where} is full`, { cause: e });
  throw e;
}

export class LocalTargetTree implements TargetTree {
  readonly description: string;
  readonly #root: Buffer;
  readonly #asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

  private constructor(root: string) {
    this.description = root;
    this.#root = Buffer.from(root);
  }

  /** A restore target must not exist yet, or be an empty directory: a restore never overwrites anything. */
  static async prepare(root: string): Promise<LocalTargetTree> {
    try {
      const st = await fs.lstat(root);
      if (!st.isDirectory()) throw new TargetNotEmptyError(`${root} exists and is not a directory`);
      if ((await fs.readdir(root)).length > 0) throw new TargetNotEmptyError(`${root} is not empty; restore into a new or empty directory`);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return new LocalTargetTree(root);
  }

  async mkdir(path: TreePath): Promise<void> {
    try {
      await fs.mkdir(join(this.#root, path), { recursive: path.length === 0, mode: 0o700 });
    } catch (e) {
      mapWriteError(e, this.description);
    }
  }

  async create(path: TreePath, _size: number): Promise<FileWriter> {
    const where = this.description;
    const fh = await fs.open(join(this.#root, path), 'wx', 0o600).catch((e) => mapWriteError(e, where));
    return {
      async write(data, position) {
        let done = 0;
        while (done < data.length) {
          const { bytesWritten } = await fh.write(data, done, data.length - done, position + done).catch((e) => mapWriteError(e, where));
          done += bytesWritten;
        }
      },
      close: () => fh.close(),
    };
  }

  async symlink(path: TreePath, target: Uint8Array): Promise<void> {
    await fs.symlink(Buffer.from(target.buffer, target.byteOffset, target.byteLength), join(this.#root, path)).catch((e) => mapWriteError(e, this.description));
  }

  async link(existing: TreePath, path: TreePath): Promise<void> {
    await fs.link(join(this.#root, existing), join(this.#root, path)).catch((e) => mapWriteError(e, this.description));
  }

  async setMeta(path: TreePath, meta: { kind: EntryKind; mode: number; uid: number; gid: number; mtimeNs: bigint }): Promise<void> {
    const p = join(this.#root, path);
    // Seconds as a double carry ~0.24 us of precision and libuv truncates toward zero to the microsecond: aim
    // at the middle of the microsecond (below it for negative times) so it lands on the right one. Node turns a
    // negative number of seconds into "now", so pre-1970 times go as a numeric string, which it takes as given.
    // (Sub-microsecond digits are not settable through utimes.)
    const us = meta.mtimeNs / 1000n;
    const secs = (Number(us) + (us < 0n ? -0.5 : 0.5)) / 1e6;
    const mtime = secs < 0 ? String(secs) : secs;
    if (this.#asRoot) await fs.lchown(p, meta.uid, meta.gid).catch(() => undefined);
    if (meta.kind === 'symlink') {
      await fs.lutimes(p, mtime, mtime);
      return;
    }
    await fs.chmod(p, meta.mode);
    await fs.utimes(p, mtime, mtime);
  }
}
