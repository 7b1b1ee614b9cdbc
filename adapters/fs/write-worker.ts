/**
 * Worker thread body for LocalTargetTree.writeFiles: a restore's small whole files created, written, given their
 * mode and mtime, and closed, with synchronous calls, one batch per message (layout in write-format.ts). Creating a
 * file is the costly part on ext4: the kernel looks for a free inode (passing over recently deleted ones), and on
 * the reference set that was 40% of a restore's main-thread time, with the main thread the restore's bottleneck.
 * Here it runs on another core while the main thread reads and verifies the next batches.
 */
import * as fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { type WriteRequest, type WriteResponse, readBatch } from './write-format.ts';

const FLAGS = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;

/** Create every file of a request, in order; the first failure stops the batch (the files before it stay). */
export function writeBatch(req: WriteRequest): WriteResponse {
  const files = readBatch(req);
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    let fd: number;
    try {
      fd = fs.openSync(f.path, FLAGS, f.createMode);
    } catch (e) {
      return failure(req.id, i, e);
    }
    try {
      let done = 0;
      while (done < f.data.byteLength) done += fs.writeSync(fd, f.data, done, f.data.byteLength - done, done);
      if (f.chown) {
        try {
          fs.fchownSync(fd, f.uid, f.gid);
        } catch {
          // an owner that cannot be set is not an error (as LocalTargetTree's own writes)
        }
      }
      if (f.chmod) fs.fchmodSync(fd, f.mode);
      fs.futimesSync(fd, f.time, f.time);
    } catch (e) {
      try {
        fs.closeSync(fd);
      } catch {
        // the write's error is the one to report
      }
      return failure(req.id, i, e);
    }
    try {
      fs.closeSync(fd);
    } catch (e) {
      return failure(req.id, i, e);
    }
  }
  return { id: req.id, done: files.length };
}

function failure(id: number, index: number, e: unknown): WriteResponse {
  const err = e as NodeJS.ErrnoException;
  return { id, done: index, error: { message: err?.message ?? String(e), code: err?.code, syscall: err?.syscall, errno: err?.errno } };
}

const port = parentPort;
if (port && (workerData as { writer?: boolean } | null)?.writer === true) {
  port.on('message', (req: WriteRequest) => port.postMessage(writeBatch(req)));
}
