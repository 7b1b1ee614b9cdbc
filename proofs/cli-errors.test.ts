/**
 * Bad input to the real `reserve` CLI (node bin/reserve.mjs in a child process) gets ONE clear line on stderr,
 * starting `reserve:`, and a non-zero exit, and changes nothing on disk: a missing source directory (no repository
 * is created), a non-empty directory that is not a repository as --repo of a backup, a restore target that exists
 * and is not empty, an unknown snapshot id, a path that is not a repository. (And, for contrast, verify on a
 * healthy repository exits 0.) `--help` works on every subcommand; an unknown command exits 2. A full disk is injected in process
 * through FsBlockstore's `fs` seam: the backup fails with StorageFullError, and the CLI's error wrapper turns that
 * into one line.
 *
 * Spawning the CLI costs about half a second of CPU each, so the cases run as one batch, a few at a time.
 */
import * as fs from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { matchesCid } from '../core/blocks/cid.ts';
import { backup } from '../core/snapshot/backup.ts';
import { inlineChunking } from '../core/snapshot/inline.ts';
import { mapLimit } from '../core/util/limit.ts';
import { FsBlockstore } from '../adapters/storage/fs-blockstore.ts';
import { backupDirectory } from '../adapters/repo/ops.ts';
import { action, CliExit } from '../adapters/cli/output.ts';
import { localBackup, removeTree, runCli, seededBytes, tempDir, type CliResult } from './support/snapshot-fixtures.ts';

let base: string;
let src: string;
let repo: string;

interface Case {
  name: string;
  args: () => string[];
  check: (r: CliResult) => void | Promise<void>;
}

/** One line on stderr, starting `reserve:`, matching `pattern`; a non-zero exit; nothing on stdout. */
function oneLineError(r: CliResult, pattern: RegExp, exit = 2): void {
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^reserve: /);
  expect(lines[0]).toMatch(pattern);
  expect(lines[0]).not.toMatch(/internal error|\bat .*\(.*:\d+:\d+\)/); // no stack trace
  expect(r.code).toBe(exit);
  expect(r.stdout).toBe('');
}

const exists = (p: string) =>
  fs.access(p).then(
    () => true,
    () => false,
  );

