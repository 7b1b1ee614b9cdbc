/**
 * `npm run bench:net`: how fast Reserve moves blocks between two Boxes, against raw TCP measured in the same run.
 *
 * Every section runs a sender and a receiver as two separate local processes (this script re-invoked with
 * `--role`), over 127.0.0.1, 1 MiB at a time:
 *   raw-tcp        node:net, the ceiling
 *   libp2p         a libp2p 3 stream: TCP + noise + yamux, no PSK, configured as Reserve's network configures
 *                  them (noise-crypto.ts, yamux-window.ts)                   (what libp2p itself costs)
 *   libp2p+psk     the same with Reserve's PSK protector (AES-256-CTR)      (what the private network costs)
 *   blocks+psk     Reserve's Libp2pNetwork: fetchBlocks over /reserve/blocks/1.0.0, each block verified against
 *                  its CID on receipt                                       (the number that matters)
 *   push+store     what a Box receiving replicas does: the sender's BlockClient.putMany pushes distinct blocks,
 *                  the receiver checks each against its CID and stores it durably (TrackingBlockstore over an
 *                  FsBlockstore with fsync, in a temp dir), as the keeper's push does; the sender's blocks are
 *                  made and hashed before the clock starts                 (the network plus the disk)
 * and reports MiB/s, CPU milliseconds per MiB on each side (user + system) and the ratio blocks+psk / raw-tcp.
 * With `--profile` both processes of every libp2p section write V8 CPU profiles, summarised by category (noise
 * cipher, PSK cipher, block hashing, yamux/stream machinery, garbage collection, idle) to say what bounds it.
 *
 *   npm run bench:net -- [--mib 512] [--repeat 3] [--sections raw-tcp,blocks+psk] [--profile] [--cipher chacha20] [--box-mib 1024]
 *                        [--block-kib 1024]   (blocks+psk's and push+store's block size)
 *
 * NET_BENCH_KEEP_PROFILES=1 keeps the .cpuprofile files (their directory is printed) for a closer look.
 *
 * Then the issue's full bench (box-replication.ts): `--box-mib` (default 1024) MiB backed up on one of 4 Box
 * processes, replicated to RF 3, restored onto a new Box, set against raw TCP; `--box-mib 0` skips it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measureBoxReplication } from './box-replication.ts';

const MIB = 1 << 20;
const SELF = fileURLToPath(import.meta.url);

type Section = 'raw-tcp' | 'libp2p' | 'libp2p+psk' | 'blocks+psk' | 'push+store';
const ALL_SECTIONS: Section[] = ['raw-tcp', 'libp2p', 'libp2p+psk', 'blocks+psk', 'push+store'];
/** Sections whose server process is the receiving side (the others' server sends). */
const SERVER_RECEIVES: ReadonlySet<Section> = new Set(['push+store']);

interface Args {
  mib: number;
  /** Rounds over all sections (interleaved, so a busy machine hits every section alike); medians are reported. */
  repeat: number;
  sections: Section[];
  profile: boolean;
  cipher: 'aes-256-ctr' | 'chacha20';
  /** MiB for the Box replication section (0 skips it). */
  boxMib: number;
  /** Block size of blocks+psk and push+store in KiB (1024 by default; small blocks show the per-block costs). */
  blockKib: number;
  role?: string;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const sections = (get('sections')?.split(',') ?? ALL_SECTIONS) as Section[];
  for (const s of sections) if (!ALL_SECTIONS.includes(s)) throw new Error(`unknown section ${s} (${ALL_SECTIONS.join(', ')})`);
  return {
    mib: Number(get('mib') ?? 512),
    repeat: Math.max(1, Number(get('repeat') ?? 3)),
    sections,
    profile: argv.includes('--profile'),
    cipher: (get('cipher') ?? 'aes-256-ctr') as Args['cipher'],
    boxMib: Number(get('box-mib') ?? 1024),
    blockKib: Number(get('block-kib') ?? 1024),
    role: get('role'),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Messages between the orchestrator and its two children

interface Ready {
  type: 'ready';
  addr: string;
  cids?: string[];
}
interface Done {
  type: 'done';
  bytes: number;
  seconds: number;
  cpuMs: number;
}
type Msg = Ready | Done | { type: 'error'; message: string };

function send(msg: Msg): void {
  process.send?.(msg);
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
}

// ---------------------------------------------------------------------------------------------------------------
// Roles (each runs in its own process)

async function rawServer(mib: number): Promise<void> {
  const block = randomBytes(MIB);
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let sent = 0;
    const pump = () => {
      while (sent < mib) {
        sent++;
        if (!sock.write(block)) return void sock.once('drain', pump);
      }
      sock.end(() => {
        send({ type: 'done', bytes: mib * MIB, seconds: (performance.now() - t0) / 1000, cpuMs: cpuMs(c0) });
      });
    };
    pump();
  });
  server.listen(0, '127.0.0.1', () => {
    const a = server.address();
    if (a && typeof a === 'object') send({ type: 'ready', addr: `${a.port}` });
  });
}

