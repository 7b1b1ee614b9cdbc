/**
 * Founding a reserve, inviting a Box and joining one, on data dirs (datadir.ts) through the Box runtime.
 *
 *   initReserve(dir)        new keys and secret, the founder joins itself and sets the replication target, the
 *                           minimum and the repair grace in the shared config
 *   createInvite(dir)       a token (token.ts) with the newest secret and where this Box and the members it knows
 *                           listen: the running daemon's addresses (daemon.json) or reserve.json's listen addresses
 *   joinReserve(dir, token) a factory-new Box: new keys, the invite's secret; it starts, is refused as a non-member,
 *                           sends JOIN, syncs the whole state from the member that admitted it, saves and stops
 */
import * as fs from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { createReserveSecret } from '../../core/state/crypto.ts';
import { activeMembers } from '../../core/state/reducer.ts';
import type { BoxTiming } from '../../core/box/box.ts';
import type { ChunkingService } from '../../core/snapshot/ports.ts';
import { generateBoxKeys } from '../crdt/keys.ts';
import { DAEMON_FILE, type DaemonFile } from '../daemon/api.ts';
import { AccessDeniedError } from '../net/errors.ts';
import { systemRandom } from '../system.ts';
import {
  RESERVE_FILE_FORMAT,
  RESERVE_FILE_VERSION,
  holdsBox,
  newestSecret,
  pidAlive,
  readPeers,
  readReserveFile,
  readSecrets,
  writeKeys,
  writeReserveFile,
  writeSecrets,
} from './datadir.ts';
import { BoxExistsError, JoinFailedError, NoAddressError } from './errors.ts';
import { BoxRuntime, type BoxNotice } from './runtime.ts';
import { MAX_BOOTSTRAP, decodeInvite, encodeInvite } from './token.ts';

/** The shared config's default (core/state/config.ts): a Box back for this long counts as back. */
const DEFAULT_HYSTERESIS_MS = 10 * 60_000;

/** Listen on every interface, on a port chosen at the first start and kept from then on. */
export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/0'];

export interface NewBoxOptions {
  /** Bytes offered to the reserve (default: the free space of the data dir's file system). */
  capacity?: number;
  region?: string;
  listen?: string[];
  timing?: BoxTiming;
  chunking?: ChunkingService;
  dialTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface InitOptions extends NewBoxOptions {
  /** Copies of every chunk the reserve keeps (default 3). */
  rf?: number;
  /** Copies below which a snapshot is not protected (default min(2, rf)). */
  minRf?: number;
  /** How long a Box may be unreachable before it is declared dead and its chunks re-replicated (default 1 h). */
  repairGraceMs?: number;
}

export interface InitResult {
  reserveId: string;
  box: string;
  dataDir: string;
}

export interface JoinResult {
  reserveId: string;
  box: string;
  /** Active members once joined (this Box included). */
  members: number;
}

export interface InviteResult {
  token: string;
  reserveId: string;
  bootstrap: string[];
}

async function defaultCapacity(dir: string): Promise<number> {
  const s = await fs.statfs(dir);
  return Math.max(1, s.bavail * s.bsize);
}

/** Create `dir` for a new Box; returns a function that removes what was created (for a failed init or join). */
async function prepareNewDir(dir: string): Promise<() => Promise<void>> {
  if (await holdsBox(dir)) throw new BoxExistsError(dir);
  let before: string[] | undefined;
  try {
    before = await fs.readdir(dir);
  } catch {
    before = undefined; // does not exist yet
  }
  await fs.mkdir(dir, { recursive: true });
  return async () => {
    if (before === undefined) await fs.rm(dir, { recursive: true, force: true });
    else {
      const keep = new Set(before);
      for (const name of await fs.readdir(dir)) if (!keep.has(name)) await fs.rm(join(dir, name), { recursive: true, force: true });
    }
  };
}

async function writeNewBox(dir: string, reserveId: string, generation: number, secret: Uint8Array, o: NewBoxOptions): Promise<string> {
  const keys = await generateBoxKeys();
  await writeKeys(dir, keys);
  await writeSecrets(dir, new Map([[generation, secret]]));
  await writeReserveFile(dir, {
    format: RESERVE_FILE_FORMAT,
    version: RESERVE_FILE_VERSION,
    reserveId,
    box: keys.signer.id,
    listen: o.listen ?? DEFAULT_LISTEN,
    capacity: o.capacity ?? (await defaultCapacity(dir)),
    ...(o.region === undefined ? {} : { region: o.region }),
    created: Date.now(),
  });
  return keys.signer.id;
}

/** Found a new reserve in `dataDir` (which must not hold a Box yet). */
export async function initReserve(dataDir: string, options: InitOptions = {}): Promise<InitResult> {
  const dir = resolvePath(dataDir);
  const rf = options.rf ?? 3;
  const minRf = options.minRf ?? Math.min(2, rf);
  const cleanup = await prepareNewDir(dir);
  try {
    const { secret, reserveId } = createReserveSecret(systemRandom);
    const box = await writeNewBox(dir, reserveId, 0, secret, options);
    const rt = await BoxRuntime.open({ dataDir: dir, health: false, timing: options.timing, chunking: options.chunking, dialTimeoutMs: options.dialTimeoutMs, log: options.log });
    try {
      await rt.start(); // the founder joins itself (generation 0 of its own secret)
      const set: Array<[string, unknown]> = [
        ['replication.minimum', minRf],
        ['replication.target', rf],
      ];
      if (options.repairGraceMs !== undefined) {
        set.push(['repair.graceMs', options.repairGraceMs]);
        // A Box that is back must count as back well before the grace runs out, or a short grace (a demo's 15 s)
        // declares dead a Box that was only restarting: keep the hysteresis at a quarter of the grace at most.
        if (options.repairGraceMs < 4 * DEFAULT_HYSTERESIS_MS) set.push(['repair.hysteresisMs', Math.floor(options.repairGraceMs / 4)]);
      }
      rt.box.ledger.publish('config-changed', { set: set.sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)) }); // paths sorted
    } finally {
      await rt.stop();
    }
    return { reserveId, box, dataDir: dir };
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}

