/**
 * Named errors of the libp2p network adapter. Callers and tests match on `err.name` / `instanceof`, never on text.
 */
import { ReserveError } from '../../core/errors.ts';
import { PeerUnreachableError, type BoxId } from '../../core/net.ts';
import type { CID } from '../../core/blocks/cid.ts';

/** Base of every wire-format failure: the bytes a peer sent do not decode. The stream is closed, nothing changes. */
export class WireFormatError extends ReserveError {
  static override readonly name: string = 'WireFormatError';
}

/** Bytes that do not follow the encoding: unknown kind, bad field, trailing bytes, invalid CID or text. */
export class MalformedFrameError extends WireFormatError {
  static override readonly name = 'MalformedFrameError';
}

/** A frame (or a field inside it) announces more bytes than its kind allows; rejected before anything is allocated. */
export class FrameTooLargeError extends WireFormatError {
  static override readonly name = 'FrameTooLargeError';
  constructor(readonly kind: string, readonly length: number, readonly limit: number) {
    super(`${kind} of ${length} bytes exceeds the limit of ${limit} bytes`);
  }
}

/** The frame's version byte is not one this Box speaks. */
export class UnsupportedVersionError extends WireFormatError {
  static override readonly name = 'UnsupportedVersionError';
  constructor(readonly version: number, what = 'frame') {
    super(`unsupported ${what} version ${version}`);
  }
}

/** The input ended in the middle of a frame or field. */
export class TruncatedFrameError extends WireFormatError {
  static override readonly name = 'TruncatedFrameError';
}

/** A well-formed frame of a kind that is not allowed at this point of the conversation. */
export class UnexpectedFrameError extends WireFormatError {
  static override readonly name = 'UnexpectedFrameError';
}

export type AccessDeniedReason = 'wrong-secret' | 'not-a-member' | 'refused-by-peer';

function withCause(err: Error, cause: unknown): void {
  if (cause !== undefined) Object.defineProperty(err, 'cause', { value: cause, writable: true, configurable: true, enumerable: false });
}

/**
 * A connection was refused: the two sides do not share the reserve secret, or one of them is not a member.
 * Raised quickly (the PSK handshake proves knowledge of the key within one round trip), never after a hang.
 * It is a PeerUnreachableError (the Network port's contract for requests), with its own name and message.
 */
// @ts-expect-error PeerUnreachableError types its static name as a literal; this subclass keeps its own name
export class AccessDeniedError extends PeerUnreachableError {
  static override readonly name = 'AccessDeniedError';
  constructor(
    readonly reason: AccessDeniedReason,
    readonly detail: string,
    options?: { cause?: unknown; peer?: BoxId },
  ) {
    super(options?.peer ?? 'unknown', detail);
    this.message = `wrong reserve secret or not a member: ${detail}`;
    withCause(this, options?.cause);
  }
}

/** The two ends of a connection are configured with different PSK ciphers (a PeerUnreachableError). */
// @ts-expect-error PeerUnreachableError types its static name as a literal; this subclass keeps its own name
export class CipherMismatchError extends PeerUnreachableError {
  static override readonly name = 'CipherMismatchError';
  constructor(
    readonly detail: string,
    options?: { peer?: BoxId },
  ) {
    super(options?.peer ?? 'unknown', detail);
    this.message = `PSK cipher mismatch: ${detail}`;
  }
}

/** The peer did not complete the PSK handshake in time (a PeerUnreachableError). */
// @ts-expect-error PeerUnreachableError types its static name as a literal; this subclass keeps its own name
export class HandshakeTimeoutError extends PeerUnreachableError {
  static override readonly name = 'HandshakeTimeoutError';
  constructor(
    readonly detail: string,
    options?: { cause?: unknown; peer?: BoxId },
  ) {
    super(options?.peer ?? 'unknown', detail);
    withCause(this, options?.cause);
  }
}

/** A received block does not hash to the CID it was sent for; it was dropped. */
export class BlockMismatchError extends ReserveError {
  static override readonly name = 'BlockMismatchError';
  constructor(readonly peer: BoxId, readonly cid: CID) {
    super(`peer ${peer} sent bytes for ${cid.toString()} that do not match it; the block was dropped`);
  }
}

/**
 * A block transfer ended before every requested block arrived. `remaining` lists, in request order, the CIDs not yet
 * received (starting with the first one not received): pass them to another holder to resume.
 */
export class TransferInterruptedError extends ReserveError {
  static override readonly name = 'TransferInterruptedError';
  constructor(
    readonly peer: BoxId,
    readonly received: number,
    readonly remaining: readonly CID[],
    options?: { cause?: unknown },
  ) {
    const why = options?.cause instanceof Error ? `: ${options.cause.name}: ${options.cause.message}` : '';
    super(`transfer from ${peer} interrupted after ${received} blocks, ${remaining.length} remaining${why}`, options);
  }
}

/** The stream closed (reset by the peer, or aborted) while a frame was being sent or awaited. */
export class StreamEndedError extends ReserveError {
  static override readonly name = 'StreamEndedError';
}

/** A transfer made no progress (no frame in either direction) for `ms` milliseconds. */
export class IdleTimeoutError extends ReserveError {
  static override readonly name = 'IdleTimeoutError';
  constructor(readonly ms: number) {
    super(`no progress for ${ms} ms`);
  }
}

/** The network could not start: a listen address is in use or invalid. */
export class ListenFailedError extends ReserveError {
  static override readonly name = 'ListenFailedError';
}

/** The network was used before `start()` or after `stop()`. */
export class NetworkNotRunningError extends ReserveError {
  static override readonly name = 'NetworkNotRunningError';
}

/** An installed libp2p module lacks what Reserve adjusts in it (a version whose internals changed). */
export class IncompatibleDependencyError extends ReserveError {
  static override readonly name = 'IncompatibleDependencyError';
}