async function rawClient(port: number, mib: number): Promise<void> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let got = 0;
  const sock = connect(Number(port), '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    sock.on('data', (d: Buffer) => {
      got += d.length;
    });
    sock.on('error', reject);
    sock.on('end', () => resolve());
  });
  if (got !== mib * MIB) throw new Error(`raw: got ${got} bytes`);
  send({ type: 'done', bytes: got, seconds: (performance.now() - t0) / 1000, cpuMs: cpuMs(c0) });
}

async function libp2pNode(psk: boolean, cipher: Args['cipher']) {
  await import('../../adapters/net/polyfill.ts');
  const { createLibp2p } = await import('libp2p');
  const { tcp } = await import('@libp2p/tcp');
  const { noise } = await import('@chainsafe/libp2p-noise');
  const { yamux } = await import('@chainsafe/libp2p-yamux');
  const { reservePsk, pskFromSecret } = await import('../../adapters/net/psk.ts');
  const { noiseCrypto } = await import('../../adapters/net/noise-crypto.ts');
  const { halfWindowUpdates } = await import('../../adapters/net/yamux-window.ts');
  halfWindowUpdates();
  return createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    streamMuxers: [yamux({ streamOptions: { maxStreamWindowSize: 8 * MIB, maxReadBufferLength: 16 * MIB } })],
    ...(psk ? { connectionProtector: reservePsk({ psk: pskFromSecret('net-bench-secret-0123456789abcdef'), cipher }) } : {}),
  });
}

const STREAM_PROTOCOL = '/reserve-bench/stream/1.0.0';

/** Sends `mib` MiB on the first stream opened to it, waiting for the write buffer to drain past 4 MiB. */
async function streamServer(mib: number, psk: boolean, cipher: Args['cipher']): Promise<void> {
  const node = await libp2pNode(psk, cipher);
  const block = randomBytes(MIB);
  await node.handle(STREAM_PROTOCOL, async (stream) => {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < mib; i++) {
      stream.send(block);
      if (stream.writeBufferLength > 4 * MIB) {
        await new Promise<void>((resolve, reject) => {
          stream.addEventListener('idle', () => resolve(), { once: true });
          stream.addEventListener('close', () => reject(new Error('closed')), { once: true });
        });
      }
    }
    await stream.close();
    send({ type: 'done', bytes: mib * MIB, seconds: (performance.now() - t0) / 1000, cpuMs: cpuMs(c0) });
  });
  send({ type: 'ready', addr: node.getMultiaddrs()[0].toString() });
}

