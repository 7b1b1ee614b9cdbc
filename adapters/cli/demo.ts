/**
 * `reserve demo`: what `npm start` runs. By default the flood demo (adapters/demo/flood.ts): four Box processes on
 * 127.0.0.1 form a reserve, the home Box backs up and is lost, a factory-new Box restores everything.
 * `reserve demo --local`: a walk through one Box's data path without a network: make a sample tree, back it
 * up, change a little and back up again (incremental), restore from the repository, prove the restore is
 * byte-identical, verify every block. Both print each step and a verdict, and clean up after themselves.
 */
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { compareTrees } from '../fs/compare.ts';
import { makeSampleTree } from '../fs/sample-tree.ts';
import { backupDirectory, restoreSnapshot, verifyRepository } from '../repo/ops.ts';
import { InvalidInputError } from '../../core/errors.ts';
import { runFloodDemo } from '../demo/flood.ts';
import { EXIT, action, type GlobalOptions } from './output.ts';

const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;

export function register(program: Command): void {
  program
    .command('demo')
    .description('the flood demo: 4 Box processes form a reserve, the home Box is lost, a new Box restores everything')
    .option('--local', 'instead: one Box, no network: back up, change, back up again, restore, compare, verify')
    .option('--size-mib <n>', 'size of the sample tree in MiB', '64')
    .option('--boxes <n>', 'Boxes before the flood (flood demo)', '4')
    .option('--repair-grace <duration>', 'how long a Box may be unreachable before the others re-replicate its blocks (flood demo)', '15s')
    .option('--keep', 'keep the temporary directory for inspection')
    .option('--json', 'print a JSON summary at the end')
    .action(
      action(async (opts: GlobalOptions & { sizeMib: string; keep?: boolean; local?: boolean; boxes: string; repairGrace: string }) => {
        const size = Number(opts.sizeMib);
        if (!(size > 0 && size <= 65536)) throw new InvalidInputError(`--size-mib must be between 1 and 65536, got ${opts.sizeMib}`);
        const log = (s: string) => {
          if (!opts.json) process.stdout.write(s + '\n');
        };
        if (!opts.local) {
          const boxes = Number(opts.boxes);
          if (!(Number.isInteger(boxes) && boxes >= 3 && boxes <= 8)) throw new InvalidInputError(`--boxes must be 3 to 8, got ${opts.boxes}`);
          const result = await runFloodDemo({ sizeMiB: size, boxes, repairGrace: opts.repairGrace, keep: opts.keep, log });
          if (opts.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
          return result.ok ? EXIT.ok : EXIT.failed;
        }
        const base = await fs.mkdtemp(join(tmpdir(), 'reserve-demo-'));
        const home = join(base, 'home');
        const repo = join(base, 'repo');
        const restored = join(base, 'restored');
        const summary: Record<string, unknown> = { dir: base };
        try {
          log(`Reserve local demo in ${base}\n`);
          log(`1. Making a sample tree of about ${size} MiB (photos, videos, documents, duplicates, odd names)...`);
          const made = await makeSampleTree(home, { sizeMiB: size });
          log(`   ${made.files} files, ${mb(made.bytes)}`);

          log('2. First backup...');
          const first = await backupDirectory({ source: home, repo });
          log(`   snapshot ${first.cid}\n   read ${mb(first.stats.bytesRead)}, stored ${mb(first.stats.bytesNew)} (${first.stats.chunksDedup} duplicate chunks stored once), ${first.seconds.toFixed(2)} s`);

          log('3. Editing one document and adding a photo, then an incremental backup...');
          await fs.appendFile(join(home, `Documents/it's "quoted" & spaced.txt`), 'a new line\n');
          await fs.writeFile(join(home, 'Photos/new-photo.jpg'), Buffer.alloc(300_000, 7));
          const second = await backupDirectory({ source: home, repo });
          log(`   snapshot ${second.cid} (parent ${String(second.parent).slice(-12)})\n   read ${mb(second.stats.bytesRead)} of ${mb(second.stats.bytes)}: ${second.stats.filesUnchanged} of ${second.stats.files} files unchanged and not re-read; ${mb(second.stats.bytesNew)} new`);

          log('4. Restoring the latest snapshot into a fresh directory (every block verified)...');
          const r = await restoreSnapshot({ repo, ref: 'latest', target: restored });
          log(`   ${r.stats.files} files, ${mb(r.stats.bytes)} in ${r.seconds.toFixed(2)} s`);

          log('5. Comparing the restore with the original, byte for byte, with modes, times and links...');
          const diffs = await compareTrees(home, restored);
          log(diffs.length === 0 ? '   identical' : diffs.slice(0, 20).map((d) => `   ${d}`).join('\n'));

          log('6. Verifying every block in the repository against its content id...');
          const v = await verifyRepository({ repo });
          log(`   ${v.blocks} blocks, ${v.corrupt.length} corrupt, ${v.missing.length} missing`);

          const ok = diffs.length === 0 && v.ok;
          Object.assign(summary, { ok, first: String(first.cid), second: String(second.cid), differences: diffs, verify: v });
          log(`\nVerdict: ${ok ? 'PASS: every byte came back' : 'FAIL'}`);
          if (opts.json) process.stdout.write(JSON.stringify(summary, null, 2) + '\n');
          return ok ? EXIT.ok : EXIT.failed;
        } finally {
          if (opts.keep) log(`(kept ${base})`);
          else await fs.rm(base, { recursive: true, force: true });
        }
      }),
    );
}