const cases: Case[] = [
  {
    name: 'a missing source directory fails and creates no repository',
    args: () => ['backup', join(base, 'no such dir'), '--repo', join(base, 'never-created')],
    check: async (r) => {
      oneLineError(r, /no such dir does not exist/);
      expect(await exists(join(base, 'never-created'))).toBe(false);
    },
  },
  {
    name: 'backing up into a non-empty directory that is not a repository fails and writes nothing there',
    args: () => ['backup', src, '--repo', join(base, 'not-a-repo')],
    check: async (r) => {
      oneLineError(r, /not-a-repo is not empty and is not a Reserve repository/);
      expect(await fs.readdir(join(base, 'not-a-repo'))).toEqual(['precious.txt']);
    },
  },
  {
    name: 'a restore target that exists and is not empty is refused and left alone',
    args: () => ['restore', 'latest', join(base, 'occupied'), '--repo', repo],
    check: async (r) => {
      oneLineError(r, /occupied is not empty; restore into a new or empty directory/);
      expect(await fs.readdir(join(base, 'occupied'))).toEqual(['mine.txt']);
      expect(await fs.readFile(join(base, 'occupied', 'mine.txt'), 'utf8')).toBe('keep me');
    },
  },
  {
    name: 'an unknown snapshot id is refused and no target is created',
    args: () => ['restore', 'bafyreiunknownunknownunknown', join(base, 'target-unknown'), '--repo', repo],
    check: async (r) => {
      oneLineError(r, /no snapshot "bafyreiunknownunknownunknown" in .*reserve snapshots --repo/);
      expect(await exists(join(base, 'target-unknown'))).toBe(false);
    },
  },
  {
    name: 'a repository path that is not a repository: snapshots',
    args: () => ['snapshots', '--repo', join(base, 'not-a-repo')],
    check: (r) => oneLineError(r, /not-a-repo is not a Reserve repository \(no reserve-repo\.json\)/),
  },
  {
    name: 'the good path for contrast: verify on a healthy repository exits 0 and says ok',
    args: () => ['verify', '--repo', repo, '--json'],
    check: (r) => {
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ ok: true, corrupt: [], missing: [], unreadable: [], snapshots: 1 });
      expect(r.stderr).toBe('');
    },
  },
  ...(['backup', 'restore', 'snapshots', 'verify'] as const).map(
    (cmd): Case => ({
      name: `${cmd} --help`,
      args: () => [cmd, '--help'],
      check: (r) => {
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^Usage: reserve ${cmd} `));
        expect(r.stdout).toContain('--repo <path>');
        expect(r.stdout).toContain('--json');
        expect(r.stderr).toBe('');
      },
    }),
  ),
  {
    name: 'an unknown command exits 2 and names it',
    args: () => ['frobnicate', '--repo', repo],
    check: (r) => {
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/unknown command 'frobnicate'/);
      expect(r.stdout).toBe('');
    },
  },
];

const results = new Map<string, CliResult>();

beforeAll(async () => {
  base = await tempDir('cli');
  src = join(base, 'src');
  repo = join(base, 'repo');
  await fs.mkdir(join(src, 'docs'), { recursive: true });
  await fs.writeFile(join(src, 'docs', 'a.txt'), 'a');
  const chunking = inlineChunking();
  await backupDirectory({ source: src, repo, author: 'proofs', chunking });
  await fs.mkdir(join(base, 'not-a-repo'));
  await fs.writeFile(join(base, 'not-a-repo', 'precious.txt'), 'x');
  await fs.mkdir(join(base, 'occupied'));
  await fs.writeFile(join(base, 'occupied', 'mine.txt'), 'keep me');
  // Every case is independent: run them all up front, two at a time (two cores, other suites running too).
  await mapLimit(cases, 2, async (c) => void results.set(c.name, await runCli(c.args())));
}, 120_000);

afterAll(async () => {
  if (base) await removeTree(base);
});

describe('reserve CLI: bad input', () => {
  for (const c of cases) {
    it(c.name, async () => {
      await c.check(results.get(c.name)!);
    });
  }
});

// ---- a full disk ------------------------------------------------------------------------------------------------

function enospc(syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ENOSPC: no space left on device, ${syscall}`), { code: 'ENOSPC', errno: -28, syscall });
}

/** fs.open for FsBlockstore whose files accept `budget` bytes in total, then fail every write with ENOSPC. */
function diskWithRoom(budget: number): typeof fs.open {
  let left = budget;
  return (async (...args: Parameters<typeof fs.open>) => {
    const fh = await fs.open(...args);
    return new Proxy(fh, {
      get(target, prop, receiver) {
        if (prop === 'write') {
          return async (buf: Uint8Array, offset = 0, length = buf.byteLength - offset, position?: number) => {
            if (length > left) {
              const room = Math.max(0, left);
              left = 0;
              if (room === 0) throw enospc('write');
              return target.write(buf, offset, room, position); // a short write, then ENOSPC on the next
            }
            left -= length;
            return target.write(buf, offset, length, position);
          };
        }
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    }) as FileHandle;
  }) as typeof fs.open;
}

describe('a full disk', () => {
  it('a backup into a store that runs out of space fails with StorageFullError and a message saying so', async () => {
    const dir = await tempDir('enospc');
    try {
      await fs.mkdir(join(dir, 'src'));
      for (let i = 0; i < 6; i++) await fs.writeFile(join(dir, 'src', `f${i}`), seededBytes(i, 300_000));
      const store = await FsBlockstore.open(join(dir, 'store'), { fs: { open: diskWithRoom(700_000) }, fsync: false });
      const chunker = { minSize: 16 * 1024, avgSize: 64 * 1024, maxSize: 256 * 1024 };
      const err = await backup(localBackup(join(dir, 'src'), store, chunker)).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.name).toBe('StorageFullError');
      expect(err?.message).toMatch(/^no space left on device in .*store: could not write \d+ bytes for block \w+$/);
      // What was stored is whole: no half-written block is visible, and no temp file is left.
      let stored = 0;
      for await (const cid of store.keys()) {
        expect(matchesCid(cid, await store.get(cid))).toBe(true);
        stored++;
      }
      expect(stored).toBeGreaterThan(0);
      // Writes still in flight when the backup gave up finish or clean up after it: wait for them, no deadline.
      await vi.waitFor(async () => expect(await fs.readdir(join(dir, 'store', 'tmp'))).toEqual([]), { timeout: 10_000, interval: 20 });
      await store.close();

      // The CLI's error wrapper prints exactly that message as one line and exits non-zero.
      const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        const thrown = await action(async () => {
          throw err;
        })().then(
          () => null,
          (e: unknown) => e,
        );
        expect(thrown).toBeInstanceOf(CliExit);
        expect((thrown as CliExit).code).not.toBe(0);
        expect(write.mock.calls.map((c) => String(c[0]))).toEqual([`reserve: ${err!.message}\n`]);
      } finally {
        write.mockRestore();
      }
    } finally {
      await removeTree(dir);
    }
  });
});
