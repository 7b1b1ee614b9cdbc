/**
 * The Box runtime: the production Box (core/box) wired to this machine. A data dir (datadir.ts) gives it its
 * identity, secrets, blocks and state; libp2p gives it the reserve's private network:
 *
 *   FsBlockstore + FsKvStore in the data dir, keys from keys/box.key, Yjs ledger, system clock and randomness,
 *   FastCDC/hashing on worker threads, libp2p with PSK = pskFromSecret(newest secret), OS health from /proc.
 *
 * Membership on the network follows the shared state: members (active, or presumed dead: they may come back) are
 * let in; the bootstrap peers of a joining Box are trusted until its ledger knows them; anyone else who holds the
 * secret may only ask to join. Every second the runtime looks at the merged state: a membership change closes the
 * connections of removed Boxes, every member's advertised addresses are dialled, a new secret generation becomes
 * the PSK for new connections (so a Box removed by a rotation can no longer connect), and this Box's own addresses,
 * capacity and region are re-announced when they changed. The address book is kept in peers.json.
 */
import '../net/polyfill.ts';
import { hostname } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { Box, type BoxInit, type BoxTiming } from '../../core/box/box.ts';
import type { ChunkerParams } from '../../core/chunker/fastcdc.ts';
import type { EventEnvelope } from '../../core/events/types.ts';
import type { HealthSource } from '../../core/events/health.ts';
import type { ChunkingService } from '../../core/snapshot/ports.ts';
import type { ReserveState } from '../../core/state/reducer.ts';
import { createYjsBackend } from '../crdt/yjs.ts';
import type { BoxKeys } from '../crdt/keys.ts';
import { OsHealthSource } from '../metrics/os-health.ts';
import { createLibp2pNetwork, type Libp2pNetwork } from '../net/libp2p-network.ts';
import { pskFromSecret } from '../net/psk.ts';
import { FsBlockstore } from '../storage/fs-blockstore.ts';
import { decodeReport, decodeReportRequest, encodeReport, encodeReportRequest, healthView, REPORT_PROTOCOL, type BoxReport } from './report.ts';
import { FsKvStore } from '../storage/fs-kv.ts';
import { systemClock, systemRandom } from '../system.ts';
import { WorkerChunking } from '../workers/chunk-pool.ts';
import {
  KV_DIR,
  acquireLock,
  newestSecret,
  readKeys,
  readPeers,
  readReserveFile,
  readSecrets,
  writePeers,
  writeReserveFile,
  writeSecrets,
  type DataDirLock,
  type PeerBook,
  type ReserveFile,
} from './datadir.ts';
import { BadDataDirError } from './errors.ts';
import { peerIdOfAddr } from './token.ts';

export type BoxNotice = Parameters<NonNullable<BoxInit['onNotice']>>[0];

export interface BoxRuntimeOptions {
  dataDir: string;
  /** Listen on these multiaddrs instead of the ones in reserve.json (and remember them there). */
  listen?: string[];
  /** Members to join through (multiaddrs ending in /p2p/<id>), e.g. an invite's bootstrap addresses. */
  bootstrap?: string[];
  timing?: BoxTiming;
  /** Default: a WorkerChunking pool owned (and closed) by the runtime. */
  chunking?: ChunkingService;
  chunker?: ChunkerParams;
  /** Health source for keeper-health events; default the OS (/proc); false for none. */
  health?: HealthSource | false;
  dialTimeoutMs?: number;
  maintenanceIntervalMs?: number;
  applicantTimeoutMs?: number;
  /** How often the runtime looks at the merged state for membership, secret and address changes (default 1 s). */
  watchMs?: number;
  onNotice?: (n: BoxNotice) => void;
  onEvent?: (e: EventEnvelope) => void;
  /** Network diagnostics. */
  log?: (line: string) => void;
}

const MAX_ADVERTISED = 16;
const PEERS_SAVE_MS = 30_000;

