/**
 * Bulk block transfer, `/reserve/blocks/1.0.0`: many blocks over one stream, bounded memory, every block verified
 * against its CID, resumable.
 *
 *   client -> server   Want(cids <= 1024) ... Want(...) Done
 *   server -> client   Block(cid, bytes) | Missing(cid), one per wanted CID, in the order wanted ... Done
 *                      or Error({errorName, message}) and the end of the stream
 *
 * Answers come in request order, so "resume" is simply: ask someone else for everything from the first CID not yet
 * received (`TransferInterruptedError.remaining`). Wants may keep coming while answers flow (a pipelined session,
 * block-sessions.ts, sends one Want per block as its callers ask): the server queues at most 1024 wanted CIDs
 * beyond the frame it is reading, reads ahead a few blocks from its getter across Want frames, and waits for its
 * write buffer to drain past 4 MiB; the client pauses the stream while it digests blocks (yamux then stops
 * granting the server window), so neither side holds more than a few blocks plus the muxer window.
 *
 * Pushing blocks, `/reserve/blocks-push/1.0.0`, is the mirror image:
 *
 *   client -> server   Put(cid, bytes) ... Put(...) Done
 *   server -> client   Stored(cid) | Refused(cid), one per Put, in order, once the block is durable (or refused
 *                      because its bytes do not hash to its CID) ... Done, or Error and the end of the stream
 *
 * The server stores a few blocks at once (their fsyncs overlap) and stops reading while they are in flight, so a
 * fast client is held back by flow control, not by the server's memory.
 */
import type { Stream } from '@libp2p/interface';
import type { CID } from '../../core/blocks/cid.ts';
import { matchesCid } from '../../core/blocks/cid.ts';
import { RemoteError, type BoxId } from '../../core/net.ts';
import {
  ERROR_FRAME_LIMIT,
  FrameKind,
  Limits,
  WANT_FRAME_LIMIT,
  blockFrameLimit,
  blockPrefix,
  decodeBlock,
  decodeCidList,
  decodeEmpty,
  decodeError,
  decodeMissing,
  decodePut,
  encodeCidList,
  encodeError,
  encodeFrame,
  encodeMissing,
  encodeRefused,
  encodeStored,
  frameLimits,
  type Frame,
  kindName,
} from './codec.ts';
import { BlockMismatchError, FrameTooLargeError, IdleTimeoutError, StreamEndedError, TransferInterruptedError, UnexpectedFrameError } from './errors.ts';
import { FramedStream, type OutFrame } from './framed-stream.ts';

/** Answers that are ready together are sent together, up to this many block bytes per write. */
const BATCH_BYTES = 256 * 1024;

export const BLOCKS_PROTOCOL_ID = '/reserve/blocks/1.0.0';

/** Returns a block's bytes, or undefined when this Box does not hold it. */
export type BlockGetter = (cid: CID, options: { signal: AbortSignal }) => Promise<Uint8Array | undefined> | Uint8Array | undefined;
/** Receives each verified block, in request order. The transfer waits for it (backpressure). */
export type OnBlock = (cid: CID, bytes: Uint8Array) => void | Promise<void>;

export interface FetchBlocksOptions {
  signal?: AbortSignal;
  /** Longest wait for the next answer before giving up (default 30 s). Not a deadline for the whole transfer. */
  idleTimeoutMs?: number;
  /** Largest block accepted (default 4 MiB). */
  maxBlockBytes?: number;
  /** Called for every block that did not match its CID (it is dropped and listed in `corrupt`). */
  onCorrupt?: (err: BlockMismatchError) => void;
}

export interface FetchBlocksResult {
  /** Blocks verified and handed to onBlock. */
  received: number;
  bytes: number;
  /** CIDs the peer does not hold. */
  missing: CID[];
  /** Blocks whose bytes did not match their CID; dropped. */
  corrupt: BlockMismatchError[];
}

