/**
 * Frames (codec.ts) over one libp2p stream, with bounded memory both ways:
 * - reading: received bytes go through a FrameDecoder that checks every announced length against the limits of
 *   the frames expected at this point; when more than `readHighWaterBytes` of decoded-but-unread frames pile up
 *   the stream is paused, so the muxer stops granting the sender window (yamux flow control) until we catch up.
 *   Memory held: that mark, plus one partial frame (at most its kind's limit), plus the muxer window;
 * - writing: after each frame, if the stream's write buffer holds more than `writeHighWaterBytes` we wait for it
 *   to empty ('idle'), the pattern measured to bound memory (NOTES-stack.md gotcha 4: `send() === false` +
 *   `onDrain()` did not).
 * A decoding failure aborts the stream (the peer sees a reset) and is rethrown to the reader.
 */
import type { Stream } from '@libp2p/interface';
import { FrameDecoder, concat, frameHeader, type Frame, type FrameLimits } from './codec.ts';
import { StreamEndedError } from './errors.ts';

export interface FramedStreamOptions {
  readHighWaterBytes?: number;
  writeHighWaterBytes?: number;
}

export const DEFAULT_WRITE_HIGH_WATER = 4 * 1024 * 1024;
/** Frames up to this size (header included) are packed together into one send. */
export const COALESCE_BYTES = 64 * 1024;

/** One frame to send: its kind, its payload as one or more parts, and an optional prefix sent before them. */
export interface OutFrame {
  kind: number;
  parts: Uint8Array | readonly Uint8Array[];
  prefix?: Uint8Array;
}

export const DEFAULT_READ_HIGH_WATER = 8 * 1024 * 1024;

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('aborted', 'AbortError');
}

export class FramedStream {
  readonly stream: Stream;
  readonly #decoder: FrameDecoder;
  readonly #frames: Frame[] = [];
  #queuedBytes = 0;
  #ended = false;
  #error: unknown;
  #wake: (() => void) | undefined;
  #pausePending = false;
  readonly #readHigh: number;
  readonly #writeHigh: number;

