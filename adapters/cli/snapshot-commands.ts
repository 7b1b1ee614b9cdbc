/**
 * `reserve backup | restore | snapshots | verify`. With `--data <dir>` they act on a Box of a reserve (through its
 * daemon when one runs, else in this process: box-session.ts); with `--repo <path>` on a single-Box local
 * repository (no network; what `npm run bench` measures).
 */
import { resolve as resolvePath } from 'node:path';
import type { Command } from 'commander';
import type { BackupReport, DaemonApi, RestoreReport, SnapshotView } from '../daemon/api.ts';
import { LocalRepo } from '../repo/local-repo.ts';
import { backupDirectory, restoreSnapshot, verifyRepository } from '../repo/ops.ts';
import { EXIT, action, emit, progressBar, type GlobalOptions } from './output.ts';
import { scanSize } from '../fs/scan.ts';
import { InvalidInputError } from '../../core/errors.ts';

/** The Box runtime loads only for --data (the local repository path stays light). */
const withBox: typeof import('./box-session.ts').withBox = async (dataDir, fn) => (await import('./box-session.ts')).withBox(dataDir, fn);

/** Exactly one of --repo (a local repository) and --data (a Box). */
function repoOrData(opts: { repo?: string; data?: string }): { repo: string } | { data: string } {
  if (opts.repo !== undefined && opts.data !== undefined) throw new InvalidInputError('give either --repo <path> (a local repository) or --data <dir> (a Box), not both');
  if (opts.repo !== undefined) return { repo: opts.repo };
  if (opts.data !== undefined) return { data: opts.data };
  throw new InvalidInputError('give --data <dir> (a Box of a reserve) or --repo <path> (a local repository)');
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const rate = (bytes: number, secs: number) => `${(bytes / 1e6 / Math.max(secs, 1e-6)).toFixed(0)} MB/s`;

interface RepoOpts extends GlobalOptions {
  repo: string;
}

interface TargetOpts extends GlobalOptions {
  repo?: string;
  data?: string;
}

const WAIT_FOR_PROTECTION_MS = 30 * 60_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Poll the Box until `root` is protected (at least the minimum number of copies of every chunk). */
async function waitProtected(api: DaemonApi, root: string, timeoutMs = WAIT_FOR_PROTECTION_MS): Promise<SnapshotView | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = (await api.status()).snapshots.find((x) => x.root === root);
    if (s?.protection.protected) return s;
    if (Date.now() > deadline) return s;
    await sleep(1000);
  }
}

function protectionLine(s: SnapshotView): string {
  const p = s.protection;
  return `${p.atTarget} of ${p.chunks} chunks at ${p.target} copies, ${p.belowTarget} below target, ${p.belowMinimum} below the minimum of ${p.minimum}, ${p.lost} lost${p.unknown ? `, ${p.unknown} unknown` : ''}`;
}

