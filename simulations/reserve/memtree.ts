/**
 * In-memory file trees for the simulator and tests: a SourceTree to back up, a TargetTree to restore into, a
 * seeded generator of person-like trees, and a byte-exact comparison. No disk is touched, so thousands of
 * scenarios can back up and restore real snapshot structures quickly and deterministically.
 */
import type { EntryKind, FileReader, FileWriter, SourceEntry, SourceStat, SourceTree, TargetTree, TreePath } from '../../core/snapshot/ports.ts';
import { nameKey, showPath } from '../../core/snapshot/names.ts';
import type { SimRandom } from '../sim/rng.ts';

interface Meta {
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
}

export type MemNode =
  | (Meta & { kind: 'dir'; children: Map<string, { name: Uint8Array; node: MemNode }> })
  | (Meta & { kind: 'file'; data: Uint8Array; ino: number })
  | (Meta & { kind: 'symlink'; target: Uint8Array });

let nextIno = 1;

export function memDir(mtimeNs = 1_700_000_000_000_000_000n): MemNode {
  return { kind: 'dir', children: new Map(), mode: 0o755, uid: 1000, gid: 1000, mtimeNs };
}

function walk(root: MemNode, path: TreePath): MemNode {
  let node = root;
  for (const part of path) {
    if (node.kind !== 'dir') throw enoent(path);
    const child = node.children.get(nameKey(part));
    if (!child) throw enoent(path);
    node = child.node;
  }
  return node;
}

function enoent(path: TreePath): Error {
  return Object.assign(new Error(`ENOENT: ${showPath(path)}`), { code: 'ENOENT', syscall: 'lstat' });
}

function statOf(node: MemNode): SourceStat {
  const kind: EntryKind = node.kind;
  return {
    kind,
    mode: node.mode,
    uid: node.uid,
    gid: node.gid,
    size: node.kind === 'file' ? node.data.length : node.kind === 'symlink' ? node.target.length : 0,
    mtimeNs: node.mtimeNs,
    ctimeNs: node.mtimeNs,
    dev: 1n,
    ino: BigInt(node.kind === 'file' ? node.ino : 0),
    nlink: 1,
  };
}

/** Back up an in-memory tree. */
export class MemSourceTree implements SourceTree {
  constructor(
    readonly root: MemNode,
    readonly description = 'memory:/home',
  ) {}

  async stat(path: TreePath): Promise<SourceStat> {
    return statOf(walk(this.root, path));
  }

  async list(path: TreePath): Promise<SourceEntry[]> {
    const node = walk(this.root, path);
    if (node.kind !== 'dir') throw Object.assign(new Error('ENOTDIR'), { code: 'ENOTDIR', syscall: 'scandir' });
    return [...node.children.values()].map(({ name, node: child }) => ({ name, ...statOf(child) }));
  }

  async readlink(path: TreePath): Promise<Uint8Array> {
    const node = walk(this.root, path);
    if (node.kind !== 'symlink') throw Object.assign(new Error('EINVAL'), { code: 'EINVAL', syscall: 'readlink' });
    return node.target;
  }

  async open(path: TreePath): Promise<FileReader> {
    const node = walk(this.root, path);
    if (node.kind !== 'file') throw Object.assign(new Error('EISDIR'), { code: 'EISDIR', syscall: 'open' });
    const data = node.data;
    return {
      async read(buf, offset, length, position) {
        const n = Math.max(0, Math.min(length, data.length - position));
        buf.set(data.subarray(position, position + n), offset);
        return n;
      },
      async close() {},
    };
  }
}

/** Restore into memory. */
export class MemTargetTree implements TargetTree {
  readonly root: MemNode = memDir();
  readonly description = 'memory:/restore';

  #parent(path: TreePath): Map<string, { name: Uint8Array; node: MemNode }> {
    const parent = walk(this.root, path.slice(0, -1));
    if (parent.kind !== 'dir') throw enoent(path);
    return parent.children;
  }

  #add(path: TreePath, node: MemNode): void {
    const children = this.#parent(path);
    const name = path[path.length - 1];
    if (children.has(nameKey(name))) throw Object.assign(new Error(`EEXIST: ${showPath(path)}`), { code: 'EEXIST', syscall: 'open' });
    children.set(nameKey(name), { name, node });
  }

  async mkdir(path: TreePath): Promise<void> {
    if (path.length === 0) return;
    this.#add(path, memDir());
  }

  async create(path: TreePath, size: number): Promise<FileWriter> {
    const node: MemNode = { kind: 'file', data: new Uint8Array(size), ino: nextIno++, mode: 0o600, uid: 0, gid: 0, mtimeNs: 0n };
    this.#add(path, node);
    return {
      async write(data, position) {
        if (position + data.length > node.data.length) {
          const grown = new Uint8Array(position + data.length);
          grown.set(node.data);
          node.data = grown;
        }
        node.data.set(data, position);
      },
      async close() {},
    };
  }

  async symlink(path: TreePath, target: Uint8Array): Promise<void> {
    this.#add(path, { kind: 'symlink', target: target.slice(), mode: 0o777, uid: 0, gid: 0, mtimeNs: 0n });
  }

  async link(existing: TreePath, path: TreePath): Promise<void> {
    this.#add(path, walk(this.root, existing));
  }

  async setMeta(path: TreePath, meta: { kind: EntryKind; mode: number; uid: number; gid: number; mtimeNs: bigint }): Promise<void> {
    const node = walk(this.root, path);
    if (meta.kind !== 'symlink') node.mode = meta.mode;
    node.uid = meta.uid;
    node.gid = meta.gid;
    node.mtimeNs = meta.mtimeNs;
  }
}

