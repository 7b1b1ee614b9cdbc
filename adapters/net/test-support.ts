/**
 * Helpers for the network adapter's tests: Boxes on 127.0.0.1 with fresh identities, a shared membership list and
 * a polling `waitFor` with a deadline (every wait in these tests ends by itself).
 */
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { createLibp2pNetwork, type Libp2pNetwork, type Libp2pNetworkOptions } from './libp2p-network.ts';
import { pskFromSecret } from './psk.ts';

export const TEST_PSK = pskFromSecret('reserve-test-secret-0123456789abcdef');
export const OTHER_PSK = pskFromSecret('another-reserve-secret-0123456789ab');

export interface Identity {
  key: PrivateKey;
  id: string;
}

export async function identities(n: number): Promise<Identity[]> {
  const keys = await Promise.all(Array.from({ length: n }, () => generateKeyPair('Ed25519')));
  return keys.map((key) => ({ key, id: peerIdFromPrivateKey(key).toString() }));
}

/** Networks made here are stopped by `stopAll` (call it in afterEach). */
export class Fleet {
  readonly nets: Libp2pNetwork[] = [];
  readonly members = new Set<string>();

  add(identity: Identity, options: Partial<Libp2pNetworkOptions> = {}): Libp2pNetwork {
    const net = createLibp2pNetwork({
      privateKey: identity.key,
      psk: TEST_PSK,
      isMember: (p) => this.members.has(p),
      dialTimeoutMs: 3000,
      maintenanceIntervalMs: 1000,
      ...options,
    });
    this.nets.push(net);
    return net;
  }

  async stopAll(): Promise<void> {
    await Promise.allSettled(this.nets.map((n) => n.stop()));
    this.nets.length = 0;
  }
}

export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Settles `p` into a value or the error, for assertions on rejections with timing. */
export async function outcome<T>(p: Promise<T>): Promise<{ value?: T; error?: Error; ms: number }> {
  const t = performance.now();
  try {
    const value = await p;
    return { value, ms: performance.now() - t };
  } catch (err) {
    return { error: err as Error, ms: performance.now() - t };
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
