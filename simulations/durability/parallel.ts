/**
 * Runs batches of Monte Carlo trials, inline or on worker_threads. Each batch is a pure function of its
 * configuration, seed and size, and results come back indexed by batch, so the totals (merged in batch order by
 * the caller) are the same for any thread count.
 *
 * Workers load TypeScript through tsx: the main thread's loader hooks are not inherited by workers on Node 20,
 * so each worker starts from a small script that registers tsx and then imports worker.ts.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { runBatch } from './montecarlo.ts';
import type { BatchStats, McConfig } from './montecarlo.ts';

/** One batch: which configuration (index into the list), its generator seed and its number of trials. */
export interface BatchJob {
  config: number;
  seed: number;
  trials: number;
}

export interface RunOptions {
  /** Worker threads; 1 runs inline on the calling thread. */
  threads: number;
  /** Called as each batch finishes (in completion order). */
  onBatch?: (index: number, stats: BatchStats) => void;
}

/** The machine's parallelism (cores available to this process). */
export function defaultThreads(): number {
  return Math.max(1, availableParallelism());
}

/** Run every job; the result array is indexed like `jobs`. */
export async function runJobs(configs: readonly McConfig[], jobs: readonly BatchJob[], opts: RunOptions): Promise<BatchStats[]> {
  const out = new Array<BatchStats>(jobs.length);
  const threads = Math.max(1, Math.min(opts.threads, jobs.length));
  if (threads <= 1) {
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i];
      out[i] = runBatch(configs[job.config], job.seed, job.trials);
      opts.onBatch?.(i, out[i]);
      // Let timers (a progress bar's redraw) run between batches.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return out;
  }
  const workers = Array.from({ length: threads }, () => startWorker(configs));
  let next = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      let done = 0;
      const feed = (w: Worker): void => {
        if (next >= jobs.length) return;
        const index = next++;
        w.postMessage({ ...jobs[index], index });
      };
      for (const w of workers) {
        w.on('message', (msg: { index: number; stats: BatchStats }) => {
          out[msg.index] = msg.stats;
          opts.onBatch?.(msg.index, msg.stats);
          if (++done === jobs.length) resolve();
          else feed(w);
        });
        w.on('error', reject);
        w.on('exit', (code) => {
          if (done < jobs.length) reject(new Error(`a Monte Carlo worker exited with code ${code}`));
        });
        feed(w);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return out;
}

function startWorker(configs: readonly McConfig[]): Worker {
  const require = createRequire(import.meta.url);
  // The `import` flavour of tsx's ESM API (require.resolve finds the CommonJS one next to it).
  const tsxApi = pathToFileURL(require.resolve('tsx/esm/api').replace(/index\.cjs$/, 'index.mjs')).href;
  const entry = new URL('./worker.ts', import.meta.url).href;
  const boot = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData: { configs } });
}
