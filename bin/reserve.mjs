#!/usr/bin/env node
// Launcher for the `reserve` command. The local-repository data path (backup, restore, snapshots, verify with
// --repo) runs from a bundle of its sources (bin/bundle.mjs: rebuilt whenever a source changes), which starts in
// milliseconds, and so do its worker scripts (chunking, directory walk); everything else loads the TypeScript sources
// through tsx. RESERVE_NO_BUNDLE=1 forces tsx throughout.
// Many concurrent fsyncs (one per stored block) need more libuv threads than the default four.
process.env.UV_THREADPOOL_SIZE ??= '16';
const DATA_PATH = new Set(['backup', 'restore', 'snapshots', 'verify']);
const argv = process.argv;
const fast =
  process.env.RESERVE_NO_BUNDLE !== '1' &&
  DATA_PATH.has(argv[2]) &&
  argv.some((a) => a === '--repo' || a.startsWith('--repo=')) &&
  !argv.some((a) => a === '--data' || a.startsWith('--data='));
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
