/** Sizes ("500G", "2TiB", "1048576") and durations ("30s", "1h", "1500ms") as people type them. */
import { InvalidInputError } from '../../core/errors.ts';

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  p: 1e15,
  pb: 1e15,
  ki: 2 ** 10,
  kib: 2 ** 10,
  mi: 2 ** 20,
  mib: 2 ** 20,
  gi: 2 ** 30,
  gib: 2 ** 30,
  ti: 2 ** 40,
  tib: 2 ** 40,
  pi: 2 ** 50,
  pib: 2 ** 50,
};

/** Bytes: a number with an optional unit (K, M, G, T, P decimal; Ki, Mi, Gi, Ti, Pi binary; B optional). */
export function parseSize(text: string, what = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(text);
  const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidInputError(`${what} ${JSON.stringify(text)} is not a size: use bytes or a unit, e.g. 500G, 2T, 750GiB`);
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new InvalidInputError(`${what} ${JSON.stringify(text)} is out of range`);
  return bytes;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds: a number with a unit (ms, s, m, h, d), or plain milliseconds. */
export function parseDuration(text: string, what = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/.exec(text);
  const unit = m ? (m[2] === '' ? 1 : DURATION_UNITS[m[2]]) : undefined;
  if (!m || unit === undefined) throw new InvalidInputError(`${what} ${JSON.stringify(text)} is not a duration: use e.g. 30s, 15m, 1h, 2d`);
  const ms = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(ms) || ms < 0) throw new InvalidInputError(`${what} ${JSON.stringify(text)} is out of range`);
  return ms;
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}
