/**
 * The backup under tight limits: files hold window bytes of a shared budget and pooled window buffers while their
 * chunks are stored, and files that share chunks wait on each other's stores. Any mix of large files, duplicated
 * files (the same chunks stored by several files at once) and small ones, backed up with a window and a budget
 * drawn at random (down to a budget smaller than one window) into a store whose puts finish out of order,
 * completes, stores each chunk once, and restores byte-identical. (A circular wait between files holding windows
 * and waiting for budget hung a pipelined variant of the backup on the 1 GiB benchmark; this caught it.)
 */
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ChunkerParams } from '../core/chunker/fastcdc.ts';
import { backup } from '../core/snapshot/backup.ts';
import { inlineChunking } from '../core/snapshot/inline.ts';
import { restore } from '../core/snapshot/restore.ts';
import { MemoryBlockstore } from '../adapters/storage/memory-blockstore.ts';
import { LocalSourceTree, LocalTargetTree } from '../adapters/fs/local-tree.ts';
import { compareTrees } from '../adapters/fs/compare.ts';
import { propertyOptions } from './support/fc.ts';
import { fixedClock, removeTree, seededBytes, tempDir } from './support/snapshot-fixtures.ts';

const CHUNKER: ChunkerParams = { minSize: 256, avgSize: 1024, maxSize: 4096 };

/** A store whose puts finish after a few event-loop turns (out of order), like a disk's fsyncs. */
class SlowStore extends MemoryBlockstore {
  puts = 0;
  override async put(...args: Parameters<MemoryBlockstore['put']>) {
    this.puts++;
    for (let i = (this.puts * 7919) % 5; i > 0; i--) await new Promise((r) => setImmediate(r));
    return super.put(...args);
  }
}

describe('backup pipeline', () => {
  const NAME = 'backup: large, duplicated and small files under any window and budget complete and restore identical';
  it(NAME, async () => {
    const file = fc.record({ seed: fc.nat(), size: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 5_000, max: 60_000 })), copies: fc.integer({ min: 1, max: 3 }) });
    await fc.assert(
      fc.asyncProperty(fc.array(file, { minLength: 1, maxLength: 12 }), fc.integer({ min: 4096, max: 20_000 }), fc.integer({ min: 1, max: 40_000 }), async (files, window, budget) => {
        const base = await tempDir('pipeline');
        try {
          const src = join(base, 'src');
          await fs.mkdir(src);
          let n = 0;
          for (const f of files) {
            const bytes = seededBytes(f.seed, f.size);
            for (let c = 0; c < f.copies; c++) await fs.writeFile(join(src, `f${n++}`), bytes);
          }
          const store = new SlowStore();
          const b = await backup({
            source: new LocalSourceTree(src),
            store,
            chunking: inlineChunking(CHUNKER),
            clock: fixedClock(),
            author: 'proofs',
            host: 'proofs',
            chunker: CHUNKER,
            windowBytes: window,
            bytesInFlight: budget,
            fileConcurrency: 8,
          });
          expect(b.stats.chunksNew + b.stats.chunksDedup).toBe(b.stats.chunks);
          const dst = join(base, 'dst');
          await restore({ store, target: await LocalTargetTree.prepare(dst), chunking: inlineChunking(CHUNKER), snapshot: b.cid });
          expect(await compareTrees(src, dst)).toEqual([]);
        } finally {
          await removeTree(base);
        }
      }),
      propertyOptions(NAME, { numRuns: 40 }),
    );
  });
});
