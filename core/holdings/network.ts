/**
 * The holdings comparison on the Network port: `serveHoldings` answers `reserve/holdings/1` requests from the
 * Box's index, `reconcileWith` walks a peer's tree through `network.request`. A refusal by the peer (malformed,
 * oversized, other geometry) arrives as the port's RemoteError naming the peer's error class.
 */
import type { BoxId, Network } from '../net.ts';
import { answer, reconcile } from './reconcile.ts';
import type { ReconcileOptions, ReconcileResult } from './reconcile.ts';
import type { HoldingsIndex } from './holdings-index.ts';

export const HOLDINGS_PROTOCOL = 'reserve/holdings/1';

export interface ServeHoldingsOptions {
  maxMessageBytes?: number;
}

/**
 * Serve the holdings protocol from `index` (or from whatever index `source` returns at request time, so a Box
 * that rebuilds its index does not have to re-register).
 */
export function serveHoldings(network: Network, source: HoldingsIndex | (() => HoldingsIndex), options: ServeHoldingsOptions = {}): void {
  const current = typeof source === 'function' ? source : () => source;
  network.handle(HOLDINGS_PROTOCOL, async (_from, data) => answer(current(), data, options));
}

export interface ReconcileWithOptions extends ReconcileOptions {
  /** Per-request timeout handed to the Network port. */
  timeoutMs?: number;
}

/** Find which blocks `index` and `peer`'s holdings disagree on. */
export function reconcileWith(network: Network, peer: BoxId, index: HoldingsIndex, options: ReconcileWithOptions = {}): Promise<ReconcileResult> {
  const { timeoutMs, signal } = options;
  const requestOptions = { ...(signal !== undefined ? { signal } : {}), ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
  return reconcile(index, (bytes) => network.request(peer, HOLDINGS_PROTOCOL, bytes, requestOptions), options);
}