/** Replace port 0 in `listen` by the port actually bound (from the Box's addresses), so restarts keep it. */
export function stickyListen(listen: readonly string[], bound: readonly string[]): string[] {
  return listen.map((l) => {
    const m = /^\/(ip4|ip6|dns4|dns6|dns)\/([^/]+)\/tcp\/0$/.exec(l);
    if (!m) return l;
    const family = m[1] === 'ip6' || m[1] === 'dns6' ? 'ip6' : 'ip4';
    const exact = bound.find((b) => b.startsWith(`/${m[1]}/${m[2]}/tcp/`));
    const any = exact ?? bound.find((b) => b.startsWith(`/${family}/`) && /\/tcp\/\d+/.test(b));
    const port = any ? /\/tcp\/(\d+)/.exec(any)?.[1] : undefined;
    return port ? `/${m[1]}/${m[2]}/tcp/${port}` : l;
  });
}

/**
 * Worker threads started on first use only: a Box that only syncs (init, join, status) never pays for them. Every
 * method of the pool is passed through, the moving ones included (`owned` windows, `digestOwned`): without them a
 * backup copied each window and a restore each fetched chunk to a worker with postMessage instead of moving it.
 */
export function lazyWorkerChunking(make: () => WorkerChunking = () => new WorkerChunking()): ChunkingService {
  let pool: WorkerChunking | undefined;
  const get = () => (pool ??= make());
  return {
    chunk: (data, eof, owned) => get().chunk(data, eof, owned),
    digest: (blocks) => get().digest(blocks),
    digestOwned: (blocks) => get().digestOwned(blocks),
    close: async () => {
      await pool?.close();
    },
  };
}

export class BoxRuntime {
  readonly dataDir: string;
  readonly keys: BoxKeys;
  readonly blockstore: FsBlockstore;
  readonly kv: FsKvStore;
  #file: ReserveFile;
  readonly #o: BoxRuntimeOptions;
  readonly #lock: DataDirLock;
  readonly #secrets: Map<number, Uint8Array>;
  readonly #peersAtOpen: PeerBook;
  readonly #bootstrapIds: Set<string>;
  #network: Libp2pNetwork | undefined;
  #box: Box | undefined;
  #chunking: ChunkingService | undefined;
  #ownChunking = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastState: ReserveState | undefined;
  #lastMembers = '';
  #advertised = new Map<string, string>();
  #pskGeneration = -1;
  #peersJson = '';
  #lastPeersSave = 0;
  #state: 'open' | 'starting' | 'running' | 'stopped' = 'open';
  #secretWrite: Promise<void> = Promise.resolve();
  #stopping: Promise<void> | undefined;
  #used: { bytes: number; version: number; at: number } | undefined;

  /** Bytes of blocks this Box holds (re-measured when its store changed, at most every 10 s). */
  async usedBytes(): Promise<number> {
    const version = this.#box?.blocks.version ?? -1;
    const now = Date.now();
    const u = this.#used;
    if (u && (u.version === version || now - u.at < 10_000)) return u.bytes;
    const stat = await this.blockstore.stat();
    this.#used = { bytes: stat.bytes, version, at: now };
    return stat.bytes;
  }

  /** What this Box tells members that ask (`reserve/report/1`) and its own status page. */
  async selfReport(): Promise<BoxReport> {
    const reading = this.#box?.latestHealth();
    const health = healthView(reading);
    return { at: reading?.at ?? Date.now(), used: await this.usedBytes(), ...(health ? { health } : {}) };
  }

  /** Ask a member for its report; undefined when it does not answer within `timeoutMs`. */
  async peerReport(peer: string, timeoutMs = 1500): Promise<BoxReport | undefined> {
    try {
      return decodeReport(await this.network.request(peer, REPORT_PROTOCOL, encodeReportRequest(), { timeoutMs }));
    } catch {
      return undefined;
    }
  }

