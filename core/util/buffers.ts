/**
 * Reusable byte buffers of one capacity. Large windows allocated afresh for every read cost a zero-filled mapping,
 * a page fault per 4 KiB page when filled, and an unmapping when collected; and garbage buffers pile up until the
 * garbage collector notices the external memory. Taking them from a small pool keeps memory flat and those costs
 * away. Buffers may travel to a worker and back (transferred): `give` takes whatever ArrayBuffer came back.
 */
export class BufferPool {
  readonly #free: ArrayBuffer[] = [];

  constructor(
    /** Bytes of every pooled buffer. */
    readonly capacity: number,
    /** Most free buffers kept; more are left to the garbage collector. */
    readonly keep: number,
  ) {
    if (!(capacity >= 1) || !(keep >= 0)) throw new RangeError(`a buffer pool needs capacity >= 1 and keep >= 0, got ${capacity} and ${keep}`);
  }

  /** A view of `length` bytes (at most the capacity) at the start of a pooled buffer. Its contents are stale. */
  take(length: number): Uint8Array {
    if (length > this.capacity) throw new RangeError(`asked for ${length} bytes from a pool of ${this.capacity}-byte buffers`);
    return new Uint8Array(this.#free.pop() ?? new ArrayBuffer(this.capacity), 0, length);
  }

  /** Return a buffer; one of another size, or detached (transferred away), is ignored. */
  give(buffer: ArrayBufferLike): void {
    if (buffer.byteLength === this.capacity && buffer instanceof ArrayBuffer && this.#free.length < this.keep && !this.#free.includes(buffer)) this.#free.push(buffer);
  }
}

/**
 * Hand a buffer's memory back now rather than at the next full garbage collection: its backing store moves to a
 * fresh object that the next (cheap, frequent) young-generation collection frees. Buffers that live across many
 * awaits (blocks in a restore) otherwise reach the old generation, and pile up as external memory until a full
 * collection, tens of MiB later. Only for a buffer the caller owns outright and no one uses any more: any other
 * view of it is detached.
 */
export function discard(bytes: Uint8Array): void {
  const buffer = bytes.buffer;
  if (buffer instanceof ArrayBuffer && bytes.byteOffset === 0 && bytes.byteLength === buffer.byteLength && buffer.byteLength > 0) {
    structuredClone(buffer, { transfer: [buffer] });
  }
}
