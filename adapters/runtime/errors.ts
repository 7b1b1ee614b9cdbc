/** Named errors of the Box runtime (data dir, invite tokens, joining). */
import { ReserveError } from '../../core/errors.ts';

/** Another live process holds the data dir's LOCK. */
export class DataDirLockedError extends ReserveError {
  static override readonly name = 'DataDirLockedError';
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `data dir ${dataDir} is in use by process ${pid} (a running \`reserve daemon\`?): one process per data dir. ` +
        `Stop that process, or let the command talk to its daemon`,
    );
  }
}

/** `init` or `join` was pointed at a data dir that already holds a Box. */
export class BoxExistsError extends ReserveError {
  static override readonly name = 'BoxExistsError';
  constructor(readonly dataDir: string) {
    super(`data dir ${dataDir} already holds a Box (it has a reserve.json); use a new or empty directory, or run this Box with \`reserve daemon --data ${dataDir}\``);
  }
}

/** The data dir holds no Box (no reserve.json). */
export class NoBoxError extends ReserveError {
  static override readonly name = 'NoBoxError';
  constructor(readonly dataDir: string) {
    super(`no Box in ${dataDir} (no reserve.json): found a reserve with \`reserve init --data ${dataDir}\` or join one with \`reserve join <token> --data ${dataDir}\``);
  }
}

/** A file of the data dir (reserve.json, keys, peers.json) is unreadable or of an unknown format. */
export class BadDataDirError extends ReserveError {
  static override readonly name = 'BadDataDirError';
}

/** An invite token that does not decode. */
export class InvalidTokenError extends ReserveError {
  static override readonly name: string = 'InvalidTokenError';
}

/** An invite token of a format version this build does not read. */
export class UnsupportedTokenVersionError extends InvalidTokenError {
  static override readonly name = 'UnsupportedTokenVersionError';
}

/** Joining failed: no bootstrap peer answered, the secret was refused, or every member refused the join. */
export class JoinFailedError extends ReserveError {
  static override readonly name = 'JoinFailedError';
}

/** This Box cannot make an invite: it has no address others could dial yet. */
export class NoAddressError extends ReserveError {
  static override readonly name = 'NoAddressError';
}
