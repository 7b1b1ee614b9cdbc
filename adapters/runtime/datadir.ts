/**
 * A Box's data dir:
 *
 *   reserve.json     what this Box is: format/version, reserve id, Box id, listen addresses, capacity, region
 *   keys/box.key     the Box's keys (libp2p Ed25519 identity = Box id, X25519 key secrets are sealed to), 0600
 *   keys/secrets.json  the reserve secret generations this Box holds (what invites carry), 0600
 *   blocks/ tmp/ quarantine/   the block store (FsBlockstore)
 *   kv/              the Box's key-value store (ledger, event outbox, keeper progress; FsKvStore)
 *   peers.json       the addresses of members this Box has seen (dialled first at the next start)
 *   LOCK             the pid of the one process that has the data dir open
 *   daemon.json      written by a running `reserve daemon` (adapters/daemon/api.ts), 0600
 *
 * Files are replaced atomically (write a temporary file, fsync, rename).
 */
import * as fs from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { boxKeysFromBytes, boxKeysToBytes, type BoxKeys } from '../crdt/keys.ts';
import { BadDataDirError, DataDirLockedError, NoBoxError } from './errors.ts';

export const RESERVE_FILE = 'reserve.json';
export const LOCK_FILE = 'LOCK';
export const PEERS_FILE = 'peers.json';
export const KEYS_DIR = 'keys';
export const KEY_FILE = join(KEYS_DIR, 'box.key');
export const SECRETS_FILE = join(KEYS_DIR, 'secrets.json');
export const KV_DIR = 'kv';

export const RESERVE_FILE_FORMAT = 'reserve-box';
export const RESERVE_FILE_VERSION = 1;

export interface ReserveFile {
  format: typeof RESERVE_FILE_FORMAT;
  version: typeof RESERVE_FILE_VERSION;
  reserveId: string;
  /** This Box's id (its libp2p peer id). */
  box: string;
  /** Multiaddrs to listen on (a port 0 is replaced by the port first bound, so invites stay valid). */
  listen: string[];
  /** Bytes offered to the reserve. */
  capacity: number;
  region?: string;
  created: number;
}

const isErrno = (err: unknown, code: string): boolean => (err as NodeJS.ErrnoException)?.code === code;

