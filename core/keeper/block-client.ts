/**
 * Talking blocks to other Boxes: get (verified against the CID, fastest holder first), put, and batched has.
 * Each peer's response time is tracked (an exponentially weighted mean) so fetches go to whoever answers fastest;
 * a peer that returns bytes that do not hash to the CID is reported through `onBadCopy` and the next one is tried.
 *
 * Blocks move over the network's bulk transport when it has one (`Network.blocks`: concurrent gets and puts to a
 * peer share one pipelined stream, so callers that keep several blocks in flight move them back to back), else
 * one `reserve/blocks/1` request per block. Either way every block received is verified here, and a holder that
 * fails mid-transfer only sends the blocks it owed to the next candidate.
 */
import type { CID } from 'multiformats/cid';
import { BlockNotFoundError } from '../blocks/blockstore.ts';
import { matchesCid } from '../blocks/cid.ts';
import { ReserveError } from '../errors.ts';
import type { BlockService, BoxId, Network } from '../net.ts';
import type { Clock } from '../ports.ts';
import { discard } from '../util/buffers.ts';
import { mapLimit } from '../util/limit.ts';
import {
  BLOCKS_PROTOCOL,
  MAX_HAS,
  decodeBlockResponse,
  encodeBlockRequest,
  unpackBits,
} from './protocol.ts';
import type { TrackingBlockstore } from './tracking-store.ts';

export interface BlockClientOptions {
  network: Network;
  clock: Clock;
  /** Deadline per request (default 30 s). */
  timeoutMs?: number;
  /** A peer sent bytes that do not match the CID (a corrupt copy on its disk, or worse). */
  onBadCopy?: (peer: BoxId, cid: CID) => void;
}

/** Every Box asked answered, and none had a good copy: those that had none, and those whose copy was corrupt. */
// @ts-expect-error BlockNotFoundError types its static name as a literal; this subclass keeps its own name
export class BlockAbsentError extends BlockNotFoundError {
  static override readonly name = 'BlockAbsentError';
  constructor(
    cid: CID,
    readonly absent: readonly BoxId[],
    readonly corrupt: readonly BoxId[],
  ) {
    super(cid, `none of ${absent.length + corrupt.length} Boxes asked (${corrupt.length} had a corrupt copy)`);
  }
}

/** A peer would not store a block pushed to it (the bytes did not match the CID on arrival). */
export class BlockRefusedError extends ReserveError {
  static override readonly name = 'BlockRefusedError';
  constructor(
    readonly peer: BoxId,
    readonly cid: CID,
  ) {
    super(`${peer} did not store ${cid.toString()}`);
  }
}

/** How far `putMany` runs ahead over a bulk transport: blocks and bytes handed over but not yet durable there. */
export const PUT_WINDOW = { blocks: 64, bytes: 16 * 1024 * 1024, reads: 8 } as const;

export interface Fetched {
  bytes: Uint8Array;
  from: BoxId;
}

export class BlockClient {
  readonly #o: BlockClientOptions;
  readonly #rtt = new Map<BoxId, number>();
  readonly #failures = new Map<BoxId, number>();

  constructor(options: BlockClientOptions) {
    this.#o = options;
  }