  private constructor(o: BoxRuntimeOptions, dataDir: string, file: ReserveFile, lock: DataDirLock, keys: BoxKeys, secrets: Map<number, Uint8Array>, peers: PeerBook, blocks: FsBlockstore, kv: FsKvStore) {
    this.#o = o;
    this.dataDir = dataDir;
    this.#file = file;
    this.#lock = lock;
    this.keys = keys;
    this.#secrets = secrets;
    this.#peersAtOpen = peers;
    this.blockstore = blocks;
    this.kv = kv;
    this.#bootstrapIds = new Set((o.bootstrap ?? []).map(peerIdOfAddr).filter((id): id is string => id !== undefined && id !== keys.signer.id));
  }

  /** Open a data dir (taking its LOCK: one process per data dir). The Box is not started yet. */
  static async open(options: BoxRuntimeOptions): Promise<BoxRuntime> {
    const dataDir = resolvePath(options.dataDir);
    const file = await readReserveFile(dataDir);
    const lock = await acquireLock(dataDir);
    let blocks: FsBlockstore | undefined;
    let kv: FsKvStore | undefined;
    try {
      const keys = await readKeys(dataDir);
      if (keys.signer.id !== file.box) throw new BadDataDirError(`${dataDir}: keys/box.key belongs to ${keys.signer.id}, but reserve.json says this Box is ${file.box}`);
      const secrets = await readSecrets(dataDir);
      if (secrets.size === 0) throw new BadDataDirError(`${dataDir}: keys/secrets.json holds no reserve secret; join again with a new invite token`);
      const peers = await readPeers(dataDir);
      blocks = await FsBlockstore.open(dataDir);
      kv = await FsKvStore.open(join(dataDir, KV_DIR));
      return new BoxRuntime(options, dataDir, file, lock, keys, secrets, peers, blocks, kv);
    } catch (err) {
      await kv?.close().catch(() => undefined);
      await blocks?.close().catch(() => undefined);
      await lock.release();
      throw err;
    }
  }

  get id(): string {
    return this.keys.signer.id;
  }

  get reserveId(): string {
    return this.#file.reserveId;
  }

  /** reserve.json as it is now. */
  get file(): ReserveFile {
    return this.#file;
  }

