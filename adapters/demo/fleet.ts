/**
 * A fleet of real Box processes on this machine, driven through the `reserve` command line exactly as a person
 * would: `init`, `invite`, `join`, `daemon`, `backup`, `restore`, `status`, `events`. The flood demo (`npm start`),
 * the multi-process integration test and `npm run bench:net` all use it.
 *
 * Every Box is a data dir under the fleet's base dir; a daemon is a child process (`reserve daemon --data <dir>
 * --json`) that is ready once it has written `<dir>/daemon.json`. The fleet keeps the tail of every process's
 * output for error messages, kills what it started when asked (and on `stopAll`), and never leaves a process
 * behind: children get SIGTERM, then SIGKILL after a grace period.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ReserveError } from '../../core/errors.ts';
import { DAEMON_FILE, type DaemonFile } from '../daemon/api.ts';
import { DAEMON_NODE_FLAGS } from '../../bin/daemon-launch.mjs';

const BIN = fileURLToPath(new URL('../../bin/reserve.mjs', import.meta.url));

/**
 * Extra Node options for every `reserve daemon` a fleet starts, opt-in and for measurements only: e.g.
 * `RESERVE_DAEMON_NODE_OPTIONS='--cpu-prof --cpu-prof-dir=/tmp/prof'` profiles each Box (one .cpuprofile per
 * process and thread, written when the daemon exits cleanly). Split on whitespace; placed before the script.
 */
export function daemonNodeArgs(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.RESERVE_DAEMON_NODE_OPTIONS ?? '').split(/\s+/).filter((a) => a.length > 0);
}

/** A `reserve` command failed (non-zero exit, or no answer within its deadline). */
export class CommandFailedError extends ReserveError {
  static override readonly name = 'CommandFailedError';
  constructor(
    readonly args: readonly string[],
    readonly code: number | null,
    readonly output: string,
    detail: string,
  ) {
    super(`reserve ${args.join(' ')}: ${detail}${output ? `\n${indent(output)}` : ''}`);
  }
}

/** A daemon exited, or did not become ready in time. */
export class DaemonFailedError extends ReserveError {
  static override readonly name = 'DaemonFailedError';
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunningDaemon {
  name: string;
  dataDir: string;
  child: ChildProcess;
  file: DaemonFile;
  /** Lines it printed (the newest 400). */
  lines: string[];
}

const indent = (s: string) =>
  s
    .trimEnd()
    .split('\n')
    .slice(-20)
    .map((l) => `    ${l}`)
    .join('\n');

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Fleet {
  readonly #daemons = new Map<string, RunningDaemon>();
  readonly #children = new Set<ChildProcess>();

  constructor(
    /** Where the Boxes' data dirs live. */
    readonly base: string,
    readonly options: { env?: NodeJS.ProcessEnv; onLine?: (name: string, line: string) => void } = {},
  ) {}

  dataDir(name: string): string {
    return join(this.base, name);
  }

  /** Run `reserve <args>` to completion. Rejects with CommandFailedError on a non-zero exit unless `allowFail`. */
  async cli(args: string[], opts: { timeoutMs?: number; allowFail?: boolean } = {}): Promise<CommandResult> {
    const started = performance.now();
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...this.options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.#children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timeoutMs = opts.timeoutMs ?? 120_000;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    clearTimeout(timer);
    this.#children.delete(child);
    const ms = performance.now() - started;
    if (timedOut) throw new CommandFailedError(args, code, stderr || stdout, `no answer within ${timeoutMs} ms`);
    if (code !== 0 && !opts.allowFail) throw new CommandFailedError(args, code, stderr || stdout, `exit code ${code}`);
    return { code: code ?? -1, stdout, stderr, ms };
  }

  /** Run a `--json` command and parse what it printed. */
  async json<T extends object>(args: string[], opts: { timeoutMs?: number } = {}): Promise<T & { ms: number }> {
    const r = await this.cli([...args, '--json'], opts);
    try {
      return { ...(JSON.parse(r.stdout) as T), ms: r.ms };
    } catch {
      throw new CommandFailedError(args, r.code, r.stdout + r.stderr, 'printed something that is not JSON');
    }
  }

  /** Start `reserve daemon` for the Box `name` and wait until it serves (its daemon.json is written). */
  async startDaemon(name: string, extra: string[] = [], opts: { readyMs?: number } = {}): Promise<RunningDaemon> {
    if (this.#daemons.has(name)) throw new DaemonFailedError(`the daemon of ${name} is already running`);
    const dataDir = this.dataDir(name);
    await fs.rm(join(dataDir, DAEMON_FILE), { force: true });
    const env = { ...process.env, ...this.options.env };
    // The daemon's own Node flags are given here, so the process started is the daemon itself (bin/reserve.mjs would
    // otherwise run it again as a child with them): its pid is the one in daemon.json, its CPU time the Box's.
    const child = spawn(process.execPath, [...DAEMON_NODE_FLAGS, ...daemonNodeArgs(env), BIN, 'daemon', '--data', dataDir, '--json', ...extra], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#children.add(child);
    const lines: string[] = [];
    const take = (stream: NodeJS.ReadableStream) => {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => {
        rest += d;
        const parts = rest.split('\n');
        rest = parts.pop() ?? '';
        for (const line of parts) {
          if (!line) continue;
          lines.push(line);
          if (lines.length > 400) lines.shift();
          this.options.onLine?.(name, line);
        }
      });
    };
    take(child.stdout!);
    take(child.stderr!);
    let exited: number | null | undefined;
    child.on('exit', (code) => {
      exited = code;
      this.#children.delete(child);
      if (this.#daemons.get(name)?.child === child) this.#daemons.delete(name);
    });
    const deadline = performance.now() + (opts.readyMs ?? 60_000);
    for (;;) {
      if (exited !== undefined) throw new DaemonFailedError(`the daemon of ${name} exited with code ${exited} before it was ready\n${indent(lines.join('\n'))}`);
      try {
        const file = JSON.parse(await fs.readFile(join(dataDir, DAEMON_FILE), 'utf8')) as DaemonFile;
        if (file.pid === child.pid) {
          const d: RunningDaemon = { name, dataDir, child, file, lines };
          this.#daemons.set(name, d);
          return d;
        }
      } catch {
        // not written yet (or half-written)
      }
      if (performance.now() > deadline) {
        child.kill('SIGKILL');
        throw new DaemonFailedError(`the daemon of ${name} was not ready within ${opts.readyMs ?? 60_000} ms\n${indent(lines.join('\n'))}`);
      }
      await sleep(100);
    }
  }

  daemon(name: string): RunningDaemon {
    const d = this.#daemons.get(name);
    if (!d) throw new DaemonFailedError(`the daemon of ${name} is not running`);
    return d;
  }

  running(): string[] {
    return [...this.#daemons.keys()];
  }

  /** Kill a daemon: 'SIGKILL' is a crash (power cut, flood), 'SIGTERM' a clean stop. Resolves once it is gone. */
  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const d = this.#daemons.get(name);
    if (!d) return;
    this.#daemons.delete(name);
    await stopChild(d.child, signal);
  }

  /** Stop every process this fleet started. */
  async stopAll(): Promise<void> {
    this.#daemons.clear();
    await Promise.all([...this.#children].map((c) => stopChild(c, 'SIGTERM')));
    this.#children.clear();
  }
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}