export function register(program: Command): void {
  program
    .command('backup')
    .description('back up a directory: into the reserve through a Box (--data), or into a local repository (--repo)')
    .argument('<dir>', 'the directory to back up')
    .option('--data <dir>', "the Box's data dir (its daemon does the work when it runs)")
    .option('--repo <path>', 'a local repository (created if the path is new or an empty directory)')
    .option('--wait', 'with --data: wait until the snapshot is protected (the minimum number of copies of every chunk)')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (dir: string, opts: TargetOpts & { wait?: boolean }) => {
        const where = repoOrData(opts);
        if ('data' in where) return backupToBox(dir, where.data, opts);
        const bar = progressBar(opts, 'backup');
        if (!opts.json && process.stderr.isTTY) bar.total?.(await scanSize(dir).catch(() => 0));
        const warnings: string[] = [];
        const r = await backupDirectory({ source: dir, repo: where.repo, progress: bar, onWarning: (w) => warnings.push(`${w.path}: ${w.message}`) }).finally(() => bar.stop());
        const s = r.stats;
        emit(
          opts,
          () =>
            [
              `snapshot ${r.cid}`,
              `  parent   ${r.parent ?? '(none: first snapshot of this directory)'}`,
              `  files    ${s.files} (${s.filesUnchanged} unchanged, not re-read), ${s.dirs} dirs, ${s.symlinks} symlinks, ${s.skipped} skipped`,
              `  read     ${mb(s.bytesRead)} of ${mb(s.bytes)}`,
              `  stored   ${mb(s.bytesNew)} new in ${s.chunksNew} chunks; ${s.chunksDedup} chunks deduplicated`,
              `  time     ${r.seconds.toFixed(2)} s, ${rate(s.bytesRead, r.seconds)}`,
              ...warnings.map((w) => `  warning: ${w}`),
            ].join('\n'),
          { snapshot: String(r.cid), parent: r.parent ? String(r.parent) : null, stats: s, seconds: r.seconds, mbPerSecond: s.bytesRead / 1e6 / r.seconds, warnings },
        );
      }),
    );

  program
    .command('restore')
    .description('restore a snapshot (or a part of it) into a new or empty directory, verifying every block')
    .argument('<snapshot>', 'snapshot id, a unique prefix or suffix of one, "latest", or an ISO time (--data)')
    .argument('<target>', 'where to restore (must not exist, or be empty; a target an interrupted restore of the same snapshot left is resumed)')
    .option('--data <dir>', "a Box's data dir: restore from whichever Boxes of the reserve hold the blocks")
    .option('--repo <path>', 'a local repository')
    .option('--path <subpath>', 'restore only this file or directory of the snapshot')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (ref: string, target: string, opts: TargetOpts & { path?: string }) => {
        const where = repoOrData(opts);
        if ('data' in where) return restoreFromBox(ref, target, where.data, opts);
        const bar = progressBar(opts, 'restore');
        const r = await restoreSnapshot({ repo: where.repo, ref, target, subpath: opts.path, progress: bar }).finally(() => bar.stop());
        const s = r.stats;
        emit(
          opts,
          () =>
            [
              `restored ${r.cid} into ${target}`,
              `  files    ${s.files}, ${s.dirs} dirs, ${s.symlinks} symlinks, ${s.hardlinks} hard links`,
              `  bytes    ${mb(s.bytes)} in ${s.chunks} verified chunks`,
              ...(r.resumed ? [`  resumed  an interrupted restore: ${s.filesResumed} files (${mb(s.bytesResumed)}) already there were verified and kept`] : []),
              `  time     ${r.seconds.toFixed(2)} s, ${rate(s.bytes, r.seconds)}`,
            ].join('\n'),
          { snapshot: String(r.cid), target, stats: s, resumed: r.resumed, seconds: r.seconds, mbPerSecond: s.bytes / 1e6 / r.seconds },
        );
      }),
    );

  program
    .command('snapshots')
    .description("list the snapshots, oldest first: the reserve's catalog with each one's protection (--data), or a local repository's (--repo)")
    .option('--data <dir>', "a Box's data dir")
    .option('--repo <path>', 'a local repository')
    .option('--json', 'print the list as JSON')
    .action(
      action(async (opts: TargetOpts) => {
        const where = repoOrData(opts);
        if ('data' in where) return listBoxSnapshots(where.data, opts);
        const repo = await LocalRepo.open(where.repo);
        try {
          const all = await repo.snapshots();
          emit(
            opts,
            () =>
              all.length === 0
                ? 'no snapshots yet'
                : [
                    'ID            TIME (UTC)           FILES      SIZE        PARENT        SOURCE',
                    ...all.map((s) =>
                      [
                        s.id.slice(-12).padEnd(13),
                        new Date(s.node.time).toISOString().slice(0, 19).replace('T', ' ').padEnd(20),
                        String(s.node.stats.files).padStart(6),
                        mb(s.node.stats.bytes).padStart(12),
                        '  ' + (s.node.parent ? String(s.node.parent).slice(-12) : '-').padEnd(13),
                        s.node.source,
                      ].join(' '),
                    ),
                    '(ids show their last 12 characters; restore takes that, the full id (see --json) or "latest")',
                  ].join('\n'),
            all.map((s) => ({ id: s.id, time: new Date(s.node.time).toISOString(), author: s.node.author, host: s.node.host, source: s.node.source, parent: s.node.parent ? String(s.node.parent) : null, stats: s.node.stats })),
          );
        } finally {
          await repo.close();
        }
      }),
    );

  program
    .command('verify')
    .description('re-hash every block against its content id and check every snapshot is complete; exit 1 if not')
    .requiredOption('--repo <path>', 'the repository')
    .option('--json', 'print the report as JSON')
    .action(
      action(async (opts: RepoOpts) => {
        const bar = progressBar(opts, 'verify');
        const r = await verifyRepository({ repo: opts.repo, progress: bar }).finally(() => bar.stop());
        emit(
          opts,
          () =>
            [
              `${r.ok ? 'ok' : 'PROBLEMS FOUND'}: ${r.blocks} blocks (${mb(r.bytes)}) re-hashed in ${r.seconds.toFixed(2)} s (${rate(r.bytes, r.seconds)}), ${r.snapshots} snapshots walked`,
              ...r.corrupt.map((c) => `  corrupt block ${c}`),
              ...r.missing.map((m) => `  missing block ${m.cid} (needed by snapshot ${m.snapshot})`),
              ...r.unreadable.map((u) => `  unreadable manifest block ${u.cid} (snapshot ${u.snapshot}): ${u.reason}`),
            ].join('\n'),
          r,
        );
        return r.ok ? EXIT.ok : EXIT.failed;
      }),
    );
}

