/**
 * Crash safety of backups, three ways:
 *   - in process and exhaustive: a store that dies at its k-th write, for every k, with writes landing out of
 *     order; whatever landed never includes a manifest node pointing at a block that did not land, nor a
 *     snapshot node before the last write;
 *   - the states an interrupted repository creation leaves are taken over by the next backup (and nothing else
 *     is);
 *   - with a real process: `reserve backup` (node bin/reserve.mjs, worker threads, FsBlockstore with fsync) is
 *     SIGKILLed at seeded random moments while it backs up a ~30 MB tree that changes between rounds. After
 *     every kill the repository still verifies (no corrupt block, no block missing for any recorded snapshot, no
 *     unreadable manifest), the newest recorded snapshot restores byte-identical to the tree it was taken of,
 *     and the next backup works on top of whatever the kill left. A final uninterrupted backup succeeds.
 *
 * The kill moments are seeded (RESERVE_SEED overrides; RESERVE_RUNS or RESERVE_RUNS_SCALE set the number of kill
 * rounds; the seed is in every failure message) as fractions of the time the first, full backup took on this machine, counted from
 * the first block write in odd rounds and from the start in even ones, so they land before, during and
 * (rarely) after the storing whatever the machine's speed. Where exactly a kill lands still
 * depends on scheduling; every assertion holds wherever it lands. A SIGKILL keeps the page cache, so this shows
 * process-crash safety; power-loss durability rests on the store's fsyncs.
 */
import { watch, type FSWatcher } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { DAG_CBOR_CODE } from '../core/blocks/cid.ts';
import { backup } from '../core/snapshot/backup.ts';
import { inlineChunking } from '../core/snapshot/inline.ts';
import { MemoryBlockstore } from '../adapters/storage/memory-blockstore.ts';
import { LocalSourceTree } from '../adapters/fs/local-tree.ts';
import { LocalRepo } from '../adapters/repo/local-repo.ts';
import { backupDirectory, restoreSnapshot, verifyRepository } from '../adapters/repo/ops.ts';
import { runsFor, seedOf } from './support/fc.ts';
import { fingerprint, fixedClock, prng, removeTree, seededBytes, spawnCli, tempDir } from './support/snapshot-fixtures.ts';

const NAME = 'snapshot-crash: SIGKILLed backups leave a repository that verifies and restores';
const SEED = seedOf(NAME);
const KILL_ROUNDS = runsFor(3);

const BIG_FILES = 9; // ~3.2 MB each
const SMALL_FILES = 36; // 1-12 KB each

