/** Failures of the placement function: each one a malformed view (the reducer should never produce one). */
import { ReserveError } from '../errors.ts';

/** A keeper's capacity is not a finite number > 0. */
export class InvalidCapacityError extends ReserveError {
  static override readonly name = 'InvalidCapacityError';
}

/** Two keepers in one view share an id. */
export class DuplicateKeeperError extends ReserveError {
  static override readonly name = 'DuplicateKeeperError';
}

/** The replication factor is not a non-negative integer. */
export class InvalidReplicationFactorError extends ReserveError {
  static override readonly name = 'InvalidReplicationFactorError';
}

/** A keeper id is not a non-empty string. */
export class InvalidKeeperIdError extends ReserveError {
  static override readonly name = 'InvalidKeeperIdError';
}