  get box(): Box {
    if (!this.#box) throw new BadDataDirError('the Box is not started');
    return this.#box;
  }

  get network(): Libp2pNetwork {
    if (!this.#network) throw new BadDataDirError('the Box is not started');
    return this.#network;
  }

  get running(): boolean {
    return this.#state === 'running';
  }

  /** Where others reach this Box (multiaddrs with /p2p/<id>). */
  addresses(): string[] {
    return this.#network?.isRunning ? this.#network.addresses() : [];
  }

  /** The merged shared state, or undefined before the Box has loaded its ledger. */
  #stateOrUndefined(): ReserveState | undefined {
    try {
      return this.#box?.state();
    } catch {
      return undefined;
    }
  }

  /**
   * Who may connect as a member: members that are active or presumed dead (they may come back), and this Box's
   * bootstrap peers while its ledger does not know them (a joining Box: anyone holding the secret until its first
   * sync, when it knows no member yet). Before the ledger is loaded, the Boxes of peers.json.
   */
  isMember(peer: string): boolean {
    const s = this.#stateOrUndefined();
    if (s) {
      const m = s.members.get(peer);
      if (m) return m.status === 'active' || m.status === 'dead';
      if (this.#bootstrapIds.has(peer)) return true;
      // A joining Box that has not synced yet knows no member but itself: it has nothing to protect, and the members
      // that just admitted it may call it (ping, sync) before it has learnt who they are.
      return this.#bootstrapIds.size > 0 && [...s.members.keys()].every((id) => id === this.id);
    }
    return this.#bootstrapIds.has(peer) || Object.hasOwn(this.#peersAtOpen, peer);
  }

  /** Start the network and the Box (sync, join if needed, keeper, integrity monitor, events). */
  async start(): Promise<void> {
    if (this.#state !== 'open') throw new BadDataDirError(`the Box runtime of ${this.dataDir} was already started`);
    this.#state = 'starting';
    const o = this.#o;
    const newest = newestSecret(this.#secrets)!;
    const listen = o.listen ?? this.#file.listen;
    try {
      const network = createLibp2pNetwork({
        privateKey: this.keys.privateKey,
        psk: pskFromSecret(newest.secret),
        listen,
        bootstrap: o.bootstrap,
        knownPeers: this.#peersAtOpen,
        isMember: (p) => this.isMember(p),
        dialTimeoutMs: o.dialTimeoutMs,
        maintenanceIntervalMs: o.maintenanceIntervalMs,
        applicantTimeoutMs: o.applicantTimeoutMs,
        // A member's connection opening or closing wakes the keeper (an idle one otherwise pings every 30 min at most)
        onPeerUp: (peer) => this.#box?.connectionChanged(peer),
        onPeerDown: (peer) => this.#box?.connectionChanged(peer),
        log: o.log,
      });
      this.#network = network;
      this.#pskGeneration = newest.generation;
      await network.start();
      const sticky = stickyListen(listen, network.addresses());
      if (JSON.stringify(sticky) !== JSON.stringify(this.#file.listen)) {
        this.#file = { ...this.#file, listen: sticky };
        await writeReserveFile(this.dataDir, this.#file);
      }
      if (o.chunking) this.#chunking = o.chunking;
      else {
        this.#chunking = lazyWorkerChunking();
        this.#ownChunking = true;
      }
      const box = new Box({
        reserveId: this.#file.reserveId,
        secrets: this.#secrets,
        signer: this.keys.signer,
        unsealer: this.keys.unsealer,
        clock: systemClock,
        random: systemRandom,
        network,
        blocks: this.blockstore,
        kv: this.kv,
        backend: createYjsBackend,
        chunking: this.#chunking,
        chunker: o.chunker,
        capacity: this.#file.capacity,
        region: this.#file.region,
        addresses: this.#advertisedAddresses(),
        host: hostname(),
        bootstrap: [...this.#bootstrapIds],
        quarantine: async (cid) => {
          await this.blockstore.quarantine(cid);
        },
        timing: o.timing,
        onNotice: (n) => o.onNotice?.(n),
        onEvent: (e) => o.onEvent?.(e),
        ...(o.health === false ? {} : { health: o.health ?? new OsHealthSource({ path: this.dataDir }) }),
      });
      this.#box = box;
      // The bulk block protocols are served by the Box itself once its store is loaded (core's BlockClient.serve
      // through network.blocks): what it serves and stores goes through the keeper's view of its holdings.
      network.handle(REPORT_PROTOCOL, async (_from, data) => {
        decodeReportRequest(data);
        return encodeReport(await this.selfReport());
      });
      await box.start();
      this.#state = 'running';
      await this.refresh();
      this.#announceSelf();
      const every = o.watchMs ?? 1000;
      this.#timer = setInterval(() => void this.refresh(), every);
      this.#timer.unref?.();
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }
  }

  /** Stop the Box and the network, save the address book, close the stores and release the LOCK. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const was = this.#state;
    this.#state = 'stopped';
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const errors: unknown[] = [];
    const attempt = async (fn: () => Promise<unknown> | undefined) => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };
    if (was === 'running' || was === 'starting') await attempt(() => this.#box?.stop());
    await attempt(() => this.#secretWrite);
    await attempt(() => this.#savePeers(true));
    await attempt(() => this.#network?.stop());
    if (this.#ownChunking) await attempt(() => this.#chunking?.close?.());
    await attempt(() => this.kv.close());
    await attempt(() => this.blockstore.close());
    await attempt(() => this.#lock.release());
    if (errors.length > 0) throw errors[0];
  }

  /** Addresses to announce in the shared state: where this Box listens, with its peer id. */
  #advertisedAddresses(): string[] {
    return this.addresses().slice(0, MAX_ADVERTISED);
  }

  /** Re-announce this Box's addresses, capacity and region when the shared state has other ones. */
  #announceSelf(): void {
    const box = this.#box;
    const me = this.#stateOrUndefined()?.members.get(this.id);
    if (!box || !me || me.status !== 'active') return;
    const addresses = this.#advertisedAddresses();
    const same = JSON.stringify([...me.addresses].sort()) === JSON.stringify([...addresses].sort()) && me.capacity === this.#file.capacity && me.region === this.#file.region;
    if (same) return;
    try {
      box.ledger.publish('box-updated', this.#file.region === undefined ? { capacity: this.#file.capacity, addresses } : { capacity: this.#file.capacity, region: this.#file.region, addresses });
    } catch (err) {
      this.#o.log?.(`announcing this Box's addresses: ${(err as Error).message}`);
    }
  }

  /**
   * Follow the merged state: membership, members' addresses, the newest secret (PSK), the address book. Runs every
   * `watchMs`; resolves once a new secret is on disk.
   */
  async refresh(): Promise<void> {
    const s = this.#stateOrUndefined();
    const network = this.#network;
    const box = this.#box;
    if (!s || !network || !box || this.#state !== 'running') return;
    if (s !== this.#lastState) {
      this.#lastState = s;
      for (const m of s.members.values()) {
        if (m.id === this.id || !(m.status === 'active' || m.status === 'dead')) continue;
        const key = m.addresses.join(' ');
        if (this.#advertised.get(m.id) === key) continue;
        this.#advertised.set(m.id, key);
        network.addPeerAddresses(m.id, m.addresses);
      }
      const members = [...s.members.values()]
        .map((m) => `${m.id}:${m.status}`)
        .sort()
        .join(',');
      if (members !== this.#lastMembers) {
        this.#lastMembers = members;
        network.refreshMembership().catch((err: unknown) => this.#o.log?.(`refreshing membership: ${(err as Error).message}`));
      }
    }
    const secrets = box.ledger.secrets();
    const newest = newestSecret(secrets);
    if (newest && newest.generation !== this.#pskGeneration) {
      this.#pskGeneration = newest.generation;
      network.setPsk(pskFromSecret(newest.secret));
      for (const [g, secret] of secrets) this.#secrets.set(g, secret);
      const copy = new Map(this.#secrets);
      this.#secretWrite = this.#secretWrite.then(() => writeSecrets(this.dataDir, copy)).catch((err: unknown) => this.#o.log?.(`saving the new secret: ${(err as Error).message}`));
      this.#o.log?.(`secret generation ${newest.generation}: new connections use its key`);
    }
    if (Date.now() - this.#lastPeersSave > PEERS_SAVE_MS) void this.#savePeers(false).catch(() => undefined);
    await this.#secretWrite;
  }

  async #savePeers(force: boolean): Promise<void> {
    const network = this.#network;
    if (!network?.isRunning) return;
    this.#lastPeersSave = Date.now();
    const book = network.knownPeers();
    const json = JSON.stringify(book);
    if (!force && json === this.#peersJson) return;
    this.#peersJson = json;
    await writePeers(this.dataDir, book);
  }

  /** Persist a new capacity or region (announced to the reserve at once when running). */
  async updateInfo(info: { capacity?: number; region?: string }): Promise<void> {
    this.#file = { ...this.#file, ...info };
    await writeReserveFile(this.dataDir, this.#file);
    if (this.running) this.#announceSelf();
  }
}

/** Open a data dir and start its Box: the library entry point a Box embeds. Call `stop()` when done. */
export async function createBox(options: BoxRuntimeOptions): Promise<BoxRuntime> {
  const rt = await BoxRuntime.open(options);
  await rt.start();
  return rt;
}