  constructor(stream: Stream, limits: FrameLimits, options: FramedStreamOptions = {}) {
    this.stream = stream;
    this.#decoder = new FrameDecoder(limits);
    this.#readHigh = options.readHighWaterBytes ?? DEFAULT_READ_HIGH_WATER;
    this.#writeHigh = options.writeHighWaterBytes ?? DEFAULT_WRITE_HIGH_WATER;
    stream.addEventListener('message', (evt) => this.#onData(evt.data));
    stream.addEventListener('end', () => this.#onEnd());
    stream.addEventListener('close', (evt) => {
      if (evt.error != null) this.#fail(evt.error);
      // both ends closed their writing side; data still held by a paused stream arrives when we resume, then 'end'
      else if (stream.readBufferLength === 0) this.#onEnd();
    });
    if (stream.readableEnded) this.#onEnd();
  }

  setLimits(limits: FrameLimits): void {
    this.#decoder.setLimits(limits);
  }

  #onData(data: Uint8Array | Iterable<Uint8Array>): void {
    if (this.#error !== undefined || this.#ended) return;
    let completed = false;
    try {
      this.#decoder.push(data);
      for (let f = this.#decoder.next(); f; f = this.#decoder.next()) {
        this.#frames.push(f);
        this.#queuedBytes += f.payload.byteLength;
        completed = true;
      }
    } catch (err) {
      this.#fail(err);
      this.stream.abort(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    // Only complete, unread frames count: a partial frame must be let in to complete (its length was checked
    // against its limit), or a frame larger than the mark would never arrive.
    if (this.#queuedBytes > this.#readHigh && !this.#pausePending) {
      // Deferred: this may run inside stream.resume(), which dispatches the buffered data and only then tells the
      // muxer to resume; pausing synchronously here would be undone by that (the muxer would keep granting window).
      this.#pausePending = true;
      queueMicrotask(() => {
        this.#pausePending = false;
        if (this.#queuedBytes > this.#readHigh && this.stream.readStatus === 'readable') this.stream.pause();
      });
    }
    // a block arrives in many muxer messages: wake the reader only when one completed a frame
    if (completed) this.#notify();
  }

  #onEnd(): void {
    if (this.#ended || this.#error !== undefined) return;
    try {
      this.#decoder.finish();
      this.#ended = true;
    } catch (err) {
      this.#fail(err);
    }
    this.#notify();
  }

  #fail(err: unknown): void {
    if (this.#error === undefined) this.#error = err;
    this.#notify();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  /** The next frame; undefined when the peer closed its end cleanly between frames. */
  async read(signal?: AbortSignal): Promise<Frame | undefined> {
    for (;;) {
      const f = this.#frames.shift();
      if (f) {
        this.#queuedBytes -= f.payload.byteLength;
        if (this.stream.readStatus === 'paused' && this.#queuedBytes <= this.#readHigh / 2) {
          this.stream.resume();
        }
        return f;
      }
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return undefined;
      if (this.stream.readStatus === 'paused') this.stream.resume();
      if (signal?.aborted) throw abortReason(signal);
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          this.#wake = undefined;
          reject(abortReason(signal!));
        };
        signal?.addEventListener('abort', onAbort, { once: true });
        this.#wake = () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        };
      });
    }
  }

  /** Send one frame (its payload given as one or more parts) and wait while the write buffer is over the mark. */
  async write(kind: number, parts: Uint8Array | readonly Uint8Array[], signal?: AbortSignal, prefix?: Uint8Array): Promise<void> {
    await this.writeFrames([{ kind, parts, prefix }], signal);
  }

  /**
   * Send frames in order and wait while the write buffer is over the mark. Every `stream.send` becomes its own muxer
   * frame, encrypted and written to the socket on its own, so small frames are packed together (copied) into sends
   * of up to COALESCE_BYTES, and a large frame goes out as its header (with its prefix) and its payload, uncopied.
   */
  async writeFrames(frames: readonly OutFrame[], signal?: AbortSignal): Promise<void> {
    let pack: Uint8Array[] = [];
    let packed = 0;
    const flush = () => {
      if (packed === 0) return;
      this.stream.send(pack.length === 1 ? pack[0] : concat(pack, packed));
      pack = [];
      packed = 0;
    };
    for (const f of frames) {
      const list = f.parts instanceof Uint8Array ? [f.parts] : f.parts;
      let length = f.prefix?.byteLength ?? 0;
      for (const p of list) length += p.byteLength;
      const header = frameHeader(f.kind, length);
      if (header.byteLength + length <= COALESCE_BYTES) {
        if (packed + header.byteLength + length > COALESCE_BYTES) flush();
        pack.push(header);
        if (f.prefix) pack.push(f.prefix);
        for (const p of list) if (p.byteLength > 0) pack.push(p);
        packed += header.byteLength + length;
        continue;
      }
      flush();
      this.stream.send(f.prefix ? concat([header, f.prefix], header.byteLength + f.prefix.byteLength) : header);
      for (const p of list) if (p.byteLength > 0) this.stream.send(p);
    }
    flush();
    if (this.stream.writeBufferLength > this.#writeHigh) await this.#idle(signal);
  }

  #idle(signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const s = this.stream;
      const done = (err?: unknown) => {
        s.removeEventListener('idle', onIdle);
        s.removeEventListener('close', onClose);
        signal?.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onIdle = () => done();
      const onClose = (evt: Event) => done((evt as Event & { error?: Error }).error ?? new StreamEndedError('the stream closed while sending'));
      const onAbort = () => done(abortReason(signal!));
      if (signal?.aborted) return done(abortReason(signal));
      if (s.writeBufferLength === 0) return done();
      s.addEventListener('idle', onIdle);
      s.addEventListener('close', onClose);
      signal?.addEventListener('abort', onAbort);
    });
  }

  /** Close our writing end once everything queued is handed to the muxer. */
  async closeWrite(signal?: AbortSignal): Promise<void> {
    await this.stream.close({ signal });
  }

  abort(err: Error): void {
    this.stream.abort(err);
  }
}
