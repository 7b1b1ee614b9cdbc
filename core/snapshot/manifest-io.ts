/**
 * Reading and writing manifest structures through a Blockstore: chunk lists (inline or nested ChunkList blocks)
 * and directories (inline or paged). Every block read is verified against its CID.
 */
import type { CID } from 'multiformats/cid';
import type { Blockstore } from '../blocks/blockstore.ts';
import { getVerified } from '../blocks/verified.ts';
import {
  DIR_PAGE_BYTES,
  INLINE_CHUNKS,
  LIST_FANOUT,
  MalformedManifestError,
  MANIFEST_VERSION,
  decodeChunkList,
  decodeDir,
  decodeSnapshot,
  encodeNode,
  type ChunkRefs,
  type DirEntry,
  type DirNode,
  type SnapshotNode,
} from './model.ts';
import * as dagCbor from '@ipld/dag-cbor';

export interface Chunk {
  cid: CID;
  size: number;
}

/** Store a node block and return its CID. */
export async function putNode(store: Blockstore, node: Parameters<typeof encodeNode>[0]): Promise<CID> {
  const { cid, bytes } = encodeNode(node);
  await store.put(cid, bytes);
  return cid;
}

/** Build the ChunkRefs for a file: inline when short, else a (possibly nested) tree of ChunkList blocks. */
export async function writeChunkRefs(store: Blockstore, chunks: Chunk[]): Promise<ChunkRefs> {
  if (chunks.length <= INLINE_CHUNKS) return { c: chunks.map((c) => c.cid), z: chunks.map((c) => c.size) };
  let level: Chunk[] = [];
  for (let i = 0; i < chunks.length; i += LIST_FANOUT) {
    const part = chunks.slice(i, i + LIST_FANOUT);
    const cid = await putNode(store, { v: MANIFEST_VERSION, c: part.map((c) => c.cid), z: part.map((c) => c.size) });
    level.push({ cid, size: part.reduce((a, c) => a + c.size, 0) });
  }
  while (level.length > 1) {
    const next: Chunk[] = [];
    for (let i = 0; i < level.length; i += LIST_FANOUT) {
      const part = level.slice(i, i + LIST_FANOUT);
      const cid = await putNode(store, { v: MANIFEST_VERSION, l: part.map((c) => c.cid), ls: part.map((c) => c.size) });
      next.push({ cid, size: part.reduce((a, c) => a + c.size, 0) });
    }
    level = next;
  }
  return { cl: level[0].cid };
}

/** The chunks of a file, in order, following ChunkList blocks as needed. */
export async function* readChunkRefs(store: Blockstore, refs: ChunkRefs, where: string): AsyncGenerator<Chunk> {
  if (refs.c) {
    for (let i = 0; i < refs.c.length; i++) yield { cid: refs.c[i], size: refs.z![i] };
    return;
  }
  if (!refs.cl) return;
  yield* readList(store, refs.cl, where);
}

async function* readList(store: Blockstore, cid: CID, where: string): AsyncGenerator<Chunk> {
  const node = decodeChunkList(await getVerified(store, cid, where), `chunk list ${cid}`);
  if (node.c) {
    for (let i = 0; i < node.c.length; i++) yield { cid: node.c[i], size: node.z![i] };
  } else {
    for (const sub of node.l!) yield* readList(store, sub, where);
  }
}

/** CIDs of the ChunkList blocks behind `refs` (manifest blocks that must be kept alongside the chunks). */
export async function* listBlocksOf(store: Blockstore, refs: ChunkRefs, where: string): AsyncGenerator<CID> {
  if (!refs.cl) return;
  const stack = [refs.cl];
  while (stack.length) {
    const cid = stack.pop()!;
    yield cid;
    const node = decodeChunkList(await getVerified(store, cid, where), `chunk list ${cid}`);
    if (node.l) stack.push(...node.l);
  }
}

