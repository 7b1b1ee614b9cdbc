/**
 * Reserve's private-network connection protector: only Boxes holding the reserve's pre-shared key get past it.
 * It replaces @libp2p/pnet, whose xsalsa20 WebAssembly keeps a stale view of its memory and, after ~52 MiB through
 * one process, kills every PSK connection (NOTES-stack.md gotcha 3); it also answers a wrong key in one round trip
 * where pnet leaves the dialer hanging until its timeout (gotcha 5).
 *
 * Handshake (before noise; both sides send at once, so it costs one round trip after TCP connect):
 *   1. each side sends hello = 'RSV' | version 1 | cipher id | 24 random bytes (codec.ts)
 *   2. transcript T = dialer's hello | listener's hello
 *      each side sends confirm = HMAC-SHA256(psk, "reserve/psk/1 confirm <role>" | T) and checks the other's
 *      (constant time). A mismatch means a different key: AccessDeniedError('wrong-secret') on both sides at once.
 *   3. each direction is then encrypted with its own key HMAC-SHA256(psk, "reserve/psk/1 key <direction>" | T)
 *      under a stream cipher from node:crypto (OpenSSL): AES-256-CTR (default; AES-NI makes it ~1.6 GB/s here) or
 *      ChaCha20 (for Boxes without AES instructions, e.g. a Raspberry Pi 4). Keys are fresh per connection
 *      (random nonces in T), so the counter starts at zero.
 * Like pnet, this layer hides everything after it (noise handshake, peer ids) from anyone without the key; noise
 * still authenticates the peers and protects integrity. The confirm tags let an active attacker test guesses of
 * the key offline, exactly as pnet's known plaintext does: the key must come from a high-entropy secret.
 */
import './polyfill.ts';
import { createCipheriv, createHmac, hkdfSync, randomBytes, timingSafeEqual, type Cipher } from 'node:crypto';
import type { AbortOptions, ConnectionProtector, MessageStream, MultiaddrConnection, StreamMessageEvent } from '@libp2p/interface';
import { AbstractMultiaddrConnection, byteStream } from '@libp2p/utils';
import { InvalidInputError } from '../../core/errors.ts';
import { CONFIRM_BYTES, HELLO_BYTES, NONCE_BYTES, decodeHello, encodeHello } from './codec.ts';
import { AccessDeniedError, CipherMismatchError, HandshakeTimeoutError, MalformedFrameError, TruncatedFrameError } from './errors.ts';

type ByteList = Exclude<StreamMessageEvent['data'], Uint8Array>;

export const PSK_BYTES = 32;
const SEND_BATCH_BYTES = 1024 * 1024;

export type PskCipher = 'aes-256-ctr' | 'chacha20';
const CIPHER_IDS: Record<PskCipher, number> = { 'aes-256-ctr': 1, chacha20: 2 };
const CIPHER_NAMES = new Map<number, PskCipher>(Object.entries(CIPHER_IDS).map(([n, id]) => [id, n as PskCipher]));

/**
 * The 32-byte PSK for a reserve, derived from its shared secret (bytes, or a string used as UTF-8) with
 * HKDF-SHA256. The secret must be high-entropy (a random token, not a passphrase).
 */
export function pskFromSecret(secret: Uint8Array | string): Uint8Array {
  const ikm = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  if (ikm.byteLength < 16) throw new InvalidInputError('the reserve secret must be at least 16 bytes');
  return new Uint8Array(hkdfSync('sha256', ikm, 'reserve/pnet/v1', 'psk', PSK_BYTES));
}