/** Read `<data>/daemon.json` when its daemon is alive. */
export async function readLiveDaemonFile(dataDir: string): Promise<DaemonFile | undefined> {
  try {
    const d = JSON.parse(await fs.readFile(join(resolvePath(dataDir), DAEMON_FILE), 'utf8')) as DaemonFile;
    return pidAlive(d.pid) ? d : undefined;
  } catch {
    return undefined;
  }
}

/** A listen multiaddr as addresses others can dial: 0.0.0.0 / :: become this machine's interface addresses. */
export function dialableAddresses(listen: string): string[] {
  const m = /^\/(ip4|ip6)\/([^/]+)\/tcp\/(\d+)$/.exec(listen);
  if (!m) return /\/tcp\/0(\/|$)/.test(listen) ? [] : [listen];
  const [, family, host, port] = m;
  if (port === '0') return [];
  const unspecified = host === '0.0.0.0' || host === '::';
  if (!unspecified) return [listen];
  const out: Array<{ addr: string; internal: boolean }> = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) {
      if ((family === 'ip4') !== (i.family === 'IPv4')) continue;
      if (family === 'ip6' && i.address.startsWith('fe80')) continue; // link-local needs a zone
      out.push({ addr: `/${family}/${i.address}/tcp/${port}`, internal: i.internal });
    }
  }
  return out.sort((a, b) => Number(a.internal) - Number(b.internal)).map((a) => a.addr);
}

/** An invite token for a new Box (the data dir may be in use by its daemon: only files are read). */
export async function createInvite(dataDir: string): Promise<InviteResult> {
  const dir = resolvePath(dataDir);
  const file = await readReserveFile(dir);
  const newest = newestSecret(await readSecrets(dir));
  if (!newest) throw new NoAddressError(`${dir} holds no reserve secret to invite with`);
  const daemon = await readLiveDaemonFile(dir);
  const own = daemon && daemon.addresses.length > 0 ? daemon.addresses : file.listen.flatMap(dialableAddresses).map((a) => `${a}/p2p/${file.box}`);
  const others: string[] = [];
  for (const [id, e] of Object.entries(await readPeers(dir))) {
    if (id === file.box) continue;
    for (const a of e.addrs.slice(0, 2)) others.push(`${a.replace(/\/p2p\/[^/]+$/, '')}/p2p/${id}`);
  }
  const bootstrap = [...new Set([...own, ...others])].slice(0, MAX_BOOTSTRAP);
  if (own.length === 0 && others.length === 0) {
    throw new NoAddressError(`this Box has no address others could dial yet (it listens on ${file.listen.join(', ')}): start it once with \`reserve daemon --data ${dir}\`, or give it a fixed port with --listen`);
  }
  return { token: encodeInvite({ reserveId: file.reserveId, generation: newest.generation, secret: newest.secret, bootstrap }), reserveId: file.reserveId, bootstrap };
}