async function streamClient(addr: string, mib: number, psk: boolean, cipher: Args['cipher']): Promise<void> {
  const node = await libp2pNode(psk, cipher);
  const { multiaddr } = await import('@multiformats/multiaddr');
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const stream = await node.dialProtocol(multiaddr(addr), STREAM_PROTOCOL, { signal: AbortSignal.timeout(10_000) });
  let got = 0;
  await new Promise<void>((resolve, reject) => {
    stream.addEventListener('message', (e) => {
      got += e.data.byteLength;
    });
    stream.addEventListener('remoteCloseWrite', () => resolve());
    stream.addEventListener('close', (e) => (e.error ? reject(e.error) : resolve()));
  });
  if (got !== mib * MIB) throw new Error(`stream: got ${got} bytes`);
  send({ type: 'done', bytes: got, seconds: (performance.now() - t0) / 1000, cpuMs: cpuMs(c0) });
  await node.stop();
}

async function boxNetwork(role: 'server' | 'client', cipher: Args['cipher'], peerId?: string) {
  const { createLibp2pNetwork } = await import('../../adapters/net/libp2p-network.ts');
  const { pskFromSecret } = await import('../../adapters/net/psk.ts');
  const { generateKeyPair } = await import('@libp2p/crypto/keys');
  const key = await generateKeyPair('Ed25519');
  // two Boxes of one reserve: each trusts the other's id (the server's is passed to the client), the server
  // admits anyone holding the PSK (its peer list would come from the membership state)
  return createLibp2pNetwork({
    privateKey: key,
    psk: pskFromSecret('net-bench-secret-0123456789abcdef'),
    pskCipher: cipher,
    isMember: (p) => role === 'server' || p === peerId,
    maintenanceIntervalMs: 0,
  });
}

/** Serves a pool of up to 256 MiB of distinct random blocks of `blockKib` KiB (the want list cycles through them). */
async function blocksServer(mib: number, blockKib: number, cipher: Args['cipher']): Promise<void> {
  const { cidOf, RAW_CODE } = await import('../../core/blocks/cid.ts');
  const net = await boxNetwork('server', cipher);
  const count = Math.floor((mib * 1024) / blockKib);
  const pool = new Map<string, Uint8Array>();
  const order: string[] = [];
  for (let i = 0; i < Math.min(Math.floor((256 * 1024) / blockKib), count); i++) {
    const b = new Uint8Array(randomBytes(blockKib * 1024));
    const c = cidOf(RAW_CODE, b).toString();
    pool.set(c, b);
    order.push(c);
  }
  let c0 = process.cpuUsage();
  let t0 = 0;
  let served = 0;
  net.serveBlocks((cid) => {
    if (served === 0) {
      c0 = process.cpuUsage();
      t0 = performance.now();
    }
    served++;
    if (served === count) {
      // report once the last block is handed over (the client reports its own end)
      setTimeout(() => send({ type: 'done', bytes: count * blockKib * 1024, seconds: (performance.now() - t0) / 1000, cpuMs: cpuMs(c0) }), 0);
    }
    return pool.get(cid.toString());
  });
  await net.start();
  send({ type: 'ready', addr: net.addresses()[0], cids: order });
}

