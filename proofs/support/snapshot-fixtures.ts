/**
 * Shared fixtures for the snapshot-engine proofs: temp directories, seeded data, setting times exactly (including
 * before 1970), writing a described tree to disk with raw-byte names, running the real CLI in a child process and
 * fingerprinting a tree independently of adapters/fs/compare.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../core/ports.ts';
import type { Blockstore } from '../../core/blocks/blockstore.ts';
import type { ChunkerParams } from '../../core/chunker/fastcdc.ts';
import { inlineChunking } from '../../core/snapshot/inline.ts';
import { LocalSourceTree } from '../../adapters/fs/local-tree.ts';

export const REPO_ROOT = new URL('../../', import.meta.url).pathname;
export const CLI = join(REPO_ROOT, 'bin/reserve.mjs');

// ---- temp directories ---------------------------------------------------------------------------------------

export async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(join(tmpdir(), `reserve-${prefix}-`));
}

/** Run `fn` with a fresh temp directory, removed afterwards whatever happens. */
export async function withTemp<T>(prefix: string, fn: (base: string) => Promise<T>): Promise<T> {
  const base = await tempDir(prefix);
  try {
    return await fn(base);
  } finally {
    await removeTree(base);
  }
}

/** Remove a tree whatever its modes (read-only directories are made writable first) and names. */
export async function removeTree(path: string | Buffer): Promise<void> {
  const open = async (p: Buffer): Promise<void> => {
    let st;
    try {
      st = await fs.lstat(p);
    } catch {
      return;
    }
    if (!st.isDirectory()) return;
    await fs.chmod(p, 0o700).catch(() => undefined);
    for (const n of await fs.readdir(p, { encoding: 'buffer' })) await open(Buffer.concat([p, SLASH, n]));
  };
  await open(Buffer.from(path));
  await fs.rm(path, { recursive: true, force: true });
}

// ---- deterministic data -------------------------------------------------------------------------------------

/** mulberry32: a tiny seeded PRNG (test data only). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** `size` pseudo-random bytes determined by `seed` (fast: 32 bits per step). */
export function seededBytes(seed: number, size: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  const next = prng(seed);
  for (let i = 0; i < words.length; i++) words[i] = next();
  return new Uint8Array(words.buffer, 0, size);
}

export function sha256hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export const fixedClock = (ms = 1_700_000_000_000): Clock => ({
  now: () => ms,
  setTimer: () => () => undefined,
});

// ---- times ----------------------------------------------------------------------------------------------------

/**
 * Set a path's atime and mtime to the microsecond `us` (any sign). Node's fs.utimes turns a negative number of
 * seconds into "now", so pre-1970 times go as a numeric string (documented); libuv truncates toward zero to the
 * microsecond, so we aim at the middle of the wanted one.
 */
/** What every proof's in-process backup of a local directory shares: chunking in this thread, a fixed clock,
 * author and host 'proofs'. Spread it and add what a test varies. */
export function localBackup(src: string, store: Blockstore, chunker: ChunkerParams) {
  return { source: new LocalSourceTree(src), store, chunking: inlineChunking(chunker), clock: fixedClock(), author: 'proofs', host: 'proofs', chunker };
}

export async function setTimesUs(path: string | Buffer, us: bigint, symlink = false): Promise<void> {
  const secs = (Number(us) + (us < 0n ? -0.5 : 0.5)) / 1e6;
  const t = secs < 0 ? String(secs) : secs;
  if (symlink) await fs.lutimes(path, t, t);
  else await fs.utimes(path, t, t);
}

// ---- trees described as data ----------------------------------------------------------------------------------

export type Content = { kind: 'random'; seed: number; size: number } | { kind: 'zeros'; size: number } | { kind: 'bytes'; bytes: Uint8Array };

export type Node =
  | { kind: 'file'; name: Uint8Array; content: Content; mode: number; mtimeUs: bigint }
  | { kind: 'dir'; name: Uint8Array; mode: number; mtimeUs: bigint; children: Node[] }
  | { kind: 'symlink'; name: Uint8Array; target: Uint8Array; mtimeUs: bigint };

export interface TreeSpec {
  root: { mode: number; mtimeUs: bigint; children: Node[] };
  /** Hard links: link the n-th file (mod count) into the m-th directory (mod count, 0 = root) under `name`. */
  hardlinks?: Array<{ file: number; dir: number; name: Uint8Array }>;
}

