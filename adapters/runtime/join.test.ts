/**
 * Joining over the real network (Box runtimes on 127.0.0.1): a peer holding the secret but not a member gets only
 * JOIN; a join whose proof does not match the reserve's current secret generation is refused and changes nothing;
 * a valid join is admitted and the new Box syncs; a decommissioned Box (secret rotated) can no longer connect.
 */
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { JOIN_PROTOCOL, JoinRequiredError, SYNC_PROTOCOL, encodeJoinRequest } from '../../core/keeper/protocol.ts';
import { RemoteError } from '../../core/net.ts';
import { activeMembers } from '../../core/state/reducer.ts';
import { createEvent, joinProofInput } from '../../core/state/events.ts';
import { joinKeySigner, unsealerFromSeed } from '../../core/state/crypto.ts';
import { signerFromPrivateKey } from '../crdt/keys.ts';
import { AccessDeniedError } from '../net/errors.ts';
import { createLibp2pNetwork, type Libp2pNetwork } from '../net/libp2p-network.ts';
import { pskFromSecret } from '../net/psk.ts';
import { WorkerChunking } from '../workers/chunk-pool.ts';
import { readSecrets } from './datadir.ts';
import { createInvite, initReserve, joinReserve } from './reserve.ts';
import { createBox, type BoxRuntime } from './runtime.ts';
import { decodeInvite } from './token.ts';

const LISTEN = ['/ip4/127.0.0.1/tcp/0'];
const TIMING = { tickMs: 1000, syncMs: 2000, requestTimeoutMs: 5000 };
let base: string;
const chunking = new WorkerChunking({ threads: 1 });
const stoppers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  base = await fs.mkdtemp(join(tmpdir(), 'reserve-join-'));
});

afterAll(async () => {
  await Promise.allSettled(stoppers.map((s) => s()));
  await chunking.close();
  await fs.rm(base, { recursive: true, force: true });
});

async function until(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('joining a reserve over libp2p', () => {
  let a: BoxRuntime;
  let b: BoxRuntime;

  it('a bad join proof is refused and changes nothing; a valid join is admitted and the new Box syncs', async () => {
    const founded = await initReserve(join(base, 'a'), { listen: LISTEN, capacity: 1e9, rf: 3, chunking });
    a = await createBox({ dataDir: join(base, 'a'), timing: TIMING, chunking, health: false });
    stoppers.push(() => a.stop());
    // rotate once, so joins must prove generation 1 (and the PSK follows it)
    a.box.ledger.rotateSecret('test');
    await a.refresh();
    const invite = decodeInvite((await createInvite(a.dataDir)).token);
    expect(invite.generation).toBe(1);
    expect((await readSecrets(a.dataDir)).has(1)).toBe(true);

    // an applicant holding the current secret, not a member
    const key = await generateKeyPair('Ed25519');
    const applicant: Libp2pNetwork = createLibp2pNetwork({ privateKey: key, psk: pskFromSecret(invite.secret), isMember: () => true, dialTimeoutMs: 3000 });
    stoppers.push(() => applicant.stop());
    await applicant.start();
    const dial = await applicant.dial(invite.bootstrap[0]).catch((e: unknown) => e as Error);
    expect(dial).toBeInstanceOf(AccessDeniedError);
    expect((dial as Error).message).toContain('not a member of this reserve; join with an invite token');
    const sync = await applicant.request(a.id, SYNC_PROTOCOL, new Uint8Array([1])).catch((e: unknown) => e as Error);
    expect(sync).toBeInstanceOf(JoinRequiredError);

    // its join event is well formed and signed, but made with a join key that is not generation 1's
    const signer = signerFromPrivateKey(key);
    const wrong = joinKeySigner(new Uint8Array(32).fill(9), 1);
    const xpub = unsealerFromSeed(new Uint8Array(32).fill(3)).publicKey;
    const forged = createEvent(signer, { reserveId: founded.reserveId, verified: new Set() }, { seq: 1, at: { wall: Date.now(), logical: 0 } }, 'box-joined', {
      generation: 1,
      joinKey: wrong.publicKey,
      proof: wrong.sign(joinProofInput(founded.reserveId, signer.id, 1, xpub)),
      xpub,
      capacity: 1e9,
      addresses: [],
    });
    const before = { saved: a.box.ledger.stats().documentEntries, members: a.box.state().members.size };
    const refused = await applicant.request(a.id, JOIN_PROTOCOL, encodeJoinRequest({ reserveId: founded.reserveId, events: [forged.bytes] })).catch((e: unknown) => e as Error);
    expect((refused as RemoteError).remoteName).toBe('JoinRefusedError');
    expect((refused as Error).message).toMatch(/join key is not the one generation 1 published/);
    expect({ saved: a.box.ledger.stats().documentEntries, members: a.box.state().members.size }).toEqual(before);
    // junk is refused by name too, and the applicant is disconnected after its failed join
    const junk = await applicant.request(a.id, JOIN_PROTOCOL, new Uint8Array([0xa1, 1, 2])).catch((e: unknown) => e as Error);
    expect(['MalformedMessageError', 'UnsupportedVersionError']).toContain((junk as RemoteError).remoteName);
    await until('the applicant to be dropped', () => applicant.libp2p.getConnections().length === 0, 5000);
    expect(a.box.state().members.size).toBe(before.members);

    // a valid join (an invite of generation 1) is admitted, and the new Box syncs the whole state
    const t = performance.now();
    const joined = await joinReserve(join(base, 'b'), (await createInvite(a.dataDir)).token, { listen: LISTEN, capacity: 1e9, chunking, timing: TIMING });
    const joinMs = performance.now() - t;
    expect(joined.members).toBe(2);
    b = await createBox({ dataDir: join(base, 'b'), timing: TIMING, chunking, health: false });
    stoppers.push(() => b.stop());
    expect(b.box.state().config.replication.target).toBe(3);
    expect(b.box.state().generation).toBe(1);
    await until('both Boxes to be members of both', () => activeMembers(a.box.state()).length === 2 && activeMembers(b.box.state()).length === 2);
    await until('a connection between them', () => a.network.peers().includes(b.id) && b.network.peers().includes(a.id));
    console.log(`join over the network: ${joinMs.toFixed(0)} ms`);
  });

  it('a decommissioned Box can no longer connect (the secret rotates away from it)', async () => {
    a.box.ledger.remove(b.id, 'decommissioned', 'test');
    await a.refresh();
    expect(a.box.state().generation).toBe(2);
    await until('a to drop its connection to b', () => a.network.libp2p.getConnections().every((c) => c.remotePeer.toString() !== b.id), 5000);
    const t = performance.now();
    const back = await b.network.dial(a.addresses()[0]).catch((e: unknown) => e as Error);
    expect(back).toBeInstanceOf(AccessDeniedError);
    expect((back as AccessDeniedError).reason).toBe('wrong-secret');
    expect(performance.now() - t).toBeLessThan(3000);
  });
});
