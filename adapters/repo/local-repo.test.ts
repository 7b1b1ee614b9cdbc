/**
 * Repository format versions: a version 1 repository (every block a file) still restores, and becomes version 2
 * (small blocks in packs) when it is next written to; a version this Reserve does not know is refused clearly.
 */
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compareTrees } from '../fs/compare.ts';
import { FsBlockstore } from '../storage/fs-blockstore.ts';
import { LocalRepo, NotARepoError } from './local-repo.ts';
import { backupDirectory, restoreSnapshot } from './ops.ts';
import { inlineChunking } from '../../core/snapshot/inline.ts';

describe('LocalRepo versions', () => {
  it('reads a version 1 repository, upgrades it on the next backup, refuses an unknown version', async () => {
    const base = await fs.mkdtemp('/tmp/reserve-repo-version-');
    try {
      const src = join(base, 'src');
      await fs.mkdir(join(src, 'd'), { recursive: true });
      for (let i = 0; i < 20; i++) await fs.writeFile(join(src, 'd', `f${i}`), `small file ${i}\n`.repeat(i + 1));
      const repo = join(base, 'repo');
      const chunking = inlineChunking();
      await backupDirectory({ source: src, repo, author: 'tests', chunking });
      // Make it what a version 1 Reserve wrote: the marker says 1, and every block is a file of its own.
      const marker = join(repo, 'reserve-repo.json');
      await fs.writeFile(marker, JSON.stringify({ ...JSON.parse(await fs.readFile(marker, 'utf8')), version: 1 }));
      const store = await FsBlockstore.open(repo);
      const blocks: Array<{ cid: Parameters<FsBlockstore['get']>[0]; bytes: Uint8Array }> = [];
      for await (const cid of store.keys()) blocks.push({ cid, bytes: await store.get(cid) });
      await store.close();
      await fs.rm(join(repo, 'packs'), { recursive: true });
      const files = await FsBlockstore.open(repo, { packBelow: 0 });
      for (const b of blocks) await files.put(b.cid, b.bytes);
      await files.close();

      const out = join(base, 'out1');
      await restoreSnapshot({ repo, ref: 'latest', target: out, chunking });
      expect(await compareTrees(src, out)).toEqual([]);
      const opened = await LocalRepo.open(repo);
      expect(opened.config.version).toBe(1); // reading does not upgrade it
      await opened.close();

      await fs.writeFile(join(src, 'd', 'new'), 'a new small file\n');
      await backupDirectory({ source: src, repo, author: 'tests', chunking });
      expect(JSON.parse(await fs.readFile(marker, 'utf8')).version).toBe(2);
      expect((await fs.readdir(join(repo, 'packs'))).some((n) => n.endsWith('.pack'))).toBe(true);
      const out2 = join(base, 'out2');
      await restoreSnapshot({ repo, ref: 'latest', target: out2, chunking });
      expect(await compareTrees(src, out2)).toEqual([]);

      await fs.writeFile(marker, JSON.stringify({ ...JSON.parse(await fs.readFile(marker, 'utf8')), version: 3 }));
      const err = await LocalRepo.open(repo).catch((e: Error) => e);
      expect(err).toBeInstanceOf(NotARepoError);
      expect((err as Error).message).toMatch(/version 3 repository; this Reserve reads versions 1 and 2/);
    } finally {
      await fs.rm(base, { recursive: true, force: true });
    }
  });
});
