/**
 * Pipelined block sessions: the client side of core's BlockTransport (core/net.ts) over the bulk protocols of
 * blocks.ts. Every `get(peer, cid)` and `put(peer, cid, bytes)` joins the peer's open session for that direction
 * (one libp2p stream), or opens one: concurrent callers' blocks move back to back over one stream instead of one
 * stream, protocol negotiation and round trip per block.
 *
 *   get  -> `/reserve/blocks/1.0.0`       one Want per burst of calls (the CIDs asked in the same tick), answers
 *                                          Block | Missing in order
 *   put  -> `/reserve/blocks-push/1.0.0`  one Put per call, answers Stored | Refused in order
 *
 * A session's stream is ended (Done) once no call has been waiting for `lingerMs`. Memory: each caller holds its own
 * block; a session holds the CIDs it owes answers for, the put frames not yet handed to the muxer (sent one at a
 * time, each after the write buffer drained below its mark), and what the framed stream and the muxer buffer.
 *
 * Failure: if the stream breaks (the peer died, reset, refused) every call waiting on it rejects with
 * PeerUnreachableError (or the peer's RemoteError, or RequestTimeoutError when the peer sent nothing for
 * `timeoutMs` while calls waited), and the next call opens a new session. Callers (core's BlockClient) then try
 * the block's next holder. A caller whose own signal aborts is rejected with AbortedError; its answer, when it
 * comes, is dropped.
 */
import type { Stream } from '@libp2p/interface';
import type { CID } from '../../core/blocks/cid.ts';
import { AbortedError } from '../../core/errors.ts';
import { PeerUnreachableError, RemoteError, RequestTimeoutError, type BoxId } from '../../core/net.ts';
import {
  CID_FRAME_LIMIT,
  ERROR_FRAME_LIMIT,
  FrameKind,
  Limits,
  blockFrameLimit,
  decodeBlock,
  decodeEmpty,
  decodeError,
  decodeMissing,
  decodeRefused,
  decodeStored,
  encodeCidList,
  frameLimits,
  kindName,
  putPrefix,
  type Frame,
} from './codec.ts';
import { StreamEndedError, UnexpectedFrameError } from './errors.ts';
import { FramedStream, type OutFrame } from './framed-stream.ts';

export const PUSH_PROTOCOL_ID = '/reserve/blocks-push/1.0.0';

/** Puts queued together are written together, up to this many bytes per write. */
const BATCH_BYTES = 256 * 1024;
/**
 * Calls sent and not yet answered from which new calls wait to be sent with the next answer: the peer has work
 * queued, and one frame (one muxer frame, one encryption, one socket write, one window update back) then carries a
 * batch of calls instead of one each; on loopback a socket write costs more than a small block's bytes. A get is
 * a few bytes (the server reads ahead of the CIDs it knows); a put carries its block.
 */
// (64 puts: what a push server stores at once by default, blocks.ts; fewer if they are large, by its byte bound.)
const SEND_AHEAD: Record<Kind, number> = { get: 4, put: 64 };

/** Opens a stream to `peer` for `protocol`, rejecting with core's network errors (PeerUnreachableError & co). */
export type StreamOpener = (peer: BoxId, protocol: string, signal?: AbortSignal) => Promise<Stream>;

export interface BlockSessionsOptions {
  /** End a session's stream once no call has waited this long (default 200 ms). */
  lingerMs?: number;
  /** Deadline of a call when it gives none (default 30 s): the peer must send something within it. */
  timeoutMs?: number;
  /** Largest block accepted or sent (default 4 MiB). */
  maxBlockBytes?: number;
  /** Calls one session keeps in flight; more wait their turn (default 256). */
  maxInFlight?: number;
}

export interface CallOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

type Kind = 'get' | 'put';

interface Call {
  cid: CID;
  /** put only: the bytes, dropped once handed to the stream */
  bytes?: Uint8Array;
  timeoutMs: number;
  resolve: (v: Uint8Array | undefined | boolean) => void;
  reject: (e: unknown) => void;
  settled: boolean;
  cleanup?: () => void;
}

function settle(call: Call, fn: () => void): void {
  if (call.settled) return;
  call.settled = true;
  call.cleanup?.();
  fn();
}

