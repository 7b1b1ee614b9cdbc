/**
 * Talking blocks to other Boxes: get (verified against the CID, fastest holder first), put, and batched has.
 * Each peer's response time is tracked (an exponentially weighted mean) so fetches go to whoever answers fastest;
 * a peer that returns bytes that do not hash to the CID is reported through `onBadCopy` and the next one is tried.
 */
import type { CID } from 'multiformats/cid';
import { BlockNotFoundError } from '../blocks/blockstore.ts';
import { matchesCid } from '../blocks/cid.ts';
import type { BoxId, Network } from '../net.ts';
import type { Clock } from '../ports.ts';
import {
  BLOCKS_PROTOCOL,
  MAX_HAS,
  decodeBlockResponse,
  encodeBlockRequest,
  unpackBits,
} from './protocol.ts';

export interface BlockClientOptions {
  network: Network;
  clock: Clock;
  /** Deadline per request (default 30 s). */
  timeoutMs?: number;
  /** A peer sent bytes that do not match the CID (a corrupt copy on its disk, or worse). */
  onBadCopy?: (peer: BoxId, cid: CID) => void;
}

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

  async #request(peer: BoxId, data: Uint8Array): Promise<Uint8Array> {
    const started = this.#o.clock.now();
    try {
      const res = await this.#o.network.request(peer, BLOCKS_PROTOCOL, data, { timeoutMs: this.#timeout });
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

  /** Candidates ordered fastest first: peers with recent failures last, unknown peers between. */
  rank(candidates: readonly BoxId[]): BoxId[] {
    const score = (p: BoxId) => (this.#failures.get(p) ?? 0) * 1e9 + (this.#rtt.get(p) ?? 1e6);
    return [...new Set(candidates)].sort((a, b) => score(a) - score(b) || (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Ask one peer for a block; undefined when it does not have it. Throws network errors. Verifies the bytes. */
  async getFrom(peer: BoxId, cid: CID): Promise<Uint8Array | undefined> {
    const res = decodeBlockResponse(await this.#request(peer, encodeBlockRequest({ op: 'get', cid })), 'get');
    if (res.op !== 'get' || !res.bytes) return undefined;
    if (!matchesCid(cid, res.bytes)) {
      this.#o.onBadCopy?.(peer, cid);
      return undefined;
    }
    return res.bytes;
  }

  /** Fetch a verified copy from the first candidate (fastest first) that has one. Throws BlockNotFoundError. */
  async fetch(cid: CID, candidates: readonly BoxId[]): Promise<Fetched> {
    for (const peer of this.rank(candidates)) {
      try {
        const bytes = await this.getFrom(peer, cid);
        if (bytes) return { bytes, from: peer };
      } catch {
        // unreachable, timed out or failed: try the next holder
      }
    }
    throw new BlockNotFoundError(cid);
  }

  /** Store a block on a peer; resolves true once the peer says it is durable. */
  async put(peer: BoxId, cid: CID, bytes: Uint8Array): Promise<boolean> {
    const res = decodeBlockResponse(await this.#request(peer, encodeBlockRequest({ op: 'put', cid, bytes })), 'put');
    return res.op === 'put' && res.stored;
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
