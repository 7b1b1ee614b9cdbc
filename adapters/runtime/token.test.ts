/**
 * Invite tokens round-trip, and their decoder refuses anything else by name (fast-check over random and mutated
 * input); the data dir's LOCK admits one process and takes over the LOCK of a process that died; sizes and
 * durations parse as people type them.
 */
import * as fs from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as dagCbor from '@ipld/dag-cbor';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { propertyOptions } from '../../proofs/support/fc.ts';
import { reserveIdOf } from '../../core/state/crypto.ts';
import { acquireLock } from './datadir.ts';
import { DataDirLockedError, InvalidTokenError, UnsupportedTokenVersionError } from './errors.ts';
import { decodeInvite, encodeInvite, type Invite } from './token.ts';
import { parseDuration, parseSize } from './units.ts';

let peers: string[];
let dir: string;
beforeAll(async () => {
  peers = await Promise.all([1, 2, 3].map(async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()));
  dir = await fs.mkdtemp(join(tmpdir(), 'reserve-token-'));
});
afterAll(() => fs.rm(dir, { recursive: true, force: true }));

const secretArb = fc.uint8Array({ minLength: 32, maxLength: 32 });
const inviteArb = () =>
  fc.record({
    secret: secretArb,
    generation: fc.nat({ max: 1000 }),
    ports: fc.array(fc.integer({ min: 1, max: 65535 }), { minLength: 1, maxLength: 16 }),
    host: fc.constantFrom('127.0.0.1', '192.0.2.7', '10.1.2.3'),
    which: fc.nat(),
  });

function inviteOf(x: { secret: Uint8Array; generation: number; ports: number[]; host: string; which: number }): Invite {
  return {
    reserveId: x.generation === 0 ? reserveIdOf(x.secret) : `r-${x.which}`,
    generation: x.generation,
    secret: x.secret,
    bootstrap: x.ports.map((p, i) => `/ip4/${x.host}/tcp/${p}/p2p/${peers[(x.which + i) % peers.length]}`),
  };
}

/** Every failure of the decoder is one of its named errors, never anything else. */
function refusedByName(token: string): boolean {
  try {
    decodeInvite(token);
    return true; // it decoded: the property below checks what
  } catch (err) {
    return err instanceof InvalidTokenError;
  }
}

describe('invite tokens', () => {
  it('round-trip', () => {
    fc.assert(
      fc.property(inviteArb(), (x) => {
        const inv = inviteOf(x);
        const token = encodeInvite(inv);
        expect(token.startsWith('reserve1.')).toBe(true);
        expect(decodeInvite(`  ${token}\n`)).toEqual(inv);
      }),
      propertyOptions('invite tokens round-trip', { numRuns: 100 }),
    );
  });

  it('the decoder refuses random text, truncations, bit flips and foreign values by name', () => {
    const valid = encodeInvite(inviteOf({ secret: new Uint8Array(32).fill(1), generation: 0, ports: [4001, 4002], host: '127.0.0.1', which: 0 }));
    const b64 = valid.slice('reserve1.'.length);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.string({ maxLength: 300 }).map((s) => `reserve1.${s}`),
          fc.nat({ max: valid.length }).map((n) => valid.slice(0, n)),
          fc.tuple(fc.nat({ max: b64.length - 1 }), fc.constantFrom(...'ABCabc019-_')).map(([i, c]) => `reserve1.${b64.slice(0, i)}${c}${b64.slice(i + 1)}`),
          fc.anything().map((v) => {
            try {
              return `reserve1.${Buffer.from(dagCbor.encode(v as never)).toString('base64url')}`;
            } catch {
              return 'reserve1.';
            }
          }),
        ),
        (token) => {
          expect(refusedByName(token)).toBe(true);
          // whatever decodes is a whole, checked invite
          try {
            const inv = decodeInvite(token);
            expect(inv.secret.byteLength).toBe(32);
            expect(inv.bootstrap.length).toBeGreaterThan(0);
          } catch {
            // refused by name (checked above)
          }
        },
      ),
      propertyOptions('invite token decoder refuses junk by name', { numRuns: 300 }),
    );
  });

  it('names the failures a person meets', () => {
    const inv = inviteOf({ secret: new Uint8Array(32).fill(2), generation: 0, ports: [4001], host: '127.0.0.1', which: 1 });
    const token = encodeInvite(inv);
    expect(() => decodeInvite('hello')).toThrow(InvalidTokenError);
    expect(() => decodeInvite(token.replace('reserve1.', 'reserve2.'))).toThrow(UnsupportedTokenVersionError);
    const v2 = `reserve1.${Buffer.from(dagCbor.encode({ v: 2, r: inv.reserveId, g: 0, s: inv.secret, b: inv.bootstrap })).toString('base64url')}`;
    expect(() => decodeInvite(v2)).toThrow(UnsupportedTokenVersionError);
    // a generation-0 secret must belong to the reserve the token names
    expect(() => encodeInvite({ ...inv, reserveId: 'another' })).toThrow(/does not belong to the reserve/);
    expect(() => encodeInvite({ ...inv, bootstrap: ['/ip4/127.0.0.1/tcp/4001'] })).toThrow(/p2p/);
    expect(() => decodeInvite('x'.repeat(20_000))).toThrow(/at most/);
  });
});

describe('the data dir LOCK', () => {
  it('admits one holder, names it to the next, and takes over a LOCK whose process died', async () => {
    const lock = await acquireLock(dir);
    const second = await acquireLock(dir).catch((e: unknown) => e as Error);
    expect(second).toBeInstanceOf(DataDirLockedError);
    expect((second as DataDirLockedError).pid).toBe(process.pid);
    expect((second as Error).message).toContain(`in use by process ${process.pid}`);
    await lock.release();
    // a LOCK left by a process that has exited
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    await fs.writeFile(join(dir, 'LOCK'), `${dead.stdout}\n`);
    const taken = await acquireLock(dir);
    expect((await fs.readFile(join(dir, 'LOCK'), 'utf8')).trim()).toBe(String(process.pid));
    await taken.release();
    await expect(fs.access(join(dir, 'LOCK'))).rejects.toThrow();
  });
});

describe('sizes and durations', () => {
  it('parse units and refuse the rest by name', () => {
    expect(parseSize('500G')).toBe(500e9);
    expect(parseSize('2T')).toBe(2e12);
    expect(parseSize('1.5TiB')).toBe(1.5 * 2 ** 40);
    expect(parseSize('1048576')).toBe(1048576);
    expect(() => parseSize('lots')).toThrow(/not a size/);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(() => parseDuration('soon')).toThrow(/not a duration/);
  });
});