async function blocksClient(addr: string, cidStrings: string[], mib: number, blockKib: number, cipher: Args['cipher']): Promise<void> {
  const { parseCid } = await import('../../core/blocks/cid.ts');
  const serverId = addr.split('/p2p/')[1];
  const net = await boxNetwork('client', cipher, serverId);
  await net.start();
  await net.dial(addr);
  const pool = cidStrings.map(parseCid);
  const count = Math.floor((mib * 1024) / blockKib);
  const wanted = Array.from({ length: count }, (_, i) => pool[i % pool.length]);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let bytes = 0;
  const r = await net.fetchBlocks(serverId, wanted, (_cid, b) => {
    bytes += b.byteLength; // verified against the CID by fetchBlocks before it gets here
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.received !== count || r.corrupt.length > 0) throw new Error(`blocks: received ${r.received}, corrupt ${r.corrupt.length}`);
  send({ type: 'done', bytes, seconds, cpuMs: cpuMs(c0) });
  await net.stop();
}

/** The receiving Box of push+store: blocks pushed to it are checked and stored durably, as the keeper serves them. */
async function pushReceiver(mib: number, blockKib: number, cipher: Args['cipher']): Promise<void> {
  const count = Math.floor((mib * 1024) / blockKib);
  const { FsBlockstore } = await import('../../adapters/storage/fs-blockstore.ts');
  const { TrackingBlockstore } = await import('../../core/keeper/tracking-store.ts');
  const { BlockClient } = await import('../../core/keeper/block-client.ts');
  const { systemClock } = await import('../../adapters/system.ts');
  const dir = mkdtempSync(join(tmpdir(), 'net-bench-store-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  const store = new TrackingBlockstore(await FsBlockstore.open(dir));
  await store.load();
  const net = await boxNetwork('server', cipher);
  new BlockClient({ network: net, clock: systemClock }).serve(store);
  await net.start();
  const c0 = process.cpuUsage();
  let t0 = 0;
  const watch = setInterval(() => {
    if (store.count > 0 && t0 === 0) t0 = performance.now();
    if (store.count < count) return;
    clearInterval(watch);
    send({ type: 'done', bytes: mib * MIB, seconds: (performance.now() - t0) / 1000, cpuMs: cpuMs(c0) });
  }, 5);
  send({ type: 'ready', addr: net.addresses()[0] });
}

/** The sending Box of push+store: `mib` distinct 1 MiB blocks, pushed with the keeper's putMany. */
async function pushSender(addr: string, mib: number, blockKib: number, cipher: Args['cipher']): Promise<void> {
  const { cidOf, RAW_CODE } = await import('../../core/blocks/cid.ts');
  const { BlockClient } = await import('../../core/keeper/block-client.ts');
  const { systemClock } = await import('../../adapters/system.ts');
  const serverId = addr.split('/p2p/')[1];
  const template = new Uint8Array(randomBytes(blockKib * 1024));
  const count = Math.floor((mib * 1024) / blockKib);
  const blocks = Array.from({ length: count }, (_, i) => {
    const b = template.slice();
    new DataView(b.buffer).setUint32(0, i);
    return b;
  });
  const cids = blocks.map((b) => cidOf(RAW_CODE, b));
  const net = await boxNetwork('client', cipher, serverId);
  await net.start();
  await net.dial(addr);
  const client = new BlockClient({ network: net, clock: systemClock });
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await client.putMany(serverId, cids, async (_cid, i) => blocks[i]);
  const seconds = (performance.now() - t0) / 1000;
  if (r.stored !== count) throw new Error(`push: stored ${r.stored} of ${count}`);
  send({ type: 'done', bytes: r.bytes, seconds, cpuMs: cpuMs(c0) });
  await net.stop();
}

// ---------------------------------------------------------------------------------------------------------------
// Orchestration

interface SectionResult {
  section: Section | string;
  mibPerSec: number;
  seconds: number;
  clientCpuMsPerMiB: number;
  serverCpuMsPerMiB: number;
  profiles?: ProfileSummary[];
}

function spawnRole(role: string, args: Args, extra: string[], profileDir?: string): ChildProcess {
  const execArgv = [...process.execArgv];
  if (profileDir) execArgv.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
  return fork(SELF, ['--role', role, '--mib', String(args.mib), '--block-kib', String(args.blockKib), '--cipher', args.cipher, ...extra], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}

function next(child: ChildProcess, what: string): Promise<Ready | Done> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: Msg) => {
      cleanup();
      if (m.type === 'error') reject(new Error(`${what}: ${m.message}`));
      else resolve(m);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`${what} exited with ${code} before answering`));
    };
    const cleanup = () => {
      child.off('message', onMsg);
      child.off('exit', onExit);
    };
    child.on('message', onMsg);
    child.on('exit', onExit);
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
  });
}