/** Store a directory: one block when small, else pages of about DIR_PAGE_BYTES each. Entries must be sorted. */
export async function writeDir(store: Blockstore, entries: DirEntry[]): Promise<CID> {
  // Most directories are small: encode once, and size entry by entry only when the whole is too large.
  const whole = encodeNode({ v: MANIFEST_VERSION, e: entries });
  if (whole.bytes.byteLength <= DIR_PAGE_BYTES + 16) {
    const sizes = whole.bytes.byteLength <= DIR_PAGE_BYTES ? null : entries.map((e) => dagCbor.encode(e).byteLength);
    if (!sizes || sizes.reduce((a, b) => a + b, 0) <= DIR_PAGE_BYTES) {
      await store.put(whole.cid, whole.bytes);
      return whole.cid;
    }
  }
  const sizes = entries.map((e) => dagCbor.encode(e).byteLength);
  const pages: CID[] = [];
  let start = 0;
  let acc = 0;
  for (let i = 0; i < entries.length; i++) {
    if (acc > 0 && acc + sizes[i] > DIR_PAGE_BYTES) {
      pages.push(await putNode(store, { v: MANIFEST_VERSION, e: entries.slice(start, i) }));
      start = i;
      acc = 0;
    }
    acc += sizes[i];
  }
  pages.push(await putNode(store, { v: MANIFEST_VERSION, e: entries.slice(start) }));
  return putNode(store, { v: MANIFEST_VERSION, p: pages });
}

/** All entries of a directory (following pages), and the CIDs of the blocks that hold them. */
export async function readDir(store: Blockstore, cid: CID, where: string): Promise<{ entries: DirEntry[]; blocks: CID[] }> {
  const node: DirNode = decodeDir(await getVerified(store, cid, where), `directory ${cid}`);
  if (node.e) return { entries: node.e, blocks: [cid] };
  const entries: DirEntry[] = [];
  const blocks = [cid];
  for (const page of node.p!) {
    const sub = decodeDir(await getVerified(store, page, where), `directory page ${page}`);
    if (!sub.e) throw new MalformedManifestError(`directory page ${page}`, 'pages may not nest');
    entries.push(...sub.e);
    blocks.push(page);
  }
  return { entries, blocks };
}

export async function readSnapshot(store: Blockstore, cid: CID, where: string): Promise<SnapshotNode> {
  return decodeSnapshot(await getVerified(store, cid, where), `snapshot ${cid}`);
}

export interface ManifestIndex {
  /** Manifest blocks: the snapshot node, directories and their pages, chunk lists. */
  manifest: CID[];
  /** Distinct chunks, in first-seen order. */
  chunks: CID[];
}

/**
 * Walk a snapshot's whole manifest through `read` (which decides where blocks come from: a local store, the
 * network, a simulator's disks) and list every manifest block and every distinct chunk.
 */
export async function collectManifest(root: CID, read: (cid: CID) => Promise<Uint8Array>): Promise<ManifestIndex> {
  const manifest: CID[] = [root];
  const chunks = new Map<string, CID>();
  const snap = decodeSnapshot(await read(root), `snapshot ${root}`);
  const dirs: CID[] = [snap.tree];
  const seen = new Set<string>();
  while (dirs.length) {
    const dir = dirs.pop()!;
    if (seen.has(dir.toString())) continue;
    seen.add(dir.toString());
    manifest.push(dir);
    const node = decodeDir(await read(dir), `directory ${dir}`);
    const pages = node.e ? [node] : [];
    for (const p of node.p ?? []) {
      manifest.push(p);
      pages.push(decodeDir(await read(p), `directory page ${p}`));
    }
    for (const page of pages) {
      for (const e of page.e ?? []) {
        if (e.k === 'd') dirs.push(e.d!);
        else if (e.k === 'f') {
          for (const c of e.c ?? []) chunks.set(c.toString(), c);
          const lists = e.cl ? [e.cl] : [];
          while (lists.length) {
            const l = lists.pop()!;
            manifest.push(l);
            const list = decodeChunkList(await read(l), `chunk list ${l}`);
            for (const c of list.c ?? []) chunks.set(c.toString(), c);
            lists.push(...(list.l ?? []));
          }
        }
      }
    }
  }
  return { manifest, chunks: [...chunks.values()] };
}
