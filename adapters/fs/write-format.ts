/**
 * The message format between LocalTargetTree.writeFiles and its write worker (write-worker.ts): a batch of whole
 * files as a few flat buffers, not one object each. Paths and numbers are moved to the worker; the contents are
 * copied once, into shared memory the caller reuses (or into a buffer moved with the batch when they do not fit).
 */

/** Per file in `ints`: create mode, final mode, uid, gid, flags. */
const INTS = 5;
const CHOWN = 1;
const CHMOD = 2;

export interface WriteRequest {
  id: number;
  /** Every file's absolute path, back to back; `pathEnds[i]` is where path i ends. */
  paths: ArrayBuffer;
  pathEnds: Uint32Array;
  /** Every file's contents, back to back; `dataEnds[i]` is where file i ends. */
  data: ArrayBuffer | SharedArrayBuffer;
  dataEnds: Float64Array;
  ints: Int32Array;
  /** The mtime (and atime) of each file, as futimes takes it (seconds, or a numeric string before 1970). */
  times: Array<number | string>;
}

export interface WriteResponse {
  id: number;
  /** Files created and finished, in order. */
  done: number;
  /** Why file `done` failed, if one did (the batch stops there). */
  error?: { message: string; code?: string; syscall?: string; errno?: number };
}

export interface BatchFile {
  path: Buffer;
  data: Uint8Array;
  createMode: number;
  mode: number;
  uid: number;
  gid: number;
  chown: boolean;
  chmod: boolean;
  time: number | string;
}

/** Bytes of contents a batch holds, all files together. */
export function batchBytes(files: ReadonlyArray<BatchFile>): number {
  let n = 0;
  for (const f of files) n += f.data.byteLength;
  return n;
}

/**
 * Pack files into a request; returns it with the buffers to move. The contents go into `into` when given (shared
 * memory the caller reuses once the batch is answered, at least `batchBytes(files)` long), else into a buffer moved
 * with the request.
 */
export function packBatch(id: number, files: ReadonlyArray<BatchFile>, into?: SharedArrayBuffer): { req: WriteRequest; transfer: ArrayBuffer[] } {
  let pathBytes = 0;
  for (const f of files) pathBytes += f.path.byteLength;
  const paths = new Uint8Array(pathBytes);
  const data = into ? new Uint8Array(into) : new Uint8Array(batchBytes(files));
  const pathEnds = new Uint32Array(files.length);
  const dataEnds = new Float64Array(files.length);
  const ints = new Int32Array(files.length * INTS);
  const times: Array<number | string> = new Array(files.length);
  let p = 0;
  let d = 0;
  files.forEach((f, i) => {
    paths.set(f.path, p);
    p += f.path.byteLength;
    pathEnds[i] = p;
    data.set(f.data, d);
    d += f.data.byteLength;
    dataEnds[i] = d;
    const at = i * INTS;
    ints[at] = f.createMode;
    ints[at + 1] = f.mode;
    ints[at + 2] = f.uid;
    ints[at + 3] = f.gid;
    ints[at + 4] = (f.chown ? CHOWN : 0) | (f.chmod ? CHMOD : 0);
    times[i] = f.time;
  });
  const req: WriteRequest = { id, paths: paths.buffer, pathEnds, data: data.buffer, dataEnds, ints, times };
  const transfer = [paths.buffer, pathEnds.buffer as ArrayBuffer, dataEnds.buffer as ArrayBuffer, ints.buffer as ArrayBuffer];
  if (!into) transfer.push(data.buffer as ArrayBuffer);
  return { req, transfer };
}

/** The files of a request (views into its buffers; paths as Buffers, which the fs calls take as bytes). */
export function readBatch(req: WriteRequest): BatchFile[] {
  const out: BatchFile[] = new Array(req.pathEnds.length);
  let p = 0;
  let d = 0;
  for (let i = 0; i < out.length; i++) {
    const pe = req.pathEnds[i];
    const de = req.dataEnds[i];
    const at = i * INTS;
    const flags = req.ints[at + 4];
    out[i] = {
      path: Buffer.from(req.paths, p, pe - p),
      data: new Uint8Array(req.data, d, de - d),
      createMode: req.ints[at],
      mode: req.ints[at + 1],
      uid: req.ints[at + 2],
      gid: req.ints[at + 3],
      chown: (flags & CHOWN) !== 0,
      chmod: (flags & CHMOD) !== 0,
      time: req.times[i],
    };
    p = pe;
    d = de;
  }
  return out;
}
