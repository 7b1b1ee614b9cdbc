/** Shared CLI plumbing: one-line errors with exit codes, --json output, and a progress bar on terminals. */
import cliProgress from 'cli-progress';
import { ReserveError } from '../../core/errors.ts';
import type { Progress } from '../../core/ports.ts';

export interface GlobalOptions {
  json?: boolean;
}

/** Exit codes shared by every command. Simulator commands add their own (see simulations/). */
export const EXIT = { ok: 0, failed: 1, usage: 2, internal: 70 } as const;

export class CliExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** Print `human` on a terminal, or `data` as one JSON document with --json. */
export function emit(opts: GlobalOptions, human: () => string, data: unknown): void {
  if (opts.json) process.stdout.write(JSON.stringify(data, jsonReplacer, 2) + '\n');
  else process.stdout.write(human() + '\n');
}

export function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value && typeof value === 'object' && 'toV1' in value && 'multihash' in value) return String(value);
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  return value;
}

/** Wrap a command action: a ReserveError becomes one clear line on stderr and a non-zero exit code. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      if (typeof code === 'number' && code !== 0) throw new CliExit(code);
    } catch (err) {
      if (err instanceof CliExit) throw err;
      if (err instanceof ReserveError) {
        process.stderr.write(`reserve: ${err.message}\n`);
        throw new CliExit(err.exitCode);
      }
      const e = err as NodeJS.ErrnoException;
      if (e && typeof e.code === 'string' && e.syscall) {
        process.stderr.write(`reserve: ${e.message}\n`);
        throw new CliExit(EXIT.failed);
      }
      process.stderr.write(`reserve: internal error: ${(err as Error)?.stack ?? String(err)}\n`);
      throw new CliExit(EXIT.internal);
    }
  };
}

/** A progress bar on stderr when it is a terminal and output is not JSON; otherwise silent. */
export function progressBar(opts: GlobalOptions, label: string, unit: 'bytes' | 'items' = 'bytes'): Progress & { stop(): void } {
  if (opts.json || !process.stderr.isTTY) return { advance() {}, total() {}, stop() {} };
  const fmt = unit === 'bytes' ? (v: number) => `${(v / 1048576).toFixed(1)} MiB` : (v: number) => String(v);
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {done} / {all} | {speed} | eta {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  let value = 0;
  let total = 0;
  bar.start(1, 0, { done: fmt(0), all: '?', speed: '' });
  const payload = () => {
    const secs = (performance.now() - started) / 1000;
    const speed = unit === 'bytes' ? `${(value / 1e6 / Math.max(secs, 1e-3)).toFixed(0)} MB/s` : `${(value / Math.max(secs, 1e-3)).toFixed(0)}/s`;
    return { done: fmt(value), all: total ? fmt(total) : '?', speed };
  };
  return {
    total(units: number) {
      total = units;
      bar.setTotal(Math.max(units, 1));
      bar.update(value, payload());
    },
    advance(units: number) {
      value += units;
      if (value > total) bar.setTotal(value);
      bar.update(value, payload());
    },
    stop() {
      bar.stop();
    },
  };
}