class Session {
  readonly #calls: Call[] = []; // owed an answer, in wire order
  readonly #unsent: Call[] = [];
  readonly #waiting: Array<() => void> = []; // calls waiting for room (maxInFlight)
  #fs: FramedStream | undefined;
  #opened: Promise<void>;
  #pumping = false;
  #state: 'open' | 'closing' | 'failed' = 'open';
  #linger: ReturnType<typeof setTimeout> | undefined;
  #progress: ReturnType<typeof setTimeout> | undefined;
  readonly #ended = new AbortController();

  constructor(
    readonly peer: BoxId,
    readonly kind: Kind,
    open: StreamOpener,
    readonly options: Required<BlockSessionsOptions>,
    /** The session takes no more calls: forget it (the next call opens another). */
    readonly gone: (s: Session) => void,
  ) {
    this.#opened = this.#open(open);
    this.#opened.catch(() => undefined);
  }

  get accepting(): boolean {
    return this.#state === 'open';
  }

  async #open(open: StreamOpener): Promise<void> {
    let stream: Stream;
    try {
      stream = await open(this.peer, this.kind === 'get' ? BLOCKS_ID : PUSH_PROTOCOL_ID, this.#ended.signal);
    } catch (err) {
      this.#fail(err, false);
      throw err;
    }
    if (this.#state === 'failed') {
      stream.abort(new StreamEndedError('the session ended before its stream opened'));
      return;
    }
    const limits =
      this.kind === 'get'
        ? frameLimits([
            [FrameKind.Block, blockFrameLimit(this.options.maxBlockBytes)],
            [FrameKind.Missing, CID_FRAME_LIMIT],
            [FrameKind.Done, 0],
            [FrameKind.Error, ERROR_FRAME_LIMIT],
          ])
        : frameLimits([
            [FrameKind.Stored, CID_FRAME_LIMIT],
            [FrameKind.Refused, CID_FRAME_LIMIT],
            [FrameKind.Done, 0],
            [FrameKind.Error, ERROR_FRAME_LIMIT],
          ]);
    this.#fs = new FramedStream(stream, limits, { readHighWaterBytes: Math.max(8 * 1024 * 1024, 2 * this.options.maxBlockBytes) });
    void this.#read(this.#fs);
  }

