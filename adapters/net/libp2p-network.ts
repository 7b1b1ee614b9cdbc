/**
 * The `Network` port (core/net.ts) over libp2p 3: TCP + Reserve's PSK protector (psk.ts) + noise + yamux +
 * identify, gossipsub for publish/subscribe, one libp2p protocol per Reserve protocol for request/response, and
 * `/reserve/blocks/1.0.0` + `/reserve/blocks-push/1.0.0` for bulk block transfer (blocks.ts), which also carry
 * core's BlockTransport (`blocks`: pipelined per-peer sessions, block-sessions.ts).
 *
 * Membership: the PSK handshake proves knowledge of the reserve secret; after it, `isMember(peerId)` decides.
 * Outbound, the connection gater refuses to dial or keep non-members. Inbound, a peer that passed the PSK but is
 * not a member is an applicant: it may open only the join protocol (`reserve/join/1`); every other stream gets a
 * JoinRequiredError ("not a member of this reserve; join with an invite token"), its gossip is ignored (and
 * gossipsub scores it below the graylist, so nothing is published to it), and its connection is closed after the
 * join exchange unless the join made it a member, or after `applicantTimeoutMs`. Membership is checked again on
 * every stream and gossip message; `refreshMembership()` closes connections of peers that stopped being members,
 * `setPsk()` switches the key for new connections.
 * Discovery: the bootstrap addresses, the remembered addresses (`knownPeers()`, to persist), identify, and a small
 * peer exchange (`/reserve/peers/1.0.0`) on every new connection, so Boxes that know one address find the rest.
 * Every dial and every request has a deadline.
 */
import './polyfill.ts';
import { setMaxListeners } from 'node:events';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify, type Identify } from '@libp2p/identify';
import { gossipsub, type GossipSub, TopicValidatorResult } from '@libp2p/gossipsub';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import type { Connection, PeerId, PrivateKey, Stream } from '@libp2p/interface';
import type { CID } from '../../core/blocks/cid.ts';
import { JOIN_PROTOCOL, JoinRequiredError } from '../../core/keeper/protocol.ts';
import { AbortedError, InvalidInputError } from '../../core/errors.ts';
import {
  PeerUnreachableError,
  RemoteError,
  RequestTimeoutError,
  type BlockService,
  type BlockTransport,
  type BoxId,
  type GossipHandler,
  type Network,
  type RequestHandler,
} from '../../core/net.ts';
import type { AbortOptions } from '../../core/ports.ts';
import {
  BLOCKS_PROTOCOL_ID,
  fetchBlocksOverStream,
  serveBlocksOverStream,
  servePushOverStream,
  type BlockGetter,
  type ServePushOptions,
  type FetchBlocksOptions,
  type FetchBlocksResult,
  type OnBlock,
  type ServeBlocksOptions,
} from './blocks.ts';
import { ERROR_FRAME_LIMIT, FrameKind, Limits, WANT_FRAME_LIMIT, blockFrameLimit, decodeError, decodeGossip, decodePeers, encodeError, encodeGossip, encodePeers, frameLimits, type PeerRecord } from './codec.ts';
import {
  AccessDeniedError,
  CipherMismatchError,
  FrameTooLargeError,
  HandshakeTimeoutError,
  ListenFailedError,
  NetworkNotRunningError,
  StreamEndedError,
  TransferInterruptedError,
  UnsupportedVersionError,
  WireFormatError,
} from './errors.ts';
import { BlockSessions, PUSH_PROTOCOL_ID } from './block-sessions.ts';
import { FramedStream } from './framed-stream.ts';
import { ReservePskProtector, type PskCipher } from './psk.ts';
import { noiseCrypto } from './noise-crypto.ts';
import { halfWindowUpdates } from './yamux-window.ts';

export interface ProtocolLimits {
  maxRequestBytes: number;
  maxResponseBytes: number;
}

const KIB = 1024;
const MIB = 1024 * 1024;

/** Request/response size limits per Reserve protocol name; anything else gets `control`. Override per network. */
export const DEFAULT_PROTOCOL_LIMITS: Readonly<Record<string, ProtocolLimits>> = {
  // one block (<= 2 MiB, room for 4) plus its envelope
  'reserve/blocks/1': { maxRequestBytes: 4 * MIB + 64 * KIB, maxResponseBytes: 4 * MIB + 64 * KIB },
  // holdings summaries (core/holdings MAX_MESSAGE_BYTES is 8 MiB)
  'reserve/holdings/1': { maxRequestBytes: 8 * MIB + 64 * KIB, maxResponseBytes: 8 * MIB + 64 * KIB },
  // CRDT state diffs grow with the ledger (a 100k-entry Yjs map encodes to ~9.5 MiB)
  'reserve/sync/1': { maxRequestBytes: 4 * MIB, maxResponseBytes: 64 * MIB },
};
export const CONTROL_LIMITS: ProtocolLimits = { maxRequestBytes: Limits.control, maxResponseBytes: Limits.control };

const PEERS_PROTOCOL_ID = '/reserve/peers/1.0.0';
/** Concurrent request streams per peer and protocol; requests beyond it wait (within their deadline). */
const MAX_STREAMS_PER_PROTOCOL = 256;
const MAX_REQUESTS_PER_PEER = 128;
const RESERVED_NAMES = new Set(['blocks', 'blocks-push', 'peers', 'reserve/blocks', 'reserve/blocks-push', 'reserve/peers']);
const PROTOCOL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9._-]+)*$/;

/** The libp2p protocol id carrying Reserve protocol `name`: `/reserve/<name>/1.0.0` (a leading `reserve/` dropped). */
export function protocolId(name: string): string {
  if (name.length > 128 || !PROTOCOL_NAME.test(name)) throw new InvalidInputError(`bad protocol name ${JSON.stringify(name)}`);
  const short = name.startsWith('reserve/') ? name.slice('reserve/'.length) : name;
  if (RESERVED_NAMES.has(name) || RESERVED_NAMES.has(short)) throw new InvalidInputError(`protocol name ${name} is reserved`);
  return `/reserve/${short}/1.0.0`;
}

/** What a Box persists about other members: where they listened last, and when they were last connected. */
export type PeerAddressBook = Record<BoxId, { addrs: string[]; lastSeen: number }>;

