/** Byte-exact names: map keys, printable forms and path joining without any Unicode normalisation. */
import type { TreePath } from './ports.ts';

/** A string key that maps each byte to one UTF-16 unit: a bijection, so distinct names never collide. */
export function nameKey(name: Uint8Array): string {
  let s = '';
  for (let i = 0; i < name.length; i++) s += String.fromCharCode(name[i]);
  return s;
}

const decoder = new TextDecoder('utf-8', { fatal: false });
const encoder = new TextEncoder();

/** A human-readable rendering of a path (invalid UTF-8 shows as U+FFFD; for messages only). */
export function showPath(path: TreePath): string {
  return path.length === 0 ? '.' : path.map((p) => decoder.decode(p)).join('/');
}

/** Split a user-given relative path ("a/b/c") into components. */
export function parsePath(text: string): Uint8Array[] {
  return text
    .split('/')
    .filter((p) => p !== '' && p !== '.')
    .map((p) => encoder.encode(p));
}
