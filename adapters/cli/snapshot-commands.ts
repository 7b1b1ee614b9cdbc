/** `reserve backup | restore | snapshots | verify`: the local data path of one Box. */
import type { Command } from 'commander';
import { LocalRepo } from '../repo/local-repo.ts';
import { backupDirectory, restoreSnapshot, verifyRepository } from '../repo/ops.ts';
import { EXIT, action, emit, progressBar, type GlobalOptions } from './output.ts';
import { scanSize } from '../fs/scan.ts';

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const rate = (bytes: number, secs: number) => `${(bytes / 1e6 / Math.max(secs, 1e-6)).toFixed(0)} MB/s`;

interface RepoOpts extends GlobalOptions {
  repo: string;
}

export function register(program: Command): void {
  program
    .command('backup')
    .description('back up a directory into a repository (created if the path is new or an empty directory)')
    .argument('<dir>', 'the directory to back up')
    .requiredOption('--repo <path>', 'the repository')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (dir: string, opts: RepoOpts) => {
        const bar = progressBar(opts, 'backup');
        if (!opts.json && process.stderr.isTTY) bar.total?.(await scanSize(dir).catch(() => 0));
        const warnings: string[] = [];
        const r = await backupDirectory({ source: dir, repo: opts.repo, progress: bar, onWarning: (w) => warnings.push(`${w.path}: ${w.message}`) }).finally(() => bar.stop());
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
    .argument('<snapshot>', 'snapshot id, a unique prefix of one, or "latest"')
    .argument('<target>', 'where to restore (must not exist, or be empty)')
    .requiredOption('--repo <path>', 'the repository')
    .option('--path <subpath>', 'restore only this file or directory of the snapshot')
    .option('--json', 'print the result as JSON')
    .action(
      action(async (ref: string, target: string, opts: RepoOpts & { path?: string }) => {
        const bar = progressBar(opts, 'restore');
        const r = await restoreSnapshot({ repo: opts.repo, ref, target, subpath: opts.path, progress: bar }).finally(() => bar.stop());
        const s = r.stats;
        emit(
          opts,
          () =>
            [
              `restored ${r.cid} into ${target}`,
              `  files    ${s.files}, ${s.dirs} dirs, ${s.symlinks} symlinks, ${s.hardlinks} hard links`,
              `  bytes    ${mb(s.bytes)} in ${s.chunks} verified chunks`,
              `  time     ${r.seconds.toFixed(2)} s, ${rate(s.bytes, r.seconds)}`,
            ].join('\n'),
          { snapshot: String(r.cid), target, stats: s, seconds: r.seconds, mbPerSecond: s.bytes / 1e6 / r.seconds },
        );
      }),
    );

  program
    .command('snapshots')
    .description('list the snapshots in a repository, oldest first, with their parent chain')
    .requiredOption('--repo <path>', 'the repository')
    .option('--json', 'print the list as JSON')
    .action(
      action(async (opts: RepoOpts) => {
        const repo = await LocalRepo.open(opts.repo);
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
