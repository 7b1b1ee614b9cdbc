/**
 * Errors the simulator itself raises (as opposed to the port errors it hands to core code: PeerUnreachableError,
 * RequestTimeoutError, StorageFullError, ...). Each has its own class so scenarios and tests match on `name`.
 */
import { ReserveError } from '../../core/errors.ts';

/** A scenario or test asked the cluster for something its lifecycle does not allow (restart a bricked Box, ...). */
export class BoxStateError extends ReserveError {
  static override readonly name = 'BoxStateError';
}

/** The scheduler was asked to run while it was already running (an event callback tried to drive the world). */
export class SimReentrancyError extends ReserveError {
  static override readonly name = 'SimReentrancyError';
  constructor() {
    super('the simulator is already running: runFor/runUntil/settle may not be called from inside a simulated event');
  }
}

/** `settle` gave up: the promise was still pending after the allowed virtual time, or nothing was left to run. */
export class SimStallError extends ReserveError {
  static override readonly name = 'SimStallError';
  constructor(
    readonly what: string,
    readonly waitedMs: number,
    readonly idle: boolean,
  ) {
    super(
      idle
        ? `${what} is still pending but the simulation has nothing left to run (after ${waitedMs} virtual ms)`
        : `${what} is still pending after ${waitedMs} virtual ms`,
    );
  }
}

/** Behaviour code reported an unexpected failure through `ports.panic`, or an event callback threw. */
export class SimPanicError extends ReserveError {
  static override readonly name = 'SimPanicError';
  constructor(
    readonly where: string,
    cause: unknown,
  ) {
    super(`${where}: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)}`, { cause });
  }
}

/** A simulated disk was used after it was bricked (gone for good). */
export class DiskBrickedError extends ReserveError {
  static override readonly name = 'DiskBrickedError';
  constructor(readonly disk: string) {
    super(`disk ${disk} is bricked`);
  }
}