/** The libp2p pnet key file ("swarm.key") holding `psk`, for tools that speak @libp2p/pnet's format. */
export function pnetKeyFile(psk: Uint8Array): Uint8Array {
  checkPsk(psk);
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${Buffer.from(psk).toString('hex')}`);
}

/** The PSK inside a libp2p pnet key file. */
export function pskFromKeyFile(file: Uint8Array): Uint8Array {
  const lines = new TextDecoder().decode(file).split(/\r\n|\r|\n/);
  if (lines[0] !== '/key/swarm/psk/1.0.0/' || lines[1] !== '/base16/' || !/^[0-9a-fA-F]{64}$/.test(lines[2] ?? '')) {
    throw new InvalidInputError('not a libp2p pnet key file (/key/swarm/psk/1.0.0/, /base16/, 64 hex digits)');
  }
  return new Uint8Array(Buffer.from(lines[2], 'hex'));
}

function checkPsk(psk: Uint8Array): void {
  if (!(psk instanceof Uint8Array) || psk.byteLength !== PSK_BYTES) {
    throw new InvalidInputError(`the PSK must be ${PSK_BYTES} bytes (use pskFromSecret)`);
  }
}

export interface PskProtectorInit {
  psk: Uint8Array;
  cipher?: PskCipher;
  /** Deadline for the whole handshake, on top of the caller's signal. Default 5 s. */
  handshakeTimeoutMs?: number;
}

let scratch: Uint8Array | undefined;
function sendScratch(bytes: number): Uint8Array {
  if (!scratch || scratch.byteLength < bytes) scratch = new Uint8Array(Math.max(bytes, SEND_BATCH_BYTES));
  return scratch.subarray(0, bytes);
}

function hmac(key: Uint8Array, label: string, transcript: Uint8Array): Buffer {
  return createHmac('sha256', key).update(label).update(transcript).digest();
}

function streamCipher(cipher: PskCipher, key: Uint8Array): Cipher {
  // Both ciphers are keystream generators: update() on any split of the input gives the same bytes.
  return createCipheriv(cipher, key, new Uint8Array(16));
}

/**
 * The protector. `setPsk` swaps the key for connections opened from then on (secret rotation).
 */
export class ReservePskProtector implements ConnectionProtector {
  #psk: Uint8Array;
  readonly cipher: PskCipher;
  readonly handshakeTimeoutMs: number;
  readonly [Symbol.toStringTag] = 'reserve-psk';

  constructor(init: PskProtectorInit) {
    checkPsk(init.psk);
    this.#psk = Uint8Array.from(init.psk);
    this.cipher = init.cipher ?? 'aes-256-ctr';
    if (!(this.cipher in CIPHER_IDS)) throw new InvalidInputError(`unknown PSK cipher ${String(this.cipher)}`);
    this.handshakeTimeoutMs = init.handshakeTimeoutMs ?? 5000;
  }

  setPsk(psk: Uint8Array): void {
    checkPsk(psk);
    this.#psk = Uint8Array.from(psk);
  }

  async protect(connection: MessageStream, options?: AbortOptions): Promise<MessageStream> {
    const maConn = connection as MultiaddrConnection;
    const psk = this.#psk;
    const signals = [AbortSignal.timeout(this.handshakeTimeoutMs)];
    if (options?.signal) signals.push(options.signal);
    const signal = AbortSignal.any(signals);
    const dialer = maConn.direction === 'outbound';
    const bytes = byteStream(maConn, { maxBufferSize: 4096 });
    try {
      const localHello = encodeHello(CIPHER_IDS[this.cipher], new Uint8Array(randomBytes(NONCE_BYTES)));
      const [remoteRaw] = await Promise.all([bytes.read({ bytes: HELLO_BYTES, signal }), bytes.write(localHello, { signal })]);
      const remoteHelloBytes = remoteRaw.subarray();
      let remote;
      try {
        remote = decodeHello(remoteHelloBytes);
      } catch (err) {
        if (err instanceof MalformedFrameError || err instanceof TruncatedFrameError) {
          throw new AccessDeniedError('refused-by-peer', 'the peer does not speak the Reserve PSK handshake', { cause: err });
        }
        throw err;
      }
      const remoteCipher = CIPHER_NAMES.get(remote.cipher);
      if (remoteCipher !== this.cipher) {
        throw new CipherMismatchError(`this Box encrypts its reserve connections with ${this.cipher}, the peer with ${remoteCipher ?? `cipher #${remote.cipher}`}`);
      }
      const transcript = new Uint8Array(2 * HELLO_BYTES);
      transcript.set(dialer ? localHello : remoteHelloBytes, 0);
      transcript.set(dialer ? remoteHelloBytes : localHello, HELLO_BYTES);
      const myRole = dialer ? 'dialer' : 'listener';
      const theirRole = dialer ? 'listener' : 'dialer';
      const [remoteConfirm] = await Promise.all([
        bytes.read({ bytes: CONFIRM_BYTES, signal }),
        bytes.write(hmac(psk, `reserve/psk/1 confirm ${myRole}`, transcript), { signal }),
      ]);
      const expected = hmac(psk, `reserve/psk/1 confirm ${theirRole}`, transcript);
      if (!timingSafeEqual(expected, remoteConfirm.subarray())) {
        throw new AccessDeniedError('wrong-secret', 'the peer holds a different reserve secret (PSK handshake failed)');
      }
      const outKey = hmac(psk, `reserve/psk/1 key ${myRole}->${theirRole}`, transcript);
      const inKey = hmac(psk, `reserve/psk/1 key ${theirRole}->${myRole}`, transcript);
      const raw = bytes.unwrap();
      return new PskConnection(raw, streamCipher(this.cipher, inKey), streamCipher(this.cipher, outKey));
    } catch (err) {
      maConn.abort(err instanceof Error ? err : new Error(String(err)));
      if (signal.aborted && !(err instanceof AccessDeniedError) && !(err instanceof CipherMismatchError)) {
        throw new HandshakeTimeoutError(`no PSK handshake from ${maConn.remoteAddr?.toString() ?? 'the peer'} in time (not a Reserve Box, or not responding)`, {
          cause: err,
        });
      }
      throw err;
    }
  }
}

export function reservePsk(init: PskProtectorInit): () => ReservePskProtector {
  const protector = new ReservePskProtector(init);
  return () => protector;
}

/** The encrypted connection handed to noise. */
class PskConnection extends AbstractMultiaddrConnection {
  readonly #raw: MultiaddrConnection;
  readonly #in: Cipher;
  readonly #out: Cipher;

  constructor(raw: MultiaddrConnection, inbound: Cipher, outbound: Cipher) {
    super({
      log: raw.log.newScope('reserve-psk'),
      remoteAddr: raw.remoteAddr,
      direction: raw.direction,
      inactivityTimeout: raw.inactivityTimeout,
      maxReadBufferLength: raw.maxReadBufferLength,
    });
    this.#raw = raw;
    this.#in = inbound;
    this.#out = outbound;
    raw.addEventListener('message', (evt) => {
      const data = evt.data;
      if (data instanceof Uint8Array) this.onData(this.#in.update(data));
      else for (const buf of data) this.onData(this.#in.update(buf));
    });
    raw.addEventListener('drain', () => {
      this.onMuxerDrain();
    });
    raw.addEventListener('close', (evt) => {
      if (evt.error != null) {
        if (evt.local) this.abort(evt.error);
        else this.onRemoteReset();
      } else {
        this.onTransportClosed();
      }
    });
  }

  sendData(data: ByteList): { sentBytes: number; canSendMore: boolean } {
    // Noise hands over lists of small pieces (a 2-byte length, then up to 64 KiB): encrypt and send them in
    // batches of up to 1 MiB, so the socket sees a few large writes instead of many tiny ones.
    let canSendMore = true;
    let batch: Uint8Array[] = [];
    let batchBytes = 0;
    const flush = () => {
      if (batchBytes === 0) return;
      let plain: Uint8Array;
      if (batch.length === 1) {
        plain = batch[0];
      } else {
        // gather into a scratch buffer shared by every connection of the process: update() below consumes it
        // synchronously and returns fresh ciphertext, so it is free again before anyone else can need it
        plain = sendScratch(batchBytes);
        let o = 0;
        for (const b of batch) {
          plain.set(b, o);
          o += b.byteLength;
        }
      }
      canSendMore = this.#raw.send(this.#out.update(plain));
      batch = [];
      batchBytes = 0;
    };
    for (const buf of data) {
      if (batchBytes + buf.byteLength > SEND_BATCH_BYTES) flush();
      batch.push(buf);
      batchBytes += buf.byteLength;
    }
    flush();
    return { sentBytes: data.byteLength, canSendMore };
  }

  async sendClose(options?: AbortOptions): Promise<void> {
    await this.#raw.close(options);
  }

  sendReset(err: Error): void {
    this.#raw.abort(err);
  }

  sendPause(): void {
    this.#raw.pause();
  }

  sendResume(): void {
    this.#raw.resume();
  }
}
