/**
 * Small pieces shared by the storage backends in this folder: the error a closed store raises, abort checks that
 * turn a fired AbortSignal into core's AbortedError, helpers for Node's errno codes and `readyBatches`, which groups
 * a source's items into write batches without stalling on a slow source.
 */
import type { AbortOptions } from '../../core/ports.ts';
import { AbortedError, ReserveError } from '../../core/errors.ts';

/** A store was used after `close()`. */
export class StoreClosedError extends ReserveError {
  static override readonly name = 'StoreClosedError';
  constructor(what: string) {
    super(`${what} is closed`);
  }
}

/** A file-system KV store's on-disk data is not in the format this code writes (foreign or damaged file). */
export class KvFormatError extends ReserveError {
  static override readonly name = 'KvFormatError';
}

/** A pack file ends inside a record it indexes (truncated or damaged after it was written). */
export class PackTruncatedError extends ReserveError {
  static override readonly name = 'PackTruncatedError';
  constructor(path: string, offset: number) {
    super(`pack ${path} ends inside a record (offset ${offset})`);
  }
}

export function throwIfAborted(options?: AbortOptions): void {
  if (options?.signal?.aborted === true) throw new AbortedError();
}

/** The errno code of a Node system error, if it is one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}

export function isNotFound(err: unknown): boolean {
  return errnoCode(err) === 'ENOENT';
}

/** Out of space or over quota: the two ways a disk says "no more bytes". */
export function isNoSpace(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** A zero-copy plain Uint8Array view of a Node Buffer (so callers compare equal to plain arrays). */
export function plainBytes(buf: Uint8Array): Uint8Array {
  return buf.constructor === Uint8Array ? buf : new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

const NOT_READY = Symbol('not ready');

/**
 * Group a source's items into batches of at most `max`, cutting a batch early when the next item is not ready
 * within a timer tick. A batching writer built on this never sits on finished work while a slow (or consumer-
 * paced) source waits, yet batches fully when items are already at hand.
 */
export async function* readyBatches<T>(source: Iterable<T> | AsyncIterable<T>, max: number): AsyncGenerator<T[]> {
  const iter: Iterator<T> | AsyncIterator<T> = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  let ended = false;
  const pull = (): Promise<IteratorResult<T>> => {
    const p = Promise.resolve(iter.next());
    p.catch(() => undefined); // a failure surfaces where it is awaited, not as an unhandled rejection meanwhile
    return p;
  };
  try {
    let pending = pull();
    for (;;) {
      const first = await pending;
      if (first.done === true) {
        ended = true;
        return;
      }
      const batch: T[] = [first.value];
      pending = pull();
      while (batch.length < max) {
        const got = await Promise.race([pending, tick()]);
        if (got === NOT_READY || got.done === true) break;
        batch.push(got.value);
        pending = pull();
      }
      yield batch;
    }
  } finally {
    // Stopped early by the consumer: let the source clean up, without waiting on an item it may never produce.
    if (!ended) void Promise.resolve(iter.return?.()).catch(() => undefined);
  }
}

function tick(): Promise<typeof NOT_READY> {
  return new Promise((resolve) => setTimeout(() => resolve(NOT_READY), 0));
}

/** Run `fn` over `items` with at most `limit` calls in flight; rejects with the first failure once all settle. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (failure === undefined && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure.error;
}
