/**
 * Bounds-checked byte reading and growable byte writing for the holdings formats (the persisted index and the
 * comparison protocol). Integers are unsigned LEB128 varints up to 2^53 - 1 and must be minimally encoded, so every
 * value has exactly one encoding and a decoder never has to guess. Every read past the end, overlong or
 * non-minimal varint, or value over its stated maximum goes through the reader's `fail`, which returns the named
 * error the caller wants (a corrupt index and a malformed message are different failures).
 */

export class ByteWriter {
  #buf: Uint8Array;
  #pos = 0;

  constructor(initial = 256) {
    this.#buf = new Uint8Array(Math.max(16, initial));
  }

  get length(): number {
    return this.#pos;
  }

  #reserve(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
  }

  u8(v: number): void {
    this.#reserve(1);
    this.#buf[this.#pos++] = v;
  }

  /** An unsigned integer in [0, 2^53 - 1]. */
  varint(v: number): void {
    this.#reserve(8);
    while (v >= 0x80) {
      this.#buf[this.#pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.#buf[this.#pos++] = v;
  }

  bytes(b: Uint8Array, start = 0, end = b.length): void {
    const n = end - start;
    this.#reserve(n);
    this.#buf.set(b.subarray(start, end), this.#pos);
    this.#pos += n;
  }

  /** A fresh array holding exactly what was written. */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#pos);
  }
}

/** Bytes a varint of `v` takes. */
export function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 0x80);
    n++;
  }
  return n;
}

export class ByteReader {
  readonly #buf: Uint8Array;
  readonly #fail: (message: string) => Error;
  #pos = 0;

  constructor(buf: Uint8Array, fail: (message: string) => Error) {
    this.#buf = buf;
    this.#fail = fail;
  }

  get position(): number {
    return this.#pos;
  }

  get remaining(): number {
    return this.#buf.length - this.#pos;
  }

  fail(message: string): Error {
    return this.#fail(`${message} (at byte ${this.#pos})`);
  }

  u8(): number {
    if (this.#pos >= this.#buf.length) throw this.fail('unexpected end of input');
    return this.#buf[this.#pos++]!;
  }

  /** A minimally encoded varint no greater than `max`. */
  varint(max = Number.MAX_SAFE_INTEGER, what = 'integer'): number {
    let v = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (i >= 8) throw this.fail(`${what}: varint longer than 8 bytes`);
      const b = this.u8();
      v += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) {
        if (b === 0 && i > 0) throw this.fail(`${what}: varint is not minimally encoded`);
        break;
      }
      scale *= 0x80;
    }
    if (v > max) throw this.fail(`${what} ${v} exceeds ${max}`);
    return v;
  }

  /** The next `n` bytes, as a view (no copy). */
  bytes(n: number): Uint8Array {
    if (n > this.remaining) throw this.fail(`expected ${n} more bytes, only ${this.remaining} left`);
    const out = this.#buf.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return out;
  }

  /** Skip `n` bytes, returning the offset where they start. */
  skip(n: number): number {
    if (n > this.remaining) throw this.fail(`expected ${n} more bytes, only ${this.remaining} left`);
    const at = this.#pos;
    this.#pos += n;
    return at;
  }

  /** The underlying buffer (for readers that index into it after `skip`). */
  get buffer(): Uint8Array {
    return this.#buf;
  }

  /** Fail unless every byte was consumed. */
  end(): void {
    if (this.#pos !== this.#buf.length) throw this.fail(`${this.remaining} trailing bytes`);
  }
}