export function contentBytes(c: Content): Uint8Array {
  if (c.kind === 'bytes') return c.bytes;
  if (c.kind === 'zeros') return new Uint8Array(c.size);
  return seededBytes(c.seed, c.size);
}

const SLASH = Buffer.from('/');
export const pathJoin = (dir: Buffer, name: Uint8Array): Buffer => Buffer.concat([dir, SLASH, Buffer.from(name)]);
export const nameKey = (n: Uint8Array): string => Buffer.from(n).toString('latin1');

/**
 * Write `spec` under `root` (which must not exist). Content first, hard links next, then metadata bottom-up:
 * modes after content (so a setgid directory does not pass its bit to children made later, and read-only
 * directories can still be filled) and times last (creating a child changes its directory's mtime).
 */
export async function writeTree(root: string, spec: TreeSpec): Promise<{ files: number; dirs: number; symlinks: number; hardlinks: number }> {
  const rootBuf = Buffer.from(root);
  const files: Buffer[] = [];
  const dirs: Buffer[] = [rootBuf];
  const meta: Array<() => Promise<void>> = [];
  let symlinks = 0;
  await fs.mkdir(rootBuf);
  const write = async (dir: Buffer, nodes: Node[]): Promise<void> => {
    for (const node of nodes) {
      const p = pathJoin(dir, node.name);
      if (node.kind === 'file') {
        await fs.writeFile(p, contentBytes(node.content));
        files.push(p);
        meta.push(async () => {
          await fs.chmod(p, node.mode);
          await setTimesUs(p, node.mtimeUs);
        });
      } else if (node.kind === 'symlink') {
        await fs.symlink(Buffer.from(node.target), p);
        symlinks++;
        meta.push(() => setTimesUs(p, node.mtimeUs, true));
      } else {
        await fs.mkdir(p);
        dirs.push(p);
        await write(p, node.children);
        // Pushed after the children's: applied deepest first.
        meta.push(async () => {
          await fs.chmod(p, node.mode);
          await setTimesUs(p, node.mtimeUs);
        });
      }
    }
  };
  await write(rootBuf, spec.root.children);
  let hardlinks = 0;
  if (files.length > 0) {
    for (const h of spec.hardlinks ?? []) {
      const dir = dirs[h.dir % dirs.length];
      const p = pathJoin(dir, h.name);
      const taken = await fs.lstat(p).then(
        () => true,
        () => false,
      );
      if (taken) continue;
      await fs.link(files[h.file % files.length], p);
      hardlinks++;
    }
  }
  for (const m of meta) await m();
  await fs.chmod(rootBuf, spec.root.mode);
  await setTimesUs(rootBuf, spec.root.mtimeUs);
  return { files: files.length, dirs: dirs.length - 1, symlinks, hardlinks };
}

// ---- an independent fingerprint of a tree ------------------------------------------------------------------------

/**
 * One line per entry: path, kind, mode, mtime (microseconds, as utimes carries), size and sha-256 for files,
 * the target for symlinks. Sorted by raw path bytes. Independent of compareTrees so each checks the other.
 */
export async function fingerprint(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: Buffer, rel: string): Promise<void> => {
    const st = await fs.lstat(p, { bigint: true });
    const head = `${rel} mode=${(st.mode & 0o7777n).toString(8)} mtime=${st.mtimeNs / 1000n}`;
    if (st.isDirectory()) {
      out.push(`${head} dir`);
      const names = (await fs.readdir(p, { encoding: 'buffer' })).sort(Buffer.compare);
      for (const n of names) await walk(pathJoin(p, n), `${rel}/${n.toString('hex')}`);
    } else if (st.isFile()) {
      out.push(`${head} file size=${st.size} sha256=${sha256hex(await fs.readFile(p))}`);
    } else if (st.isSymbolicLink()) {
      out.push(`${head} symlink -> ${(await fs.readlink(p, { encoding: 'buffer' })).toString('hex')}`);
    } else out.push(`${rel} special`);
  };
  await walk(Buffer.from(root), '.');
  return out;
}

// ---- the real CLI in a child process --------------------------------------------------------------------------

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Start `node bin/reserve.mjs ...args`; `done` settles when it has exited and its output is collected. */
export function spawnCli(args: string[], options: { cwd?: string } = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: options.cwd ?? REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const done = new Promise<CliResult>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

export function runCli(args: string[], options: { cwd?: string } = {}): Promise<CliResult> {
  return spawnCli(args, options).done;
}
