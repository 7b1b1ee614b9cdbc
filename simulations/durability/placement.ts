/**
 * Chunk-aware loss for `--chunks C`: place C chunks on N Boxes by balanced rendezvous hashing (every Box has
 * the same weight; a chunk goes to the n Boxes with the highest hash score for it), and precompute, for every
 * set of failed Boxes (a bit mask), whether some chunk is lost. The Monte Carlo then decides "lost?" with one
 * table lookup per failure, and the set-based Markov chain uses the same table.
 *
 * A replicated chunk (1-of-R) is lost when all R of its Boxes are failed; a k-of-n chunk when at least n-k+1
 * of its n Boxes are failed. The table is built from the minimal fatal sets (every (n-k+1)-subset of each
 * distinct placement) closed upwards over supersets, in O(N 2^N).
 */
import { mix32 } from './rng.ts';
import type { Layout } from './model.ts';
import { DurabilityInputError } from './model.ts';

/** Largest N for which the 2^N table is built (1 MiB). */
export const MAX_CHUNK_BOXES = 16;

/** Rendezvous score of a (chunk, Box) pair: a fixed 32-bit hash, the same on every run. */
export function score(chunk: number, box: number): number {
  return mix32(Math.imul(chunk + 1, 0x9e3779b1) ^ mix32(Math.imul(box + 1, 0x85ebca77) ^ 0x51ed270b));
}

/** The Boxes holding `chunk` as a bit mask: the `width` Boxes with the highest scores (ties to the lower index). */
export function placeChunk(chunk: number, boxes: number, width: number): number {
  const topBox: number[] = [];
  const topScore: number[] = [];
  for (let b = 0; b < boxes; b++) {
    const s = score(chunk, b);
    let pos = topBox.length;
    while (pos > 0 && topScore[pos - 1] < s) pos--;
    if (pos >= width) continue;
    topBox.splice(pos, 0, b);
    topScore.splice(pos, 0, s);
    if (topBox.length > width) {
      topBox.pop();
      topScore.pop();
    }
  }
  let mask = 0;
  for (const b of topBox) mask |= 1 << b;
  return mask >>> 0;
}

/** The distinct Box sets that hold at least one of chunks 0..C-1, in first-seen order. */
export function chunkSets(chunks: number, boxes: number, width: number): number[] {
  const seen = new Set<number>();
  for (let c = 0; c < chunks; c++) seen.add(placeChunk(c, boxes, width));
  return [...seen];
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}

/**
 * fatal[mask] = 1 when the Boxes in `mask` being down at once loses some chunk whose Boxes are one of `sets`
 * (each of width n), under a layout that loses a chunk when `lossAt` of its n Boxes are down.
 */
export function fatalTable(boxes: number, sets: readonly number[], lossAt: number): Uint8Array {
  if (boxes > MAX_CHUNK_BOXES) throw new DurabilityInputError(`--chunks works with at most ${MAX_CHUNK_BOXES} Boxes`);
  const size = 1 << boxes;
  const fatal = new Uint8Array(size);
  for (const set of sets) {
    // Every submask of `set` with exactly lossAt bits is a minimal fatal set.
    for (let sub = set; sub > 0; sub = (sub - 1) & set) if (popcount(sub) === lossAt) fatal[sub] = 1;
  }
  for (let bit = 0; bit < boxes; bit++) {
    const b = 1 << bit;
    for (let mask = 0; mask < size; mask++) if (!(mask & b) && fatal[mask]) fatal[mask | b] = 1;
  }
  return fatal;
}

/** The chunk-aware loss table of a layout with C chunks on N Boxes. */
export function layoutFatalTable(layout: Layout, boxes: number, chunks: number): Uint8Array {
  return fatalTable(boxes, chunkSets(chunks, boxes, layout.n), layout.lossAt);
}
