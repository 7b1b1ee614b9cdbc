/**
 * Invite tokens: everything a factory-new Box needs to join a reserve, in one line a person can paste.
 *
 *   reserve1.<base64url of dag-cbor { v: 1, r: reserveId, g: secret generation, s: secret (32 bytes),
 *                                     b: [bootstrap multiaddrs, each ending in /p2p/<peer id>] }>
 *
 * The token carries the reserve's newest secret: whoever holds it can join. It is a secret and must be handled like
 * a password (the CLI says so where it prints one). Decoding checks every field and its size before use and throws
 * InvalidTokenError (UnsupportedTokenVersionError for another version) on anything else.
 */
import * as dagCbor from '@ipld/dag-cbor';
import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import { SECRET_BYTES, reserveIdOf } from '../../core/state/crypto.ts';
import { InvalidTokenError, UnsupportedTokenVersionError } from './errors.ts';

export const TOKEN_PREFIX = 'reserve1.';
export const TOKEN_VERSION = 1;
/** Longest token accepted (16 addresses of 512 characters, base64url-encoded, fit). */
export const MAX_TOKEN_CHARS = 16 * 1024;
export const MAX_BOOTSTRAP = 16;
const MAX_ADDR_CHARS = 512;

export interface Invite {
  reserveId: string;
  generation: number;
  secret: Uint8Array;
  /** Multiaddrs of members, each with /p2p/<peer id>. */
  bootstrap: string[];
}

/** The peer id at the end of a multiaddr (`/p2p/<id>`), or undefined. */
export function peerIdOfAddr(addr: string): string | undefined {
  try {
    return multiaddr(addr)
      .getComponents()
      .findLast((c) => c.name === 'p2p')?.value;
  } catch {
    return undefined;
  }
}

function checkInvite(inv: Invite): void {
  if (typeof inv.reserveId !== 'string' || inv.reserveId.length === 0 || inv.reserveId.length > 128) throw new InvalidTokenError('invite token: bad reserve id');
  if (!Number.isSafeInteger(inv.generation) || inv.generation < 0) throw new InvalidTokenError('invite token: bad secret generation');
  if (!(inv.secret instanceof Uint8Array) || inv.secret.byteLength !== SECRET_BYTES) throw new InvalidTokenError(`invite token: the secret must be ${SECRET_BYTES} bytes`);
  if (inv.generation === 0 && reserveIdOf(inv.secret) !== inv.reserveId) throw new InvalidTokenError('invite token: the secret does not belong to the reserve it names (damaged token?)');
  if (!Array.isArray(inv.bootstrap) || inv.bootstrap.length === 0 || inv.bootstrap.length > MAX_BOOTSTRAP) {
    throw new InvalidTokenError(`invite token: expected 1 to ${MAX_BOOTSTRAP} bootstrap addresses`);
  }
  for (const a of inv.bootstrap) {
    if (typeof a !== 'string' || a.length === 0 || a.length > MAX_ADDR_CHARS) throw new InvalidTokenError('invite token: bad bootstrap address');
    const id = peerIdOfAddr(a);
    if (id === undefined) throw new InvalidTokenError(`invite token: bootstrap address ${JSON.stringify(a.slice(0, 80))} is not a multiaddr ending in /p2p/<peer id>`);
    try {
      peerIdFromString(id);
    } catch {
      throw new InvalidTokenError(`invite token: ${JSON.stringify(id.slice(0, 80))} is not a peer id`);
    }
  }
}

export function encodeInvite(inv: Invite): string {
  checkInvite(inv);
  const bytes = dagCbor.encode({ v: TOKEN_VERSION, r: inv.reserveId, g: inv.generation, s: inv.secret, b: inv.bootstrap });
  return TOKEN_PREFIX + Buffer.from(bytes).toString('base64url');
}

/** Decode a token (surrounding whitespace is ignored). Throws InvalidTokenError or UnsupportedTokenVersionError. */
export function decodeInvite(token: string): Invite {
  if (typeof token !== 'string') throw new InvalidTokenError('an invite token is text');
  const t = token.trim();
  if (t.length > MAX_TOKEN_CHARS) throw new InvalidTokenError(`an invite token is at most ${MAX_TOKEN_CHARS} characters; this one has ${t.length}`);
  const m = /^reserve(\d+)\.([A-Za-z0-9_-]+)$/.exec(t);
  if (!m) throw new InvalidTokenError('not an invite token: it starts with "reserve1." followed by letters, digits, "-" and "_" (copy it whole, from `reserve invite`)');
  if (m[1] !== String(TOKEN_VERSION)) throw new UnsupportedTokenVersionError(`invite token of format ${m[1]}: this build reads format ${TOKEN_VERSION} (update Reserve, or ask for a new token)`);
  let value: unknown;
  try {
    value = dagCbor.decode(new Uint8Array(Buffer.from(m[2], 'base64url')));
  } catch (cause) {
    throw new InvalidTokenError('invite token: damaged (it does not decode); copy it again, whole', { cause });
  }
  const o = value as Record<string, unknown> | null;
  if (o === null || typeof o !== 'object' || Array.isArray(o) || o instanceof Uint8Array) throw new InvalidTokenError('invite token: damaged (not a map)');
  if (o.v !== TOKEN_VERSION) throw new UnsupportedTokenVersionError(`invite token of version ${String(o.v).slice(0, 20)}: this build reads version ${TOKEN_VERSION}`);
  const inv = { reserveId: o.r, generation: o.g, secret: o.s, bootstrap: o.b } as Invite;
  checkInvite(inv);
  return { reserveId: inv.reserveId, generation: inv.generation, secret: inv.secret, bootstrap: [...inv.bootstrap] };
}
