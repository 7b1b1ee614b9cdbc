/**
 * ChunkingService on worker threads: FastCDC and sha2-256 run on every core while the main thread does I/O.
 * Windows in shared memory are read by the worker in place; others are transferred (not copied) to a worker and
 * back; blocks to hash are copied, since their memory may be shared with other buffers. Results are identical to
 * the in-process service (a test proves it).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { DEFAULT_CHUNKER, type ChunkerParams } from '../../core/chunker/fastcdc.ts';
import { CHUNK_WORKER_KEY, bundledSync } from '../../bin/bundle.mjs';
import type { ChunkedWindow, ChunkingService } from '../../core/snapshot/ports.ts';

export type WorkerRequest =
  | { id: number; op: 'chunk'; buffer: ArrayBuffer | SharedArrayBuffer; offset: number; length: number; eof: boolean }
  | { id: number; op: 'digest'; blocks: Uint8Array[] }
  | { id: number; op: 'hash'; buffers: ArrayBuffer[]; offsets: number[]; lengths: number[] };

export type WorkerResponse =
  | { id: number; ok: true; buffer?: ArrayBuffer; buffers?: ArrayBuffer[]; ends?: number[]; digests: Uint8Array }
  | { id: number; ok: false; error: string };

interface Pending {
  resolve: (r: WorkerResponse & { ok: true }) => void;
  reject: (e: Error) => void;
}

let script: string | null | undefined;

/**
 * The worker's script: a bundle of chunk-worker.ts (starts in milliseconds), left by the launcher or built here
 * (bin/bundle.mjs, rebuilt when a source changes); else the sources through tsx (boot.mjs), which costs each worker
 * a few hundred milliseconds and tens of MiB to start.
 */
function workerScript(): string | null {
  const given = (globalThis as Record<symbol, unknown>)[CHUNK_WORKER_KEY];
  if (typeof given === 'string') return given;
  if (script === undefined) script = bundledSync('chunk-worker', 'adapters/workers/chunk-worker.ts', true);
  return script;
}

class PoolWorker {
  readonly worker: Worker;
  readonly pending = new Map<number, Pending>();

  constructor(params: ChunkerParams) {
    const bundle = workerScript();
    this.worker = bundle
      ? new Worker(bundle, { workerData: { params } })
      : new Worker(new URL('./boot.mjs', import.meta.url), {
          workerData: { entry: new URL('./chunk-worker.ts', import.meta.url).href, params },
        });
    this.worker.on('message', (res: WorkerResponse) => {
      const p = this.pending.get(res.id);
      if (!p) return;
      this.pending.delete(res.id);
      if (res.ok) p.resolve(res);
      else p.reject(new Error(`chunking worker failed: ${res.error}`));
    });
    this.worker.on('error', (e) => this.#failAll(e));
    this.worker.on('exit', (code) => this.#failAll(new Error(`chunking worker exited with code ${code}`)));
  }

  #failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

export class WorkerChunking implements ChunkingService {
  readonly #workers: PoolWorker[];
  #nextId = 1;
  #closed = false;

  constructor(options: { threads?: number; params?: ChunkerParams } = {}) {
    const threads = Math.max(1, options.threads ?? availableParallelism());
    this.#workers = Array.from({ length: threads }, () => new PoolWorker(options.params ?? DEFAULT_CHUNKER));
  }

  /** The least busy worker. */
  #pick(): PoolWorker {
    let best = this.#workers[0];
    for (const w of this.#workers) if (w.pending.size < best.pending.size) best = w;
    return best;
  }

  #call(req: WorkerRequest, transfer: ArrayBuffer[]): Promise<WorkerResponse & { ok: true }> {
    if (this.#closed) return Promise.reject(new Error('the chunking pool is closed'));
    const w = this.#pick();
    return new Promise((resolve, reject) => {
      w.pending.set(req.id, { resolve, reject });
      w.worker.postMessage(req, transfer);
    });
  }

  async chunk(data: Uint8Array, eof: boolean, owned = false): Promise<ChunkedWindow> {
    // Read before the transfer: a transferred buffer is detached, and every view of it then has length 0.
    const length = data.byteLength;
    // Shared memory is read by the worker where it lies (nothing moves, nothing is copied). Otherwise transfer a
    // buffer this window owns outright (or that the caller handed over), and copy any other.
    if (data.buffer instanceof SharedArrayBuffer) {
      const res = await this.#call({ id: this.#nextId++, op: 'chunk', buffer: data.buffer, offset: data.byteOffset, length, eof }, []);
      return { data, ends: res.ends!, digests: splitDigests(res.digests) };
    }
    let buffer = data.buffer as ArrayBuffer;
    let offset = data.byteOffset;
    if (!owned && (offset !== 0 || data.byteLength !== buffer.byteLength)) {
      const own = new Uint8Array(data.byteLength);
      own.set(data);
      buffer = own.buffer;
      offset = 0;
    }
    const res = await this.#call({ id: this.#nextId++, op: 'chunk', buffer, offset, length, eof }, [buffer]);
    const digests = splitDigests(res.digests);
    return { data: new Uint8Array(res.buffer!, offset, length), ends: res.ends!, digests };
  }

  /** Hash buffers the caller hands over: moved to a worker and back, not copied. */
  async digestOwned(blocks: Uint8Array[]): Promise<{ digests: Uint8Array[]; blocks: Uint8Array[] }> {
    if (blocks.length === 0) return { digests: [], blocks: [] };
    const buffers: ArrayBuffer[] = [];
    const offsets: number[] = [];
    const lengths: number[] = [];
    for (const b of blocks) {
      let buffer = b.buffer as ArrayBuffer;
      let offset = b.byteOffset;
      // Move only a buffer the block owns outright (a view into a larger or shared buffer is copied).
      if (buffer instanceof SharedArrayBuffer || b.byteLength !== buffer.byteLength || buffers.includes(buffer)) {
        const own = new Uint8Array(b.byteLength);
        own.set(b);
        buffer = own.buffer;
        offset = 0;
      }
      buffers.push(buffer);
      offsets.push(offset);
      lengths.push(b.byteLength);
    }
    const res = await this.#call({ id: this.#nextId++, op: 'hash', buffers, offsets, lengths }, buffers);
    return { digests: splitDigests(res.digests), blocks: res.buffers!.map((buf, i) => new Uint8Array(buf, offsets[i], lengths[i])) };
  }

  async digest(blocks: Uint8Array[]): Promise<Uint8Array[]> {
    if (blocks.length === 0) return [];
    // Spread a batch over every worker.
    const n = this.#workers.length;
    const parts: Uint8Array[][] = Array.from({ length: n }, () => []);
    const sizes = new Array<number>(n).fill(0);
    const where: Array<[number, number]> = [];
    for (const b of blocks) {
      let k = 0;
      for (let i = 1; i < n; i++) if (sizes[i] < sizes[k]) k = i;
      where.push([k, parts[k].length]);
      parts[k].push(b);
      sizes[k] += b.byteLength;
    }
    const results = await Promise.all(
      parts.map((p) => (p.length ? this.#call({ id: this.#nextId++, op: 'digest', blocks: p }, []).then((r) => splitDigests(r.digests)) : Promise.resolve([]))),
    );
    return where.map(([k, i]) => results[k][i]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#workers.map((w) => w.worker.terminate()));
  }
}

function splitDigests(packed: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < packed.length; i += 32) out.push(packed.subarray(i, i + 32));
  return out;
}