/** Write `data` to `path` atomically with `mode`. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await fs.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fs.rename(tmp, path);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await fs.access(path);
    return true;
  } catch {
    return false;
  }
}

export async function holdsBox(dataDir: string): Promise<boolean> {
  return (await exists(join(dataDir, RESERVE_FILE))) || (await exists(join(dataDir, KEY_FILE)));
}

export async function readReserveFile(dataDir: string): Promise<ReserveFile> {
  let text: string;
  try {
    text = await fs.readFile(join(dataDir, RESERVE_FILE), 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new NoBoxError(dataDir);
    throw err;
  }
  let v: Partial<ReserveFile>;
  try {
    v = JSON.parse(text) as Partial<ReserveFile>;
  } catch (cause) {
    throw new BadDataDirError(`${join(dataDir, RESERVE_FILE)} is not JSON`, { cause });
  }
  if (v?.format !== RESERVE_FILE_FORMAT) throw new BadDataDirError(`${join(dataDir, RESERVE_FILE)} is not a Reserve Box file`);
  if (v.version !== RESERVE_FILE_VERSION) throw new BadDataDirError(`${join(dataDir, RESERVE_FILE)} has version ${String(v.version)}; this build reads version ${RESERVE_FILE_VERSION}`);
  if (
    typeof v.reserveId !== 'string' ||
    typeof v.box !== 'string' ||
    !Array.isArray(v.listen) ||
    !v.listen.every((a) => typeof a === 'string') ||
    typeof v.capacity !== 'number' ||
    !Number.isSafeInteger(v.capacity) ||
    (v.region !== undefined && typeof v.region !== 'string')
  ) {
    throw new BadDataDirError(`${join(dataDir, RESERVE_FILE)} is missing fields (reserveId, box, listen, capacity)`);
  }
  return v as ReserveFile;
}

export async function writeReserveFile(dataDir: string, file: ReserveFile): Promise<void> {
  await writeFileAtomic(join(dataDir, RESERVE_FILE), JSON.stringify(file, null, 2) + '\n', 0o644);
}

// ------------------------------------------------------------------------------------------------ keys

export async function writeKeys(dataDir: string, keys: BoxKeys): Promise<void> {
  await fs.mkdir(join(dataDir, KEYS_DIR), { recursive: true, mode: 0o700 });
  await writeFileAtomic(join(dataDir, KEY_FILE), boxKeysToBytes(keys), 0o600);
}

export async function readKeys(dataDir: string): Promise<BoxKeys> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(join(dataDir, KEY_FILE));
  } catch (err) {
    if (isErrno(err, 'ENOENT')) throw new BadDataDirError(`${join(dataDir, KEY_FILE)} is missing: this data dir has lost its Box's keys`);
    throw err;
  }
  return boxKeysFromBytes(new Uint8Array(bytes));
}

/** Secret generations this Box holds, newest last. */
export async function readSecrets(dataDir: string): Promise<Map<number, Uint8Array>> {
  let text: string;
  try {
    text = await fs.readFile(join(dataDir, SECRETS_FILE), 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return new Map();
    throw err;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (cause) {
    throw new BadDataDirError(`${join(dataDir, SECRETS_FILE)} is not JSON`, { cause });
  }
  const out = new Map<number, Uint8Array>();
  const gens = (v as { generations?: unknown })?.generations;
  if (gens === null || typeof gens !== 'object') throw new BadDataDirError(`${join(dataDir, SECRETS_FILE)} holds no generations`);
  for (const [g, s] of Object.entries(gens as Record<string, unknown>)) {
    const n = Number(g);
    if (!Number.isSafeInteger(n) || n < 0 || typeof s !== 'string') throw new BadDataDirError(`${join(dataDir, SECRETS_FILE)}: bad generation ${g}`);
    out.set(n, new Uint8Array(Buffer.from(s, 'base64url')));
  }
  return new Map([...out].sort(([a], [b]) => a - b));
}

export async function writeSecrets(dataDir: string, secrets: ReadonlyMap<number, Uint8Array>): Promise<void> {
  await fs.mkdir(join(dataDir, KEYS_DIR), { recursive: true, mode: 0o700 });
  const generations: Record<string, string> = {};
  for (const [g, s] of [...secrets].sort(([a], [b]) => a - b)) generations[String(g)] = Buffer.from(s).toString('base64url');
  await writeFileAtomic(join(dataDir, SECRETS_FILE), JSON.stringify({ note: 'the reserve secret: whoever holds it can join the reserve; keep it private', generations }, null, 2) + '\n', 0o600);
}

export function newestSecret(secrets: ReadonlyMap<number, Uint8Array>): { generation: number; secret: Uint8Array } | undefined {
  if (secrets.size === 0) return undefined;
  const generation = Math.max(...secrets.keys());
  return { generation, secret: secrets.get(generation) as Uint8Array };
}

// ------------------------------------------------------------------------------------------------ peers

export type PeerBook = Record<string, { addrs: string[]; lastSeen: number }>;

export async function readPeers(dataDir: string): Promise<PeerBook> {
  try {
    const v = JSON.parse(await fs.readFile(join(dataDir, PEERS_FILE), 'utf8')) as { peers?: PeerBook };
    const out: PeerBook = {};
    for (const [id, e] of Object.entries(v?.peers ?? {})) {
      if (Array.isArray(e?.addrs) && e.addrs.every((a) => typeof a === 'string') && typeof e.lastSeen === 'number') out[id] = { addrs: e.addrs, lastSeen: e.lastSeen };
    }
    return out;
  } catch {
    return {}; // missing or damaged: the Box finds its peers again from the shared state and bootstrap
  }
}

export async function writePeers(dataDir: string, peers: PeerBook): Promise<void> {
  await writeFileAtomic(join(dataDir, PEERS_FILE), JSON.stringify({ peers }, null, 2) + '\n', 0o644);
}

// ------------------------------------------------------------------------------------------------ lock

export interface DataDirLock {
  readonly path: string;
  release(): Promise<void>;
}

/** Is a process with this pid alive (on this machine)? */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM'); // alive, owned by someone else
  }
}

/**
 * Take the data dir's LOCK for this process. Throws DataDirLockedError naming the holder when another live process
 * has it; a LOCK left by a process that died is taken over.
 */
export async function acquireLock(dataDir: string): Promise<DataDirLock> {
  const path = join(dataDir, LOCK_FILE);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fh = await fs.open(path, 'wx', 0o644);
      try {
        await fh.writeFile(`${process.pid}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      let released = false;
      return {
        path,
        async release() {
          if (released) return;
          released = true;
          try {
            if (Number((await fs.readFile(path, 'utf8')).trim()) === process.pid) await fs.rm(path, { force: true });
          } catch {
            // already gone
          }
        },
      };
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
    let text = '';
    try {
      text = await fs.readFile(path, 'utf8');
    } catch {
      continue; // released meanwhile: try again
    }
    const pid = Number(text.trim());
    if (pidAlive(pid)) throw new DataDirLockedError(dataDir, pid);
    // stale: its process is gone. Remove it unless someone else took it over meanwhile.
    try {
      if ((await fs.readFile(path, 'utf8')) === text) await fs.rm(path, { force: true });
    } catch {
      // gone already
    }
  }
  throw new DataDirLockedError(dataDir, Number((await fs.readFile(path, 'utf8').catch(() => '0')).trim()));
}