describe('crash safety: a crash at every block write (in process, exhaustive)', () => {
  /**
   * The backup engine writes chunks before the nodes that reference them and the snapshot node last. A store
   * that "dies" at its k-th landed put (that put and every later one never land; puts land after a seeded
   * number of event-loop turns, so out of order if the engine does not wait) freezes the state a crash at that
   * point leaves. For every k: every manifest node that did land references only blocks that landed too, and
   * no snapshot node exists unless it was the last write. Deterministic, unlike the kills below.
   */
  class DyingStore extends MemoryBlockstore {
    puts = 0;
    readonly #random: () => number;
    constructor(
      readonly dieAt: number,
      seed: number,
    ) {
      super();
      this.#random = prng(seed);
    }
    /** Writes take a seeded, varying number of event-loop turns, so they may land out of the order issued. */
    override async put(cid: CID, bytes: Uint8Array): Promise<CID> {
      for (let n = this.#random() % 4; n > 0; n--) await new Promise((resolve) => setImmediate(resolve));
      if (this.puts++ >= this.dieAt) throw new Error('crashed');
      return super.put(cid, bytes);
    }
  }

  /** Every CID inside a decoded dag-cbor value. */
  function linksOf(value: unknown, out: CID[] = []): CID[] {
    const cid = CID.asCID(value);
    if (cid) out.push(cid);
    else if (Array.isArray(value)) value.forEach((v) => linksOf(v, out));
    else if (value && typeof value === 'object' && !(value instanceof Uint8Array)) Object.values(value).forEach((v) => linksOf(v, out));
    return out;
  }

  it('every stored manifest node is complete whichever write the crash interrupts', async () => {
    const dir = await tempDir('crash-points');
    try {
      const src = join(dir, 'src');
      await fs.mkdir(join(src, 'a', 'b'), { recursive: true });
      await fs.mkdir(join(src, 'empty'));
      await fs.writeFile(join(src, 'a', 'list'), seededBytes(1, 30_000)); // > INLINE_CHUNKS chunks: a ChunkList
      await fs.writeFile(join(src, 'a', 'b', 'few'), seededBytes(2, 3_000));
      await fs.writeFile(join(src, 'a', 'b', 'copy'), seededBytes(2, 3_000));
      await fs.writeFile(join(src, 'top'), seededBytes(3, 700));
      await fs.symlink('a/list', join(src, 'link'));
      const SMALL = { minSize: 64, avgSize: 256, maxSize: 1024 };
      const run = (store: MemoryBlockstore) =>
        backup({ source: new LocalSourceTree(src), store, chunking: inlineChunking(SMALL), clock: fixedClock(), author: 'p', host: 'h', chunker: SMALL, fileConcurrency: 2 });
      const full = new DyingStore(Number.MAX_SAFE_INTEGER, SEED);
      const done = await run(full);
      const total = full.puts;
      expect(total).toBeGreaterThan(100);
      for (let k = 0; k < total; k++) {
        const store = new DyingStore(k, SEED + k);
        await expect(run(store)).rejects.toThrow('crashed');
        const present = new Set<string>();
        for await (const cid of store.keys()) present.add(cid.toString());
        for await (const cid of store.keys()) {
          if (cid.code !== DAG_CBOR_CODE) continue;
          const node = dagCbor.decode(await store.get(cid)) as { type?: string };
          expect(node.type, `crash at write ${k}: a snapshot node was stored before the last write`).not.toBe('reserve/snapshot');
          for (const link of linksOf(node)) expect(present.has(link.toString()), `crash at write ${k}: ${cid} links to absent ${link}`).toBe(true);
        }
      }
      // And the uninterrupted run's last write is its snapshot.
      await expect(full.has(done.cid)).resolves.toBe(true);
    } finally {
      await removeTree(dir);
    }
  });
});

describe('crash safety: an interrupted repository creation', () => {
  // `LocalRepo.openOrCreate` makes snapshots/, writes reserve-repo.json.tmp, then renames it into place. A kill
  // between those steps leaves exactly these states; the next backup must be able to carry on, not call the
  // directory "not empty and not a repository" forever.
  for (const leftovers of [['snapshots'], ['snapshots', 'reserve-repo.json.tmp']]) {
    it(`a backup into a repository left as ${JSON.stringify(leftovers)} succeeds`, async () => {
      const dir = await tempDir('crash-create');
      try {
        const src = join(dir, 'src');
        const repo = join(dir, 'repo');
        await fs.mkdir(src);
        await fs.writeFile(join(src, 'f'), 'data');
        await fs.mkdir(join(repo, 'snapshots'), { recursive: true });
        if (leftovers.includes('reserve-repo.json.tmp')) await fs.writeFile(join(repo, 'reserve-repo.json.tmp'), '{"format":"reserve-re');
        const chunking = inlineChunking();
        const r = await backupDirectory({ source: src, repo, author: 'proofs', chunking });
        expect(r.stats.files).toBe(1);
        expect(await verifyRepository({ repo, chunking })).toMatchObject({ ok: true, snapshots: 1 });
      } finally {
        await removeTree(dir);
      }
    });
  }
  it('a non-empty directory holding anything else is still refused', async () => {
    const dir = await tempDir('crash-create');
    try {
      await fs.mkdir(join(dir, 'src'));
      await fs.mkdir(join(dir, 'repo', 'snapshots'), { recursive: true });
      await fs.writeFile(join(dir, 'repo', 'thesis.tex'), 'years of work');
      await expect(backupDirectory({ source: join(dir, 'src'), repo: join(dir, 'repo'), author: 'proofs', chunking: inlineChunking() })).rejects.toMatchObject({
        name: 'NotARepoError',
      });
      expect((await fs.readdir(join(dir, 'repo'))).sort()).toEqual(['snapshots', 'thesis.tex']);
    } finally {
      await removeTree(dir);
    }
  });
});

describe('crash safety', () => {
  let base: string;
  let src: string;
  let repo: string;
  const random = prng(SEED);
  const chunking = inlineChunking();
  /** The tree each recorded snapshot was taken of. */
  const expected = new Map<string, string[]>();
  let restores = 0;

  beforeAll(async () => {
    base = await tempDir('crash');
    src = join(base, 'src');
    repo = join(base, 'repo');
    for (let d = 0; d < 3; d++) await fs.mkdir(join(src, `dir ${d}`, 'nested'), { recursive: true });
    await fs.mkdir(join(src, 'empty'));
    for (let i = 0; i < BIG_FILES; i++) await fs.writeFile(bigPath(i), seededBytes(SEED + i, 3_000_000 + (random() % 400_000)));
    for (let i = 0; i < SMALL_FILES; i++) await fs.writeFile(smallPath(i), seededBytes(SEED + 1000 + i, 1000 + (random() % 11_000)));
  });
  afterAll(async () => {
    await chunking.close();
    if (base) await removeTree(base);
  });

  const bigPath = (i: number) => join(src, `dir ${i % 3}`, `video ${i}.mp4`);
  const smallPath = (i: number) => join(src, `dir ${i % 3}`, 'nested', `note ${i}.txt`);

  /** Change about a quarter of the bytes: two big files rewritten, small files added, changed and removed. */
  async function mutate(round: number): Promise<void> {
    for (let k = 0; k < 2; k++) {
      const i = random() % BIG_FILES;
      await fs.writeFile(bigPath(i), seededBytes(SEED * 7 + round * 100 + k, 3_000_000 + (random() % 400_000)));
    }
    await fs.appendFile(smallPath(random() % SMALL_FILES), `round ${round}\n`);
    await fs.writeFile(join(src, 'dir 0', `added in round ${round}`), seededBytes(SEED + round, 5000));
    if (round > 1) await fs.rm(join(src, 'dir 0', `added in round ${round - 1}`));
  }

  async function recorded(): Promise<string[]> {
    const exists = await fs.access(join(repo, 'reserve-repo.json')).then(
      () => true,
      () => false,
    );
    if (!exists) return []; // before the first backup created it (or a kill came first)
    const r = await LocalRepo.open(repo);
    try {
      return (await r.snapshotIds()).map(String);
    } finally {
      await r.close();
    }
  }

  /** The repository verifies and the newest snapshot restores exactly to the tree it was taken of. */
  async function check(label: string): Promise<void> {
    const ids = await recorded();
    for (const id of ids) expect(expected.has(id), `${label}: snapshot ${id} recorded for a tree we know`).toBe(true);
    const target = join(base, `restore-${restores++}`);
    const [report, restored] = await Promise.all([
      verifyRepository({ repo, chunking }),
      restoreSnapshot({ repo, ref: 'latest', target, chunking }),
    ]);
    expect(report, label).toMatchObject({ ok: true, corrupt: [], missing: [], unreadable: [], snapshots: ids.length });
    expect(await fingerprint(target), `${label}: latest snapshot restores byte-identical`).toEqual(expected.get(String(restored.cid)));
    await removeTree(target);
  }

  /**
   * Back up with the real CLI; with `kill`, SIGKILL it `afterMs` after it started, or after its first block write
   * began (a temp file appeared in the store's tmp/), so some kills surely land in the middle of storing.
   */
  async function backupRound(
    label: string,
    kill: { afterMs: number; from: 'spawn' | 'first write' } | null,
  ): Promise<{ ms: number; killed: boolean; wrote: boolean }> {
    const tree = await fingerprint(src);
    const before = new Set(await recorded());
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    let watcher: FSWatcher | undefined;
    let wrote = false;
    const { child, done } = spawnCli(['backup', src, '--repo', repo, '--json']);
    const killLater = () => (timer = setTimeout(() => child.kill('SIGKILL'), kill!.afterMs));
    if (kill?.from === 'spawn') killLater();
    if (kill) {
      watcher = watch(join(repo, 'tmp'), () => {
        if (wrote) return;
        wrote = true;
        watcher?.close();
        if (kill.from === 'first write') killLater();
      });
    }
    const result = await done;
    clearTimeout(timer);
    watcher?.close();
    const ms = performance.now() - started;
    const killed = result.signal === 'SIGKILL';
    if (!killed) expect(result.code, `${label}: ${result.stderr}`).toBe(0);
    const added = (await recorded()).filter((id) => !before.has(id));
    // A kill records at most one snapshot (it may land after the marker was written); a clean exit exactly one.
    expect(added.length, label).toBeLessThanOrEqual(1);
    if (!killed) {
      expect(added).toEqual([JSON.parse(result.stdout).snapshot]);
    }
    for (const id of added) expected.set(id, tree);
    return { ms, killed, wrote };
  }

  it(NAME, async () => {
    // One clean snapshot first; its duration (a full backup) scales the kill moments of the later, smaller ones.
    const { ms: firstMs } = await backupRound('first backup', null);
    await check('after the first backup');

    // Odd rounds: kill a seeded time after the first block write began (storing, manifests, the snapshot record).
    // Even rounds: kill a seeded time after the start (start-up, walking, hashing or storing, wherever it lands).
    const outcomes: string[] = [];
    let killedWhileStoring = 0;
    for (let round = 1; round <= KILL_ROUNDS; round++) {
      await mutate(round);
      const u = (random() % 10_000) / 10_000;
      const kill = round % 2 === 0 ? { from: 'spawn' as const, afterMs: Math.round((0.1 + 0.5 * u) * firstMs) } : { from: 'first write' as const, afterMs: Math.round(0.06 * u * firstMs) };
      const what = `round ${round}: kill ${kill.afterMs} ms after ${kill.from} (seed ${SEED})`;
      const r = await backupRound(what, kill);
      if (r.killed && r.wrote) killedWhileStoring++;
      outcomes.push(`${what}: ${r.killed ? 'killed' : 'finished first'}`);
      await check(`after ${outcomes[outcomes.length - 1]}`);
    }
    // The kills must have interrupted the storing at least once, or this proved little. ("Storing" is seen as a
    // temp file appearing in the store's tmp/, where FsBlockstore writes every block before renaming it.)
    expect(killedWhileStoring, outcomes.join('; ')).toBeGreaterThanOrEqual(1);

    const last = await backupRound('final backup', null);
    expect(last.killed).toBe(false);
    await check('after the final backup');

    // The very first snapshot still restores too.
    const first = [...expected.keys()][0];
    const target = join(base, 'restore-first');
    await restoreSnapshot({ repo, ref: first, target, chunking });
    expect(await fingerprint(target)).toEqual(expected.get(first));
    // A round is a backup and a check (under a second on the development VM): more rounds get more time.
  }, Math.max(60_000, KILL_ROUNDS * 3_000));
});
