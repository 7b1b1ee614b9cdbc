/**
 * A repository on one Box's disk: the block store plus the list of snapshots taken into it.
 *
 *   <repo>/reserve-repo.json   format marker: {format, version, id, created, chunker}
 *   <repo>/blocks/, tmp/, quarantine/   the FsBlockstore
 *   <repo>/snapshots/<cid>     one empty marker per snapshot, written only after every block of it is durable
 *
 * Snapshot ids are root CIDs. A user may name one by a unique prefix (as with git commits) or by `latest`.
 */
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import type { CID } from 'multiformats/cid';
import { parseCid } from '../../core/blocks/cid.ts';
import { ReserveError } from '../../core/errors.ts';
import { DEFAULT_CHUNKER, type ChunkerParams } from '../../core/chunker/fastcdc.ts';
import { readSnapshot } from '../../core/snapshot/manifest-io.ts';
import type { SnapshotNode } from '../../core/snapshot/model.ts';
import { FsBlockstore } from '../storage/fs-blockstore.ts';
import { systemRandom } from '../system.ts';

export class NotARepoError extends ReserveError {
  static override readonly name = 'NotARepoError';
}

export class SnapshotNotFoundError extends ReserveError {
  static override readonly name = 'SnapshotNotFoundError';
}

const MARKER = 'reserve-repo.json';
const FORMAT = 'reserve-repo';
/**
 * 2: small blocks in pack files (adapters/storage/fs-packs.ts). A version 1 repository (a file per block) opens as
 * it is and becomes version 2 when this Reserve first writes to it; a Reserve that reads only version 1 then refuses
 * it with a clear message instead of missing its packed blocks.
 */
const VERSION = 2;
const READABLE = [1, 2];

interface RepoConfig {
  format: string;
  version: number;
  id: string;
  created: number;
  chunker: ChunkerParams;
}

export interface SnapshotInfo {
  cid: CID;
  id: string;
  node: SnapshotNode;
}

/**
 * What a creation killed before the marker was renamed into place leaves: an empty snapshots/ and perhaps the
 * marker's temp file. Such a directory is taken over (the creation is redone); anything else is not ours.
 */
async function interruptedCreation(path: string, entries: string[]): Promise<boolean> {
  if (!entries.every((e) => e === 'snapshots' || e === `${MARKER}.tmp`)) return false;
  if (!entries.includes('snapshots')) return entries.length === 1; // only the temp marker
  try {
    return (await fs.readdir(join(path, 'snapshots'))).length === 0;
  } catch {
    return false;
  }
}

export class LocalRepo {
  private constructor(
    readonly path: string,
    readonly config: RepoConfig,
    readonly blocks: FsBlockstore,
  ) {}

  /** Open an existing repository. */
  static async open(path: string): Promise<LocalRepo> {
    let text: string;
    try {
      text = await fs.readFile(join(path, MARKER), 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotARepoError(`${path} is not a Reserve repository (no ${MARKER}); back up into a new or empty directory to create one`);
      throw e;
    }
    let config: RepoConfig;
    try {
      config = JSON.parse(text) as RepoConfig;
    } catch {
      throw new NotARepoError(`${path}/${MARKER} is damaged (not JSON)`);
    }
    if (config.format !== FORMAT) throw new NotARepoError(`${path} is not a Reserve repository (${MARKER} has format ${JSON.stringify(config.format)})`);
    if (!READABLE.includes(config.version)) throw new NotARepoError(`${path} is a version ${config.version} repository; this Reserve reads versions ${READABLE.join(' and ')}`);
    const blocks = await FsBlockstore.open(path);
    return new LocalRepo(path, config, blocks);
  }

  /** Open a repository, creating it when `path` is absent or an empty directory. */
  static async openOrCreate(path: string, now: number): Promise<LocalRepo> {
    let entries: string[] | null = null;
    try {
      entries = await fs.readdir(path);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOTDIR') throw new NotARepoError(`${path} is a file, not a Reserve repository`);
      if (code !== 'ENOENT') throw e;
    }
    if (entries && entries.includes(MARKER)) {
      const repo = await LocalRepo.open(path);
      if (repo.config.version < VERSION) await repo.#upgrade();
      return repo;
    }
    if (entries && entries.length > 0 && !(await interruptedCreation(path, entries))) {
      throw new NotARepoError(`${path} is not empty and is not a Reserve repository; choose a new or empty directory`);
    }
    await fs.mkdir(join(path, 'snapshots'), { recursive: true });
    const config: RepoConfig = {
      format: FORMAT,
      version: VERSION,
      id: Buffer.from(systemRandom.bytes(16)).toString('hex'),
      created: now,
      chunker: DEFAULT_CHUNKER,
    };
    const tmp = join(path, `${MARKER}.tmp`);
    await fs.writeFile(tmp, JSON.stringify(config, null, 2) + '\n');
    await fs.rename(tmp, join(path, MARKER));
    return LocalRepo.open(path);
  }

  /** Mark the repository as the current version before writing to it (temp file, fsync, rename). */
  async #upgrade(): Promise<void> {
    const config = { ...this.config, version: VERSION };
    const tmp = join(this.path, `${MARKER}.tmp`);
    const fh = await fs.open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(config, null, 2) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, join(this.path, MARKER));
    this.config.version = VERSION;
  }

  /** Record a snapshot whose blocks are all durable. */
  async addSnapshot(cid: CID): Promise<void> {
    const dir = join(this.path, 'snapshots');
    await fs.mkdir(dir, { recursive: true });
    const fh = await fs.open(join(dir, cid.toString()), 'w');
    await fh.sync();
    await fh.close();
    const d = await fs.open(dir, 'r');
    await d.sync().catch(() => undefined);
    await d.close();
  }

  /** The ids of every recorded snapshot, from the markers alone (no block is read). */
  async snapshotIds(): Promise<CID[]> {
    let names: string[];
    try {
      names = await fs.readdir(join(this.path, 'snapshots'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    return names.filter((n) => !n.endsWith('.tmp')).map(parseCid);
  }

  /** Every snapshot, oldest first. */
  async snapshots(): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    for (const cid of await this.snapshotIds()) {
      out.push({ cid, id: cid.toString(), node: await readSnapshot(this.blocks, cid, `${this.path}`) });
    }
    out.sort((a, b) => a.node.time - b.node.time || a.id.localeCompare(b.id));
    return out;
  }

  /** Resolve `latest`, a full snapshot id, or a unique prefix or suffix of one (listings show the suffix). */
  async resolve(ref: string): Promise<SnapshotInfo> {
    const all = await this.snapshots();
    if (all.length === 0) throw new SnapshotNotFoundError(`${this.path} has no snapshots yet`);
    if (ref === 'latest') return all[all.length - 1];
    const matches = ref.length >= 6 ? all.filter((s) => s.id.startsWith(ref) || s.id.endsWith(ref)) : [];
    if (matches.length === 1) return matches[0];
    if (matches.length > 1) throw new SnapshotNotFoundError(`${JSON.stringify(ref)} matches ${matches.length} snapshots; give more characters`);
    throw new SnapshotNotFoundError(`no snapshot ${JSON.stringify(ref)} in ${this.path} (see \`reserve snapshots --repo ${this.path}\`)`);
  }

  /** The newest snapshot of `source` by `author`: the parent of the next backup of it. */
  async parentFor(source: string, author: string): Promise<SnapshotInfo | null> {
    const all = await this.snapshots();
    for (let i = all.length - 1; i >= 0; i--) if (all[i].node.source === source && all[i].node.author === author) return all[i];
    return null;
  }

  async close(): Promise<void> {
    await this.blocks.close();
  }
}
