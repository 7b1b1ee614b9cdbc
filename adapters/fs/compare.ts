/**
 * Compare two directory trees byte for byte: names (as raw bytes), kinds, file contents (sha-256), sizes, modes,
 * symlink targets, mtimes (to the microsecond that utimes carries) and hard-link structure. Returns every
 * difference found; an empty list means identical. Special files (FIFOs, sockets, devices) in `a` are expected to
 * be absent from `b`, since backups skip them.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import * as fs from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';

const SLASH = Buffer.from('/');

export interface CompareOptions {
  /** Compare modification times (default true). Directory times are compared too. */
  mtimes?: boolean;
  /** Compare permission bits (default true). */
  modes?: boolean;
}

async function hashFile(path: Buffer): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

function show(p: Buffer): string {
  return p.toString('utf8');
}

function kind(st: BigIntStats): string {
  return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'special';
}

export async function compareTrees(a: string, b: string, options: CompareOptions = {}): Promise<string[]> {
  const diffs: string[] = [];
  const mtimes = options.mtimes ?? true;
  const modes = options.modes ?? true;
  const linksA = new Map<string, string>();
  const linksB = new Map<string, string>();
  const walk = async (pa: Buffer, pb: Buffer, rel: Buffer): Promise<void> => {
    const sa = await fs.lstat(pa, { bigint: true });
    let sb: BigIntStats;
    try {
      sb = await fs.lstat(pb, { bigint: true });
    } catch {
      diffs.push(`missing in restore: ${show(rel)}`);
      return;
    }
    if (kind(sa) !== kind(sb)) {
      diffs.push(`kind differs: ${show(rel)} (${kind(sa)} vs ${kind(sb)})`);
      return;
    }
    if (modes && !sa.isSymbolicLink() && (sa.mode & 0o7777n) !== (sb.mode & 0o7777n)) {
      diffs.push(`mode differs: ${show(rel)} (${(sa.mode & 0o7777n).toString(8)} vs ${(sb.mode & 0o7777n).toString(8)})`);
    }
    if (mtimes && sa.mtimeNs / 1000n !== sb.mtimeNs / 1000n) diffs.push(`mtime differs: ${show(rel)} (${sa.mtimeNs} vs ${sb.mtimeNs})`);
    if (sa.isFile()) {
      if (sa.size !== sb.size) diffs.push(`size differs: ${show(rel)} (${sa.size} vs ${sb.size})`);
      else if ((await hashFile(pa)) !== (await hashFile(pb))) diffs.push(`content differs: ${show(rel)}`);
      if (sa.nlink > 1n) {
        const ka = `${sa.dev}:${sa.ino}`;
        const kb = `${sb.dev}:${sb.ino}`;
        const firstA = linksA.get(ka);
        const firstB = linksB.get(kb);
        if (firstA === undefined) linksA.set(ka, show(rel));
        if (firstB === undefined) linksB.set(kb, show(rel));
        if ((firstA ?? show(rel)) !== (firstB ?? show(rel))) diffs.push(`hard link differs: ${show(rel)}`);
      }
    } else if (sa.isSymbolicLink()) {
      const ta = await fs.readlink(pa, { encoding: 'buffer' });
      const tb = await fs.readlink(pb, { encoding: 'buffer' });
      if (!ta.equals(tb)) diffs.push(`symlink target differs: ${show(rel)}`);
    } else if (sa.isDirectory()) {
      const na = (await fs.readdir(pa, { encoding: 'buffer' })).sort(Buffer.compare);
      const nb = (await fs.readdir(pb, { encoding: 'buffer' })).sort(Buffer.compare);
      const setB = new Set(nb.map((n) => n.toString('latin1')));
      for (const n of na) {
        const childA = Buffer.concat([pa, SLASH, n]);
        const childRel = rel.length ? Buffer.concat([rel, SLASH, n]) : n;
        const st = await fs.lstat(childA);
        if (!st.isFile() && !st.isDirectory() && !st.isSymbolicLink()) {
          if (setB.has(n.toString('latin1'))) diffs.push(`special file restored: ${show(childRel)}`);
          continue;
        }
        await walk(childA, Buffer.concat([pb, SLASH, n]), childRel);
      }
      const setA = new Set(na.map((n) => n.toString('latin1')));
      for (const n of nb) if (!setA.has(n.toString('latin1'))) diffs.push(`extra in restore: ${show(rel.length ? Buffer.concat([rel, SLASH, n]) : n)}`);
    }
  };
  await walk(Buffer.from(a), Buffer.from(b), Buffer.alloc(0));
  return diffs;
}