  get #timeout(): number {
    return this.#o.timeoutMs ?? 30_000;
  }

  /** Run one exchange with `peer`, timing it (fastest first) and counting failures (failed peers last). */
  async #timed<T>(peer: BoxId, exchange: () => Promise<T>): Promise<T> {
    const started = this.#o.clock.now();
    try {
      const res = await exchange();
      const took = Math.max(this.#o.clock.now() - started, 0.001);
      const prev = this.#rtt.get(peer);
      this.#rtt.set(peer, prev === undefined ? took : prev * 0.8 + took * 0.2);
      this.#failures.delete(peer);
      return res;
    } catch (e) {
      this.#failures.set(peer, (this.#failures.get(peer) ?? 0) + 1);
      throw e;
    }
  }

  #request(peer: BoxId, data: Uint8Array): Promise<Uint8Array> {
    return this.#timed(peer, () => this.#o.network.request(peer, BLOCKS_PROTOCOL, data, { timeoutMs: this.#timeout }));
  }

  /** A peer's copy of a block, unverified; undefined when it has none. Throws network errors. */
  async #get(peer: BoxId, cid: CID): Promise<Uint8Array | undefined> {
    const transport = this.#o.network.blocks;
    if (transport) return this.#timed(peer, () => transport.getBlock(peer, cid, { timeoutMs: this.#timeout }));
    const res = decodeBlockResponse(await this.#request(peer, encodeBlockRequest({ op: 'get', cid })), 'get');
    return res.op === 'get' ? res.bytes : undefined;
  }

  /** Candidates ordered fastest first: peers with recent failures last, unknown peers between. */
  rank(candidates: readonly BoxId[]): BoxId[] {
    const score = (p: BoxId) => (this.#failures.get(p) ?? 0) * 1e9 + (this.#rtt.get(p) ?? 1e6);
    return [...new Set(candidates)].sort((a, b) => score(a) - score(b) || (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Ask one peer for a block; undefined when it does not have it. Throws network errors. Verifies the bytes. */
  async getFrom(peer: BoxId, cid: CID): Promise<Uint8Array | undefined> {
    const bytes = await this.#get(peer, cid);
    if (!bytes) return undefined;
    if (!matchesCid(cid, bytes)) {
      this.#o.onBadCopy?.(peer, cid);
      return undefined;
    }
    return bytes;
  }

  /**
   * Fetch a verified copy from the first candidate (fastest first) that has one. Throws BlockAbsentError when every
   * candidate answered and none had a good copy, BlockNotFoundError when some could not be asked.
   */
  async fetch(cid: CID, candidates: readonly BoxId[]): Promise<Fetched> {
    const absent: BoxId[] = [];
    const corrupt: BoxId[] = [];
    let failed = 0;
    for (const peer of this.rank(candidates)) {
      try {
        const bytes = await this.#get(peer, cid);
        if (bytes === undefined) absent.push(peer);
        else if (!matchesCid(cid, bytes)) {
          corrupt.push(peer);
          this.#o.onBadCopy?.(peer, cid);
        } else return { bytes, from: peer };
      } catch {
        failed++; // unreachable, timed out or failed: try the next holder
      }
    }
    if (failed === 0) throw new BlockAbsentError(cid, absent, corrupt);
    throw new BlockNotFoundError(cid);
  }

  /** Store a block on a peer; resolves true once the peer says it is durable. */
  async put(peer: BoxId, cid: CID, bytes: Uint8Array): Promise<boolean> {
    const transport = this.#o.network.blocks;
    if (transport) return this.#timed(peer, () => transport.putBlock(peer, cid, bytes, { timeoutMs: this.#timeout }));
    const res = decodeBlockResponse(await this.#request(peer, encodeBlockRequest({ op: 'put', cid, bytes })), 'put');
    return res.op === 'put' && res.stored;
  }

  /**
   * Store many blocks on `peer`, each read with `read` (given its index in `cids`; reads come in that order) just
   * before it is sent. Over a bulk transport up to
   * PUT_WINDOW blocks (and bytes) are in flight, so the peer stores them with overlapping fsyncs while more arrive;
   * otherwise four requests at a time. Resolves once every block is durable there; throws at the first failure
   * (BlockRefusedError, a network error, a failed read), after the puts in flight have settled.
   *
   * With `handOver`, the buffers `read` returns are putMany's: each is freed (`discard`) once its block is stored
   * there. A buffer held until the peer's answer lives long enough to reach V8's old generation, where it is freed
   * only by a full collection; a Box pushing its snapshot then ran one every 0.4 s on its whole heap.
   */
  async putMany(
    peer: BoxId,
    cids: readonly CID[],
    read: (cid: CID, index: number) => Promise<Uint8Array>,
    options: { handOver?: boolean } = {},
  ): Promise<{ stored: number; bytes: number }> {
    let stored = 0;
    let bytes = 0;
    const one = async (cid: CID, data: Uint8Array) => {
      if (!(await this.put(peer, cid, data))) throw new BlockRefusedError(peer, cid);
      stored++;
      bytes += data.byteLength;
      if (options.handOver) discard(data);
    };
    if (!this.#o.network.blocks) {
      await mapLimit(cids, 4, async (cid, i) => one(cid, await read(cid, i)));
      return { stored, bytes };
    }
    const running = new Set<Promise<void>>();
    let inFlight = 0; // bytes handed over, not yet durable there
    let failure: { error: unknown } | undefined;
    let wake: (() => void) | undefined;
    // Reads run a few ahead of the sends, in order; a block read waits for room in the window.
    const reads: Array<Promise<Uint8Array>> = [];
    let nextRead = 0;
    const readAhead = () => {
      while (nextRead < cids.length && reads.length < PUT_WINDOW.reads) {
        const p = read(cids[nextRead], nextRead);
        nextRead++;
        p.catch(() => undefined);
        reads.push(p);
      }
    };
    try {
      for (let i = 0; i < cids.length && !failure; i++) {
        readAhead();
        let data: Uint8Array;
        try {
          data = await reads.shift()!;
        } catch (error) {
          failure ??= { error };
          break;
        }
        // Wait for a put to settle (one waiter, woken by each settling put: no race over the whole window per block).
        while (!failure && (running.size >= PUT_WINDOW.blocks || (inFlight > 0 && inFlight + data.byteLength > PUT_WINDOW.bytes))) {
          await new Promise<void>((resolve) => (wake = resolve));
        }
        if (failure) break;
        const cid = cids[i];
        const size = data.byteLength;
        inFlight += size;
        const p: Promise<void> = one(cid, data)
          .catch((error: unknown) => void (failure ??= { error }))
          .finally(() => {
            inFlight -= size;
            running.delete(p);
            const w = wake;
            wake = undefined;
            w?.();
          });
        running.add(p);
      }
    } finally {
      await Promise.allSettled([...running, ...reads]);
    }
    if (failure) throw failure.error;
    return { stored, bytes };
  }

  /**
   * Serve the network's bulk transport (when it has one) from `blocks`: what this Box holds, and a verified home
   * for blocks pushed to it. Call once the store is loaded (`holds` must be complete). A copy is not re-hashed
   * before it is sent: the receiver verifies every block and tries another holder on a mismatch (reporting the
   * bad copy); rot on this disk is the integrity monitor's to find. (`reserve/blocks/1` keeps checking on serve.)
   */
  serve(blocks: TrackingBlockstore): void {
    const transport = this.#o.network.blocks;
    if (!transport) return;
    const service: BlockService = {
      get: async (_from, cid, options) => {
        if (!blocks.holds(cid)) return undefined;
        try {
          return await blocks.get(cid, options);
        } catch (e) {
          if (e instanceof BlockNotFoundError) return undefined;
          throw e;
        }
      },
      put: async (_from, cid, bytes, options) => {
        if (!matchesCid(cid, bytes)) return false;
        if (!blocks.holds(cid)) await blocks.put(cid, bytes, options);
        return true;
      },
    };
    transport.serveBlocks(service);
  }

  /** Which of `cids` a peer holds (batched). */
  async has(peer: BoxId, cids: readonly CID[]): Promise<boolean[]> {
    const out: boolean[] = [];
    for (let i = 0; i < cids.length; i += MAX_HAS) {
      const part = cids.slice(i, i + MAX_HAS);
      const res = decodeBlockResponse(await this.#request(peer, encodeBlockRequest({ op: 'has', cids: part })), 'has');
      if (res.op !== 'has') throw new Error('unreachable');
      out.push(...unpackBits(res.bits, part.length));
    }
    return out;
  }
}
