/**
 * The message format between LocalSourceTree and its walk worker (walk-worker.ts).
 *
 * A listing is one buffer, little-endian, per entry: u16 name length, the name's bytes, then ENTRY_FIXED - 2 bytes:
 *   +0 u8 kind (0 file, 1 dir, 2 symlink, 3 other)    +1 u8 other kind (0 FIFO, 1 socket, 2 char, 3 block, 4 ?)
 *   +2 u32 mode & 0o7777   +6 u32 uid   +10 u32 gid   +14 u32 nlink   +18 f64 size
 *   +26 i64 mtime ns   +34 i64 ctime ns   +42 u64 dev   +50 u64 ino
 *   +58 f64 mtime seconds   +66 u32 mtime nanoseconds   +70 f64 ctime seconds   +78 u32 ctime nanoseconds
 *   +82 f64 ino as a number (-1 when beyond 2^53)
 * The seconds/nanoseconds pairs are computed by the worker, so the main thread needs no BigInt arithmetic for them.
 */
/** `path`: the directory's path bytes as a latin1 string (cheaper to post than a Buffer, which clones its pool).
 * `children`: also list its subdirectories, in the same reply (one message for a directory and its children). */
export type WalkRequest = { id: number; path: string; children: boolean };

export type Listing = { ok: true; buffer: ArrayBuffer; count: number } | { ok: false; code?: string; syscall?: string; message: string };

export type WalkResponse = { id: number; listing: Listing; children?: Array<{ name: string; listing: Listing }> };

export const ENTRY_FIXED = 2 + 90;
