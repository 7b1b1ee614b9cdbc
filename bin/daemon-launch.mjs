// How `reserve daemon` runs: the Node flags a Box daemon wants, and a launcher that re-runs the daemon with them.
//
// A daemon moves every replicated block through its heap (network buffers, decryption, framing, the block store),
// so it allocates short-lived garbage at the rate bytes arrive. A 32 MiB semi-space (the default is 16 MiB) lets
// most of it die young between scavenges: measured with the 4-Box replication bench, about 10% less CPU per
// replicated MiB summed over the Boxes.
// The old generation grows to 4x its live size before the next full collection (--heap-growing-percent=300). With
// V8's own factor (about 2x for a daemon's ~36 MB live heap) the room left below the limit is smaller than the young
// generation, and V8 then starts a full mark-compact at once after each one: `--trace-gc` showed one every
// 100-400 ms through replication (20-49 per Box in a 256 MiB run), with concurrent marking and sweeping ~40% of a
// receiving Box's CPU under `perf`. With the flag: 6-10 per Box, and 23% less CPU for the whole replication
// (11.1 s against 14.5 s, means of 6 interleaved runs on a loaded machine); peak RSS of the Boxes within 10 MiB.
// V8 reads the semi-space limit when the process starts (setting it later changes nothing), so `reserve daemon`
// started without the flags runs itself again with them, as a child that shares its stdio; the fleet behind the
// demo, the tests and the bench passes them directly instead (so the process it starts is the daemon).
// RESERVE_DAEMON_REEXEC=0 turns the re-run off.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

export const DAEMON_NODE_FLAGS = ['--max-semi-space-size=32', '--heap-growing-percent=300'];

/** The name of a Node option (`--a-b=1` -> `--a-b`), underscores and dashes alike. */
const optionName = (arg) => arg.split('=')[0].replace(/_/g, '-');

/** True when every daemon flag's option is already given (with any value) in `execArgv` or NODE_OPTIONS. */
export function hasDaemonFlags(execArgv = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? '') {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].filter((a) => a.startsWith('--')).map(optionName));
  return DAEMON_NODE_FLAGS.every((f) => given.has(optionName(f)));
}

/**
 * Run this command again in a child process with the daemon flags, and exit as it exits. Signals this process gets
 * (SIGINT, SIGTERM, SIGHUP) are passed on; the daemon takes the first and ignores repeats while it stops, so a
 * signal that reaches both processes (Ctrl-C in a terminal, a service manager signalling the whole group) stops it
 * once, cleanly. Resolves never: the process exits with the child's code (128 + signal number when it was killed).
 */
export async function runDaemonWithFlags(argv = process.argv) {
  const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...process.execArgv, ...argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, RESERVE_DAEMON_REEXEC: '0' },
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
  const code = await new Promise((resolve) => {
    child.once('error', () => resolve(1));
    child.once('exit', (c, signal) => resolve(c ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1)));
  });
  process.exit(code);
}
