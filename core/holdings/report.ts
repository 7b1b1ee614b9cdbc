/**
 * What a Box publishes about its holdings in the shared state: how many blocks, how many bytes, and the root of
 * its holdings tree. Per-block facts stay out of the CRDT; two Boxes whose reports differ compare trees
 * directly (reconcile.ts). The shape is the state's `holder-report` event body (core/state/events.ts).
 *
 * The root is the 128-bit set hash of every held block (set-hash.ts): it does not depend on the tree's geometry,
 * so equal holdings give equal roots on every Box. Equal (count, root) means equal sets with probability
 * 1 - 2^-128 for accidental differences.
 */
import type { HoldingsIndex } from './holdings-index.ts';

export interface HolderReport {
  count: number;
  bytes: number;
  /** 16 bytes: the holdings root. */
  root: Uint8Array;
}

export function holderReport(index: HoldingsIndex): HolderReport {
  return { count: index.count, bytes: index.bytes, root: index.root() };
}

/** True when two reports describe the same holdings (same count, bytes and root). */
export function sameHoldings(a: HolderReport, b: HolderReport): boolean {
  if (a.count !== b.count || a.bytes !== b.bytes || a.root.length !== b.root.length) return false;
  for (let i = 0; i < a.root.length; i++) if (a.root[i] !== b.root[i]) return false;
  return true;
}
