/**
 * Throughput of FsBlockstore.putMany (not a test): 1 GiB of 1 MiB blocks and 10k x 32 KiB blocks, at several
 * concurrencies, with fsync on, plus fsync off for reference. 'fresh' is a new store (nearly every block creates its
 * shard directory); 'warm' has the shard directories already (a store in use). Blocks are generated and hashed
 * before the clock starts, so the figures are the store's alone. Each trial writes into a new directory; configs
 * run in rotating order and the median of the trials is reported, next to the disk's own sequential-write figure
 * measured in the same run.
 *
 *   UV_THREADPOOL_SIZE=16 node --import tsx adapters/storage/fs-blockstore.bench.ts [dir] [concurrency,...] [trials] [1m,32k]
 *
 * UV_THREADPOOL_SIZE must be set in the environment, as bin/reserve.mjs does (libuv reads it once, at startup).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Pair } from '../../core/blocks/blockstore.ts';
import { cidOf, RAW_CODE } from '../../core/blocks/cid.ts';
import { FsBlockstore } from './fs-blockstore.ts';
import { pseudoRandomBytes } from './test-blocks.ts';

const base = process.argv[2] ?? tmpdir();
const concurrencies = (process.argv[3] ?? '1,4,8,16,32').split(',').map(Number);
const trials = Number(process.argv[4] ?? 3);
const which = (process.argv[5] ?? '1m,32k').split(',');
const MiB = 1024 * 1024;

/** `count` distinct blocks of `size` bytes: one random buffer, each block stamped with its index. */
function makeBlocks(count: number, size: number, salt: number): Pair[] {
  const template = pseudoRandomBytes(0x5eed + salt, size);
  const out: Pair[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = template.slice();
    new DataView(bytes.buffer).setUint32(0, i);
    new DataView(bytes.buffer).setUint32(4, salt);
    out.push({ cid: cidOf(RAW_CODE, bytes), bytes });
  }
  return out;
}

/** One timed putMany into a new store; `warm` pre-creates the blocks' shard directories (a store in use). */
async function once(blocks: Pair[], concurrency: number, fsync: boolean, warm: boolean): Promise<number> {
  const dir = await mkdtemp(join(base, 'reserve-bench-'));
  try {
    const store = await FsBlockstore.open(dir, { concurrency, fsync });
    if (warm) for (const b of blocks) await mkdir(dirname(store.pathOf(b.cid)), { recursive: true });
    execFileSync('sync');
    const t0 = process.hrtime.bigint();
    let n = 0;
    for await (const _ of store.putMany(blocks)) n++;
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (n !== blocks.length) throw new Error(`yielded ${n} of ${blocks.length}`);
    await store.close();
    return s;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The disk's own ceiling in this run: the same bytes as one sequential file, fsynced once at the end. */
async function reference(blocks: Pair[]): Promise<number> {
  const dir = await mkdtemp(join(base, 'reserve-bench-ref-'));
  try {
    execFileSync('sync');
    const t0 = process.hrtime.bigint();
    const fh = await open(join(dir, 'one-file'), 'w');
    for (const b of blocks) await fh.write(b.bytes);
    await fh.datasync();
    await fh.close();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Config {
  label: string;
  concurrency: number;
  fsync: boolean;
  warm: boolean;
  reference?: boolean;
}

/** Every config once per trial, in rotating order, so drift in the disk's speed does not favour any of them. */
async function workload(label: string, count: number, size: number): Promise<void> {
  const blocks = makeBlocks(count, size, salt++);
  const configs: Config[] = [{ label: 'one file, one fsync (disk reference)', concurrency: 0, fsync: true, warm: false, reference: true }];
  for (const warm of [false, true]) {
    for (const c of concurrencies) configs.push({ label: `${warm ? 'warm ' : 'fresh'} fsync=on  concurrency=${String(c).padStart(2)}`, concurrency: c, fsync: true, warm });
  }
  configs.push({ label: 'fresh fsync=off concurrency=16', concurrency: 16, fsync: false, warm: false });
  const times = configs.map((): number[] => []);
  for (let t = 0; t < trials; t++) {
    for (let k = 0; k < configs.length; k++) {
      const i = (k + t) % configs.length;
      const c = configs[i];
      times[i].push(c.reference === true ? await reference(blocks) : await once(blocks, c.concurrency, c.fsync, c.warm));
    }
  }
  const mib = (count * size) / MiB;
  console.log(`\n${label} (${mib.toFixed(0)} MiB), median of ${trials}:`);
  configs.forEach((c, i) => {
    const sorted = [...times[i]].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    const best = sorted[0];
    console.log(
      `  ${c.label.padEnd(38)} median ${(mib / median).toFixed(0).padStart(4)} MiB/s ${(count / median).toFixed(0).padStart(5)} blocks/s` +
        `  best ${(mib / best).toFixed(0).padStart(4)} MiB/s ${(count / best).toFixed(0).padStart(5)} blocks/s` +
        `   (runs: ${times[i].map((x) => (mib / x).toFixed(0)).join(', ')} MiB/s)`,
    );
  });
}

console.log(`UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '(default 4)'}, dir ${base}`);
let salt = 0;
if (which.includes('1m')) await workload('1 GiB of 1 MiB blocks', 1024, MiB);
if (which.includes('32k')) await workload('10k x 32 KiB blocks', 10_000, 32 * 1024);
