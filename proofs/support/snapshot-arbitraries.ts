/**
 * fast-check arbitraries for directory trees (see TreeSpec in snapshot-fixtures.ts): raw-byte names that have broken
 * backup tools before, modes with set-id and sticky bits, times before 1970 and after 2038, file sizes around the
 * chunker's edges and on its content-defined boundaries, symlinks with odd targets, hard links, empty directories.
 */
import fc from 'fast-check';
import { FastCdc, type ChunkerParams } from '../../core/chunker/fastcdc.ts';
import { nameKey, seededBytes, type Content, type Node, type TreeSpec } from './snapshot-fixtures.ts';

export const AS_ROOT = process.getuid?.() === 0;
export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

export const NFC = 'caf\u00e9 r\u00e9sum\u00e9';
export const NFD = 'cafe\u0301 re\u0301sume\u0301';
/** Names that have broken backup tools before. */
export const SPECIAL_NAMES: Uint8Array[] = [
  enc('with space'),
  enc(' leading and trailing '),
  enc('quote"double'),
  enc("quote'single"),
  enc('new\nline'),
  enc('back\\slash'),
  enc('tab\tcr\r'),
  enc(NFC),
  enc(NFD),
  enc('.hidden'),
  enc('...'),
  enc('-dash'),
  enc('*glob?[x]{a,b}'),
  enc('$HOME ~ %s %n'),
  enc('\u{1F600} emoji'),
  enc('a'.repeat(255)),
  enc('\u00e9'.repeat(127) + 'x'), // 255 bytes of two-byte UTF-8
  Uint8Array.from([0xff, 0xfe, 0x80]), // not UTF-8 at all
  Uint8Array.from([0x41, 0xc3, 0x28, 0x42]), // truncated UTF-8 sequence
  Uint8Array.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate encoded as UTF-8 (invalid)
  Uint8Array.from({ length: 255 }, (_, i) => 0x80 + (i % 0x7f)), // 255 bytes, none UTF-8
];

/** A legal single path component: 1-255 bytes, no NUL, no '/', not '.' or '..'. */
export const nameArb: fc.Arbitrary<Uint8Array> = fc
  .oneof(
    { weight: 3, arbitrary: fc.constantFrom(...SPECIAL_NAMES) },
    { weight: 4, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 24, min: 1, max: 255 }) },
    { weight: 3, arbitrary: fc.stringMatching(/^[a-z0-9._ -]{1,12}$/).map(enc) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 255, maxLength: 255, min: 1, max: 255 }) },
  )
  .map((n) => n.map((b) => (b === 0x2f ? 0x5f : b)))
  .filter((n) => !(n.length === 1 && n[0] === 0x2e) && !(n.length === 2 && n[0] === 0x2e && n[1] === 0x2e));

/** Permission bits incl. set-id and sticky; without root, the owner keeps read (and search on directories). */
export const modeArb = (kind: 'file' | 'dir'): fc.Arbitrary<number> =>
  fc
    .oneof(
      kind === 'file'
        ? fc.constantFrom(0o644, 0o600, 0o444, 0o400, 0o755, 0o777, 0o000, 0o4755, 0o2755, 0o1644, 0o6777, 0o7777)
        : fc.constantFrom(0o755, 0o700, 0o555, 0o500, 0o777, 0o1777, 0o2755, 0o3775, 0o000, 0o7777),
      fc.integer({ min: 0, max: 0o7777 }),
    )
    .map((m) => (AS_ROOT ? m : (m & 0o3777) | (kind === 'file' ? 0o400 : 0o700)));

export const US = 1_000_000n;
/** Microseconds since the epoch: before 1970 (to 1901, ext4's floor), after (to 2100), and around zero. */
export const timeArb: fc.Arbitrary<bigint> = fc.oneof(
  fc.bigInt({ min: -2_147_483_648n * US + 1n, max: -1n }),
  fc.bigInt({ min: 0n, max: 4_102_444_800n * US }),
  fc.constantFrom(0n, 1n, -1n, 999_999n, -999_999n, US, -US, -1_500_001n, 1_700_000_000_123_456n, -86_400_000_001n),
);

