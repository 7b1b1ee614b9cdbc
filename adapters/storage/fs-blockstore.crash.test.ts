/**
 * Crash safety of FsBlockstore with a real process: a child putMany's random blocks forever and is SIGKILLed at
 * seeded random moments, several rounds on the same directory. After each kill, before anything repairs the
 * directory: every file under blocks/ is a CID in its right shard whose bytes hash to it (no half-written block
 * is visible, whatever tmp/ holds). Then after open() (which recovers unsealed packs up to their first torn
 * record): tmp/ is empty, every key() block matches its CID, and every block the child reported as stored (printed
 * after putMany yielded it), packed or in a file of its own, is present.
 *
 * A SIGKILL keeps the page cache, so this shows process-crash atomicity; power-loss durability rests on the
 * fsync discipline described in fs-blockstore.ts. Seed: RESERVE_SEED overrides the fixed one; RESERVE_RUNS or
 * RESERVE_RUNS_SCALE set the number of rounds.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CID } from 'multiformats/cid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matchesCid } from '../../core/blocks/cid.ts';
import { runsFor, seedOf } from '../../proofs/support/fc.ts';
import { blockPath, FsBlockstore } from './fs-blockstore.ts';
import { prng } from './test-blocks.ts';

const NAME = 'fs-blockstore survives SIGKILL during putMany';
const SEED = seedOf(NAME);
const ROUNDS = runsFor(6);
const CHILD = fileURLToPath(new URL('./fs-crash-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Round {
  reported: string[];
  tmpLeft: number;
  /** Reported blocks that live in pack files (the rest are block files). */
  packed: number;
}

/**
 * Start the child, kill it `delayMs` after it reports its first stored block (so every round has something to
 * check, however loaded the machine is), and return the CIDs it reported.
 */
function runChild(dir: string, seed: number, delayMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(seed)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      out += chunk;
      if (timer === undefined && out.startsWith('ready\n') && out.indexOf('\n', 6) !== -1) timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    });
    child.stderr.on('data', (chunk: string) => (err += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer);
      if (signal !== 'SIGKILL') {
        reject(new Error(`crash child ended on its own (code ${code}, signal ${signal}): ${err || out.slice(0, 500)}`));
        return;
      }
      // Only complete lines count: a line cut by the kill was never fully reported.
      const lines = out.split('\n');
      lines.pop();
      resolve(lines.filter((l) => l !== 'ready'));
    });
  });
}

/** Every file under blocks/ as the directory stands, without going through the store. */
async function rawBlockFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(join(dir, 'blocks'), { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  }
  return out;
}

describe('FsBlockstore crash safety (real child process, SIGKILL)', () => {
  let dir: string;
  const rounds: Round[] = [];
  const everReported = new Set<string>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'reserve-fs-crash-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(`${NAME} (seed ${SEED}, ${ROUNDS} rounds)`, async () => {
    const random = prng(SEED);
    for (let round = 0; round < ROUNDS; round++) {
      const delay = Math.floor(random() * 250);
      const where = `seed ${SEED}, round ${round}, killed ${delay} ms after its first stored block`;
      const reported = await runChild(dir, SEED + round, delay);
      for (const c of reported) everReported.add(c);

      // 1. Before any repair: nothing half-written is visible under blocks/.
      for (const path of await rawBlockFiles(dir)) {
        const rel = relative(dir, path);
        const name = rel.split(sep).pop() as string;
        let cid: CID;
        try {
          cid = CID.parse(name);
        } catch {
          throw new Error(`${where}: a file under blocks/ is not a block: ${rel}`);
        }
        expect(blockPath(cid), `${where}: a block in the wrong shard`).toBe(rel);
        expect(matchesCid(cid, await readFile(path)), `${where}: ${rel} does not hash to its CID`).toBe(true);
      }
      const tmpLeft = (await readdir(join(dir, 'tmp'))).length;

      // 2. After open(): tmp/ cleared, every listed block intact, every reported block present.
      const store = await FsBlockstore.open(dir);
      expect(await readdir(join(dir, 'tmp')), where).toEqual([]);
      const keys = new Set<string>();
      for await (const cid of store.keys()) {
        keys.add(cid.toString());
        expect(matchesCid(cid, await store.get(cid)), `${where}: ${cid.toString()} is corrupt`).toBe(true);
      }
      const missing = [...everReported].filter((c) => !keys.has(c));
      expect(missing, `${where}: blocks reported durable but missing`).toEqual([]);
      let packed = 0;
      for (const c of reported) if ((await store.locate(CID.parse(c)))?.path.includes(`${sep}packs${sep}`)) packed++;
      rounds.push({ reported, tmpLeft, packed });
      await store.close();
    }
    // The test means something only if the child got work done in every round.
    for (const r of rounds) expect(r.reported.length).toBeGreaterThan(0);
    // ... and both kinds of storage were crashed into: pack files (small blocks) and block files (1 MiB ones).
    expect(rounds.reduce((a, r) => a + r.packed, 0)).toBeGreaterThan(0);
    expect(rounds.reduce((a, r) => a + r.reported.length - r.packed, 0)).toBeGreaterThan(0);
    console.log(
      `crash rounds (seed ${SEED}): reported ${rounds.map((r) => `${r.reported.length} (${r.packed} packed)`).join(', ')}; tmp files left by the kill ${rounds.map((r) => r.tmpLeft).join(', ')}`,
    );
    // A round is a child process killed and the store checked (under a second): more rounds get more time.
  }, Math.max(60_000, ROUNDS * 3_000));
});
