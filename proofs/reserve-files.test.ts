/**
 * filesNeeding (core/keeper/files.ts): the files of a snapshot that need given chunks, as loss reports name them.
 * Checked against backups: the chunks of one file, found by backing that file up alone (content-defined chunking
 * cuts a file the same way wherever it lives), must name exactly that file's paths in a whole tree.
 */
import { describe, expect, it } from 'vitest';
import type { CID } from 'multiformats/cid';
import { MemoryBlockstore } from '../adapters/storage/memory-blockstore.ts';
import { ManualClock } from '../core/events/manual-clock.ts';
import { filesNeeding } from '../core/keeper/files.ts';
import { backup } from '../core/snapshot/backup.ts';
import { inlineChunking } from '../core/snapshot/inline.ts';
import { collectManifest } from '../core/snapshot/manifest-io.ts';
import { nameKey } from '../core/snapshot/names.ts';
import { SIM_CHUNKER } from '../simulations/reserve/harness.ts';
import { MemSourceTree, memDir, type MemNode } from '../simulations/reserve/memtree.ts';
import { SimRandom } from '../simulations/sim/rng.ts';

const enc = new TextEncoder();
let ino = 1;

function file(data: Uint8Array): MemNode {
  return { kind: 'file', data, ino: ino++, mode: 0o644, uid: 1000, gid: 1000, mtimeNs: 1_700_000_000_000_000_000n };
}

function put(dir: MemNode, name: string, node: MemNode): MemNode {
  if (dir.kind === 'dir') dir.children.set(nameKey(enc.encode(name)), { name: enc.encode(name), node });
  return node;
}

async function backUp(root: MemNode, store: MemoryBlockstore): Promise<{ root: CID; chunks: Set<string> }> {
  const r = await backup({ source: new MemSourceTree(root), store, chunking: inlineChunking(SIM_CHUNKER), chunker: SIM_CHUNKER, clock: new ManualClock(0), author: 'a', host: 'h' });
  const idx = await collectManifest(r.cid, (cid) => store.get(cid));
  return { root: r.cid, chunks: new Set(idx.chunks.map(String)) };
}

describe('filesNeeding', () => {
  it('names exactly the files (every path, hard to tell apart or nested deep) that need the chunks', async () => {
    const rng = new SimRandom('files-needing');
    const photo = rng.bytes(60_000); // many chunks, listed inline
    const video = rng.bytes(2_000_000); // enough chunks for a chunk-list block
    const note = rng.bytes(3_000);
    const tree = memDir();
    const deep = put(put(put(tree, 'a', memDir()), 'b', memDir()), 'caf\u00e9', memDir());
    put(deep, 'photo.jpg', file(photo));
    put(tree, 'photo copy.jpg', file(photo)); // the same content twice: both paths need its chunks
    put(tree, 'video.mp4', file(video));
    put(tree, 'note.txt', file(note));
    put(tree, 'empty.txt', file(new Uint8Array(0)));
    const store = new MemoryBlockstore();
    const whole = await backUp(tree, store);

    const chunksOf = async (data: Uint8Array) => (await backUp(single(data), new MemoryBlockstore())).chunks;
    const read = (cid: CID) => store.get(cid);

    expect(await filesNeeding(whole.root, await chunksOf(photo), read)).toEqual({ files: ['a/b/caf\u00e9/photo.jpg', 'photo copy.jpg'], count: 2 });
    const videoChunks = [...(await chunksOf(video))];
    expect(videoChunks.length).toBeGreaterThan(64);
    expect(await filesNeeding(whole.root, new Set(videoChunks.slice(-1)), read)).toEqual({ files: ['video.mp4'], count: 1 });
    expect((await filesNeeding(whole.root, whole.chunks, read)).files).toEqual(['a/b/caf\u00e9/photo.jpg', 'note.txt', 'photo copy.jpg', 'video.mp4']);
    expect(await filesNeeding(whole.root, new Set(), read)).toEqual({ files: [], count: 0 });
  }, 60_000);
});

function single(data: Uint8Array): MemNode {
  const root = memDir();
  put(root, 'only', file(data));
  return root;
}