export interface Libp2pNetworkOptions {
  /** The Box's identity (an Ed25519 key from @libp2p/crypto). */
  privateKey: PrivateKey;
  /** 32-byte pre-shared key of the reserve (pskFromSecret). */
  psk: Uint8Array;
  pskCipher?: PskCipher;
  /** Deadline of the PSK handshake on each new connection (default 5 s). */
  handshakeTimeoutMs?: number;
  /** Multiaddrs to listen on. Default /ip4/127.0.0.1/tcp/0. */
  listen?: string[];
  /** Peer multiaddrs (with /p2p/<id>) to dial at start. */
  bootstrap?: string[];
  /** Addresses remembered from a previous run (`knownPeers()`). */
  knownPeers?: PeerAddressBook;
  isMember: (peerId: BoxId) => boolean;
  /** How long a peer that holds the secret but is not a member may stay connected to ask to join (default 10 s). */
  applicantTimeoutMs?: number;
  /** Deadline of every dial (default 5 s). */
  dialTimeoutMs?: number;
  /** Default deadline of a request (default 10 s). */
  requestTimeoutMs?: number;
  /** How often disconnected members are redialled and peers re-exchanged (default 5 s; 0 disables). */
  maintenanceIntervalMs?: number;
  /** Request/response limits per protocol name (merged over DEFAULT_PROTOCOL_LIMITS). */
  protocolLimits?: Record<string, Partial<ProtocolLimits>>;
  /** Largest gossip payload (default 1 MiB). */
  maxGossipBytes?: number;
  /** Largest block in bulk transfers (default 4 MiB). */
  maxBlockBytes?: number;
  /** Block sessions (`blocks`): end a session's stream once idle this long (default 200 ms). */
  blockSessionLingerMs?: number;
  /** Blocks a Box stores at once from one push stream (default 64), and their bytes at most (default 16 MiB). */
  pushConcurrency?: number;
  pushMaxBytes?: number;
  onPeerUp?: (peer: BoxId) => void;
  onPeerDown?: (peer: BoxId) => void;
  /** Diagnostics (handler failures, dial failures in the background). Default: silent. */
  log?: (message: string) => void;
}

export interface RequestOptions extends AbortOptions {
  timeoutMs?: number;
  /** Override the protocol's response limit for this call. */
  maxResponseBytes?: number;
}

export interface HandleOptions {
  maxRequestBytes?: number;
  maxResponseBytes?: number;
}

type Services = { identify: Identify; pubsub: GossipSub };

interface BookEntry {
  addrs: string[];
  lastSeen: number;
  failures: number;
  nextAttempt: number;
}

