#!/usr/bin/env node
// Launcher for the `reserve` command. The local-repository data path (backup, restore, snapshots, verify with
// --repo) runs from a bundle of its sources (bin/bundle.mjs: rebuilt whenever a source changes), which starts in
// milliseconds, and so do its worker scripts (chunking, directory walk); everything else loads the TypeScript sources
// through tsx. RESERVE_NO_BUNDLE=1 forces tsx throughout.
// Many concurrent fsyncs (one per stored block) need more libuv threads than the default four.
process.env.UV_THREADPOOL_SIZE ??= '16';
const DATA_PATH = new Set(['backup', 'restore', 'snapshots', 'verify']);
const argv = process.argv;
// A Box daemon runs with the Node flags it wants (bin/daemon-launch.mjs): re-run with them when they are missing.
if (argv[2] === 'daemon' && process.env.RESERVE_DAEMON_REEXEC !== '0') {
  const { hasDaemonFlags, runDaemonWithFlags } = await import('./daemon-launch.mjs');
  if (!hasDaemonFlags()) await runDaemonWithFlags(argv);
}
const fast =
  process.env.RESERVE_NO_BUNDLE !== '1' &&
  DATA_PATH.has(argv[2]) &&
  argv.some((a) => a === '--repo' || a.startsWith('--repo=')) &&
  !argv.some((a) => a === '--data' || a.startsWith('--data='));
// A backup or restore's live heap stays small (10-15 MiB) however large the tree, but V8's default sizing lets the
// heap grow to several times that over a long run, so the peak memory grew with the data. These commands ask V8 to
// grow the old generation by 30% at a time and to keep the young generation at its starting size: peak RSS is then
// nearly flat from a 256 MiB to a 1 GiB tree for little CPU (both flags are read while the process runs, unlike
// the semi-space limit the daemon wants, bin/daemon-launch.mjs). RESERVE_V8_TUNING=0 leaves V8's defaults.
const DATA_HEAP_FLAGS = ['--heap-growing-percent=30', '--semi-space-growth-factor=1'];
if (DATA_PATH.has(argv[2]) && process.env.RESERVE_V8_TUNING !== '0') {
  const { setFlagsFromString } = await import('node:v8');
  for (const flag of DATA_HEAP_FLAGS) setFlagsFromString(flag);
}
let main;
if (fast) {
  const { bundled, bundledSync, CHUNK_WORKER_KEY } = await import('./bundle.mjs');
  const cli = await bundled('data-cli', 'bin/data-cli.ts');
  const worker = bundledSync('chunk-worker', 'adapters/workers/chunk-worker.ts', true);
  const walker = bundledSync('walk-worker', 'adapters/fs/walk-worker.ts', true);
  if (cli && worker && walker) {
    globalThis[CHUNK_WORKER_KEY] = worker;
    globalThis[Symbol.for('reserve.walkWorkerBundle')] = walker;
    const { pathToFileURL } = await import('node:url');
    ({ main } = await import(pathToFileURL(cli).href));
  }
}
if (!main) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../adapters/cli/main.ts'));
}
process.exitCode = await main(argv);
