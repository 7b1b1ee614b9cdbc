/**
 * The network as core/ sees it: gossip topics for small shared-state updates, and request/response for
 * everything addressed to one Box (block transfer, sync handshakes, Merkle-summary comparison). The simulator
 * implements it over a virtual, faulty network; adapters/ implement it over libp2p. Payloads are raw bytes;
 * each protocol owns its versioned encoding.
 */
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