/** File sizes around the chunker's edges, small random ones, and files of more than INLINE_CHUNKS chunks. */
export function contentArb(p: ChunkerParams): fc.Arbitrary<Content> {
  const { minSize: min, avgSize: avg, maxSize: max } = p;
  const edgeSize = fc.constantFrom(0, 1, 2, min - 1, min, min + 1, avg - 1, avg, avg + 1, max - 1, max, max + 1, 2 * max, 2 * max + 1, 3 * max - 1);
  const random = (size: fc.Arbitrary<number>) => fc.tuple(fc.nat(), size).map(([seed, n]): Content => ({ kind: 'random', seed, size: n }));
  // A size that ends exactly on a content-defined boundary of the file's own bytes (or one byte either side).
  const onBoundary = fc.tuple(fc.nat(), fc.nat(), fc.constantFrom(-1, 0, 0, 1)).map(([seed, k, delta]): Content => {
    const ends = new FastCdc(p).boundaries(seededBytes(seed, 8 * max), false);
    return { kind: 'random', seed, size: Math.max(0, ends[k % ends.length] + delta) };
  });
  return fc.oneof(
    { weight: 4, arbitrary: random(edgeSize) },
    { weight: 3, arbitrary: random(fc.integer({ min: 0, max: 4 * max })) },
    { weight: 2, arbitrary: onBoundary },
    { weight: 1, arbitrary: random(fc.integer({ min: 30_000, max: 40_000 })) }, // ~100-140 chunks: a ChunkList
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 5 * max }).map((size): Content => ({ kind: 'zeros', size })) },
    { weight: 1, arbitrary: fc.constantFrom<Content>({ kind: 'random', seed: 7, size: 3 * max }) }, // shared content: dedup
  );
}

export const symlinkTargetArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constantFrom(
    enc('/nonexistent/dangling/target'),
    enc('../up/../and/over'),
    enc('sibling'),
    enc('/'),
    enc('.'),
    enc('/etc/hostname'),
    enc(`odd "target" 'with' \\ and\nnewline`),
    enc(NFD),
    Uint8Array.from([0xff, 0x2f, 0xfe, 0x20]),
  ),
  fc.uint8Array({ minLength: 1, maxLength: 120, min: 1, max: 255 }),
);

type Unnamed = Node extends infer N ? (N extends Node ? Omit<N, 'name'> : never) : never;

export function nodesArb(p: ChunkerParams, depth: number, maxChildren: number): fc.Arbitrary<Node[]> {
  const file = fc.record({ kind: fc.constant('file' as const), content: contentArb(p), mode: modeArb('file'), mtimeUs: timeArb });
  const symlink = fc.record({ kind: fc.constant('symlink' as const), target: symlinkTargetArb, mtimeUs: timeArb });
  const choices: Array<fc.WeightedArbitrary<Unnamed>> = [
    { weight: 5, arbitrary: file },
    { weight: 2, arbitrary: symlink },
  ];
  if (depth > 0) {
    const dir = fc.record({ kind: fc.constant('dir' as const), mode: modeArb('dir'), mtimeUs: timeArb, children: nodesArb(p, depth - 1, maxChildren) });
    choices.push({ weight: 2, arbitrary: dir });
  }
  return fc
    .uniqueArray(fc.tuple(nameArb, fc.oneof(...choices)), { maxLength: maxChildren, selector: ([n]) => nameKey(n) })
    .map((pairs) => pairs.map(([name, e]) => ({ ...e, name }) as Node));
}

export function treeArb(p: ChunkerParams): fc.Arbitrary<TreeSpec> {
  return fc.record({
    root: fc.record({ mode: modeArb('dir'), mtimeUs: timeArb, children: nodesArb(p, 2, 6) }),
    hardlinks: fc.array(fc.record({ file: fc.nat(), dir: fc.nat(), name: nameArb }), { maxLength: 3 }),
  });
}

