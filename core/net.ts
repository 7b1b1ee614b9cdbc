/**
 * The network as core/ sees it: gossip topics for small shared-state updates, and request/response for
 * everything addressed to one Box (block transfer, sync handshakes, Merkle-summary comparison). The simulator
 * implements it over a virtual, faulty network; adapters/ implement it over libp2p. Payloads are raw bytes;
 * each protocol owns its versioned encoding.
 */
import type { CID } from 'multiformats/cid';
import type { AbortOptions } from './ports.ts';
import { ReserveError } from './errors.ts';

/** A Box's identity: its libp2p peer id as a string. */
export type BoxId = string;

export type RequestHandler = (from: BoxId, data: Uint8Array, options: AbortOptions) => Promise<Uint8Array>;
export type GossipHandler = (from: BoxId, data: Uint8Array) => void;

export interface Network {
  readonly self: BoxId;
  /** Best-effort broadcast to every reachable member subscribed to `topic`. Never throws for unreachable peers. */
  publish(topic: string, data: Uint8Array): void;
  /** Returns an unsubscribe function. */
  subscribe(topic: string, handler: GossipHandler): () => void;
  /** Send one request and await one response. Rejects with PeerUnreachableError, RequestTimeoutError or the
   * remote handler's RemoteError. */
  request(to: BoxId, protocol: string, data: Uint8Array, options?: AbortOptions & { timeoutMs?: number }): Promise<Uint8Array>;
  /** Serve `protocol`. One handler per protocol; registering again replaces it. */
  handle(protocol: string, handler: RequestHandler): void;
  /** Boxes this one can currently talk to (best knowledge). */
  peers(): BoxId[];
  /**
   * Optional bulk block transfer (see BlockTransport). Without it, core moves one block per `request` on
   * `reserve/blocks/1` (the simulator does that).
   */
  readonly blocks?: BlockTransport;
}

export type TransferOptions = AbortOptions & { timeoutMs?: number };

/**
 * What a Box offers the bulk block transfer: its own blocks, and a place to store blocks other Boxes push to it.
 * `get` returns the stored bytes (unverified: the receiver checks them against the CID) or undefined when the
 * Box does not hold the block. `put` checks the bytes against the CID itself and resolves true once the block is
 * durable, false when it refuses it (the bytes do not match); it throws when it cannot store (disk full).
 */
export interface BlockService {
  get(from: BoxId, cid: CID, options: AbortOptions): Promise<Uint8Array | undefined>;
  put(from: BoxId, cid: CID, bytes: Uint8Array, options: AbortOptions): Promise<boolean>;
}

/**
 * Block transfer over long-lived, pipelined streams: concurrent calls to the same peer share one stream per
 * direction, so many blocks move per stream with no round trip between them (opening a stream per block is what
 * a request costs on libp2p). Answers come back in the order asked; memory is bounded by the callers' own
 * concurrency (each call holds one block) plus the transport's flow-control windows.
 *
 * Failures reject like `Network.request`: PeerUnreachableError (no connection, or it broke mid-transfer: every call
 * in flight on that stream rejects, and the caller tries another holder), RequestTimeoutError (no answer within
 * `timeoutMs`), RemoteError (the peer's service failed).
 */
export interface BlockTransport {
  /** The block's bytes as `peer` holds them, NOT verified (the caller checks them), or undefined when it has none. */
  getBlock(peer: BoxId, cid: CID, options?: TransferOptions): Promise<Uint8Array | undefined>;
  /** Store a block on `peer`: true once durable there, false when the peer refused it (the bytes do not match). */
  putBlock(peer: BoxId, cid: CID, bytes: Uint8Array, options?: TransferOptions): Promise<boolean>;
  /** Serve other Boxes' getBlock/putBlock from `service` (replaces any previous service). */
  serveBlocks(service: BlockService): void;
}

export class PeerUnreachableError extends ReserveError {
  static override readonly name = 'PeerUnreachableError';
  constructor(readonly peer: BoxId, detail = 'no connection') {
    super(`peer ${peer} is unreachable: ${detail}`);
  }
}

export class RequestTimeoutError extends ReserveError {
  static override readonly name = 'RequestTimeoutError';
  constructor(readonly peer: BoxId, readonly protocol: string, readonly timeoutMs: number) {
    super(`peer ${peer} did not answer ${protocol} within ${timeoutMs} ms`);
  }
}

/** The remote handler failed; `remoteName` is the error class name it reported. */
export class RemoteError extends ReserveError {
  static override readonly name = 'RemoteError';
  constructor(readonly peer: BoxId, readonly remoteName: string, message: string) {
    super(`peer ${peer} answered with ${remoteName}: ${message}`);
  }
}