export interface ServeBlocksOptions {
  /** Getter calls running ahead of the stream (default 8). */
  readAhead?: number;
  /** Largest block this Box sends (default 4 MiB). */
  maxBlockBytes?: number;
  /** Longest wait for the client's next Want (default 30 s). */
  idleTimeoutMs?: number;
}

/** Wraps an exception thrown by the caller's onBlock, so it is not mistaken for a transfer failure. */
class LocalFailure {
  constructor(readonly error: unknown) {}
}

function sameCid(a: CID, b: CID): boolean {
  return a.equals(b);
}

export class IdleTimer {
  readonly controller = new AbortController();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The parent (a network's whole-run signal, say) and our listener on it, removed by `dispose`. */
  #parent: { signal: AbortSignal; onAbort: () => void } | undefined;
  constructor(
    readonly ms: number,
    parent?: AbortSignal,
  ) {
    if (parent) {
      if (parent.aborted) this.controller.abort(parent.reason);
      else {
        const onAbort = () => this.controller.abort(parent.reason);
        parent.addEventListener('abort', onAbort, { once: true });
        this.#parent = { signal: parent, onAbort };
      }
    }
    this.touch();
  }
  /**
   * Done with it: stop counting and let go of the parent signal. Without this, a long-lived parent would keep one
   * listener (and this timer's controller) for every stream ever served.
   */
  dispose(): void {
    this.stop();
    if (this.#parent) this.#parent.signal.removeEventListener('abort', this.#parent.onAbort);
    this.#parent = undefined;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }
  /** (Re)start the countdown. */
  touch(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.controller.abort(new IdleTimeoutError(this.ms)), this.ms);
  }
  /** Start counting unless already counting. */
  ensure(): void {
    if (this.#timer === undefined) this.touch();
  }
  /** Stop counting (while waiting on our own side: a slow onBlock or getter is not the peer's silence). */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/** A one-shot wake-up between the two halves of a server (the frame reader and the answer writer). */
class Waiter {
  #wake: (() => void) | undefined;
  wait(): Promise<void> {
    return new Promise<void>((resolve) => (this.#wake = resolve));
  }
  wake(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }
}

/** Tell the client why a server stopped, if the stream can still carry it, then end the stream. */
async function endWithError(stream: Stream, fs: FramedStream, err: unknown): Promise<void> {
  const e = err instanceof Error ? err : new Error(String(err));
  try {
    if (stream.writeStatus === 'writable' && stream.status === 'open') {
      stream.send(encodeFrame(FrameKind.Error, encodeError({ errorName: e.name || 'Error', message: e.message })));
      await fs.closeWrite(AbortSignal.timeout(1000));
    } else {
      fs.abort(e);
    }
  } catch {
    fs.abort(e);
  }
}

/**
 * Client side: ask `peer` (already connected through `stream`) for `cids`, verify and hand over each block.
 * Throws TransferInterruptedError (with `remaining`) if the transfer ends early for any reason.
 */
export async function fetchBlocksOverStream(
  peer: BoxId,
  stream: Stream,
  cids: readonly CID[],
  onBlock: OnBlock,
  options: FetchBlocksOptions = {},
): Promise<FetchBlocksResult> {
  const maxBlock = options.maxBlockBytes ?? Limits.block;
  const idle = new IdleTimer(options.idleTimeoutMs ?? 30_000, options.signal);
  const fs = new FramedStream(
    stream,
    frameLimits([
      [FrameKind.Block, blockFrameLimit(maxBlock)],
      [FrameKind.Missing, 1 + Limits.cidBytes],
      [FrameKind.Done, 0],
      [FrameKind.Error, ERROR_FRAME_LIMIT],
    ]),
    { readHighWaterBytes: Math.max(8 * 1024 * 1024, 2 * maxBlock) },
  );
  const result: FetchBlocksResult = { received: 0, bytes: 0, missing: [], corrupt: [] };
  let next = 0; // index of the first CID not yet answered
  // Writing the wants runs alongside reading the answers (a long want list must not wait for the answers).
  const sending = (async () => {
    for (let i = 0; i < cids.length; i += Limits.wantCids) {
      await fs.write(FrameKind.Want, encodeCidList(cids.slice(i, i + Limits.wantCids)), idle.signal);
    }
    await fs.write(FrameKind.Done, [], idle.signal);
    await fs.closeWrite(idle.signal);
  })();
  sending.catch(() => undefined); // a failure here also ends the reading below
  try {
    for (;;) {
      const frame = await fs.read(idle.signal);
      idle.touch();
      if (frame === undefined) throw new StreamEndedError('the peer ended the transfer without finishing it');
      if (frame.kind === FrameKind.Error) {
        const e = decodeError(frame.payload);
        throw new RemoteError(peer, e.errorName, e.message);
      }
      if (frame.kind === FrameKind.Done) {
        decodeEmpty(frame.payload, 'Done');
        if (next !== cids.length) throw new UnexpectedFrameError(`Done after ${next} of ${cids.length} answers`);
        await sending;
        return result;
      }
      if (next >= cids.length) throw new UnexpectedFrameError(`${kindName(frame.kind)} after every CID was answered`);
      const expected = cids[next];
      if (frame.kind === FrameKind.Missing) {
        const cid = decodeMissing(frame.payload);
        if (!sameCid(cid, expected)) throw new UnexpectedFrameError(`answer for ${cid.toString()} where ${expected.toString()} was due`);
        result.missing.push(expected);
        next++;
        continue;
      }
      // Block
      const { cid, bytes } = decodeBlock(frame.payload, maxBlock);
      if (!sameCid(cid, expected)) throw new UnexpectedFrameError(`answer for ${cid.toString()} where ${expected.toString()} was due`);
      next++;
      if (!matchesCid(expected, bytes)) {
        const err = new BlockMismatchError(peer, expected);
        result.corrupt.push(err);
        options.onCorrupt?.(err);
        continue;
      }
      idle.stop();
      try {
        await onBlock(expected, bytes);
      } catch (err) {
        throw new LocalFailure(err);
      }
      idle.touch();
      result.received++;
      result.bytes += bytes.byteLength;
    }
  } catch (err) {
    if (err instanceof LocalFailure) {
      // the caller's own onBlock failed: not the peer's fault, so no resume elsewhere; rethrow it as is
      fs.abort(err.error instanceof Error ? err.error : new Error(String(err.error)));
      throw err.error;
    }
    const cause = err instanceof Error ? err : new Error(String(err));
    fs.abort(cause);
    const remaining = [...cids.slice(next), ...result.corrupt.map((e) => e.cid)];
    throw new TransferInterruptedError(peer, result.received, remaining, { cause: idle.signal.aborted ? (idle.signal.reason ?? cause) : cause });
  } finally {
    idle.dispose();
  }
}

/**
 * The shape both servers share: a reader turns the client's frames into items; up to `startAhead` items are
 * started at once (in order); their answers go back strictly in order, every answer that is ready together in one
 * write (up to `batchBytes` of payload); the reader stops reading while `maxUnanswered` items are unanswered, so
 * the stream pauses and flow control holds the client back; Done from the client, once every item is answered,
 * gets Done back. The idle countdown runs only while we wait for the client with nothing left to answer: time
 * spent blocked on its backpressure (a slow consumer) or on our own work is not silence.
 */
interface OrderedServer<T, R> {
  /** Frames the client may send besides Done, with their size limits. */
  limits: Array<[number, number]>;
  readHighWaterBytes: number;
  idleTimeoutMs: number;
  /** Items not yet answered at which the reader stops reading. */
  maxUnanswered: number;
  /** With `itemBytes`: bytes of items read and not yet answered at which the reader stops too. */
  maxUnansweredBytes?: number;
  itemBytes?(item: T): number;
  /** Items started and not yet answered, at most. */
  startAhead: number;
  /** Payload bytes of answers packed into one write, at most (one answer may exceed it alone). */
  batchBytes: number;
  /** The items in one client frame (throws on a malformed one). */
  itemsOf(frame: Frame): T[];
  /** Start the work for one item. */
  start(item: T, signal: AbortSignal): Promise<R>;
  /** The answer for an item whose work finished with `result`, and its payload size for batching. */
  answer(item: T, result: R): { frame: OutFrame; bytes: number };
}

async function serveOrdered<T, R>(stream: Stream, spec: OrderedServer<T, R>, stopSignal?: AbortSignal): Promise<void> {
  const idle = new IdleTimer(spec.idleTimeoutMs, stopSignal);
  const fs = new FramedStream(stream, frameLimits([...spec.limits, [FrameKind.Done, 0]]), { readHighWaterBytes: spec.readHighWaterBytes });
  const signal = idle.signal;
  // the client went away: stop working for it
  const onClose = () => idle.controller.abort(new StreamEndedError('the client closed the stream'));
  stream.addEventListener('close', onClose);
  const queued: T[] = []; // read, not started yet
  // started, in order; `done` once the work finished (so answers ready together go out in one write)
  const started: Array<{ item: T; result: Promise<R>; done: boolean }> = [];
  let clientDone = false;
  let unansweredBytes = 0;
  const full = () =>
    queued.length + started.length >= spec.maxUnanswered || (spec.maxUnansweredBytes !== undefined && unansweredBytes >= spec.maxUnansweredBytes);
  let failure: { error: unknown } | undefined;
  const readerWaits = new Waiter();
  const writerWaits = new Waiter();
  const fail = (error: unknown) => {
    failure ??= { error };
    if (!idle.signal.aborted) idle.controller.abort(error);
    readerWaits.wake();
    writerWaits.wake();
  };
  // called whenever an item is read or answered, so work starts as soon as there is room for it
  const startMore = () => {
    while (started.length < spec.startAhead && queued.length > 0 && !failure) {
      const item = queued.shift()!;
      const entry = { item, result: Promise.resolve().then(() => spec.start(item, signal)), done: false };
      entry.result.then(
        () => (entry.done = true),
        () => undefined,
      );
      started.push(entry);
    }
  };
  const reader = (async () => {
    for (;;) {
      while (full() && !failure) await readerWaits.wait();
      if (failure) return;
      if (queued.length === 0 && started.length === 0) idle.ensure();
      const frame = await fs.read(signal);
      idle.stop();
      if (frame === undefined) throw new StreamEndedError('the client closed before Done');
      if (frame.kind === FrameKind.Done) {
        decodeEmpty(frame.payload, 'Done');
        clientDone = true;
        writerWaits.wake();
        return;
      }
      for (const item of spec.itemsOf(frame)) {
        queued.push(item);
        unansweredBytes += spec.itemBytes?.(item) ?? 0;
      }
      startMore();
      writerWaits.wake();
    }
  })();
  reader.catch(fail);
  try {
    for (;;) {
      if (failure) throw failure.error;
      if (started.length === 0) {
        if (clientDone) break;
        await writerWaits.wait();
        continue;
      }
      const out: OutFrame[] = [];
      let size = 0;
      do {
        const head = started[0];
        const result = await head.result;
        started.shift();
        unansweredBytes -= spec.itemBytes?.(head.item) ?? 0;
        startMore();
        const { frame, bytes } = spec.answer(head.item, result);
        out.push(frame);
        size += bytes;
      } while (started.length > 0 && started[0].done && size < spec.batchBytes);
      readerWaits.wake();
      await fs.writeFrames(out, signal);
    }
    await fs.write(FrameKind.Done, [], signal);
    await fs.closeWrite(signal);
  } catch (err) {
    fail(err);
    await endWithError(stream, fs, failure!.error);
  } finally {
    await reader.catch(() => undefined);
    stream.removeEventListener('close', onClose);
    idle.dispose();
  }
}

/**
 * Server side of one `/reserve/blocks/1.0.0` stream: at most 1024 wanted CIDs queued beyond the frame being read,
 * `readAhead` getter calls running ahead of the stream across Want frames. Resolves when the stream is done.
 */
export function serveBlocksOverStream(stream: Stream, getter: BlockGetter, options: ServeBlocksOptions = {}, stopSignal?: AbortSignal): Promise<void> {
  const maxBlock = options.maxBlockBytes ?? Limits.block;
  return serveOrdered<CID, Uint8Array | undefined>(
    stream,
    {
      limits: [[FrameKind.Want, WANT_FRAME_LIMIT]],
      readHighWaterBytes: 2 * WANT_FRAME_LIMIT,
      idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
      maxUnanswered: Limits.wantCids,
      startAhead: Math.max(1, options.readAhead ?? 8),
      batchBytes: BATCH_BYTES,
      itemsOf: (frame) => decodeCidList(frame.payload),
      start: async (cid, signal) => getter(cid, { signal }),
      answer: (cid, bytes) => {
        if (bytes === undefined) return { frame: { kind: FrameKind.Missing, parts: encodeMissing(cid) }, bytes: 0 };
        if (bytes.byteLength > maxBlock) throw new FrameTooLargeError(`block ${cid.toString()}`, bytes.byteLength, maxBlock);
        return { frame: { kind: FrameKind.Block, parts: bytes, prefix: blockPrefix(cid) }, bytes: bytes.byteLength };
      },
    },
    stopSignal,
  );
}

/** Stores one pushed block: true once durable, false when refused (its bytes do not hash to its CID). */
export type BlockPutter = (cid: CID, bytes: Uint8Array, options: { signal: AbortSignal }) => Promise<boolean>;

export interface ServePushOptions {
  /**
   * Blocks being stored at once (default 64): their fsyncs overlap, and small ones share one (a pack's group
   * commit), so the more there are the fewer fsyncs and answer writes a run of small blocks costs. Bounded by bytes
   * too (`maxBytes`).
   */
  concurrency?: number;
  /** Bytes of blocks read and not yet answered at which the server stops reading (default 16 MiB). */
  maxBytes?: number;
  /** Largest block accepted (default 4 MiB). */
  maxBlockBytes?: number;
  /** Longest wait for the client's next Put (default 30 s). */
  idleTimeoutMs?: number;
}

/**
 * Server side of one `/reserve/blocks-push/1.0.0` stream: up to `concurrency` blocks, and `maxBytes` of them, being
 * stored at once (the reader stops while they are). Resolves when the stream is done.
 */
export function servePushOverStream(stream: Stream, putter: BlockPutter, options: ServePushOptions = {}, stopSignal?: AbortSignal): Promise<void> {
  const maxBlock = options.maxBlockBytes ?? Limits.block;
  const concurrency = Math.max(1, options.concurrency ?? 64);
  return serveOrdered<{ cid: CID; bytes: Uint8Array }, boolean>(
    stream,
    {
      limits: [[FrameKind.Put, blockFrameLimit(maxBlock)]],
      readHighWaterBytes: Math.max(8 * 1024 * 1024, 2 * maxBlock),
      idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
      maxUnanswered: concurrency,
      maxUnansweredBytes: Math.max(1, options.maxBytes ?? 16 * 1024 * 1024),
      itemBytes: (put) => put.bytes.byteLength,
      startAhead: concurrency,
      batchBytes: Number.POSITIVE_INFINITY,
      itemsOf: (frame) => [decodePut(frame.payload, maxBlock)],
      start: (put, signal) => putter(put.cid, put.bytes, { signal }),
      answer: (put, ok) => ({ frame: { kind: ok ? FrameKind.Stored : FrameKind.Refused, parts: ok ? encodeStored(put.cid) : encodeRefused(put.cid) }, bytes: 0 }),
    },
    stopSignal,
  );
}
