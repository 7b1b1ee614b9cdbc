/**
 * Worker-thread entry of the durability Monte Carlo: receives the configurations once (workerData), then runs
 * one batch per message and posts its statistics back. Started by parallel.ts; holds no state between batches,
 * so which thread runs which batch never changes a result.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runBatch } from './montecarlo.ts';
import type { McConfig } from './montecarlo.ts';
import type { BatchJob } from './parallel.ts';

const configs = (workerData as { configs: McConfig[] }).configs;
const port = parentPort;
if (port) {
  port.on('message', (job: BatchJob & { index: number }) => {
    port.postMessage({ index: job.index, stats: runBatch(configs[job.config], job.seed, job.trials) });
  });
}
