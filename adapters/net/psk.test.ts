/**
 * Reserve's PSK connection protector: key derivation and the pnet key file, refusal of garbage, silence, a wrong
 * key or another cipher (quickly, by name), both ciphers end to end, and key rotation.
 */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../core/errors.ts';
import { AccessDeniedError, CipherMismatchError } from './errors.ts';
import { PSK_BYTES, pnetKeyFile, pskFromKeyFile, pskFromSecret } from './psk.ts';
import { createLibp2pNetwork } from './libp2p-network.ts';
import { Fleet, OTHER_PSK, TEST_PSK, identities, outcome, waitFor } from './test-support.ts';

const enc = new TextEncoder();
const fleet = new Fleet();
afterEach(() => fleet.stopAll());

function tcpPort(addr: string): number {
  return Number(/\/tcp\/(\d+)/.exec(addr)![1]);
}

/** Open a raw TCP connection to `port`, send `bytes` (if any) and report how long until the Box closes it. */
function rawClient(port: number, bytes?: Uint8Array, giveUpMs = 8000): Promise<{ closedAfterMs: number; received: number }> {
  return new Promise((resolve) => {
    const t = performance.now();
    let received = 0;
    const sock = connect(port, '127.0.0.1', () => {
      if (bytes) sock.write(bytes);
    });
    sock.on('data', (d) => (received += d.length));
    sock.on('error', () => undefined);
    const timer = setTimeout(() => sock.destroy(), giveUpMs);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ closedAfterMs: performance.now() - t, received });
    });
  });
}

describe('keys', () => {
  it('derives a 32-byte PSK per secret and round-trips the libp2p pnet key file', () => {
    const a = pskFromSecret('a reserve secret of enough length');
    expect(a.byteLength).toBe(PSK_BYTES);
    expect(pskFromSecret('a reserve secret of enough length')).toEqual(a);
    expect(pskFromSecret('another reserve secret, long too')).not.toEqual(a);
    expect(pskFromSecret(new Uint8Array(32).fill(7))).not.toEqual(pskFromSecret(new Uint8Array(32).fill(8)));
    expect(() => pskFromSecret('short')).toThrow(InvalidInputError);
    const file = pnetKeyFile(a);
    expect(new TextDecoder().decode(file)).toMatch(/^\/key\/swarm\/psk\/1\.0\.0\/\n\/base16\/\n[0-9a-f]{64}$/);
    expect(pskFromKeyFile(file)).toEqual(a);
    expect(() => pskFromKeyFile(enc.encode('/key/swarm/psk/1.0.0/\n/base16/\nzz'))).toThrow(InvalidInputError);
  });

  it('refuses a PSK of the wrong size', async () => {
    const [id] = await identities(1);
    expect(() => createLibp2pNetwork({ privateKey: id.key, psk: new Uint8Array(16), isMember: () => true })).toThrow(InvalidInputError);
  });
});

describe('the handshake', () => {
  it('closes connections that send garbage or nothing, without waiting long', async () => {
    const [id] = await identities(1);
    fleet.members.add(id.id);
    const box = fleet.add(id, { handshakeTimeoutMs: 500 });
    await box.start();
    const port = tcpPort(box.addresses()[0]);
    const garbage = await rawClient(port, new Uint8Array(64).fill(0x41));
    expect(garbage.closedAfterMs).toBeLessThan(3000);
    expect(garbage.received).toBeLessThanOrEqual(29); // at most the Box's own hello, nothing after it
    const silent = await rawClient(port);
    expect(silent.closedAfterMs).toBeLessThan(3000);
    // libp2p pnet's first bytes: a 24-byte nonce and no hello
    const pnetLike = await rawClient(port, crypto.getRandomValues(new Uint8Array(24)));
    expect(pnetLike.closedAfterMs).toBeLessThan(3000);
    // still serving members
    const [other] = await identities(1);
    fleet.members.add(other.id);
    const peer = fleet.add(other);
    await peer.start();
    expect(await peer.dial(box.addresses()[0])).toBe(box.self);
  });

  it('names a cipher mismatch, and carries traffic with either cipher', async () => {
    const ids = await identities(3);
    ids.forEach((i) => fleet.members.add(i.id));
    const aes = fleet.add(ids[0]);
    const chacha = fleet.add(ids[1], { pskCipher: 'chacha20' });
    const chacha2 = fleet.add(ids[2], { pskCipher: 'chacha20' });
    chacha.handle('echo', async (_f, d) => d);
    await Promise.all([aes.start(), chacha.start(), chacha2.start()]);
    const mismatch = await outcome(aes.dial(chacha.addresses()[0]));
    expect(mismatch.error).toBeInstanceOf(CipherMismatchError);
    expect(mismatch.ms).toBeLessThan(3000);
    await chacha2.dial(chacha.addresses()[0]);
    const big = crypto.getRandomValues(new Uint8Array(60_000));
    expect(await chacha2.request(chacha.self, 'echo', big)).toEqual(new Uint8Array(big));
  });

  it('rotating the key: existing connections stay, new ones need the new key', async () => {
    const ids = await identities(3);
    ids.forEach((i) => fleet.members.add(i.id));
    const a = fleet.add(ids[0]);
    const b = fleet.add(ids[1]);
    a.handle('echo', async (_f, d) => d);
    await Promise.all([a.start(), b.start()]);
    await b.dial(a.addresses()[0]);
    a.setPsk(OTHER_PSK);
    b.setPsk(OTHER_PSK);
    expect(await b.request(a.self, 'echo', enc.encode('still here'))).toEqual(enc.encode('still here'));
    const late = fleet.add(ids[2]); // still holds the old key
    await late.start();
    const refused = await outcome(late.dial(a.addresses()[0]));
    expect((refused.error as AccessDeniedError).reason).toBe('wrong-secret');
    late.setPsk(OTHER_PSK);
    expect(await late.dial(a.addresses()[0])).toBe(a.self);
    await waitFor('late to be connected', () => a.peers().includes(late.self));
    expect(TEST_PSK).not.toEqual(OTHER_PSK);
  });
});
