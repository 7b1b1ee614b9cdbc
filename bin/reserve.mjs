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
// grow the old generation by 30% at a time, and stop the main thread's young generation growing once its
// semi-spaces reach a size set per command (within the first second): 8 MiB for a backup, whose main thread keeps
// many objects in flight (smaller ones cost CPU in scavenges), 2 MiB for a restore or verify, which keep few (V8
// grew both to 16 MiB, late in a long run). Peak RSS is then nearly flat from a 256 MiB to a 1 GiB tree for little
// CPU (these flags are read while the process runs, unlike the semi-space limit the daemon wants,
// bin/daemon-launch.mjs). A worker thread starting sets V8's flags back to the command line's (Node 20), and these
// commands start their chunking and walk workers right away, so the flags are set again whenever a worker comes
// online; the young generation may still double once in between (a restore's usually ends at 4 MiB semi-spaces).
// RESERVE_V8_TUNING=0 leaves V8's defaults.
const DATA_HEAP_FLAGS = ['--heap-growing-percent=30'];
const DATA_SEMI_SPACE_MIB = argv[2] === 'backup' ? 8 : 2;
if (DATA_PATH.has(argv[2]) && process.env.RESERVE_V8_TUNING !== '0') {
  const { setFlagsFromString, getHeapSpaceStatistics } = await import('node:v8');
  const flags = [...DATA_HEAP_FLAGS];
  const apply = () => {
    for (const flag of flags) setFlagsFromString(flag);
  };
  apply();
  process.on('worker', (w) => w.once('online', apply));
  // The young generation is two semi-spaces, which V8 doubles while much of them survives a scavenge. Polled: V8
  // tells JavaScript nothing when it grows them.
  const grown = setInterval(() => {
    const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
    if (young && young.space_size >= 2 * DATA_SEMI_SPACE_MIB * 1024 * 1024) {
      flags.push('--semi-space-growth-factor=1');
      apply();
      clearInterval(grown);
    }
  }, 20);
  grown.unref();
}
let main;
if (fast) {
  const { bundled, bundledSync, CHUNK_WORKER_KEY } = await import('./bundle.mjs');
  const cli = await bundled('data-cli', 'bin/data-cli.ts');
  const worker = bundledSync('chunk-worker', 'adapters/workers/chunk-worker.ts', true);
  const walker = bundledSync('walk-worker', 'adapters/fs/walk-worker.ts', true);
  const writer = bundledSync('write-worker', 'adapters/fs/write-worker.ts', true);
  if (cli && worker && walker && writer) {
    globalThis[CHUNK_WORKER_KEY] = worker;
    globalThis[Symbol.for('reserve.walkWorkerBundle')] = walker;
    globalThis[Symbol.for('reserve.writeWorkerBundle')] = writer;
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
