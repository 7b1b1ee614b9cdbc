/**
 * Commands that act on a Box's data dir (`--data <dir>`) run against its daemon when one serves it, and otherwise
 * become the Box for the duration: open the data dir (taking its LOCK), start the network and sync, do the work,
 * stop.
 */
import type { DaemonApi } from '../daemon/api.ts';
import { connectDaemon } from '../daemon/client.ts';
import { BoxDaemonApi } from '../runtime/daemon-api.ts';
import { createBox, type BoxRuntime } from '../runtime/runtime.ts';

export interface BoxSession {
  api: DaemonApi;
  /** 'daemon' when a running daemon serves the data dir, 'local' when this process is the Box. */
  mode: 'daemon' | 'local';
  /** The in-process Box (local mode only). */
  runtime?: BoxRuntime;
}

export async function withBox<T>(dataDir: string, fn: (s: BoxSession) => Promise<T>): Promise<T> {
  const client = await connectDaemon(dataDir);
  if (client) {
    try {
      return await fn({ api: client, mode: 'daemon' });
    } finally {
      client.close();
    }
  }
  const runtime = await createBox({ dataDir });
  try {
    // this process stops right after: push new blocks to their keepers before answering
    return await fn({ api: new BoxDaemonApi(runtime, { protect: 'wait' }), mode: 'local', runtime });
  } finally {
    await runtime.stop();
  }
}
