/**
 * Errors of the daemon's HTTP surface (server side, each with its status code) and of the client that talks to it.
 * A server-side error travels as `{error: {name, message}}`; the client turns it back into a DaemonError whose
 * `name` is the daemon's class name (LimitExceededError, UnknownSnapshotError, DaemonBusyError, ...).
 */
import { ReserveError } from '../../core/errors.ts';

/** An error the HTTP layer answers with a specific status code. */
export abstract class DaemonHttpError extends ReserveError {
  abstract readonly status: number;
}

/** The request is malformed: a bad query parameter, body or path. */
export class DaemonRequestError extends DaemonHttpError {
  static override readonly name = 'DaemonRequestError';
  readonly status = 400;
}

/** No token, or not the daemon's token. */
export class DaemonUnauthorizedError extends DaemonHttpError {
  static override readonly name = 'DaemonUnauthorizedError';
  readonly status = 401;
}

/** No such route. */
export class DaemonRouteNotFoundError extends DaemonHttpError {
  static override readonly name = 'DaemonRouteNotFoundError';
  readonly status = 404;
}

/** The route exists but not with this method. */
export class DaemonMethodNotAllowedError extends DaemonHttpError {
  static override readonly name = 'DaemonMethodNotAllowedError';
  readonly status = 405;
  constructor(
    readonly method: string,
    readonly allowed: readonly string[],
  ) {
    super(`${method} is not allowed here (use ${allowed.join(' or ')})`);
  }
}

/** Another backup or restore is running; the daemon runs one long operation at a time. */
export class DaemonBusyError extends DaemonHttpError {
  static override readonly name = 'DaemonBusyError';
  readonly status = 409;
}

/** The request body is larger than the daemon accepts. */
export class DaemonRequestTooLargeError extends DaemonHttpError {
  static override readonly name = 'DaemonRequestTooLargeError';
  readonly status = 413;
}

/** An error the daemon reported; `name` is the daemon's error class name, `status` the HTTP status (0 when it
 * came inside a stream). */
export class DaemonError extends ReserveError {
  static override readonly name = 'DaemonError';
  constructor(
    name: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = name;
  }
}

/** The daemon did not answer (it stopped, or the connection broke). */
export class DaemonUnreachableError extends ReserveError {
  static override readonly name = 'DaemonUnreachableError';
}

/** The daemon answered something that is not the protocol (a different program on the port, a cut stream). */
export class DaemonProtocolError extends ReserveError {
  static override readonly name = 'DaemonProtocolError';
}