async function runSection(section: Section, args: Args): Promise<SectionResult> {
  const profileDir = args.profile && section !== 'raw-tcp' ? mkdtempSync(join(tmpdir(), `net-bench-${section.replace('+', '-')}-`)) : undefined;
  const server = spawnRole(`${section}:server`, args, [], profileDir);
  let cidsDir: string | undefined;
  try {
    const ready = (await next(server, `${section} server`)) as Ready;
    const extra = ['--addr', ready.addr];
    if (ready.cids) {
      // too many for a command line at small block sizes: handed over in a file
      cidsDir = mkdtempSync(join(tmpdir(), 'net-bench-cids-'));
      const file = join(cidsDir, 'cids');
      writeFileSync(file, ready.cids.join(','));
      extra.push('--cids-file', file);
    }
    const client = spawnRole(`${section}:client`, args, extra, profileDir);
    const serverDone = next(server, `${section} server`) as Promise<Done>;
    const clientDone = (await next(client, `${section} client`)) as Done;
    const sDone = await serverDone;
    server.kill('SIGTERM'); // the server's profile is written at exit (SIGTERM handler below)
    await Promise.all([exited(client), exited(server)]);
    const mib = clientDone.bytes / MIB;
    const [receiver, sender] = SERVER_RECEIVES.has(section) ? [sDone, clientDone] : [clientDone, sDone];
    return {
      section,
      mibPerSec: mib / clientDone.seconds,
      seconds: clientDone.seconds,
      clientCpuMsPerMiB: receiver.cpuMs / mib,
      serverCpuMsPerMiB: sender.cpuMs / mib,
      profiles: profileDir ? summarizeProfiles(profileDir) : undefined,
    };
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
    if (cidsDir) rmSync(cidsDir, { recursive: true, force: true });
    if (profileDir && !process.env.NET_BENCH_KEEP_PROFILES) rmSync(profileDir, { recursive: true, force: true });
    else if (profileDir) console.log(`  profiles kept in ${profileDir}`);
  }
}


// ---------------------------------------------------------------------------------------------------------------
// Profiles: self time by category

interface ProfileSummary {
  pid: string;
  role: 'main thread';
  totalMs: number;
  /** Share of the profile the thread was idle (waiting for the network, the peer, or the CPU). */
  idle: number;
  /** Shares of the busy time (idle and start-up excluded). */
  categories: Array<{ category: string; share: number }>;
}

