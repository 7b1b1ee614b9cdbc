#!/usr/bin/env node
// Launcher for the `reserve` command: loads the TypeScript sources through tsx, then runs the CLI.
// Many concurrent fsyncs (one per stored block) need more libuv threads than the default four.
process.env.UV_THREADPOOL_SIZE ??= '16';
const { register } = await import('tsx/esm/api');
register();
const { main } = await import('../adapters/cli/main.ts');
process.exitCode = await main(process.argv);
