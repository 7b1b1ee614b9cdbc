/**
 * Every failure Reserve reports has its own named Error class (js-libp2p style): callers and tests match on
 * `err.name`, never on message text. Modules define their errors next to their code by extending ReserveError.
 */
export class ReserveError extends Error {
  static override readonly name: string = 'ReserveError';
  /** Exit code the CLI uses when this error ends a command. */
  readonly exitCode: number = 2;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = (this.constructor as typeof ReserveError).name;
  }
}

/** Input from a user or a peer failed validation. */
export class InvalidInputError extends ReserveError {
  static override readonly name = 'InvalidInputError';
}

/** An operation was cancelled through its AbortSignal. */
export class AbortedError extends ReserveError {
  static override readonly name = 'AbortedError';
  constructor(message = 'the operation was aborted') {
    super(message);
  }
}
