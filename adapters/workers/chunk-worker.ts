/** Worker thread body: chunk windows with FastCDC and hash chunks/blocks with sha2-256, off the main thread. */
import { parentPort, workerData } from 'node:worker_threads';
import { FastCdc } from '../../core/chunker/fastcdc.ts';
import { chunkWindow, digestSync } from '../../core/snapshot/inline.ts';
import type { WorkerRequest, WorkerResponse } from './chunk-pool.ts';

const cdc = new FastCdc(workerData.params);
const port = parentPort!;

port.on('message', (req: WorkerRequest) => {
  try {
    if (req.op === 'chunk') {
      const data = new Uint8Array(req.buffer, req.offset, req.length);
      const { ends, digests } = chunkWindow(cdc, data, req.eof);
      const packed = new Uint8Array(digests.length * 32);
      digests.forEach((d, i) => packed.set(d, i * 32));
      if (req.buffer instanceof SharedArrayBuffer) {
        // Shared memory: the caller has it already; only the boundaries and digests go back.
        port.postMessage({ id: req.id, ok: true, ends, digests: packed } satisfies WorkerResponse, [packed.buffer]);
      } else {
        const res: WorkerResponse = { id: req.id, ok: true, buffer: req.buffer, ends, digests: packed };
        port.postMessage(res, [req.buffer, packed.buffer]);
      }
    } else if (req.op === 'hash') {
      const packed = new Uint8Array(req.buffers.length * 32);
      req.buffers.forEach((buf, i) => packed.set(digestSync(new Uint8Array(buf, req.offsets[i], req.lengths[i])), i * 32));
      const res: WorkerResponse = { id: req.id, ok: true, buffers: req.buffers, digests: packed };
      port.postMessage(res, [...req.buffers, packed.buffer]);
    } else {
      const packed = new Uint8Array(req.blocks.length * 32);
      req.blocks.forEach((b, i) => packed.set(digestSync(b), i * 32));
      const res: WorkerResponse = { id: req.id, ok: true, digests: packed };
      port.postMessage(res, [packed.buffer]);
    }
  } catch (e) {
    port.postMessage({ id: req.id, ok: false, error: (e as Error).stack ?? String(e) } satisfies WorkerResponse);
  }
});
