/**
 * What the tests of Box runtimes on 127.0.0.1 share: a temp dir for their data dirs, one chunking worker, the
 * runtimes to stop afterwards (registered with vitest's beforeAll/afterAll by `runtimeTestbed`), and a poll.
 */
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { WorkerChunking } from '../workers/chunk-pool.ts';
import type { BoxRuntime } from './runtime.ts';

export const LISTEN = ['/ip4/127.0.0.1/tcp/0'];

export interface RuntimeTestbed {
  /** A path under the test's temp dir (made before the first test, removed after the last). */
  dir(...names: string[]): string;
  readonly chunking: WorkerChunking;
  /** Runtimes stopped after the last test. */
  readonly runtimes: BoxRuntime[];
}

export function runtimeTestbed(prefix: string): RuntimeTestbed {
  let base = '';
  const chunking = new WorkerChunking({ threads: 1 });
  const runtimes: BoxRuntime[] = [];
  beforeAll(async () => {
    base = await fs.mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    await Promise.allSettled(runtimes.map((r) => r.stop()));
    await chunking.close();
    await fs.rm(base, { recursive: true, force: true });
  });
  return { dir: (...names) => join(base, ...names), chunking, runtimes };
}

/** Poll `fn` every 200 ms until it returns something other than undefined; fail after `timeoutMs`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