// ------------------------------------------------------------------------------------------------ --data

async function backupToBox(dir: string, dataDir: string, opts: GlobalOptions & { wait?: boolean }): Promise<number> {
  return withBox(dataDir, async ({ api, mode }) => {
    const bar = progressBar(opts, 'backup');
    let done = 0;
    let r: BackupReport;
    try {
      r = await api.backup({ path: resolvePath(dir) }, (p) => {
        if (p.total !== undefined) bar.total?.(p.total);
        bar.advance(Math.max(0, p.done - done));
        done = p.done;
      });
    } finally {
      bar.stop();
    }
    let protection: SnapshotView | undefined;
    if (opts.wait) {
      if (!opts.json) process.stderr.write('waiting until the snapshot is protected...\n');
      protection = await waitProtected(api, r.root);
    }
    const s = r.stats;
    emit(
      opts,
      () =>
        [
          `snapshot ${r.root}${mode === 'daemon' ? ' (through the running daemon)' : ''}`,
          `  parent   ${r.parent ?? '(none: first snapshot of this Box)'}`,
          `  files    ${s.files} (${s.filesUnchanged} unchanged, not re-read), ${s.dirs} dirs, ${s.symlinks} symlinks, ${s.skipped} skipped`,
          `  read     ${mb(s.bytesRead)} of ${mb(s.bytes)}`,
          `  stored   ${mb(s.bytesNew)} new in ${s.chunksNew} chunks; ${s.chunksDedup} chunks deduplicated`,
          `  time     ${r.seconds.toFixed(2)} s, ${rate(s.bytesRead, r.seconds)}`,
          ...(protection ? [`  copies   ${protectionLine(protection)}${protection.protection.protected ? '' : ' (NOT protected yet)'}`] : []),
          ...r.warnings.map((w) => `  warning: ${w}`),
        ].join('\n'),
      protection ? { ...r, protection: protection.protection } : r,
    );
    return opts.wait && !protection?.protection.protected ? EXIT.failed : EXIT.ok;
  });
}

async function restoreFromBox(ref: string, target: string, dataDir: string, opts: GlobalOptions & { path?: string }): Promise<void> {
  await withBox(dataDir, async ({ api }) => {
    const bar = progressBar(opts, 'restore');
    let done = 0;
    let r: RestoreReport;
    try {
      r = await api.restore({ ref, target: resolvePath(target), ...(opts.path ? { subpath: opts.path } : {}) }, (p) => {
        if (p.total !== undefined) bar.total?.(p.total);
        bar.advance(Math.max(0, p.done - done));
        done = p.done;
      });
    } finally {
      bar.stop();
    }
    const s = r.stats;
    emit(
      opts,
      () =>
        [
          `restored ${r.root} into ${target}`,
          `  files    ${s.files}, ${s.dirs} dirs, ${s.symlinks} symlinks, ${s.hardlinks} hard links`,
          `  bytes    ${mb(s.bytes)} in ${s.chunks} verified chunks`,
          `  time     ${r.seconds.toFixed(2)} s, ${rate(s.bytes, r.seconds)}`,
        ].join('\n'),
      r,
    );
  });
}

async function listBoxSnapshots(dataDir: string, opts: GlobalOptions): Promise<void> {
  await withBox(dataDir, async ({ api }) => {
    const all = (await api.status()).snapshots;
    emit(
      opts,
      () =>
        all.length === 0
          ? 'no snapshots in this reserve yet'
          : [
              'ID            TIME (UTC)           FILES      SIZE  CHUNKS  PROTECTED  AUTHOR',
              ...all.map((s) =>
                [
                  s.root.slice(-12).padEnd(13),
                  new Date(s.time).toISOString().slice(0, 19).replace('T', ' ').padEnd(20),
                  String(s.files).padStart(6),
                  mb(s.size).padStart(10),
                  String(s.chunks).padStart(7),
                  (s.protection.protected ? '  yes' : '  NO').padEnd(10),
                  ' ' + s.author.slice(-12),
                ].join(' '),
              ),
              '(ids show their last 12 characters; restore takes that, the full id (see --json) or "latest")',
            ].join('\n'),
      all,
    );
  });
}
