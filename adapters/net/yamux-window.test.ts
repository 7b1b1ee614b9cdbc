import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream';
import { afterEach, describe, expect, it } from 'vitest';
import { RAW_CODE, cidOf } from '../../core/blocks/cid.ts';
import { Fleet, identities } from './test-support.ts';
import { windowUpdateDue } from './yamux-window.ts';

const fleet = new Fleet();
afterEach(() => fleet.stopAll());

describe('yamux window updates', () => {
  it('are due outside the established state always, and in it once half the window is used', () => {
    const window = 1 << 20;
    expect(windowUpdateDue({ state: StreamState.Established, recvWindow: window, recvWindowCapacity: window })).toBe(false);
    expect(windowUpdateDue({ state: StreamState.Established, recvWindow: window, recvWindowCapacity: window / 2 + 1 })).toBe(false);
    expect(windowUpdateDue({ state: StreamState.Established, recvWindow: window, recvWindowCapacity: window / 2 })).toBe(true);
    expect(windowUpdateDue({ state: StreamState.Established, recvWindow: window, recvWindowCapacity: 0 })).toBe(true);
    for (const state of [StreamState.Init, StreamState.SYNReceived, StreamState.SYNSent, StreamState.Paused, StreamState.Finished]) {
      expect(windowUpdateDue({ state, recvWindow: window, recvWindowCapacity: window })).toBe(true);
    }
  });

  it('a Box network sends far fewer updates than data frames, and every block still arrives intact', async () => {
    const proto = YamuxStream.prototype as unknown as { handleData(f: unknown): void; handleWindowUpdate(f: unknown): void };
    const handleData = proto.handleData;
    const handleWindowUpdate = proto.handleWindowUpdate;
    let dataFrames = 0;
    let updates = 0;
    proto.handleData = function (f) {
      dataFrames++;
      return handleData.call(this, f);
    };
    proto.handleWindowUpdate = function (f) {
      updates++;
      return handleWindowUpdate.call(this, f);
    };
    try {
      const ids = await identities(2);
      ids.forEach((i) => fleet.members.add(i.id));
      const [client, server] = ids.map((i) => fleet.add(i));
      await Promise.all([client.start(), server.start()]);
      const blocks = Array.from({ length: 16 }, (_, i) => new Uint8Array(1 << 20).fill(i + 1));
      const byCid = new Map(blocks.map((b) => [cidOf(RAW_CODE, b).toString(), b]));
      server.serveBlocks((cid) => byCid.get(cid.toString()));
      await client.dial(server.addresses()[0]);
      dataFrames = 0;
      updates = 0;
      let bytes = 0;
      const r = await client.fetchBlocks(server.self, [...byCid.keys()].map((k) => cidOf(RAW_CODE, byCid.get(k)!)), (_cid, b) => {
        bytes += b.byteLength;
      });
      expect(r.received).toBe(16);
      expect(r.corrupt).toEqual([]);
      expect(bytes).toBe(16 << 20);
      // Answering every data frame sends at least one update per data frame (measured: 31 for 27 frames).
      expect(dataFrames).toBeGreaterThanOrEqual(16);
      expect(updates).toBeLessThanOrEqual(dataFrames * 0.6);
    } finally {
      proto.handleData = handleData;
      proto.handleWindowUpdate = handleWindowUpdate;
    }
  });
});
