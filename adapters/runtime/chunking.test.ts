/**
 * The runtime's lazily started chunking pool passes every method of the worker pool through, the moving ones
 * included: `digestOwned` moves a block's buffer to a worker and back (a restore hashes each fetched chunk that
 * way), and `chunk(..., owned)` moves a backup's window. Without them each was copied with postMessage.
 */
import { createHash } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { WorkerChunking } from '../workers/chunk-pool.ts';
import { lazyWorkerChunking } from './runtime.ts';

describe('lazyWorkerChunking', () => {
  let started = 0;
  const service = lazyWorkerChunking(() => {
    started++;
    return new WorkerChunking({ threads: 1 });
  });
  afterAll(() => service.close());

  it('starts no worker until used, then moves blocks to it for digestOwned and windows for an owned chunk()', async () => {
    expect(started).toBe(0);
    const block = new Uint8Array(1 << 20).map((_, i) => (i * 31) & 0xff);
    const want = new Uint8Array(createHash('sha256').update(block).digest());
    const copy = block.slice();
    const r = await service.digestOwned!([block]);
    expect(started).toBe(1);
    expect(block.byteLength).toBe(0); // moved to the worker, not copied
    expect(r.digests[0]).toEqual(want);
    expect(r.blocks[0]).toEqual(copy);

    const window = copy.slice();
    const w = await service.chunk(window, true, true);
    expect(window.byteLength).toBe(0); // moved
    expect(w.data).toEqual(copy);
    expect(w.ends[w.ends.length - 1]).toBe(copy.byteLength);
    expect(started).toBe(1);
  });
});
