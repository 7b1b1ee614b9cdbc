/**
 * The trace recorder: every notable thing the simulated world does (a message sent, dropped or delivered, a
 * crash, a fault injected, a Box's log line) is folded into a running 64-bit hash, and the most recent events are
 * kept in a bounded ring for the failure report. Two runs from one seed must produce the same hash; a test that
 * compares hashes proves the whole run replays exactly, not just its outcome.
 *
 * Also the `SimLog` handed to each Box: log lines go into the trace (and so into the hash), never to the console.
 */

export interface TraceEvent {
  /** Ordinal of the event in the whole run (not just the ring). */
  n: number;
  /** Virtual ms since the start of the run. */
  t: number;
  kind: string;
  box: string;
  detail: string;
}

/** One recorded part of an event: text or a number (numbers are hashed by value, without formatting). */
export type TracePart = string | number;

const f64 = new Float64Array(1);
const f64Words = new Uint32Array(f64.buffer);

/**
 * Long strings that recur on every event (Box ids, protocol names) are folded to a 64-bit digest once and the
 * digest is hashed after that: same determinism, a fraction of the per-event cost.
 */
const digests = new Map<string, [number, number]>();

function digestOf(text: string): [number, number] {
  let d = digests.get(text);
  if (d === undefined) {
    let a = 0x811c9dc5;
    let b = 0x9747b28c;
    for (let i = 0; i < text.length; i++) {
      const w = text.charCodeAt(i);
      a = Math.imul(a ^ w, 0x01000193);
      b = Math.imul(b ^ w, 0x5bd1e995);
      b ^= b >>> 15;
    }
    d = [a >>> 0, b >>> 0];
    if (digests.size < 100_000) digests.set(text, d);
  }
  return d;
}

/** 64-bit running hash as two 32-bit lanes (FNV-1a and a murmur-style multiply), cheap enough for every event. */
class RunningHash {
  #h1 = 0x811c9dc5;
  #h2 = 0x9747b28c;

  #word(w: number): void {
    this.#h1 = Math.imul(this.#h1 ^ w, 0x01000193);
    const h2 = Math.imul(this.#h2 ^ w, 0x5bd1e995);
    this.#h2 = h2 ^ (h2 >>> 15);
  }

  add(part: TracePart): void {
    if (typeof part === 'number') {
      f64[0] = part;
      this.#word(f64Words[0]);
      this.#word(f64Words[1]);
    } else if (part.length > 16) {
      const [a, b] = digestOf(part);
      this.#word(a);
      this.#word(b);
    } else {
      for (let i = 0; i < part.length; i++) this.#word(part.charCodeAt(i));
    }
    // A separator no UTF-16 code unit equals, so ("ab","c") and ("a","bc") differ.
    this.#word(0x1ffff);
  }

  hex(): string {
    return (this.#h1 >>> 0).toString(16).padStart(8, '0') + (this.#h2 >>> 0).toString(16).padStart(8, '0');
  }
}

export class TraceRecorder {
  readonly capacity: number;
  // The ring as parallel arrays: recording allocates nothing but what the caller already built.
  readonly #t: Float64Array;
  readonly #kind: string[];
  readonly #box: string[];
  readonly #parts: TracePart[][];
  #count = 0;
  readonly #hash = new RunningHash();
  readonly #time: () => number;

  /** `time` reads virtual ms; `capacity` bounds the ring (the hash covers every event regardless). */
  constructor(time: () => number, capacity = 2000) {
    this.#time = time;
    this.capacity = Math.max(1, capacity);
    this.#t = new Float64Array(this.capacity);
    this.#kind = new Array<string>(this.capacity).fill('');
    this.#box = new Array<string>(this.capacity).fill('');
    this.#parts = [0, 1, 2].map(() => new Array<TracePart>(this.capacity).fill(''));
  }

  /** Events recorded so far. */
  get count(): number {
    return this.#count;
  }

  /** Record one event: what happened (`kind`), to or by which Box, and up to three details. */
  record(kind: string, box: string, detail: TracePart = '', extra: TracePart = '', more: TracePart = ''): void {
    const t = this.#time();
    const h = this.#hash;
    h.add(t);
    h.add(kind);
    h.add(box);
    h.add(detail);
    h.add(extra);
    h.add(more);
    const i = this.#count % this.capacity;
    this.#t[i] = t;
    this.#kind[i] = kind;
    this.#box[i] = box;
    this.#parts[0][i] = detail;
    this.#parts[1][i] = extra;
    this.#parts[2][i] = more;
    this.#count++;
  }

  /** 16 hex digits identifying the whole sequence of events so far. */
  hash(): string {
    return this.#hash.hex();
  }

  /** The last `n` events (oldest first). */
  tail(n = this.capacity): TraceEvent[] {
    const kept = Math.min(this.#count, this.capacity, n);
    const out: TraceEvent[] = [];
    for (let k = this.#count - kept; k < this.#count; k++) {
      const i = k % this.capacity;
      const detail = [this.#parts[0][i], this.#parts[1][i], this.#parts[2][i]].filter((p) => p !== '').join(' ');
      out.push({ n: k, t: this.#t[i], kind: this.#kind[i], box: this.#box[i], detail });
    }
    return out;
  }

  /** One line per event, for failure reports. */
  format(n = 50): string {
    return this.tail(n)
      .map((e) => `${formatMs(e.t).padStart(12)} ${e.box.padEnd(8)} ${e.kind}${e.detail === '' ? '' : ` ${e.detail}`}`)
      .join('\n');
  }
}

/** Virtual time as a compact human string: 950ms, 12.5s, 3m20s, 4h02m, 2d03h. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms * 1000) / 1000}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Math.round(s * 1000) / 1000}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, '0')}h`;
}

/** Structured fields rendered deterministically (sorted keys; bytes, bigints and errors made printable). */
export function formatFields(fields: Record<string, unknown> | undefined): string {
  if (fields === undefined) return '';
  const keys = Object.keys(fields).sort();
  return keys.map((k) => `${k}=${formatValue(fields[k])}`).join(' ');
}

function formatValue(v: unknown): string {
  if (v instanceof Uint8Array) return `<${v.byteLength} bytes>`;
  if (v instanceof Error) return `${v.name}(${JSON.stringify(v.message)})`;
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return /^[\w./:@-]*$/.test(v) && v !== '' ? v : JSON.stringify(v);
  if (v === null || typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `[${v.map(formatValue).join(',')}]`;
  if (typeof (v as { toString?: unknown }).toString === 'function' && (v as object).toString !== Object.prototype.toString) return String(v);
  return `{${formatFields(v as Record<string, unknown>)}}`;
}

/** The logger port a simulated Box gets. Lines are trace events (part of the hash), tagged with the Box id. */
export interface SimLog {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export function traceLog(trace: TraceRecorder, box: string, alive: () => boolean = () => true): SimLog {
  const line =
    (level: string) =>
    (message: string, fields?: Record<string, unknown>): void => {
      if (!alive()) return;
      const f = formatFields(fields);
      trace.record(`log.${level}`, box, f === '' ? message : `${message} ${f}`);
    };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}