/** Every difference between two trees (names as bytes, kinds, contents, modes, times, symlink targets). */
export function compareMemTrees(a: MemNode, b: MemNode, path = ''): string[] {
  const out: string[] = [];
  if (a.kind !== b.kind) return [`${path || '.'}: ${a.kind} vs ${b.kind}`];
  if (a.kind !== 'symlink' && a.mode !== b.mode) out.push(`${path || '.'}: mode ${a.mode.toString(8)} vs ${b.mode.toString(8)}`);
  if (a.mtimeNs !== b.mtimeNs) out.push(`${path || '.'}: mtime ${a.mtimeNs} vs ${b.mtimeNs}`);
  if (a.kind === 'file' && b.kind === 'file') {
    if (a.data.length !== b.data.length || !a.data.every((x, i) => x === b.data[i])) out.push(`${path}: content differs`);
  } else if (a.kind === 'symlink' && b.kind === 'symlink') {
    if (nameKey(a.target) !== nameKey(b.target)) out.push(`${path}: symlink target differs`);
  } else if (a.kind === 'dir' && b.kind === 'dir') {
    for (const [k, { name, node }] of a.children) {
      const other = b.children.get(k);
      const p = `${path}/${new TextDecoder().decode(name)}`;
      if (!other) out.push(`${p}: missing`);
      else out.push(...compareMemTrees(node, other.node, p));
    }
    for (const [k, { name }] of b.children) if (!a.children.has(k)) out.push(`${path}/${new TextDecoder().decode(name)}: extra`);
  }
  return out;
}

export interface TreeShape {
  files: number;
  /** Mean file size in bytes (sizes are drawn log-uniformly around it). */
  meanBytes: number;
  /** Fraction of files that duplicate an earlier one. */
  duplicates?: number;
}

/** A seeded person-like tree: nested folders, files of varied sizes, duplicates, a symlink, an empty folder. */
export function generateTree(rng: SimRandom, shape: TreeShape): MemNode {
  const root = memDir();
  const enc = new TextEncoder();
  const dirs: MemNode[] = [root];
  for (let i = 0; i < Math.max(1, Math.floor(shape.files / 8)); i++) {
    const parent = dirs[rng.int(dirs.length)];
    const d = memDir(1_700_000_000_000_000_000n + BigInt(rng.int(1_000_000_000)) * 1000n);
    if (parent.kind === 'dir') parent.children.set(nameKey(enc.encode(`dir ${i}`)), { name: enc.encode(`dir ${i}`), node: d });
    dirs.push(d);
  }
  const made: Uint8Array[] = [];
  for (let i = 0; i < shape.files; i++) {
    const parent = dirs[rng.int(dirs.length)];
    let data: Uint8Array;
    if (made.length > 0 && rng.chance(shape.duplicates ?? 0.1)) data = made[rng.int(made.length)];
    else {
      const size = Math.max(0, Math.round(shape.meanBytes * Math.exp(rng.normal() * 0.8) * 0.73));
      data = rng.bytes(size);
      made.push(data);
    }
    const name = enc.encode(`file ${i}${rng.chance(0.1) ? ' caf\u00e9' : ''}.bin`);
    if (parent.kind === 'dir') {
      parent.children.set(nameKey(name), {
        name,
        node: { kind: 'file', data, ino: nextIno++, mode: rng.chance(0.1) ? 0o600 : 0o644, uid: 1000, gid: 1000, mtimeNs: 1_700_000_000_000_000_000n + BigInt(rng.int(1_000_000_000)) * 1000n },
      });
    }
  }
  if (root.kind === 'dir') {
    root.children.set(nameKey(enc.encode('empty')), { name: enc.encode('empty'), node: memDir() });
    root.children.set(nameKey(enc.encode('link')), { name: enc.encode('link'), node: { kind: 'symlink', target: enc.encode('dir 0'), mode: 0o777, uid: 1000, gid: 1000, mtimeNs: 1_700_000_000_000_000_000n } });
  }
  return root;
}

/** Change a tree a little: edit some files in place, add a few. Returns the same root. */
export function mutateTree(rng: SimRandom, root: MemNode, fraction: number): MemNode {
  const files: Array<MemNode & { kind: 'file' }> = [];
  const stack: MemNode[] = [root];
  while (stack.length) {
    const n = stack.pop()!;
    if (n.kind === 'dir') for (const c of n.children.values()) stack.push(c.node);
    else if (n.kind === 'file') files.push(n);
  }
  for (const f of files) {
    if (!rng.chance(fraction) || f.data.length === 0) continue;
    const copy = f.data.slice();
    const at = rng.int(copy.length);
    copy.set(rng.bytes(Math.min(64, copy.length - at)), at);
    f.data = copy;
    f.mtimeNs += 1_000_000n;
  }
  return root;
}
