/**
 * The snapshot manifest: a Merkle tree of dag-cbor blocks over raw chunk blocks.
 *
 *   SnapshotNode ──tree──▶ DirNode ──entries──▶ file entry ── c: [chunk CIDs] (or cl: ChunkList CID)
 *        │                   │                 dir entry  ── d: DirNode CID
 *     parent (CID)        p: [page CIDs]        symlink    ── y: target bytes
 *
 * Keys are short because a directory of 100k files is 100k entries. Names and symlink targets are raw bytes, as
 * the OS gave them (no Unicode normalisation: NFC and NFD spellings are different names). Times are [seconds,
 * nanoseconds] pairs. Every decoder validates its input and throws MalformedManifestError naming the block.
 */
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { ReserveError } from '../errors.ts';
import { DAG_CBOR_CODE, cidOf } from '../blocks/cid.ts';
import type { EntryKind } from './ports.ts';
import { decodeFast, encodeFast } from './fast-cbor.ts';

export const MANIFEST_VERSION = 1;
/** Chunk lists longer than this leave the directory entry for a ChunkList block of their own. */
export const INLINE_CHUNKS = 64;
/** Entries per ChunkList block before the list nests (8192 x ~40 B ~ 330 KiB per block). */
export const LIST_FANOUT = 8192;
/** A directory whose encoded entries pass this size is split into pages. */
export const DIR_PAGE_BYTES = 512 * 1024;

export class MalformedManifestError extends ReserveError {
  static override readonly name = 'MalformedManifestError';
  constructor(what: string, detail: string) {
    super(`${what} is not a valid Reserve manifest block: ${detail}`);
  }
}

export type Time = [number, number];

export function nsToTime(ns: bigint): Time {
  const sec = ns / 1_000_000_000n;
  const nsec = ns - sec * 1_000_000_000n;
  if (nsec < 0n) return [Number(sec - 1n), Number(nsec + 1_000_000_000n)];
  return [Number(sec), Number(nsec)];
}

export function timeToNs(t: Time): bigint {
  return BigInt(t[0]) * 1_000_000_000n + BigInt(t[1]);
}

/** How a file's content is found: its chunk CIDs and sizes inline, or behind a ChunkList block. */
export interface ChunkRefs {
  /** Chunk CIDs, in order (inline form). */
  c?: CID[];
  /** Chunk sizes, parallel to `c`. */
  z?: number[];
  /** A ChunkList block holding the chunk CIDs and sizes (for large files). */
  cl?: CID;
}

export interface DirEntry extends ChunkRefs {
  /** Name bytes. */
  n: Uint8Array;
  /** Kind: f file, d directory, l symlink. */
  k: 'f' | 'd' | 'l';
  /** Mode bits (mode & 0o7777). */
  m: number;
  u: number;
  g: number;
  /** Modification time. */
  t: Time;
  /** File size in bytes. */
  s?: number;
  /** Directory node CID. */
  d?: CID;
  /** Symlink target bytes. */
  y?: Uint8Array;
  /** Hard-link group: entries with the same value are links to one inode. */
  h?: string;
  /** Change-detection facts for the next backup: inode number and ctime. Not restored. */
  x?: [number | bigint, number, number];
}

export interface DirNode {
  v: number;
  /** Entries sorted by name bytes (inline form). */
  e?: DirEntry[];
  /** Pages, each a DirNode with `e`, in name order (large directories). */
  p?: CID[];
}

export interface ChunkListNode {
  v: number;
  /** Chunk CIDs and sizes (leaf list). */
  c?: CID[];
  z?: number[];
  /** Nested lists (interior node) with the byte size each covers. */
  l?: CID[];
  ls?: number[];
}

export interface SnapshotStats {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  chunks: number;
  skipped: number;
}

export interface SnapshotNode {
  v: number;
  type: 'reserve/snapshot';
  /** Root directory node. */
  tree: CID;
  /** Metadata of the root directory itself. */
  root: { m: number; u: number; g: number; t: Time };
  parent: CID | null;
  /** Milliseconds since the epoch, from the injected clock. */
  time: number;
  author: string;
  host: string;
  source: string;
  stats: SnapshotStats;
}

export function encodeNode(node: DirNode | ChunkListNode | SnapshotNode): { cid: CID; bytes: Uint8Array } {
  const bytes = encodeFast(node) ?? dagCbor.encode(node);
  return { cid: cidOf(DAG_CBOR_CODE, bytes), bytes };
}

export function kindCode(kind: EntryKind): 'f' | 'd' | 'l' {
  if (kind === 'file') return 'f';
  if (kind === 'dir') return 'd';
  if (kind === 'symlink') return 'l';
  throw new RangeError(`no manifest code for ${kind}`);
}

// ---- validation -------------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;
const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
const isUint = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
const isCid = (x: unknown): x is CID => CID.asCID(x) !== null;
const isTime = (x: unknown): x is Time => Array.isArray(x) && x.length === 2 && Number.isSafeInteger(x[0]) && isUint(x[1]) && (x[1] as number) < 1e9;

