/**
 * A small, seeded sample tree that looks like a person's files: "photos" and "videos" (incompressible, 0.5-8 MiB),
 * documents (text), exact duplicates, nested folders, an empty folder, a symlink, a hard link, and names that
 * trip up weaker tools (spaces, quotes, accents in NFC and NFD). Same seed, same bytes.
 */
import * as fs from 'node:fs/promises';
import { join } from 'node:path';

function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

function randomBytes(next: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) b.writeUInt32LE(next(), i);
  for (; i < n; i++) b[i] = next() & 0xff;
  return b;
}

const WORDS = 'photo album holiday family backup restore snapshot garden birthday recipe invoice letter summer winter'.split(' ');

export interface SampleTreeStats {
  files: number;
  bytes: number;
}

export async function makeSampleTree(root: string, opts: { sizeMiB?: number; seed?: number } = {}): Promise<SampleTreeStats> {
  const next = prng(opts.seed ?? 42);
  const budget = (opts.sizeMiB ?? 64) * 1024 * 1024;
  let bytes = 0;
  let files = 0;
  const write = async (rel: string, data: Buffer) => {
    const p = join(root, rel);
    await fs.mkdir(join(p, '..'), { recursive: true });
    await fs.writeFile(p, data);
    bytes += data.length;
    files++;
  };
  const media: string[] = [];
  for (let i = 1; bytes < budget * 0.7; i++) {
    const video = next() % 4 === 0;
    const size = Math.min((512 + (next() % (video ? 7680 : 3584))) * 1024, Math.max(65536, Math.floor(budget * 0.7 - bytes)));
    const rel = `Photos/${2019 + (next() % 6)}/${WORDS[next() % WORDS.length]}/${video ? 'VID' : 'IMG'}_${String(i).padStart(4, '0')}.${video ? 'mp4' : 'jpg'}`;
    await write(rel, randomBytes(next, size));
    media.push(rel);
  }
  for (let i = 1; bytes < budget * 0.9; i++) {
    const words = Array.from({ length: 200 + (next() % 4000) }, () => WORDS[next() % WORDS.length]).join(' ');
    await write(`Documents/${WORDS[next() % WORDS.length]}/notes-${i}.txt`, Buffer.from(words + '\n'));
  }
  for (let i = 0; i < media.length && bytes < budget; i += 3) {
    await write(`Old backup/${media[i].replace(/\//g, '_')}`, await fs.readFile(join(root, media[i])));
  }
  await write(`Documents/it's "quoted" & spaced.txt`, Buffer.from('odd names survive\n'));
  await write('Documents/caf\u00e9 (NFC).txt', Buffer.from('NFC\n'));
  await write('Documents/cafe\u0301 (NFD).txt', Buffer.from('NFD\n'));
  await write('Documents/empty.txt', Buffer.alloc(0));
  await fs.mkdir(join(root, 'Empty folder'), { recursive: true });
  await fs.symlink('Documents', join(root, 'Docs shortcut'));
  await fs.link(join(root, media[0]), join(root, 'Photos/favourite.jpg'));
  return { files, bytes };
}
