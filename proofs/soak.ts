/**
 * `npm run soak:proofs`: every seeded test again, with fresh seeds and more runs than CI makes, to reach what CI's
 * fixed seeds never do. The seeded tests are the fast-check properties and the tests that loop over seeded rounds
 * themselves (the SIGKILL rounds); they take their seed and run count from proofs/support/fc.ts, which reads
 * RESERVE_SEED and RESERVE_RUNS_SCALE. Each test file runs alone under each seed; one line per file, and for a
 * failure its counterexample and the command that replays it. Exit code 1 when anything failed.
 *
 *   npm run soak:proofs                                   3 fresh seeds, 4x each test's runs (about 8 minutes a seed here)
 *   npm run soak:proofs -- --seeds 101,202 --scale 2      these seeds, twice the runs
 *   npm run soak:proofs -- proofs/snapshot-pipeline.test.ts   only these files
 *
 * Found this way, each now pinned as a regression test next to the property that found it: a backup window ending
 * exactly at a chunk boundary (snapshot-pipeline), a serialised holdings index whose levelBits could change unseen
 * (holdings-index), the placement solver stalling at extreme capacities (placement-model), a join folded onto a
 * checkpoint that held a rotation sealed to the joining Box (state-compaction), and two test harnesses: one waited
 * forever for a shutdown a crash had cut short (events-dispatch), one ignored losses reported chunk by chunk
 * (reserve-model).
 */
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const FOLDERS = ['core', 'adapters', 'simulations', 'proofs'];
/** What marks a test file as seeded: it takes its seed or run count from proofs/support/fc.ts. */
const SEEDED = /\b(propertyOptions|runsFor|seedOf)\(/;

const HELP = `usage: npm run soak:proofs -- [options] [test files...]
  --seeds LIST   comma-separated seeds (default: --count fresh random ones, printed)
  --count N      how many fresh seeds when --seeds is not given (default 3)
  --scale K      each test's runs times K (default 4; RESERVE_RUNS_SCALE)
  files          only these test files (default: every seeded test file under ${FOLDERS.join(', ')})`;

interface Options {
  seeds: number[];
  scale: number;
  files: string[];
}

function fail(message: string): never {
  process.stderr.write(`soak:proofs: ${message}\n`);
  process.exit(2);
}

function parse(argv: string[]): Options {
  let seeds: number[] | undefined;
  let count = 3;
  let scale = 4;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => argv[++i] ?? fail(`${a} needs a value`);
    if (a === '--help' || a === '-h') {
      process.stdout.write(HELP + '\n');
      process.exit(0);
    } else if (a === '--seeds') {
      seeds = value()
        .split(',')
        .map((s) => (Number.isInteger(Number(s)) && s.trim() !== '' ? Number(s) : fail(`--seeds takes integers, got ${JSON.stringify(s)}`)));
    } else if (a === '--count') {
      count = Number(value());
      if (!Number.isInteger(count) || count < 1) fail('--count takes a positive integer');
    } else if (a === '--scale') {
      scale = Number(value());
      if (!(scale > 0) || !Number.isFinite(scale)) fail('--scale takes a positive number');
    } else if (a.startsWith('-')) fail(`unknown option ${a}\n${HELP}`);
    else files.push(a);
  }
  const all = seededFiles();
  for (const f of files) if (!all.includes(relative(ROOT, resolve(f)))) fail(`${f} is not a seeded test file (one of: ${all.join(', ')})`);
  return {
    seeds: seeds ?? Array.from({ length: count }, () => randomInt(1, 2 ** 31 - 1)),
    scale,
    files: files.length ? files.map((f) => relative(ROOT, resolve(f))) : all,
  };
}

/** Test files that are seeded themselves or through a module they import (such as proofs/crdt-laws.ts). */
function seededFiles(): string[] {
  const out: string[] = [];
  const seeded = (rel: string): boolean => {
    const text = readFileSync(join(ROOT, rel), 'utf8');
    if (SEEDED.test(text)) return true;
    for (const m of text.matchAll(/from '(\.{1,2}\/[^']+\.ts)'/g)) {
      const dep = relative(ROOT, resolve(ROOT, dirname(rel), m[1]!));
      if (!dep.endsWith('support/fc.ts') && existsSync(join(ROOT, dep)) && SEEDED.test(readFileSync(join(ROOT, dep), 'utf8'))) return true;
    }
    return false;
  };
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const rel = join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.test.ts') && seeded(rel)) out.push(rel);
    }
  };
  for (const f of FOLDERS) walk(f);
  return out.sort();
}

/** One vitest run of one file under one seed: its exit code and the lines worth showing. */
function runFile(file: string, seed: number, scale: number): Promise<{ code: number; seconds: number; tests: string; detail: string[] }> {
  const started = performance.now();
  // The tests' own timeouts are sized for CI's runs; scaled runs get scaled time.
  const timeout = String(Math.ceil(120_000 * scale));
  const child = spawn(process.execPath, [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', file, '--testTimeout', timeout, '--hookTimeout', timeout], {
    cwd: ROOT,
    env: { ...process.env, RESERVE_SEED: String(seed), RESERVE_RUNS_SCALE: String(scale), RESERVE_RUNS: undefined, FORCE_COLOR: '0', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  return new Promise((done) => {
    child.on('close', (code) => {
      const lines = out.split('\n');
      const tests = (lines.find((l) => /^\s+Tests\s/.test(l)) ?? '').trim().replace(/\s+/g, ' ');
      const detail = lines.filter((l) => /(^\s*×|FAIL |Counterexample|cause:|replay:|^\w*Error)/.test(l) && !/^\s*\d+\|/.test(l)).slice(0, 30);
      done({ code: code ?? 1, seconds: (performance.now() - started) / 1000, tests, detail });
    });
  });
}

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  process.stdout.write(`soak:proofs: ${o.files.length} seeded test files, seeds ${o.seeds.join(', ')}, ${o.scale}x the runs CI makes\n`);
  const failures: string[] = [];
  for (const seed of o.seeds) {
    process.stdout.write(`seed ${seed}\n`);
    for (const file of o.files) {
      const r = await runFile(file, seed, o.scale);
      const ok = r.code === 0;
      process.stdout.write(`  ${ok ? 'ok  ' : 'FAIL'} ${file.padEnd(52)} ${r.seconds.toFixed(0).padStart(5)} s  ${r.tests}\n`);
      if (!ok) {
        for (const l of r.detail) process.stdout.write(`       ${l.trim()}\n`);
        const replay = `RESERVE_SEED=${seed} RESERVE_RUNS_SCALE=${o.scale} npx vitest run ${file}`;
        process.stdout.write(`       replay the file: ${replay}\n`);
        failures.push(replay);
      }
    }
  }
  process.stdout.write(failures.length === 0 ? 'soak:proofs: every file passed under every seed\n' : `soak:proofs: ${failures.length} failed:\n${failures.map((f) => `  ${f}\n`).join('')}`);
  process.exitCode = failures.length === 0 ? 0 : 1;
}

await main();