function categorize(fn: string, url: string): string {
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'garbage collection';
  if (fn === '(program)') return 'V8/native';
  if (/tsx|esbuild|node:internal\/modules|get-tsconfig/.test(url)) return 'start-up';
  if (/libp2p-noise|as-chacha20poly1305/.test(url)) return 'noise (ChaCha20-Poly1305 glue)';
  if (/adapters\/net\/psk/.test(url)) return 'PSK layer';
  if (/node:internal\/crypto\/hash|hashes\/sha2|hashes\/hasher/.test(url)) return 'block hashing (sha2-256)';
  if (/node:internal\/crypto\/cipher/.test(url)) return 'ciphers (noise + PSK, OpenSSL)';
  if (/libp2p-yamux/.test(url)) return 'yamux';
  if (/uint8arraylist|uint8arrays/.test(url)) return 'byte lists (uint8arraylist)';
  if (/@libp2p\/utils|main-event|node:internal\/event_target|it-pushable|p-event|race-signal/.test(url)) return 'libp2p stream machinery/events';
  if (/adapters\/net\//.test(url)) return 'Reserve framing/blocks';
  if (/node:net|stream_base_commons|node:internal\/streams|^$/.test(url) && /write|read|onStreamRead|writev|Buffer/i.test(fn)) return 'socket I/O';
  if (/node:buffer|node:internal\/buffer/.test(url) || /_copyActual|createUnsafeBuffer/.test(fn)) return 'buffer copies';
  if (/node:internal\/process|node:internal\/timers|node:async_hooks/.test(url)) return 'event loop/microtasks';
  if (/@libp2p\/|\/libp2p\/dist|\/it-|p-queue|p-event|progress-events|abort-error/.test(url)) return 'libp2p stream machinery/events';
  if (/multiformats|core\/blocks\/cid/.test(url)) return 'CIDs (multiformats)';
  return 'other';
}

function summarizeProfiles(dir: string): ProfileSummary[] {
  const out: ProfileSummary[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.cpuprofile'))) {
    // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile: keep main threads (thread 0)
    const parts = f.split('.');
    if (parts[4] !== '0') continue;
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
      nodes: Array<{ id: number; callFrame: { functionName: string; url: string } }>;
      samples: number[];
      timeDeltas: number[];
    };
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const ms = new Map<string, number>();
    let total = 0;
    for (let i = 0; i < p.samples.length; i++) {
      const n = byId.get(p.samples[i]);
      const d = (p.timeDeltas[i] ?? 0) / 1000;
      if (!n) continue;
      const cat = categorize(n.callFrame.functionName, n.callFrame.url);
      if (cat === 'start-up') continue;
      ms.set(cat, (ms.get(cat) ?? 0) + d);
      total += d;
    }
    const idle = ms.get('idle') ?? 0;
    ms.delete('idle');
    out.push({
      pid: parts[3],
      role: 'main thread',
      totalMs: total,
      idle: idle / total,
      categories: [...ms].map(([category, v]) => ({ category, share: v / (total - idle) })).sort((a, b) => b.share - a.share),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

async function role(args: Args, argv: string[]): Promise<void> {
  const get = (name: string) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : '';
  };
  process.on('SIGTERM', () => process.exit(0)); // flush --cpu-prof
  const [section, side] = args.role!.split(':') as [Section, 'server' | 'client'];
  try {
    if (section === 'raw-tcp') await (side === 'server' ? rawServer(args.mib) : rawClient(Number(get('addr')), args.mib));
    else if (section === 'libp2p' || section === 'libp2p+psk') {
      const psk = section === 'libp2p+psk';
      await (side === 'server' ? streamServer(args.mib, psk, args.cipher) : streamClient(get('addr'), args.mib, psk, args.cipher));
    } else if (section === 'push+store') await (side === 'server' ? pushReceiver(args.mib, args.blockKib, args.cipher) : pushSender(get('addr'), args.mib, args.blockKib, args.cipher));
    else await (side === 'server' ? blocksServer(args.mib, args.blockKib, args.cipher) : blocksClient(get('addr'), readFileSync(get('cids-file'), 'utf8').split(','), args.mib, args.blockKib, args.cipher));
    if (side === 'client') setTimeout(() => process.exit(0), 50);
  } catch (err) {
    send({ type: 'error', message: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    process.exit(1);
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const args = parseArgs(argv);
  if (args.role) return role(args, argv);

  console.log(
    `net bench: ${args.mib} MiB of ${args.blockKib === 1024 ? '1 MiB' : `${args.blockKib} KiB`} blocks per section, two local processes each, 127.0.0.1; PSK cipher ${args.cipher}; ` +
      `${args.repeat} interleaved rounds, medians`,
  );
  const runs = new Map<string, SectionResult[]>();
  for (let round = 0; round < args.repeat; round++) {
    for (const s of args.sections) {
      const r = await runSection(s, { ...args, profile: args.profile && round === args.repeat - 1 });
      runs.set(s, [...(runs.get(s) ?? []), r]);
    }
  }
  const median = (xs: number[]) => {
    const v = [...xs].sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  const results: SectionResult[] = args.sections.map((s) => {
    const rs = runs.get(s)!;
    return {
      section: s,
      mibPerSec: median(rs.map((r) => r.mibPerSec)),
      seconds: median(rs.map((r) => r.seconds)),
      clientCpuMsPerMiB: median(rs.map((r) => r.clientCpuMsPerMiB)),
      serverCpuMsPerMiB: median(rs.map((r) => r.serverCpuMsPerMiB)),
      profiles: rs.at(-1)?.profiles,
    };
  });
  for (const r of results) {
    const all = runs.get(r.section)!.map((x) => x.mibPerSec.toFixed(0)).join('/');
    console.log(
      `  ${r.section.padEnd(11)} ${r.mibPerSec.toFixed(0).padStart(6)} MiB/s  (runs ${all})   CPU ms/MiB: receiver ${r.clientCpuMsPerMiB.toFixed(2)}, sender ${r.serverCpuMsPerMiB.toFixed(2)}`,
    );
  }
  const raw = results.find((r) => r.section === 'raw-tcp');
  const blocks = results.find((r) => r.section === 'blocks+psk');
  if (raw && blocks) {
    const ratio = blocks.mibPerSec / raw.mibPerSec;
    console.log(`\n  ratio blocks+psk / raw-tcp: ${ratio.toFixed(3)} (1/${(1 / ratio).toFixed(1)}; target >= 1/3)`);
    // Which side is the bottleneck: CPU time per MiB times MiB/s is the share of a core that side used.
    const recvLoad = (blocks.clientCpuMsPerMiB * blocks.mibPerSec) / 1000;
    const sendLoad = (blocks.serverCpuMsPerMiB * blocks.mibPerSec) / 1000;
    console.log(`  blocks+psk core use: receiver ${(recvLoad * 100).toFixed(0)}%, sender ${(sendLoad * 100).toFixed(0)}% of one core`);
    // On a busy machine wall-clock rates mostly measure the scheduler; CPU time per MiB does not. The ceiling of
    // each path is what its busier side could move with a whole core to itself.
    const ceiling = (r: SectionResult) => 1000 / Math.max(r.clientCpuMsPerMiB, r.serverCpuMsPerMiB);
    console.log(
      `  CPU-bound ceilings (a core per process): blocks+psk ${ceiling(blocks).toFixed(0)} MiB/s, raw-tcp ${ceiling(raw).toFixed(0)} MiB/s; ratio ${(ceiling(blocks) / ceiling(raw)).toFixed(3)}`,
    );
  }
  const base = results.find((r) => r.section === 'libp2p');
  const psk = results.find((r) => r.section === 'libp2p+psk');
  if (base && psk) {
    console.log(
      `  PSK layer cost: +${(psk.clientCpuMsPerMiB - base.clientCpuMsPerMiB).toFixed(2)} ms/MiB receiving, +${(psk.serverCpuMsPerMiB - base.serverCpuMsPerMiB).toFixed(2)} ms/MiB sending`,
    );
  }
  if (blocks && psk) {
    console.log(`  block protocol + verification cost on the receiver: +${(blocks.clientCpuMsPerMiB - psk.clientCpuMsPerMiB).toFixed(2)} ms/MiB`);
  }
  const push = results.find((r) => r.section === 'push+store');
  if (push && blocks) {
    console.log(`  durable store on the receiver (push+store against blocks+psk): +${(push.clientCpuMsPerMiB - blocks.clientCpuMsPerMiB).toFixed(2)} ms/MiB`);
  }
  for (const r of results) {
    for (const p of r.profiles ?? []) {
      const top = p.categories
        .filter((c) => c.share >= 0.02)
        .map((c) => `${c.category} ${(c.share * 100).toFixed(0)}%`)
        .join(', ');
      console.log(`  profile ${r.section} pid ${p.pid} (idle ${(p.idle * 100).toFixed(0)}%), busy time: ${top}`);
    }
  }
  if (args.boxMib > 0) {
    console.log(`\n  box-rf3: ${args.boxMib} MiB backed up on one of 4 Box processes (reserve daemon), replicated to RF 3, restored onto a new Box`);
    const box = await measureBoxReplication({ mib: args.boxMib, log: (s) => console.log(s) });
    console.log(
      `  box-rf3     protected ${box.protectedMibPerSec.toFixed(0)} MiB/s of data (${box.replicateSeconds.toFixed(1)} s), ${box.wireMibPerSec.toFixed(0)} MiB/s on the wire; ` +
        `restore onto a new Box ${box.restoreMibPerSec.toFixed(0)} MiB/s (${box.restoreSeconds.toFixed(1)} s)`,
    );
    console.log(
      `  box-rf3 CPU: replication ${box.replicateCpuSeconds.toFixed(1)} s over the 4 Boxes (${((box.replicateCpuSeconds * 1000) / box.mib).toFixed(1)} ms per MiB of data), ` +
        `restore ${box.restoreCpuSeconds.toFixed(1)} s on the new Box (${((box.restoreCpuSeconds * 1000) / box.mib).toFixed(1)} ms/MiB); ` +
        `the machine was ${(box.machineBusy * 100).toFixed(0)}% busy meanwhile (other work included)`,
    );
    // What bounds it: the Boxes' own CPU time against the cores there are. Near the core count (or with the
    // machine near 100% busy), the bound is CPU: per replica byte, noise + PSK encryption and decryption, the CID
    // check, the block store's writes; per block, framing, the store's file or pack work and the keeper.
    console.log(
      `  box-rf3 peak RSS: ${box.replicateCpuByBox.map((b) => `${b.name} ${(b.peakRssBytes / MIB).toFixed(0)}`).join(', ')}, restoring Box ${(box.restorePeakRssBytes / MIB).toFixed(0)} MiB`,
    );
    console.log(
      `  box-rf3 bound: replication kept ${(box.replicateCpuSeconds / box.replicateSeconds).toFixed(2)} cores busy, restore ${(box.restoreCpuSeconds / box.restoreSeconds).toFixed(2)} ` +
        `(the new Box alone: one main thread plus hashing workers), of ${cpus().length} cores`,
    );
    if (raw) {
      console.log(`  ratio box-rf3 wire / raw-tcp: ${(box.wireMibPerSec / raw.mibPerSec).toFixed(3)}; restore / raw-tcp: ${(box.restoreMibPerSec / raw.mibPerSec).toFixed(3)} (target >= 1/3)`);
    }
    // The ceilings of the replication itself: every MiB on the wire is sent by one Box and received by another, and
    // all the Boxes share this machine's cores. Each layer measured in this run costs some CPU per wire MiB at both
    // ends; spread over the cores, that is the most anything built on it can move:
    //   transport alone (libp2p+psk: TCP + PSK + noise + yamux, no blocks),
    //   the block protocol (blocks+psk: plus framing and the CID check),
    //   replicas stored durably (push+store: plus pack writes and fsyncs; the least a Box receiving replicas does).
    // How close the Boxes came to the last is what the keeper's own work (and the author's reads) costs.
    const wireMib = box.wireMibPerSec * box.replicateSeconds;
    const boxMsPerWireMib = (box.replicateCpuSeconds * 1000) / wireMib;
    const cores = cpus().length;
    const ceilingLine = (label: string, r: SectionResult | undefined) => {
      if (!r) return;
      const ms = r.clientCpuMsPerMiB + r.serverCpuMsPerMiB;
      const mibs = (cores * 1000) / ms;
      console.log(
        `  box-rf3 ceiling, ${label}: ${ms.toFixed(1)} CPU ms per wire MiB (both ends), at most ${mibs.toFixed(0)} MiB/s on ${cores} cores` +
          `${raw ? ` (ratio ${(mibs / raw.mibPerSec).toFixed(3)})` : ''}; replication reached ${((box.wireMibPerSec / mibs) * 100).toFixed(0)}% of it`,
      );
    };
    ceilingLine('transport alone (libp2p+psk)', psk);
    ceilingLine('block protocol (blocks+psk)', blocks);
    ceilingLine('replicas stored durably (push+store)', push);
    const protocolShare = blocks ? `, ${(((blocks.clientCpuMsPerMiB + blocks.serverCpuMsPerMiB) / boxMsPerWireMib) * 100).toFixed(0)}% of it the block protocol` : '';
    console.log(`  box-rf3 CPU per MiB on the wire: ${boxMsPerWireMib.toFixed(1)} ms over all the Boxes${protocolShare}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
