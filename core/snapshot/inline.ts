/** The in-process ChunkingService: same results as the worker pool, on the calling thread. */
import { sha256 } from 'multiformats/hashes/sha2';
import { FastCdc, type ChunkerParams, DEFAULT_CHUNKER } from '../chunker/fastcdc.ts';
import type { ChunkedWindow, ChunkingService } from './ports.ts';

export function digestSync(bytes: Uint8Array): Uint8Array {
  const d = sha256.digest(bytes);
  if (d instanceof Promise) throw new Error('sha256 must be synchronous on Node');
  return d.digest;
}

/** Chunk and hash one window: the function both the inline service and the workers run. */
export function chunkWindow(cdc: FastCdc, data: Uint8Array, eof: boolean): ChunkedWindow {
  const ends = cdc.boundaries(data, eof);
  const digests: Uint8Array[] = [];
  let prev = 0;
  for (const end of ends) {
    digests.push(digestSync(data.subarray(prev, end)));
    prev = end;
  }
  return { data, ends, digests };
}

export function inlineChunking(params: ChunkerParams = DEFAULT_CHUNKER): ChunkingService {
  const cdc = new FastCdc(params);
  return {
    async chunk(data, eof) {
      return chunkWindow(cdc, data, eof);
    },
    async digest(blocks) {
      return blocks.map(digestSync);
    },
    async digestOwned(blocks) {
      return { digests: blocks.map(digestSync), blocks };
    },
    async close() {},
  };
}