/**
 * Join the reserve of an invite `token` with a new Box in `dataDir` (which must not hold a Box yet): start, send
 * JOIN to a bootstrap peer, sync the whole state, save, stop. Throws JoinFailedError (and removes what it created)
 * when no bootstrap peer answers, the secret is refused, or the join is refused.
 */
export async function joinReserve(dataDir: string, token: string, options: NewBoxOptions = {}): Promise<JoinResult> {
  const invite = decodeInvite(token);
  const dir = resolvePath(dataDir);
  const cleanup = await prepareNewDir(dir);
  const notices: BoxNotice[] = [];
  try {
    const box = await writeNewBox(dir, invite.reserveId, invite.generation, invite.secret, options);
    const rt = await BoxRuntime.open({
      dataDir: dir,
      bootstrap: invite.bootstrap,
      health: false,
      timing: options.timing,
      chunking: options.chunking,
      dialTimeoutMs: options.dialTimeoutMs,
      log: options.log,
      onNotice: (n) => notices.push(n),
    });
    try {
      await rt.start();
      const accepted = notices.some((n) => n.type === 'join-accepted');
      const others = () => activeMembers(rt.box.state()).filter((id) => id !== box);
      for (let i = 0; accepted && others().length === 0 && i < 3; i++) await rt.box.syncAll();
      if (!accepted || others().length === 0) throw await joinFailure(rt, invite.bootstrap, notices);
      return { reserveId: invite.reserveId, box, members: activeMembers(rt.box.state()).length };
    } finally {
      await rt.stop();
    }
  } catch (err) {
    await cleanup().catch(() => undefined);
    throw err;
  }
}

/** Why a join did not happen, found by dialling each bootstrap address once more. */
async function joinFailure(rt: BoxRuntime, bootstrap: readonly string[], notices: readonly BoxNotice[]): Promise<JoinFailedError> {
  const refusals = notices.flatMap((n) => (n.type === 'join-failed' ? [`${n.peer}: ${n.message}`] : []));
  if (refusals.length > 0) return new JoinFailedError(`the reserve refused this Box's join: ${refusals.join('; ')}`);
  const outcomes = await Promise.all(
    bootstrap.map(async (addr) => {
      try {
        await rt.network.dial(addr);
        return { addr, kind: 'reached' as const, reason: 'connected' };
      } catch (err) {
        if (err instanceof AccessDeniedError && err.reason === 'wrong-secret') return { addr, kind: 'secret' as const, reason: err.message };
        if (err instanceof AccessDeniedError && err.reason === 'not-a-member') return { addr, kind: 'reached' as const, reason: 'it answered but did not admit this Box' };
        return { addr, kind: 'unreachable' as const, reason: (err as Error).message };
      }
    }),
  );
  const list = (kind: string) => outcomes.filter((o) => o.kind === kind);
  if (list('secret').length > 0 && list('reached').length === 0) {
    return new JoinFailedError(
      `the reserve's Boxes refused the invite's secret (${list('secret').map((o) => o.addr).join(', ')}): the token is from another reserve, or stale (the reserve rotated its secret since); ask a member for a new invite`,
    );
  }
  if (list('reached').length > 0) {
    return new JoinFailedError(`the invite's Boxes answered but did not admit this Box (${list('reached').map((o) => `${o.addr}: ${o.reason}`).join('; ')}); try again, or ask a member for a new invite`);
  }
  return new JoinFailedError(`no bootstrap peer of the invite answered: ${outcomes.map((o) => `${o.addr} (${o.reason})`).join('; ')}. Is a member's daemon running and reachable there?`);
}
