/**
 * The holdings summary of one Box and the comparison between two: public surface of core/holdings.
 * See holdings-index.ts (the tree), set-hash.ts (the hash), reconcile.ts (the walk), codec.ts (the wire format).
 */
export {
  HoldingsIndex,
  DEFAULT_GEOMETRY,
  MAX_PARTITION_BITS,
  MAX_LEVEL_BITS,
  type HoldingsGeometry,
  type NodeSummary,
} from './holdings-index.ts';
export { PartitionFilter, Coverage } from './filter.ts';
export { holderReport, sameHoldings, type HolderReport } from './report.ts';
export { answer, reconcile, type AnswerOptions, type ReconcileOptions, type ReconcileResult, type ReconcileStats } from './reconcile.ts';
export { HOLDINGS_PROTOCOL, serveHoldings, reconcileWith, type ReconcileWithOptions, type ServeHoldingsOptions } from './network.ts';
export { HOLDINGS_WIRE_VERSION, MAX_MESSAGE_BYTES } from './codec.ts';
export { HASH_BYTES } from './set-hash.ts';
export {
  UnsupportedCidError,
  InvalidBlockSizeError,
  InvalidGeometryError,
  CorruptHoldingsError,
  MalformedHoldingsMessageError,
  HoldingsMessageTooLargeError,
  UnsupportedHoldingsVersionError,
  HoldingsGeometryMismatchError,
} from './errors.ts';