function decodeObj(bytes: Uint8Array, what: string): Obj {
  let value: unknown;
  try {
    const fast = decodeFast(bytes);
    value = fast ? fast.value : dagCbor.decode(bytes);
  } catch (e) {
    throw new MalformedManifestError(what, `not dag-cbor (${(e as Error).message})`);
  }
  if (!isObj(value)) throw new MalformedManifestError(what, 'not a map');
  if (value.v !== MANIFEST_VERSION) throw new MalformedManifestError(what, `unsupported version ${String(value.v)}`);
  return value;
}

function checkRefs(o: Obj, what: string): void {
  if (o.c !== undefined || o.z !== undefined) {
    if (!Array.isArray(o.c) || !o.c.every(isCid)) throw new MalformedManifestError(what, 'chunk list is not a list of CIDs');
    if (!Array.isArray(o.z) || o.z.length !== o.c.length || !o.z.every(isUint)) {
      throw new MalformedManifestError(what, 'chunk sizes do not match the chunk list');
    }
  }
  if (o.cl !== undefined && !isCid(o.cl)) throw new MalformedManifestError(what, 'chunk-list reference is not a CID');
}

export function checkEntry(e: unknown, what: string): DirEntry {
  if (!isObj(e)) throw new MalformedManifestError(what, 'entry is not a map');
  if (!(e.n instanceof Uint8Array) || e.n.length === 0 || e.n.length > 4096) throw new MalformedManifestError(what, 'entry name is not 1-4096 bytes');
  if (e.n.includes(0x2f) || e.n.includes(0) || isDotName(e.n)) throw new MalformedManifestError(what, `entry name ${JSON.stringify(new TextDecoder().decode(e.n))} is not a single path component`);
  if (e.k !== 'f' && e.k !== 'd' && e.k !== 'l') throw new MalformedManifestError(what, `unknown entry kind ${String(e.k)}`);
  if (!isUint(e.m) || e.m > 0o7777 || !isUint(e.u) || !isUint(e.g) || !isTime(e.t)) throw new MalformedManifestError(what, 'bad entry metadata');
  if (e.k === 'f') {
    if (!isUint(e.s)) throw new MalformedManifestError(what, 'file entry without a size');
    checkRefs(e, what);
    if ((e.c === undefined) === (e.cl === undefined)) throw new MalformedManifestError(what, 'file entry needs exactly one of c or cl');
    if (e.z && (e.z as number[]).reduce((a, b) => a + b, 0) !== e.s) throw new MalformedManifestError(what, 'chunk sizes do not add up to the file size');
  } else if (e.k === 'd') {
    if (!isCid(e.d)) throw new MalformedManifestError(what, 'directory entry without a tree');
  } else if (!(e.y instanceof Uint8Array)) throw new MalformedManifestError(what, 'symlink entry without a target');
  if (e.h !== undefined && typeof e.h !== 'string') throw new MalformedManifestError(what, 'bad hard-link group');
  return e as unknown as DirEntry;
}

function isDotName(n: Uint8Array): boolean {
  return (n.length === 1 && n[0] === 0x2e) || (n.length === 2 && n[0] === 0x2e && n[1] === 0x2e);
}

export function decodeDir(bytes: Uint8Array, what = 'directory block'): DirNode {
  const o = decodeObj(bytes, what);
  if (o.e !== undefined) {
    if (!Array.isArray(o.e)) throw new MalformedManifestError(what, 'entries is not a list');
    o.e.forEach((e) => checkEntry(e, what));
  } else if (!Array.isArray(o.p) || !o.p.every(isCid)) throw new MalformedManifestError(what, 'neither entries nor pages');
  return o as unknown as DirNode;
}

export function decodeChunkList(bytes: Uint8Array, what = 'chunk-list block'): ChunkListNode {
  const o = decodeObj(bytes, what);
  if (o.c !== undefined) checkRefs(o, what);
  else if (!Array.isArray(o.l) || !o.l.every(isCid) || !Array.isArray(o.ls) || o.ls.length !== o.l.length || !o.ls.every(isUint)) {
    throw new MalformedManifestError(what, 'neither a chunk list nor nested lists');
  }
  return o as unknown as ChunkListNode;
}

export function decodeSnapshot(bytes: Uint8Array, what = 'snapshot block'): SnapshotNode {
  const o = decodeObj(bytes, what);
  if (o.type !== 'reserve/snapshot') throw new MalformedManifestError(what, 'not a snapshot');
  if (!isCid(o.tree)) throw new MalformedManifestError(what, 'no tree');
  if (o.parent !== null && !isCid(o.parent)) throw new MalformedManifestError(what, 'bad parent');
  if (!isUint(o.time) || typeof o.author !== 'string' || typeof o.host !== 'string' || typeof o.source !== 'string') {
    throw new MalformedManifestError(what, 'bad time, author, host or source');
  }
  const r = o.root;
  if (!isObj(r) || !isUint(r.m) || !isUint(r.u) || !isUint(r.g) || !isTime(r.t)) throw new MalformedManifestError(what, 'bad root metadata');
  const s = o.stats;
  if (!isObj(s) || !['files', 'dirs', 'symlinks', 'bytes', 'chunks', 'skipped'].every((k) => isUint(s[k]))) {
    throw new MalformedManifestError(what, 'bad stats');
  }
  return o as unknown as SnapshotNode;
}

/** Compare names as unsigned bytes (the order entries are stored in). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