  /** Add a call; resolves with its answer. */
  async call(cid: CID, bytes: Uint8Array | undefined, options: CallOptions): Promise<Uint8Array | undefined | boolean> {
    if (options.signal?.aborted) throw new AbortedError();
    // Room: at most maxInFlight calls owed an answer (their blocks are in flight or queued at the peer).
    while (this.#calls.length >= this.options.maxInFlight && this.#state === 'open') {
      await new Promise<void>((r) => this.#waiting.push(r));
    }
    if (this.#state !== 'open') throw new SessionClosed();
    return new Promise((resolve, reject) => {
      const call: Call = { cid, bytes, timeoutMs: options.timeoutMs ?? this.options.timeoutMs, resolve, reject, settled: false };
      const signal = options.signal;
      if (signal) {
        const onAbort = () => settle(call, () => reject(new AbortedError()));
        signal.addEventListener('abort', onAbort, { once: true });
        call.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      if (this.#linger) clearTimeout(this.#linger);
      this.#linger = undefined;
      if (this.#calls.length === 0) this.#armProgress(call.timeoutMs);
      this.#calls.push(call);
      this.#unsent.push(call);
      void this.#pump();
    });
  }

  /** Hand unsent calls to the stream, in order: a get burst as one Want, each put as one Put frame. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      await this.#opened;
      // one microtask later, so calls made in the same tick share one Want
      await Promise.resolve();
      const fs = this.#fs!;
      while (this.#unsent.length > 0 && this.#state !== 'failed') {
        if (this.#calls.length - this.#unsent.length >= SEND_AHEAD[this.kind]) break; // sent with the next answer (#answer)
        if (this.kind === 'get') {
          const burst = this.#unsent.splice(0, Limits.wantCids);
          await fs.write(FrameKind.Want, encodeCidList(burst.map((c) => c.cid)), this.#ended.signal);
        } else {
          // puts queued together go out in one write (small ones packed into shared sends), up to BATCH_BYTES
          const out: OutFrame[] = [];
          let size = 0;
          while (this.#unsent.length > 0 && (out.length === 0 || size + this.#unsent[0].bytes!.byteLength <= BATCH_BYTES)) {
            const call = this.#unsent.shift()!;
            const bytes = call.bytes!;
            call.bytes = undefined;
            out.push({ kind: FrameKind.Put, parts: bytes, prefix: putPrefix(call.cid) });
            size += bytes.byteLength;
          }
          await fs.writeFrames(out, this.#ended.signal);
        }
      }
    } catch (err) {
      this.#fail(err, true);
    } finally {
      this.#pumping = false;
    }
    if (this.#unsent.length > 0 && this.#state === 'open' && this.#calls.length - this.#unsent.length < SEND_AHEAD[this.kind]) void this.#pump();
  }

  async #read(fs: FramedStream): Promise<void> {
    try {
      for (;;) {
        const frame = await fs.read(this.#ended.signal);
        if (frame === undefined) {
          if (this.#state === 'closing' && this.#calls.length === 0) break;
          throw new StreamEndedError('the peer ended the block session');
        }
        if (frame.kind === FrameKind.Error) {
          const e = decodeError(frame.payload);
          throw new RemoteError(this.peer, e.errorName, e.message);
        }
        if (frame.kind === FrameKind.Done) {
          decodeEmpty(frame.payload, 'Done');
          if (this.#calls.length > 0) throw new UnexpectedFrameError(`Done with ${this.#calls.length} answers owed`);
          continue; // the end of the stream follows
        }
        this.#answer(frame);
      }
      this.#clearProgress();
    } catch (err) {
      this.#fail(err, true);
    }
  }

  #answer(frame: Frame): void {
    const call = this.#calls.shift();
    if (!call) throw new UnexpectedFrameError(`${kindName(frame.kind)} with no answer owed`);
    this.#waiting.shift()?.();
    let value: Uint8Array | undefined | boolean;
    let cid: CID;
    switch (frame.kind) {
      case FrameKind.Block: {
        const b = decodeBlock(frame.payload, this.options.maxBlockBytes);
        cid = b.cid;
        value = b.bytes;
        break;
      }
      case FrameKind.Missing:
        cid = decodeMissing(frame.payload);
        value = undefined;
        break;
      case FrameKind.Stored:
        cid = decodeStored(frame.payload);
        value = true;
        break;
      case FrameKind.Refused:
        cid = decodeRefused(frame.payload);
        value = false;
        break;
      default:
        throw new UnexpectedFrameError(`${kindName(frame.kind)} in a block session`);
    }
    const due: CID = call.cid;
    if (!due.equals(cid)) {
      this.#calls.unshift(call); // still owed: it fails with the session
      throw new UnexpectedFrameError(`answer for ${String(cid)} where ${String(due)} was due`);
    }
    settle(call, () => call.resolve(value));
    if (this.#unsent.length > 0 && this.#calls.length - this.#unsent.length < SEND_AHEAD[this.kind]) void this.#pump();
    if (this.#calls.length > 0) this.#armProgress(this.#calls[0].timeoutMs);
    else {
      this.#clearProgress();
      if (this.#state === 'open') {
        this.#linger = setTimeout(() => this.#close(), this.options.lingerMs);
        this.#linger.unref?.();
      }
    }
  }

  #armProgress(ms: number): void {
    this.#clearProgress();
    this.#progress = setTimeout(() => this.#fail(new RequestTimeoutError(this.peer, this.kind === 'get' ? BLOCKS_ID : PUSH_PROTOCOL_ID, ms), true), ms);
    this.#progress.unref?.();
  }

  #clearProgress(): void {
    if (this.#progress) clearTimeout(this.#progress);
    this.#progress = undefined;
  }

  /** Idle: say Done and end our side; the peer answers Done and ends its side. */
  #close(): void {
    this.#linger = undefined;
    if (this.#state !== 'open' || this.#calls.length > 0) return;
    this.#state = 'closing';
    this.gone(this);
    for (const w of this.#waiting.splice(0)) w();
    const fs = this.#fs;
    if (!fs) return;
    const deadline = AbortSignal.any([this.#ended.signal, AbortSignal.timeout(this.options.timeoutMs)]);
    void (async () => {
      try {
        await fs.write(FrameKind.Done, [], deadline);
        await fs.closeWrite(deadline);
      } catch (err) {
        fs.abort(err instanceof Error ? err : new Error(String(err)));
      }
    })();
  }

  #fail(err: unknown, opened: boolean): void {
    if (this.#state === 'failed') return;
    this.#state = 'failed';
    this.gone(this);
    if (this.#linger) clearTimeout(this.#linger);
    this.#clearProgress();
    const error = mapError(this.peer, err, opened);
    if (!this.#ended.signal.aborted) this.#ended.abort(error);
    this.#fs?.abort(error instanceof Error ? error : new Error(String(error)));
    for (const call of this.#calls.splice(0)) settle(call, () => call.reject(error));
    this.#unsent.length = 0;
    for (const w of this.#waiting.splice(0)) w();
  }

  /** Stop: every waiting call fails with `err`. */
  abort(err: unknown): void {
    this.#fail(err, true);
  }
}

const BLOCKS_ID = '/reserve/blocks/1.0.0';

/** The session ended between a caller choosing it and adding its call: the caller takes a fresh session. */
class SessionClosed extends Error {}

/** Core's network errors for whatever ended a session. */
function mapError(peer: BoxId, err: unknown, opened: boolean): unknown {
  if (err instanceof PeerUnreachableError || err instanceof RemoteError || err instanceof RequestTimeoutError || err instanceof AbortedError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  return new PeerUnreachableError(peer, `${opened ? 'block session broke' : 'could not open a block session'}: ${e.name}: ${e.message}`);
}

/** Every open block session of this Box, per peer and direction. */
export class BlockSessions {
  readonly #open: StreamOpener;
  readonly #o: Required<BlockSessionsOptions>;
  readonly #sessions = new Map<string, Session>();
  #stopped = false;
  #opened = 0;

  constructor(open: StreamOpener, options: BlockSessionsOptions = {}) {
    this.#open = open;
    this.#o = {
      lingerMs: options.lingerMs ?? 200,
      timeoutMs: options.timeoutMs ?? 30_000,
      maxBlockBytes: options.maxBlockBytes ?? Limits.block,
      maxInFlight: options.maxInFlight ?? 256,
    };
  }

  /** Sessions open now, and opened so far (each one stream): for tests and diagnostics. */
  get stats(): { open: number; opened: number } {
    return { open: this.#sessions.size, opened: this.#opened };
  }

  async #call(peer: BoxId, kind: Kind, cid: CID, bytes: Uint8Array | undefined, options: CallOptions): Promise<Uint8Array | undefined | boolean> {
    for (;;) {
      if (this.#stopped) throw new PeerUnreachableError(peer, 'the network is stopping');
      const key = `${kind} ${peer}`;
      let s = this.#sessions.get(key);
      if (!s || !s.accepting) {
        s = new Session(peer, kind, this.#open, this.#o, (gone) => {
          if (this.#sessions.get(key) === gone) this.#sessions.delete(key);
        });
        this.#sessions.set(key, s);
        this.#opened++;
      }
      try {
        return await s.call(cid, bytes, options);
      } catch (err) {
        if (err instanceof SessionClosed) continue;
        throw err;
      }
    }
  }

  /** `peer`'s copy of a block (unverified), or undefined when it does not hold it. */
  async get(peer: BoxId, cid: CID, options: CallOptions = {}): Promise<Uint8Array | undefined> {
    return (await this.#call(peer, 'get', cid, undefined, options)) as Uint8Array | undefined;
  }

  /** Store a block on `peer`: true once durable there, false when refused. */
  async put(peer: BoxId, cid: CID, bytes: Uint8Array, options: CallOptions = {}): Promise<boolean> {
    if (bytes.byteLength > this.#o.maxBlockBytes) throw new RangeError(`a block of ${bytes.byteLength} bytes exceeds ${this.#o.maxBlockBytes}`);
    return (await this.#call(peer, 'put', cid, bytes, options)) as boolean;
  }

  /** Fail every session (the network is stopping). */
  stop(err: unknown = new PeerUnreachableError('*', 'the network stopped')): void {
    this.#stopped = true;
    for (const s of [...this.#sessions.values()]) s.abort(err);
    this.#sessions.clear();
  }

  /** Take calls again after `stop()` (the network restarted). */
  restart(): void {
    this.#stopped = false;
  }
}
