/**
 * Child process for the FsBlockstore crash test (fs-blockstore.crash.test.ts); not a test itself.
 * Usage: node --import tsx fs-crash-child.ts <dir> <seed>
 * Opens the store (which clears what an earlier crash left in tmp/), prints "ready", then putMany's seeded random
 * blocks forever, printing each CID on its own line once putMany has yielded it (that is, once it is durable).
 * stdout is a pipe, which Node writes synchronously on Linux: a printed line is in the pipe before the next write
 * starts, so the parent sees every CID reported before the SIGKILL.
 */
import type { Pair } from '../../core/blocks/blockstore.ts';
import { FsBlockstore } from './fs-blockstore.ts';
import { block, prng } from './test-blocks.ts';

const [dir, seedText] = process.argv.slice(2);
if (dir === undefined || seedText === undefined) throw new Error('usage: fs-crash-child.ts <dir> <seed>');
const seed = Number(seedText);
const random = prng(seed);

function* blocks(): Iterable<Pair> {
  const earlier: Pair[] = [];
  for (let i = 0; ; i++) {
    // Mostly small and medium blocks, some empty, some 1 MiB, and now and then one already stored.
    const r = random();
    if (r < 0.05 && earlier.length > 0) {
      yield earlier[Math.floor(random() * earlier.length)];
      continue;
    }
    const size = r < 0.1 ? 0 : r < 0.2 ? 1024 * 1024 : Math.floor(random() * 256 * 1024);
    const b = block((seed * 1_000_003 + i) | 0, size);
    if (earlier.length < 64) earlier.push(b);
    yield b;
  }
}

const store = await FsBlockstore.open(dir, { concurrency: 8 });
process.stdout.write('ready\n');
for await (const cid of store.putMany(blocks())) process.stdout.write(`${cid.toString()}\n`);
