/**
 * Measuring one command of the benchmark: wall time, peak RSS and CPU time of a child process, plus the helpers
 * the phases share (dropping the page cache, sizing a directory).
 *
 * Peak RSS comes from GNU time (`/usr/bin/time -f %M`), which reads the child's rusage from wait4(): exact, and it
 * covers every thread of the process (Reserve's worker threads included). Without GNU time the child's VmHWM is
 * polled from /proc every 20 ms (VmHWM is itself a high-water mark, so a late read loses nothing but the last
 * few milliseconds). Wall time is measured here around spawn-to-exit.
 */
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peakRssKiB } from './proc.ts';

export interface Command {
  cmd: string;
  args: string[];
  cwd?: string;
  env?: Record<string, string>;
}

export interface Measured {
  seconds: number;
  /** Peak resident set size of the process, in bytes. */
  peakRss: number;
  /** CPU seconds (user + system) when GNU time measured them; null otherwise. */
  cpuSeconds: number | null;
  /** The system (kernel) part of cpuSeconds. */
  sysSeconds: number | null;
  stdout: string;
  stderr: string;
}

export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';
}

const GNU_TIME = '/usr/bin/time';

export function haveGnuTime(): boolean {
  if (!existsSync(GNU_TIME)) return false;
  try {
    execFileSync(GNU_TIME, ['-f', '%M', '-o', '/dev/null', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Where GNU time writes its report; set by the benchmark to a directory of its own (see setScratchDir). */
let scratch: string | undefined;
let ownScratch = false;

export function setScratchDir(dir: string): void {
  scratch = dir;
  ownScratch = false;
}

function timeFile(): string {
  if (!scratch) {
    scratch = mkdtempSync(join(tmpdir(), 'rbench-'));
    ownScratch = true;
  }
  mkdirSync(scratch, { recursive: true }); // recreate it if something cleaned it up meanwhile
  return join(scratch, `time-${process.pid}.out`);
}

export function cleanupMeasure(): void {
  if (scratch && ownScratch) rmSync(scratch, { recursive: true, force: true });
  else if (scratch) rmSync(join(scratch, `time-${process.pid}.out`), { force: true });
  scratch = undefined;
}

function tail(s: string, n = 4000): string {
  return s.length > n ? '...' + s.slice(-n) : s;
}

/** Run a command to completion and measure it. A non-zero exit throws, with the end of its stderr. */
export async function measure(c: Command, useGnuTime: boolean): Promise<Measured> {
  const out = timeFile();
  const [file, args] = useGnuTime ? [GNU_TIME, ['-f', '%M %U %S', '-o', out, c.cmd, ...c.args]] : [c.cmd, c.args];
  const started = performance.now();
  const child = spawn(file, args, { cwd: c.cwd, env: { ...process.env, ...c.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout = (stdout + d).slice(-1_000_000)));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-100_000)));
  let polledKiB = 0;
  const poll = useGnuTime
    ? undefined
    : setInterval(() => {
        polledKiB = Math.max(polledKiB, peakRssKiB(child.pid));
      }, 20);
  const code = await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  }).finally(() => poll && clearInterval(poll));
  const seconds = (performance.now() - started) / 1000;
  const shown = [c.cmd, ...c.args].join(' ');
  if (code !== 0) {
    throw new CommandFailedError(`command failed (exit ${code}): ${shown}\n${tail(stderr) || tail(stdout)}`);
  }
  let peakRss = polledKiB * 1024;
  let cpuSeconds: number | null = null;
  let sysSeconds: number | null = null;
  if (useGnuTime) {
    const line = readFileSync(out, 'utf8').trim().split('\n').pop() ?? '';
    const [kib, user, sys] = line.split(/\s+/).map(Number);
    if (!Number.isFinite(kib)) throw new Error(`could not read GNU time output for: ${shown} (${line})`);
    peakRss = kib * 1024;
    cpuSeconds = user + sys;
    sysSeconds = sys;
  }
  return { seconds, peakRss, cpuSeconds, sysSeconds, stdout, stderr };
}

/** Write back dirty pages and drop the page cache so the next phase reads from disk. False if not permitted. */
export function dropCaches(): boolean {
  try {
    execFileSync('sync', { stdio: 'ignore' });
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    return true;
  } catch {
    return false;
  }
}

export interface DirSize {
  files: number;
  /** Sum of file sizes (what `du --apparent-size` counts, files only). */
  bytes: number;
  /** Space allocated on disk (st_blocks * 512, directories included). */
  diskBytes: number;
}

/** Count and size every file under a directory (symlinks not followed). */
export async function dirSize(root: string): Promise<DirSize> {
  const r: DirSize = { files: 0, bytes: 0, diskBytes: 0 };
  const walk = async (dir: string): Promise<void> => {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    for (const e of entries) {
      const p = join(dir, e.name);
      const st = await fsp.lstat(p);
      r.diskBytes += st.blocks * 512;
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        r.files++;
        r.bytes += st.size;
      }
    }
  };
  await walk(root);
  return r;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): string {
  try {
    return execFileSync(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as { status?: number; stderr?: string; stdout?: string; message: string };
    throw new CommandFailedError(`command failed (exit ${err.status ?? '?'}): ${[cmd, ...args].join(' ')}\n${tail(err.stderr ?? '') || tail(err.stdout ?? '') || err.message}`);
  }
}