function errorOf(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function causeChain(err: unknown): Error[] {
  const out: Error[] = [];
  let e: unknown = err;
  while (e instanceof Error && out.length < 8) {
    out.push(e);
    const agg = (e as Error & { errors?: unknown[] }).errors;
    if (Array.isArray(agg)) for (const x of agg) if (x instanceof Error) out.push(x);
    e = (e as Error & { cause?: unknown }).cause;
  }
  return out;
}

/** Names of libp2p errors seen when the remote drops the connection right after the PSK/noise handshake. */
const REFUSED_AFTER_HANDSHAKE = new Set([
  'EncryptionFailedError',
  'MuxerUnavailableError',
  'UnexpectedEOFError',
  'StreamResetError',
  'ConnectionClosedError',
  'StreamClosedError',
  'ConnectionInterceptedError',
]);

export class Libp2pNetwork implements Network {
  readonly self: BoxId;
  readonly #o: Libp2pNetworkOptions;
  readonly #protector: ReservePskProtector;
  readonly #peerId: PeerId;
  #node: Libp2p<Services> | undefined;
  #stopping = new AbortController();
  readonly #handlers = new Map<string, { name: string; handler: RequestHandler; limits: ProtocolLimits }>();
  readonly #topics = new Map<string, Set<GossipHandler>>();
  readonly #book = new Map<BoxId, BookEntry>();
  readonly #dialing = new Map<BoxId, Promise<void>>();
  readonly #lastPx = new Map<BoxId, number>();
  readonly #pxInFlight = new Map<BoxId, Promise<void>>();
  readonly #slots = new Map<BoxId, { active: number; waiting: Array<() => void> }>();
  #blocks: { getter: (from: BoxId, cid: CID, options: { signal: AbortSignal }) => ReturnType<BlockGetter>; options: ServeBlocksOptions } | undefined;
  #push: { putter: (from: BoxId, cid: CID, bytes: Uint8Array, options: { signal: AbortSignal }) => Promise<boolean>; options: ServePushOptions } | undefined;
  readonly #sessions: BlockSessions;
  /** Core's bulk block transport: pipelined per-peer sessions over the bulk protocols. */
  readonly blocks: BlockTransport;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** A dial pass asked for by new addresses or members, not yet run (several requests share one pass). */
  #maintainSoon: ReturnType<typeof setTimeout> | undefined;
  #starting: Promise<void> | undefined;
  /** Connected peers that are not members (yet): the deadline by which they must have joined. */
  readonly #applicants = new Map<BoxId, ReturnType<typeof setTimeout>>();
  readonly #joinId = protocolId(JOIN_PROTOCOL);

  constructor(options: Libp2pNetworkOptions) {
    this.#o = options;
    this.#protector = new ReservePskProtector({ psk: options.psk, cipher: options.pskCipher, handshakeTimeoutMs: options.handshakeTimeoutMs });
    this.#peerId = peerIdFromPrivateKey(options.privateKey);
    this.self = this.#peerId.toString();
    for (const [id, e] of Object.entries(options.knownPeers ?? {})) {
      if (id !== this.self) this.#remember(id, e.addrs, e.lastSeen);
    }
    this.#sessions = new BlockSessions((peer, protocol, signal) => this.#openBlockStream(peer, protocol, signal), {
      maxBlockBytes: options.maxBlockBytes,
      lingerMs: options.blockSessionLingerMs,
    });
    this.blocks = {
      getBlock: (peer, cid, o) => this.#sessions.get(peer, cid, o),
      putBlock: (peer, cid, bytes, o) => this.#sessions.put(peer, cid, bytes, o),
      serveBlocks: (service) => this.#serveBlockService(service),
    };
  }

  get #dialTimeoutMs(): number {
    return this.#o.dialTimeoutMs ?? 5000;
  }

  /** The underlying libp2p node (for diagnostics and protocols this adapter does not cover). */
  get libp2p(): Libp2p<Services> {
    return this.#running();
  }

  #running(): Libp2p<Services> {
    if (!this.#node) throw new NetworkNotRunningError('the network is not started');
    return this.#node;
  }

  #log(message: string): void {
    this.#o.log?.(message);
  }

  #member(peer: PeerId | string): boolean {
    try {
      return this.#o.isMember(peer.toString());
    } catch {
      return false;
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Lifecycle

  /** Listen, dial the bootstrap and remembered addresses (in the background) and start serving. */
  start(): Promise<void> {
    this.#starting ??= this.#start().finally(() => {
      this.#starting = undefined;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.#node) return;
    this.#stopping = new AbortController();
    // Every request served and every block stream in flight listens to it while it runs (and stops listening when
    // done), so dozens at once are normal under load; Node's default warns past 10.
    setMaxListeners(4096, this.#stopping.signal);
    this.#sessions.restart();
    const gossipLimit = this.#o.maxGossipBytes ?? Limits.gossip;
    // Outbound: only members. Inbound: whoever passed the PSK handshake; a non-member may only join (#serveRequest).
    const deny = (peer: PeerId) => !this.#member(peer);
    const node = await createLibp2p<Services>({
      privateKey: this.#o.privateKey,
      start: false,
      addresses: { listen: this.#o.listen ?? ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionProtector: () => this.#protector,
      connectionEncrypters: [noise({ crypto: noiseCrypto })],
      streamMuxers: [
        yamux({
          // the stream's read buffer must hold a full window while a reader pauses (framed-stream.ts)
          streamOptions: { maxStreamWindowSize: 8 * MIB, maxReadBufferLength: 16 * MIB },
        }),
      ],
      connectionGater: {
        denyDialPeer: deny,
        denyOutboundEncryptedConnection: deny,
        denyOutboundUpgradedConnection: deny,
      },
      connectionManager: {
        dialTimeout: this.#dialTimeoutMs,
        // all Boxes of a test (or a LAN) may share one IP: do not rate-limit them as one host
        inboundConnectionThreshold: 1000,
        maxIncomingPendingConnections: 64,
      },
      services: {
        identify: identify(),
        pubsub: gossipsub({
          allowPublishToZeroTopicPeers: true,
          emitSelf: false,
          maxInboundDataLength: gossipLimit + 64 * KIB,
          // a non-member (an applicant) scores far below the graylist: its messages are dropped unread and
          // nothing is published or gossiped to it
          scoreParams: { appSpecificScore: (p: string) => (this.#member(p) ? 0 : -1000) },
        }),
      },
    });
    this.#node = node;
    node.addEventListener('peer:connect', (evt) => this.#onPeerConnect(evt.detail));
    node.addEventListener('peer:disconnect', (evt) => this.#onPeerDisconnect(evt.detail));
    node.addEventListener('peer:identify', (evt) => {
      const id = evt.detail.peerId.toString();
      if (this.#member(id)) this.#remember(id, evt.detail.listenAddrs.map((a) => a.toString()));
    });
    node.services.pubsub.addEventListener('message', (evt) => this.#onGossip(evt.detail));

    try {
      await node.handle(PEERS_PROTOCOL_ID, (stream, conn) => this.#serveRequest(stream, conn, PEERS_PROTOCOL_ID), { maxInboundStreams: 8 });
      for (const [id, h] of this.#handlers) await this.#register(id, h.name);
      if (this.#blocks) await this.#registerBlocks();
      if (this.#push) await this.#registerPush();
      await node.start();
    } catch (err) {
      this.#node = undefined;
      await Promise.resolve(node.stop()).catch(() => undefined);
      throw new ListenFailedError(`could not start listening on ${(this.#o.listen ?? ['/ip4/127.0.0.1/tcp/0']).join(', ')}: ${errorOf(err).message}`, { cause: err });
    }
    for (const topic of this.#topics.keys()) this.#pubsubSubscribe(topic);

    for (const [id, e] of [...this.#book]) this.#remember(id, e.addrs);
    for (const addr of this.#o.bootstrap ?? []) {
      this.dial(addr).catch((err: unknown) => this.#log(`bootstrap ${addr}: ${errorOf(err).message}`));
    }
    this.#maintain();
    const every = this.#o.maintenanceIntervalMs ?? 5000;
    if (every > 0) {
      this.#timer = setInterval(() => this.#maintain(), every);
      this.#timer.unref?.();
    }
  }

  async stop(): Promise<void> {
    const node = this.#node;
    if (!node) return;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#maintainSoon) clearTimeout(this.#maintainSoon);
    this.#maintainSoon = undefined;
    this.#stopping.abort(new NetworkNotRunningError('the network is stopping'));
    this.#sessions.stop(new PeerUnreachableError('*', 'the network stopped'));
    for (const t of this.#applicants.values()) clearTimeout(t);
    this.#applicants.clear();
    this.#node = undefined;
    await node.stop();
    this.#dialing.clear();
  }

  get isRunning(): boolean {
    return this.#node !== undefined;
  }

  /** This Box's listening addresses, each with /p2p/<id>. */
  addresses(): string[] {
    return this.#running()
      .getMultiaddrs()
      .map((a) => a.toString());
  }

  peers(): BoxId[] {
    if (!this.#node) return [];
    return [...new Set(this.#node.getPeers().map((p) => p.toString()))].filter((p) => this.#member(p)).sort();
  }

  /** Every member address this Box knows, to persist and pass back as `knownPeers` on the next start. */
  knownPeers(): PeerAddressBook {
    const out: PeerAddressBook = {};
    for (const [id, e] of this.#book) if (this.#member(id)) out[id] = { addrs: [...e.addrs], lastSeen: e.lastSeen };
    return out;
  }

  /** Use a new PSK for connections opened from now on (secret rotation). Existing connections stay up. */
  setPsk(psk: Uint8Array): void {
    this.#protector.setPsk(psk);
  }

  /** Addresses where a member listens (e.g. the ones it advertised in the shared state), to dial it. */
  addPeerAddresses(id: BoxId, addrs: readonly string[]): void {
    if (id === this.self || addrs.length === 0) return;
    const before = this.#book.get(id)?.addrs.join(' ');
    this.#remember(id, addrs);
    const e = this.#book.get(id);
    if (e && e.addrs.join(' ') !== before) {
      // Somewhere new to reach it (a Box that just joined, or restarted elsewhere): try now, whatever the backoff
      // of the old addresses said, instead of at the next maintenance tick.
      e.nextAttempt = 0;
      this.#dialSoon();
    }
  }

  /**
   * Close every connection to a peer that is no longer a member, and take up applicants that became members (call
   * after the membership changed).
   */
  async refreshMembership(): Promise<void> {
    const node = this.#node;
    if (!node) return;
    for (const id of [...this.#applicants.keys()]) if (this.#member(id)) this.#settleApplicant(id);
    const gone = new Set<string>();
    for (const conn of node.getConnections()) {
      const id = conn.remotePeer.toString();
      if (!this.#member(id) && !this.#applicants.has(id)) gone.add(id);
    }
    await Promise.all([...gone].map((p) => node.hangUp(peerIdFromString(p)).catch(() => undefined)));
    for (const id of [...this.#book.keys()]) if (!this.#member(id)) this.#book.delete(id);
    this.#dialSoon(); // new members whose addresses are known
  }

  // ------------------------------------------------------------------------------------------------------------
  // Connections and discovery

  #parseAddr(addr: string): Multiaddr[] {
    try {
      return [multiaddr(addr)];
    } catch {
      return [];
    }
  }

  #remember(id: BoxId, addrs: readonly string[], lastSeen?: number): void {
    if (id === this.self) return;
    const e = this.#book.get(id) ?? { addrs: [], lastSeen: 0, failures: 0, nextAttempt: 0 };
    const fresh = addrs.map((a) => a.replace(/\/p2p\/[^/]+$/, '')).filter((a) => a.startsWith('/') && !a.includes('/p2p-circuit'));
    // newest first, deduplicated, at most 16
    e.addrs = [...new Set([...fresh, ...e.addrs])].slice(0, Limits.peerAddrs);
    if (lastSeen !== undefined) e.lastSeen = Math.max(e.lastSeen, lastSeen);
    this.#book.set(id, e);
    const node = this.#node;
    if (node && fresh.length > 0) {
      let peer: PeerId;
      try {
        peer = peerIdFromString(id);
      } catch {
        this.#book.delete(id); // not a peer id after all
        return;
      }
      node.peerStore.merge(peer, { multiaddrs: fresh.flatMap((a) => this.#parseAddr(a)) }).catch(() => undefined);
    }
  }

  #onPeerConnect(peer: PeerId): void {
    const id = peer.toString();
    if (!this.#member(id)) {
      this.#watchApplicant(id);
      return;
    }
    const e = this.#book.get(id);
    if (e) {
      e.failures = 0;
      e.nextAttempt = 0;
      e.lastSeen = Date.now();
    } else {
      this.#book.set(id, { addrs: [], lastSeen: Date.now(), failures: 0, nextAttempt: 0 });
    }
    try {
      this.#o.onPeerUp?.(id);
    } catch (err) {
      this.#log(`onPeerUp: ${errorOf(err).message}`);
    }
    void this.#exchangePeers(id);
  }

  #onPeerDisconnect(peer: PeerId): void {
    const id = peer.toString();
    this.#lastPx.delete(id);
    const applicant = this.#applicants.get(id);
    if (applicant !== undefined) {
      clearTimeout(applicant);
      this.#applicants.delete(id);
      return; // it never was a member here
    }
    const e = this.#book.get(id);
    if (e) e.lastSeen = Date.now();
    if (!this.#member(id) || this.#stopping.signal.aborted) return; // our own shutdown is not the peer going down
    try {
      this.#o.onPeerDown?.(id);
    } catch (err) {
      this.#log(`onPeerDown: ${errorOf(err).message}`);
    }
  }

  /** A peer that holds the secret but is not a member: it has `applicantTimeoutMs` to join, then it is dropped. */
  #watchApplicant(id: BoxId): void {
    if (this.#applicants.has(id) || !this.#node) return;
    const t = setTimeout(() => this.#settleApplicant(id), this.#o.applicantTimeoutMs ?? 10_000);
    t.unref?.();
    this.#applicants.set(id, t);
  }

  /** After a join exchange (or the deadline): a member now is taken up like any new member, anyone else dropped. */
  #settleApplicant(id: BoxId): void {
    const t = this.#applicants.get(id);
    if (t === undefined) return;
    clearTimeout(t);
    this.#applicants.delete(id);
    const node = this.#node;
    if (!node) return;
    let peer: PeerId;
    try {
      peer = peerIdFromString(id);
    } catch {
      return;
    }
    if (this.#member(id)) {
      if (node.getConnections(peer).length > 0) this.#onPeerConnect(peer);
      return;
    }
    this.#log(`closing the connection of ${id}: not a member of this reserve`);
    node.hangUp(peer).catch(() => undefined);
  }

  #selfRecord(): PeerRecord {
    const addrs = this.#node ? this.#node.getMultiaddrs().map((a) => a.toString().replace(/\/p2p\/[^/]+$/, '')) : [];
    return { id: this.self, addrs };
  }

  #peerRecords(): PeerRecord[] {
    const out: PeerRecord[] = [this.#selfRecord()];
    for (const [id, e] of this.#book) if (this.#member(id) && e.addrs.length > 0) out.push({ id, addrs: e.addrs });
    return out.slice(0, Limits.peers);
  }

  /** Our peer records, encoded within the control limit (the oldest entries give way if they would not fit). */
  #encodedPeerRecords(): Uint8Array {
    const records = this.#peerRecords();
    let bytes = encodePeers(records);
    while (bytes.byteLength > Limits.control && records.length > 1) {
      records.pop();
      bytes = encodePeers(records);
    }
    return bytes;
  }

  #mergePeers(records: readonly PeerRecord[]): void {
    for (const r of records) {
      if (r.id === this.self || !this.#member(r.id)) continue;
      this.#remember(r.id, r.addrs);
    }
  }

  /** Peer exchange: send what we know, merge what the peer knows, dial the members we are not connected to. */
  async #exchangePeers(peer: BoxId): Promise<void> {
    try {
      await this.#exchangePeersOrThrow(peer);
    } catch (err) {
      this.#log(`peer exchange with ${peer}: ${errorOf(err).name}: ${errorOf(err).message}`);
    }
  }

  /** One exchange at a time per peer: a caller arriving while one is in flight shares its outcome. */
  #exchangePeersOrThrow(peer: BoxId, signal?: AbortSignal): Promise<void> {
    const inFlight = this.#pxInFlight.get(peer);
    if (inFlight) return inFlight;
    const run = (async () => {
      if (!this.#node) return;
      this.#lastPx.set(peer, Date.now());
      const answer = await this.#requestRaw(peer, PEERS_PROTOCOL_ID, 'peers', this.#encodedPeerRecords(), {
        timeoutMs: this.#dialTimeoutMs,
        maxResponseBytes: Limits.control,
        signal,
      });
      this.#mergePeers(decodePeers(answer));
      this.#maintain();
    })().finally(() => this.#pxInFlight.delete(peer));
    this.#pxInFlight.set(peer, run);
    return run;
  }

  /** Run a dial pass right after the current task (one pass for any number of calls before it runs). */
  #dialSoon(): void {
    if (!this.#node || this.#maintainSoon) return;
    this.#maintainSoon = setTimeout(() => {
      this.#maintainSoon = undefined;
      this.#maintain();
    }, 0);
    this.#maintainSoon.unref?.();
  }

  /** Redial disconnected members (with backoff) and refresh the peer exchange now and then. */
  #maintain(): void {
    const node = this.#node;
    if (!node) return;
    const connected = new Set(node.getPeers().map((p) => p.toString()));
    const now = Date.now();
    for (const [id, e] of this.#book) {
      if (connected.has(id) || this.#dialing.has(id) || e.addrs.length === 0 || now < e.nextAttempt || !this.#member(id)) continue;
      const attempt = this.#connect(id)
        .then(() => {
          e.failures = 0;
          e.nextAttempt = 0;
        })
        .catch((err: unknown) => {
          e.failures++;
          e.nextAttempt = Date.now() + Math.min(60_000, 1000 * 2 ** Math.min(e.failures, 6));
          this.#log(`redial ${id}: ${errorOf(err).message}`);
        })
        .finally(() => this.#dialing.delete(id));
      this.#dialing.set(id, attempt);
    }
    const every = Math.max(this.#o.maintenanceIntervalMs ?? 5000, 1000) * 6;
    for (const id of connected) {
      if (this.#member(id) && now - (this.#lastPx.get(id) ?? 0) > every) void this.#exchangePeers(id);
    }
  }

  async #connect(id: BoxId, options: AbortOptions = {}): Promise<Connection> {
    const node = this.#running();
    const signal = this.#deadline(this.#dialTimeoutMs, options.signal);
    try {
      return await node.dial(peerIdFromString(id), { signal });
    } catch (err) {
      throw this.#dialError(err, id, signal, options.signal);
    }
  }

  /**
   * Connect to a peer address (with /p2p/<id>); resolves with the peer's id. Rejects with AccessDeniedError
   * (wrong secret, or one side is not a member) or PeerUnreachableError, always within the dial timeout.
   */
  async dial(addr: string, options: AbortOptions = {}): Promise<BoxId> {
    const node = this.#running();
    let ma: Multiaddr;
    try {
      ma = multiaddr(addr);
    } catch (cause) {
      throw new InvalidInputError(`not a multiaddr: ${addr}`, { cause });
    }
    const claimed = ma.getComponents().findLast((c) => c.name === 'p2p')?.value;
    if (claimed === this.self) throw new InvalidInputError('cannot dial this Box itself');
    const signal = this.#deadline(this.#dialTimeoutMs, options.signal);
    let id: BoxId;
    try {
      const conn = await node.dial(ma, { signal });
      id = conn.remotePeer.toString();
    } catch (err) {
      throw this.#dialError(err, claimed ?? addr, signal, options.signal);
    }
    // The listener checks membership after the handshake and, if it refuses, simply closes the connection, which
    // the dialer may only notice after its dial resolved. One peer exchange proves the peer kept us.
    try {
      await this.#exchangePeersOrThrow(id, options.signal);
    } catch (err) {
      if (err instanceof JoinRequiredError) {
        this.#remember(id, [addr]); // connected and allowed to ask to join: keep the address for the JOIN
        throw new AccessDeniedError('not-a-member', `${id} holds the same secret, but this Box is not a member of this reserve; join with an invite token`, { cause: err, peer: id });
      }
      if (err instanceof RemoteError) return id; // it answered: connected (an older peer without peer exchange)
      if (options.signal?.aborted) throw new AbortedError(`dialling ${id} was cancelled`);
      if (err instanceof RequestTimeoutError) throw new PeerUnreachableError(id, `no answer within ${this.#dialTimeoutMs} ms after connecting`);
      throw new AccessDeniedError('refused-by-peer', `${id} closed the connection right after the handshake: this Box is not a member there`, { cause: err, peer: id });
    }
    this.#remember(id, [addr]);
    return id;
  }

  #deadline(ms: number, signal?: AbortSignal): AbortSignal {
    const list = [AbortSignal.timeout(ms), this.#stopping.signal];
    if (signal) list.push(signal);
    return AbortSignal.any(list);
  }

  /** Turn whatever libp2p threw into AccessDeniedError, AbortedError or PeerUnreachableError. */
  #dialError(err: unknown, peer: string, signal: AbortSignal, callerSignal?: AbortSignal): Error {
    const chain = causeChain(err);
    for (const e of chain) {
      // the protector's errors know the address, not the peer id: name the peer
      if (e instanceof AccessDeniedError) return new AccessDeniedError(e.reason, e.detail, { cause: e.cause ?? e, peer });
      if (e instanceof CipherMismatchError) return new CipherMismatchError(e.detail, { peer });
      if (e instanceof UnsupportedVersionError) return new PeerUnreachableError(peer, e.message);
    }
    if (callerSignal?.aborted) return new AbortedError(`dialling ${peer} was cancelled`);
    if (chain.some((e) => e instanceof HandshakeTimeoutError)) return new PeerUnreachableError(peer, `no PSK handshake within the deadline`);
    const names = new Set(chain.map((e) => e.name));
    if (names.has('DialDeniedError')) {
      return new AccessDeniedError('not-a-member', `${peer} is not a member of this reserve`, { cause: err, peer });
    }
    if (chain.some((e) => e.name === 'ConnectionInterceptedError')) {
      return new AccessDeniedError('not-a-member', `the peer at ${peer} is not a member of this reserve`, { cause: err, peer });
    }
    if (chain.some((e) => REFUSED_AFTER_HANDSHAKE.has(e.name)) && !signal.aborted) {
      return new AccessDeniedError('refused-by-peer', `${peer} closed the connection after the PSK handshake (is this Box a member there?)`, {
        cause: err,
        peer,
      });
    }
    if (signal.aborted) return new PeerUnreachableError(peer, `no connection within ${this.#dialTimeoutMs} ms`);
    const first = chain.find((e) => (e as Error & { code?: string }).code) ?? chain[chain.length - 1] ?? errorOf(err);
    return new PeerUnreachableError(peer, `${first.name}: ${first.message}`);
  }

  // ------------------------------------------------------------------------------------------------------------
  // Gossip

  #pubsubSubscribe(topic: string): void {
    const pubsub = this.#node?.services.pubsub;
    if (!pubsub) return;
    pubsub.topicValidators.set(topic, (from, msg) => {
      if (msg.type !== 'signed') return TopicValidatorResult.Reject;
      // not (or no longer) a member in our view: drop it without penalising the relay, whose view may lag ours
      if (!this.#member(msg.from) || !this.#member(from)) return TopicValidatorResult.Ignore;
      try {
        decodeGossip(msg.data, this.#o.maxGossipBytes ?? Limits.gossip);
      } catch {
        return TopicValidatorResult.Reject;
      }
      return TopicValidatorResult.Accept;
    });
    try {
      pubsub.subscribe(topic);
    } catch {
      // gossipsub is still starting: start() subscribes every topic once it has
    }
  }

  #onGossip(msg: { type: string; topic: string; data: Uint8Array; from?: PeerId }): void {
    const handlers = this.#topics.get(msg.topic);
    if (!handlers || handlers.size === 0 || msg.type !== 'signed' || !msg.from) return;
    const from = msg.from.toString();
    if (!this.#member(from)) {
      this.#log(`${JoinRequiredError.name}: gossip from ${from} on ${msg.topic} ignored: not a member of this reserve; join with an invite token`);
      return;
    }
    let data: Uint8Array;
    try {
      data = decodeGossip(msg.data, this.#o.maxGossipBytes ?? Limits.gossip);
    } catch (err) {
      this.#log(`gossip from ${from} on ${msg.topic}: ${errorOf(err).message}`);
      return;
    }
    for (const h of [...handlers]) {
      try {
        h(from, data);
      } catch (err) {
        this.#log(`gossip handler on ${msg.topic}: ${errorOf(err).message}`);
      }
    }
  }

  /**
   * Members this Box currently shares the gossip mesh of `topic` with (both subscribed, streams up): a publish
   * now reaches them. Gossip published before the mesh forms may miss a peer; the sync handshake covers that.
   */
  gossipMeshPeers(topic: string): BoxId[] {
    const pubsub = this.#node?.services.pubsub as (GossipSub & { getMeshPeers?: (topic: string) => string[] }) | undefined;
    return (pubsub?.getMeshPeers?.(topic) ?? []).map(String).filter((p) => this.#member(p)).sort();
  }

  publish(topic: string, data: Uint8Array): void {
    const bytes = encodeGossip(data, this.#o.maxGossipBytes ?? Limits.gossip);
    const pubsub = this.#node?.services.pubsub;
    if (!pubsub) return; // best effort: nothing to do while stopped
    pubsub.publish(topic, bytes).catch((err: unknown) => this.#log(`publish on ${topic}: ${errorOf(err).message}`));
  }

  subscribe(topic: string, handler: GossipHandler): () => void {
    if (topic.length === 0 || topic.length > 256) throw new InvalidInputError(`bad topic ${JSON.stringify(topic)}`);
    let set = this.#topics.get(topic);
    if (!set) {
      set = new Set();
      this.#topics.set(topic, set);
      this.#pubsubSubscribe(topic);
    }
    const entry: GossipHandler = (from, data) => handler(from, data); // distinct identity per subscription
    set.add(entry);
    return () => {
      const s = this.#topics.get(topic);
      if (!s?.delete(entry) || s.size > 0) return;
      this.#topics.delete(topic);
      const pubsub = this.#node?.services.pubsub;
      if (pubsub) {
        pubsub.unsubscribe(topic);
        pubsub.topicValidators.delete(topic);
      }
    };
  }

  // ------------------------------------------------------------------------------------------------------------
  // Request / response

  #limits(name: string): ProtocolLimits {
    const base = DEFAULT_PROTOCOL_LIMITS[name] ?? CONTROL_LIMITS;
    const o = this.#o.protocolLimits?.[name];
    return { maxRequestBytes: o?.maxRequestBytes ?? base.maxRequestBytes, maxResponseBytes: o?.maxResponseBytes ?? base.maxResponseBytes };
  }

  handle(protocol: string, handler: RequestHandler, options: HandleOptions = {}): void {
    const id = protocolId(protocol);
    const base = this.#limits(protocol);
    const limits = { maxRequestBytes: options.maxRequestBytes ?? base.maxRequestBytes, maxResponseBytes: options.maxResponseBytes ?? base.maxResponseBytes };
    const had = this.#handlers.has(id);
    this.#handlers.set(id, { name: protocol, handler, limits });
    if (this.#node && !had) {
      this.#register(id, protocol).catch((err: unknown) => this.#log(`handle ${protocol}: ${errorOf(err).message}`));
    }
  }

  async #register(id: string, _name: string): Promise<void> {
    await this.#running().handle(id, (stream, conn) => this.#serveRequest(stream, conn, id), {
      maxInboundStreams: MAX_STREAMS_PER_PROTOCOL,
      maxOutboundStreams: MAX_STREAMS_PER_PROTOCOL,
      force: true,
    });
  }

  async #serveRequest(stream: Stream, conn: Connection, id: string): Promise<void> {
    const from = conn.remotePeer.toString();
    // A peer that is not a member may only ask to join; anything else is answered with JoinRequiredError.
    const applicant = !this.#member(from);
    const refused = applicant && id !== this.#joinId;
    try {
      await this.#serveOne(stream, from, id, refused);
    } finally {
      if (applicant && !refused) this.#settleApplicant(from);
    }
  }

  async #serveOne(stream: Stream, from: BoxId, id: string, refused: boolean): Promise<void> {
    const internal = id === PEERS_PROTOCOL_ID;
    const entry = internal ? undefined : this.#handlers.get(id);
    const limits = internal ? CONTROL_LIMITS : (entry?.limits ?? CONTROL_LIMITS);
    const fs = new FramedStream(stream, frameLimits([[FrameKind.Request, limits.maxRequestBytes]]));
    const ctl = new AbortController();
    const onClose = () => ctl.abort(new StreamEndedError('the requester went away'));
    stream.addEventListener('close', onClose);
    const stop = this.#stopping.signal;
    const onStop = () => ctl.abort(stop.reason);
    stop.addEventListener('abort', onStop);
    try {
      const readSignal = AbortSignal.any([ctl.signal, AbortSignal.timeout(this.#o.requestTimeoutMs ?? 10_000)]);
      let frame;
      try {
        frame = await fs.read(readSignal);
        if (!frame) throw new StreamEndedError('the requester closed without a request');
      } catch (err) {
        fs.abort(errorOf(err)); // malformed, oversized, truncated or late: close the stream, run nothing
        return;
      }
      let kind: number = FrameKind.Response;
      let payload: Uint8Array;
      try {
        if (refused) {
          const refusal = new JoinRequiredError(this.self, `${this.self} refused ${from}: not a member of this reserve; join with an invite token`);
          this.#log(`${refusal.name}: ${refusal.message}`);
          throw refusal;
        }
        if (internal) {
          this.#mergePeers(decodePeers(frame.payload));
          payload = this.#encodedPeerRecords();
        } else {
          const current = this.#handlers.get(id);
          if (!current) throw Object.assign(new Error(`${this.self} no longer serves this protocol`), { name: 'UnsupportedProtocolError' });
          payload = await current.handler(from, frame.payload, { signal: ctl.signal });
          if (!(payload instanceof Uint8Array)) throw new TypeError('the handler did not return bytes');
          if (payload.byteLength > limits.maxResponseBytes) throw new FrameTooLargeError('response', payload.byteLength, limits.maxResponseBytes);
        }
      } catch (err) {
        const e = errorOf(err);
        kind = FrameKind.Error;
        payload = encodeError({ errorName: e.name || 'Error', message: e.message });
      }
      if (stream.status !== 'open' || stream.writeStatus !== 'writable') return;
      await fs.write(kind, payload, ctl.signal);
      await fs.closeWrite(AbortSignal.any([ctl.signal, AbortSignal.timeout(this.#o.requestTimeoutMs ?? 10_000)]));
    } catch (err) {
      fs.abort(errorOf(err));
    } finally {
      stream.removeEventListener('close', onClose);
      stop.removeEventListener('abort', onStop);
    }
  }

  request(to: BoxId, protocol: string, data: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    let id: string;
    try {
      id = protocolId(protocol);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#requestRaw(to, id, protocol, data, options, this.#limits(protocol));
  }

  async #requestRaw(to: BoxId, id: string, protocol: string, data: Uint8Array, options: RequestOptions, limits?: ProtocolLimits): Promise<Uint8Array> {
    const node = this.#running();
    if (to === this.self) throw new PeerUnreachableError(to, 'cannot dial self');
    const maxReq = limits?.maxRequestBytes ?? Limits.control;
    if (data.byteLength > maxReq) throw new FrameTooLargeError(`request on ${protocol}`, data.byteLength, maxReq);
    const maxRes = options.maxResponseBytes ?? limits?.maxResponseBytes ?? Limits.control;
    const timeoutMs = options.timeoutMs ?? this.#o.requestTimeoutMs ?? 10_000;
    const caller = options.signal;
    if (caller?.aborted) throw new AbortedError();
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any(caller ? [timeout, caller, this.#stopping.signal] : [timeout, this.#stopping.signal]);
    let peer: PeerId;
    try {
      peer = peerIdFromString(to);
    } catch (cause) {
      throw new PeerUnreachableError(to, `not a peer id (${errorOf(cause).message})`);
    }
    if (!this.#member(to)) throw new AccessDeniedError('not-a-member', `${to} is not a member of this reserve`, { peer: to });

    await this.#acquire(to, signal).catch(() => {
      if (caller?.aborted) throw new AbortedError();
      if (this.#stopping.signal.aborted) throw new NetworkNotRunningError('the network stopped during the request');
      throw new RequestTimeoutError(to, protocol, timeoutMs);
    });
    try {
      return await this.#exchange(node, peer, to, id, protocol, data, signal, timeout, timeoutMs, maxRes, caller);
    } finally {
      this.#release(to);
    }
  }

  async #acquire(peer: BoxId, signal: AbortSignal): Promise<void> {
    let s = this.#slots.get(peer);
    if (!s) {
      s = { active: 0, waiting: [] };
      this.#slots.set(peer, s);
    }
    if (s.active < MAX_REQUESTS_PER_PEER) {
      s.active++;
      return;
    }
    const slot = s;
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        const i = slot.waiting.indexOf(grant);
        if (i >= 0) slot.waiting.splice(i, 1);
        reject(signal.reason);
      };
      slot.waiting.push(grant);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #release(peer: BoxId): void {
    const s = this.#slots.get(peer);
    if (!s) return;
    const next = s.waiting.shift();
    if (next) next(); // the slot passes straight to the next waiter
    else if (--s.active === 0) this.#slots.delete(peer);
  }

  async #exchange(
    node: Libp2p<Services>,
    peer: PeerId,
    to: BoxId,
    id: string,
    protocol: string,
    data: Uint8Array,
    signal: AbortSignal,
    timeout: AbortSignal,
    timeoutMs: number,
    maxRes: number,
    caller: AbortSignal | undefined,
  ): Promise<Uint8Array> {
    // open the stream: the dial part has its own (shorter) deadline and reports PeerUnreachableError
    let stream: Stream;
    const dialSignal = AbortSignal.any([signal, AbortSignal.timeout(this.#dialTimeoutMs)]);
    try {
      stream = await this.#dialProtocol(node, peer, id, dialSignal, MAX_STREAMS_PER_PROTOCOL);
    } catch (err) {
      if (caller?.aborted) throw new AbortedError();
      if (timeout.aborted) throw new RequestTimeoutError(to, protocol, timeoutMs);
      if (causeChain(err).some((e) => e.name === 'UnsupportedProtocolError')) {
        throw new RemoteError(to, 'UnsupportedProtocolError', `${to} does not serve ${protocol}`);
      }
      throw this.#dialError(err, to, dialSignal, caller);
    }

    const fs = new FramedStream(
      stream,
      frameLimits([
        [FrameKind.Response, maxRes],
        [FrameKind.Error, ERROR_FRAME_LIMIT],
      ]),
    );
    try {
      await fs.write(FrameKind.Request, data, signal);
      await fs.closeWrite(signal);
      const frame = await fs.read(signal);
      if (!frame) throw new PeerUnreachableError(to, `the stream for ${protocol} closed before the response`);
      if (frame.kind === FrameKind.Error) {
        const e = decodeError(frame.payload);
        if (e.errorName === JoinRequiredError.name) throw new JoinRequiredError(to, e.message);
        throw new RemoteError(to, e.errorName, e.message);
      }
      return frame.payload;
    } catch (err) {
      fs.abort(errorOf(err));
      if (err instanceof RemoteError || err instanceof WireFormatError || err instanceof PeerUnreachableError) throw err;
      if (caller?.aborted) throw new AbortedError();
      if (timeout.aborted) throw new RequestTimeoutError(to, protocol, timeoutMs);
      if (this.#stopping.signal.aborted) throw new NetworkNotRunningError('the network stopped during the request');
      const e = errorOf(err);
      throw new PeerUnreachableError(to, `connection lost during ${protocol}: ${e.name}: ${e.message}`);
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Bulk blocks

  /** Serve `/reserve/blocks/1.0.0` from `getter` (replaces any previous getter). */
  serveBlocks(getter: BlockGetter, options: ServeBlocksOptions = {}): void {
    const had = this.#blocks !== undefined;
    this.#blocks = { getter: (_from, cid, o) => getter(cid, o), options: { maxBlockBytes: this.#o.maxBlockBytes, ...options } };
    if (this.#node && !had) this.#registerBlocks().catch((err: unknown) => this.#log(`serveBlocks: ${errorOf(err).message}`));
  }

  /** Core's BlockService behind both bulk protocols: gets from `/reserve/blocks/1.0.0`, puts from the push protocol. */
  #serveBlockService(service: BlockService): void {
    const hadBlocks = this.#blocks !== undefined;
    const hadPush = this.#push !== undefined;
    this.#blocks = { getter: (from, cid, o) => service.get(from, cid, o), options: { maxBlockBytes: this.#o.maxBlockBytes } };
    this.#push = { putter: (from, cid, bytes, o) => service.put(from, cid, bytes, o), options: { maxBlockBytes: this.#o.maxBlockBytes, concurrency: this.#o.pushConcurrency, maxBytes: this.#o.pushMaxBytes } };
    if (this.#node && !hadBlocks) this.#registerBlocks().catch((err: unknown) => this.#log(`serveBlocks: ${errorOf(err).message}`));
    if (this.#node && !hadPush) this.#registerPush().catch((err: unknown) => this.#log(`serveBlocks (push): ${errorOf(err).message}`));
  }

  /** A non-member opened a bulk stream: read its first frame (and drop it), then tell it why it is refused. */
  async #refuseBulk(stream: Stream, from: BoxId, firstFrames: Array<[number, number]>): Promise<void> {
    const refusal = new JoinRequiredError(this.self, `${this.self} refused ${from}: not a member of this reserve; join with an invite token`);
    this.#log(`${refusal.name}: ${refusal.message}`);
    const fs = new FramedStream(stream, frameLimits(firstFrames));
    try {
      const signal = AbortSignal.any([AbortSignal.timeout(this.#dialTimeoutMs), this.#stopping.signal]);
      await fs.read(signal); // answer once the client listens (it sends its first frame first)
      await fs.write(FrameKind.Error, encodeError({ errorName: refusal.name, message: refusal.message }), signal);
      await fs.closeWrite(signal);
    } catch (err) {
      fs.abort(errorOf(err));
    }
  }

  async #registerBlocks(): Promise<void> {
    await this.#running().handle(
      BLOCKS_PROTOCOL_ID,
      async (stream, conn) => {
        const from = conn.remotePeer.toString();
        const blocks = this.#blocks;
        if (!this.#member(from)) {
          await this.#refuseBulk(stream, from, [
            [FrameKind.Want, WANT_FRAME_LIMIT],
            [FrameKind.Done, 0],
          ]);
          return;
        }
        if (!blocks) {
          stream.abort(new Error(`${this.self} does not serve blocks`));
          return;
        }
        await serveBlocksOverStream(stream, (cid, o) => blocks.getter(from, cid, o), blocks.options, this.#stopping.signal);
      },
      { maxInboundStreams: 16, maxOutboundStreams: 64, force: true },
    );
  }

  async #registerPush(): Promise<void> {
    await this.#running().handle(
      PUSH_PROTOCOL_ID,
      async (stream, conn) => {
        const from = conn.remotePeer.toString();
        const push = this.#push;
        if (!this.#member(from)) {
          await this.#refuseBulk(stream, from, [
            [FrameKind.Put, blockFrameLimit(this.#o.maxBlockBytes ?? Limits.block)],
            [FrameKind.Done, 0],
          ]);
          return;
        }
        if (!push) {
          stream.abort(new Error(`${this.self} does not take blocks`));
          return;
        }
        await servePushOverStream(stream, (cid, bytes, o) => push.putter(from, cid, bytes, o), push.options, this.#stopping.signal);
      },
      { maxInboundStreams: 16, maxOutboundStreams: 64, force: true },
    );
  }

  /**
   * Open a stream. A connection the peer is closing at that moment (it hung up after our last exchange, e.g. an
   * applicant after a refused join) fails with ConnectionClosedError although a new connection would do: try once
   * more, which dials afresh. A peer that keeps closing fails the second time the same way.
   */
  async #dialProtocol(node: Libp2p<Services>, peer: PeerId, protocol: string, signal: AbortSignal, maxOutboundStreams: number): Promise<Stream> {
    try {
      return await node.dialProtocol(peer, protocol, { signal, maxOutboundStreams });
    } catch (err) {
      if (signal.aborted || !causeChain(err).some((e) => e.name === 'ConnectionClosedError')) throw err;
      await new Promise((r) => setTimeout(r, 20));
      return node.dialProtocol(peer, protocol, { signal, maxOutboundStreams });
    }
  }

  /** Block sessions open now, and opened so far (each is one stream carrying many blocks). */
  get blockSessionStats(): { open: number; opened: number } {
    return this.#sessions.stats;
  }

  /** Open a stream for a block session (block-sessions.ts), failing with core's network errors. */
  async #openBlockStream(peer: BoxId, protocol: string, signal?: AbortSignal): Promise<Stream> {
    const node = this.#running();
    if (peer === this.self) throw new PeerUnreachableError(peer, 'cannot dial self');
    if (!this.#member(peer)) throw new AccessDeniedError('not-a-member', `${peer} is not a member of this reserve`, { peer });
    let id: PeerId;
    try {
      id = peerIdFromString(peer);
    } catch (cause) {
      throw new PeerUnreachableError(peer, `not a peer id (${errorOf(cause).message})`);
    }
    const dialSignal = this.#deadline(this.#dialTimeoutMs, signal);
    try {
      return await this.#dialProtocol(node, id, protocol, dialSignal, 64);
    } catch (err) {
      if (this.#stopping.signal.aborted) throw new PeerUnreachableError(peer, 'the network is stopping');
      if (causeChain(err).some((e) => e.name === 'UnsupportedProtocolError')) throw new RemoteError(peer, 'UnsupportedProtocolError', `${peer} does not serve ${protocol}`);
      throw this.#dialError(err, peer, dialSignal, signal);
    }
  }

  /**
   * Fetch `cids` from `peer` over one stream, verifying each block; `onBlock` gets them in order. Resolves with
   * what arrived (missing and corrupt ones listed); throws TransferInterruptedError whose `remaining` can be
   * fetched from another holder.
   */
  async fetchBlocks(peer: BoxId, cids: readonly CID[], onBlock: OnBlock, options: FetchBlocksOptions = {}): Promise<FetchBlocksResult> {
    const node = this.#running();
    if (cids.length === 0) return { received: 0, bytes: 0, missing: [], corrupt: [] };
    let stream: Stream;
    const dialSignal = this.#deadline(this.#dialTimeoutMs, options.signal);
    try {
      if (peer === this.self) throw new PeerUnreachableError(peer, 'cannot dial self');
      if (!this.#member(peer)) throw new AccessDeniedError('not-a-member', `${peer} is not a member of this reserve`, { peer });
      stream = await node.dialProtocol(peerIdFromString(peer), BLOCKS_PROTOCOL_ID, { signal: dialSignal, maxOutboundStreams: 64 });
    } catch (err) {
      let cause: Error = errorOf(err);
      if (!(cause instanceof PeerUnreachableError || cause instanceof AccessDeniedError)) {
        cause = causeChain(err).some((e) => e.name === 'UnsupportedProtocolError')
          ? new RemoteError(peer, 'UnsupportedProtocolError', `${peer} does not serve blocks`)
          : this.#dialError(err, peer, dialSignal, options.signal);
      }
      throw new TransferInterruptedError(peer, 0, [...cids], { cause });
    }
    const signals = [this.#stopping.signal];
    if (options.signal) signals.push(options.signal);
    return fetchBlocksOverStream(peer, stream, cids, onBlock, {
      maxBlockBytes: this.#o.maxBlockBytes,
      ...options,
      signal: AbortSignal.any(signals),
    });
  }

  /**
   * Fetch `cids` from the first holder that has them, resuming with the next holder from the first block not yet
   * received whenever a transfer is interrupted (or a holder lacks some blocks, or sends a corrupt one).
   */
  async fetchBlocksFrom(
    holders: readonly BoxId[],
    cids: readonly CID[],
    onBlock: OnBlock,
    options: FetchBlocksOptions = {},
  ): Promise<FetchBlocksResult & { interruptions: TransferInterruptedError[] }> {
    const total: FetchBlocksResult & { interruptions: TransferInterruptedError[] } = { received: 0, bytes: 0, missing: [], corrupt: [], interruptions: [] };
    const counting: OnBlock = async (cid, bytes) => {
      await onBlock(cid, bytes);
      total.received++;
      total.bytes += bytes.byteLength;
    };
    let todo = [...cids];
    for (const holder of holders) {
      if (todo.length === 0) break;
      try {
        const r = await this.fetchBlocks(holder, todo, counting, options);
        total.corrupt.push(...r.corrupt);
        todo = [...r.missing, ...r.corrupt.map((e) => e.cid)];
      } catch (err) {
        if (!(err instanceof TransferInterruptedError)) throw err;
        if (options.signal?.aborted) throw err;
        total.interruptions.push(err);
        todo = [...err.remaining];
      }
    }
    total.missing = todo;
    return total;
  }
}

export function createLibp2pNetwork(options: Libp2pNetworkOptions): Libp2pNetwork {
  halfWindowUpdates();
  return new Libp2pNetwork(options);
}
