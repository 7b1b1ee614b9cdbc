/**
 * Named failures of the holdings index and its comparison protocol. Callers and tests match on `err.name`.
 * Everything a peer can send us that we refuse is one of the wire errors below; each has its own name so a
 * caller can tell a bad peer (malformed, oversized, wrong version or geometry) from a bad local file (corrupt).
 */
import { ReserveError } from '../errors.ts';

/** A CID the index cannot hold: only CIDv1 over a 32-byte sha2-256 digest (every Reserve block) is accepted. */
export class UnsupportedCidError extends ReserveError {
  static override readonly name = 'UnsupportedCidError';
}

/** A block size that is not a whole number of bytes in [0, 2^32 - 1]. */
export class InvalidBlockSizeError extends ReserveError {
  static override readonly name = 'InvalidBlockSizeError';
}

/** An index geometry (partition bits, bits per level) outside the supported range, or not a whole multiple. */
export class InvalidGeometryError extends ReserveError {
  static override readonly name = 'InvalidGeometryError';
}

/** Serialised index bytes that are truncated, corrupt, or inconsistent with their own totals. */
export class CorruptHoldingsError extends ReserveError {
  static override readonly name = 'CorruptHoldingsError';
}

/** A holdings request or response that does not parse, or does not fit the request it answers. */
export class MalformedHoldingsMessageError extends ReserveError {
  static override readonly name = 'MalformedHoldingsMessageError';
}

/** A holdings request or response longer than the protocol's limit (checked before anything is parsed). */
export class HoldingsMessageTooLargeError extends ReserveError {
  static override readonly name = 'HoldingsMessageTooLargeError';
  constructor(readonly length: number, readonly limit: number) {
    super(`holdings message of ${length} bytes exceeds the limit of ${limit} bytes`);
  }
}

/** A holdings message in a wire version this Box does not speak. */
export class UnsupportedHoldingsVersionError extends ReserveError {
  static override readonly name = 'UnsupportedHoldingsVersionError';
  constructor(readonly version: number) {
    super(`holdings message version ${version} is not supported (this Box speaks version 1)`);
  }
}

/** The two Boxes partition their holdings differently, so their trees cannot be compared node by node. */
export class HoldingsGeometryMismatchError extends ReserveError {
  static override readonly name = 'HoldingsGeometryMismatchError';
}
