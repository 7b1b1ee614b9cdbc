/**
 * Which files of a snapshot need some given chunks: a walk of the snapshot's manifest (directories, their pages,
 * chunk lists) that keeps file paths, for reports a person can act on ("these files of that snapshot are lost").
 */
import type { CID } from 'multiformats/cid';
import { decodeChunkList, decodeDir, decodeSnapshot, type ChunkRefs, type DirNode } from '../snapshot/model.ts';

/** Paths are shown, not used: names that are not UTF-8 are decoded with replacement characters. */
const utf8 = new TextDecoder('utf-8', { fatal: false });

/** At most this many paths per report (the count of files is always exact). */
export const MAX_LISTED_FILES = 1000;

export interface FilesNeeding {
  /** Paths ('/'-separated, relative to the snapshot root), sorted, at most MAX_LISTED_FILES. */
  files: string[];
  /** How many files need at least one of the chunks. */
  count: number;
}

/**
 * The files of snapshot `root` that need at least one chunk in `chunks` (CID strings). `read` returns a manifest
 * block's bytes (verified by the caller).
 */
export async function filesNeeding(root: CID, chunks: ReadonlySet<string>, read: (cid: CID) => Promise<Uint8Array>): Promise<FilesNeeding> {
  const found: string[] = [];
  let count = 0;
  const usesAny = async (refs: ChunkRefs): Promise<boolean> => {
    for (const c of refs.c ?? []) if (chunks.has(c.toString())) return true;
    const lists = refs.cl ? [refs.cl] : [];
    while (lists.length) {
      const list = decodeChunkList(await read(lists.pop()!));
      for (const c of list.c ?? []) if (chunks.has(c.toString())) return true;
      lists.push(...(list.l ?? []));
    }
    return false;
  };
  const snap = decodeSnapshot(await read(root));
  const dirs: Array<{ cid: CID; path: string }> = [{ cid: snap.tree, path: '' }];
  while (dirs.length) {
    const { cid, path } = dirs.pop()!;
    const node = decodeDir(await read(cid));
    const pages: DirNode[] = node.e ? [node] : [];
    for (const p of node.p ?? []) pages.push(decodeDir(await read(p)));
    for (const page of pages) {
      for (const e of page.e ?? []) {
        const name = path === '' ? utf8.decode(e.n) : `${path}/${utf8.decode(e.n)}`;
        if (e.k === 'd' && e.d) dirs.push({ cid: e.d, path: name });
        else if (e.k === 'f' && (await usesAny(e))) {
          count++;
          found.push(name);
        }
      }
    }
  }
  found.sort();
  return { files: found.slice(0, MAX_LISTED_FILES), count };
}
