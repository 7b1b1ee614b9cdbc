/**
 * Worker thread body for LocalSourceTree.list: a directory's names and the lstat of each, sent back as one packed
 * buffer (layout in walk-format.ts), and with it the listings of its subdirectories. A backup's walk lstats every
 * entry of the tree; done on the main thread, the promise and BigIntStats machinery of tens of thousands of calls,
 * and one message per directory, were most of an incremental backup's main-thread time. Here it runs on another
 * core; the calls stay asynchronous, so a cold walk keeps many inode reads in flight. Entries that vanish between
 * the listing and their lstat are left out.
 */
import * as fs from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { ENTRY_FIXED, type Listing, type WalkRequest, type WalkResponse } from './walk-format.ts';
const SLASH = Buffer.from('/');
/** lstat calls in flight per directory. */
const PARALLEL = 64;

function kindOf(st: BigIntStats): [number, number] {
  if (st.isFile()) return [0, 0];
  if (st.isDirectory()) return [1, 0];
  if (st.isSymbolicLink()) return [2, 0];
  return [3, st.isFIFO() ? 0 : st.isSocket() ? 1 : st.isCharacterDevice() ? 2 : st.isBlockDevice() ? 3 : 4];
}

const NS = 1_000_000_000n;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** [seconds, nanoseconds], nanoseconds in [0, 1e9) (as core's nsToTime). */
function split(ns: bigint): [number, number] {
  let sec = ns / NS;
  let nsec = ns - sec * NS;
  if (nsec < 0n) {
    sec -= 1n;
    nsec += NS;
  }
  return [Number(sec), Number(nsec)];
}

export type Out = { buffer: ArrayBuffer; count: number; dirs: Buffer[] };

/** Write one entry (name, then its fixed fields) at `p`; returns where the next one starts. */
function put(view: DataView, bytes: Uint8Array, p: number, name: Buffer, st: BigIntStats): number {
  view.setUint16(p, name.length, true);
  bytes.set(name, p + 2);
  p += 2 + name.length;
  const [kind, other] = kindOf(st);
  view.setUint8(p, kind);
  view.setUint8(p + 1, other);
  view.setUint32(p + 2, Number(st.mode & 0o7777n), true);
  view.setUint32(p + 6, Number(st.uid), true);
  view.setUint32(p + 10, Number(st.gid), true);
  view.setUint32(p + 14, Number(st.nlink), true);
  view.setFloat64(p + 18, Number(st.size), true);
  view.setBigInt64(p + 26, st.mtimeNs, true);
  view.setBigInt64(p + 34, st.ctimeNs, true);
  view.setBigUint64(p + 42, st.dev, true);
  view.setBigUint64(p + 50, st.ino, true);
  const [ms, mn] = split(st.mtimeNs);
  const [cs, cn] = split(st.ctimeNs);
  view.setFloat64(p + 58, ms, true);
  view.setUint32(p + 66, mn, true);
  view.setFloat64(p + 70, cs, true);
  view.setUint32(p + 78, cn, true);
  view.setFloat64(p + 82, st.ino <= MAX_SAFE ? Number(st.ino) : -1, true);
  return p + ENTRY_FIXED - 2;
}

/** An entry's state while its directory is listed. */
const MISSING = 0;
const LISTED = 1;
const LISTED_DIR = 2;

/** lstat with nanosecond times (a parameter of `list` so a test can make an entry vanish). */
export type Lstat = (path: Buffer, cb: (err: NodeJS.ErrnoException | null, st: BigIntStats) => void) => void;
const lstatBig: Lstat = (path, cb) => fs.lstat(path, { bigint: true }, cb);

/** List `dir`: its entries in one buffer (walk-format.ts) and the names of its subdirectories. */
export function list(dir: Buffer, done: (err: NodeJS.ErrnoException | null, out?: Out) => void, lstat: Lstat = lstatBig): void {
  fs.readdir(dir, { encoding: 'buffer' }, (err, names) => {
    if (err) return done(err);
    // Each entry is written into its place in the listing as soon as its lstat returns, so no stats object outlives
    // its callback: a directory's worth of BigIntStats held until its last lstat lived long enough to be promoted,
    // and the worker's old generation then grew with the tree. An entry that vanished leaves a gap, closed at the end.
    const at = new Array<number>(names.length);
    let size = 0;
    for (let i = 0; i < names.length; i++) {
      at[i] = size;
      size += ENTRY_FIXED + names[i].length;
    }
    let buffer = new ArrayBuffer(size);
    const bytes = new Uint8Array(buffer);
    const view = new DataView(buffer);
    const state = new Uint8Array(names.length);
    let next = 0;
    let running = 0;
    let failed: NodeJS.ErrnoException | null = null;
    const finish = (): void => {
      if (failed) return done(failed);
      let count = 0;
      let p = 0;
      const dirs: Buffer[] = [];
      for (let i = 0; i < names.length; i++) {
        if (state[i] === MISSING) continue;
        const length = ENTRY_FIXED + names[i].length;
        if (p !== at[i]) bytes.copyWithin(p, at[i], at[i] + length);
        p += length;
        count++;
        if (state[i] === LISTED_DIR) dirs.push(names[i]);
      }
      if (p < size) buffer = buffer.slice(0, p);
      done(null, { buffer, count, dirs });
    };
    const pump = (): void => {
      while (running < PARALLEL && next < names.length && !failed) {
        const i = next++;
        running++;
        lstat(Buffer.concat([dir, SLASH, names[i]]), (e, st) => {
          running--;
          if (e) {
            if (e.code !== 'ENOENT') failed ??= e; // vanished between readdir and lstat: left out
          } else {
            put(view, bytes, at[i], names[i], st);
            state[i] = st.isDirectory() ? LISTED_DIR : LISTED;
          }
          if (running === 0 && (next >= names.length || failed)) finish();
          else pump();
        });
      }
    };
    if (names.length === 0) finish();
    else pump();
  });
}

function listing(err: NodeJS.ErrnoException | null, out: Out | undefined, transfer: ArrayBuffer[]): Listing {
  if (err || !out) return { ok: false, code: err?.code, syscall: err?.syscall, message: err?.message ?? 'walk failed' };
  transfer.push(out.buffer);
  return { ok: true, buffer: out.buffer, count: out.count };
}

/** Subdirectory listings made at once for one request. */
const CHILDREN_PARALLEL = 8;

const port = parentPort;
if (port && (workerData as { walker?: boolean } | null)?.walker === true) {
  port.on('message', (req: WalkRequest) => {
    const dir = Buffer.from(req.path, 'latin1');
    list(dir, (err, out) => {
      const transfer: ArrayBuffer[] = [];
      const res: WalkResponse = { id: req.id, listing: listing(err, out, transfer) };
      const dirs = req.children && out ? out.dirs : [];
      if (dirs.length === 0) {
        port.postMessage(res, transfer);
        return;
      }
      const children: NonNullable<WalkResponse['children']> = new Array(dirs.length);
      let next = 0;
      let left = dirs.length;
      const pump = (): void => {
        while (next < dirs.length && next - (dirs.length - left) < CHILDREN_PARALLEL) {
          const i = next++;
          list(Buffer.concat([dir, SLASH, dirs[i]]), (e, o) => {
            children[i] = { name: dirs[i].toString('latin1'), listing: listing(e, o, transfer) };
            if (--left === 0) {
              res.children = children;
              port.postMessage(res, transfer);
            } else pump();
          });
        }
      };
      pump();
    });
  });
}
