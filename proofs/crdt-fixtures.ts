/**
 * Shared fixtures for the state and CRDT proofs: a seeded little world (reserve secret, Box keys, a manual clock),
 * builders that sign well-formed events of every kind with explicit sequence numbers and times, and a structural
 * comparison of states that prints what differs.
 */
import fc from 'fast-check';
import { SimRandom } from '../simulations/sim/rng.ts';
import { cidOf, RAW_CODE } from '../core/blocks/cid.ts';
import type { Clock } from '../core/ports.ts';
import { createReserveSecret, joinKeySigner, seal, signerFromSeed, unsealerFromSeed } from '../core/state/crypto.ts';
import type { Signer, Unsealer } from '../core/state/crypto.ts';
import { createEvent, joinProofInput, sealContext } from '../core/state/events.ts';
import type { BodyByKind, StateEvent, StateEventKind, StateEventOf } from '../core/state/events.ts';
import type { Hlc } from '../core/state/hlc.ts';
import type { LogSeverity } from '../core/state/summary.ts';

export const T0 = 1_735_689_600_000;

/** A clock the test moves by hand. */
export class ManualClock implements Clock {
  constructor(public time = T0) {}
  now(): number {
    return this.time;
  }
  advance(ms: number): void {
    this.time += ms;
  }
  setTimer(): () => void {
    return () => undefined;
  }
}

export interface TestBox {
  index: number;
  signer: Signer;
  unsealer: Unsealer;
  /** Next sequence number to use. */
  seq: number;
  /** Last hybrid time used. */
  at: Hlc;
}

export interface World {
  seed: number;
  random: SimRandom;
  reserveId: string;
  secret: Uint8Array;
  /** generation -> secret */
  secrets: Map<number, Uint8Array>;
  boxes: TestBox[];
}

const signerCache = new Map<string, Signer>();
const unsealerCache = new Map<string, Unsealer>();

/** A deterministic world: the same seed gives the same keys, secret and reserve id. */
export function makeWorld(seed: number, boxes: number): World {
  const random = new SimRandom(seed);
  const { secret, reserveId } = createReserveSecret(random.fork('secret'));
  const list: TestBox[] = [];
  for (let i = 0; i < boxes; i++) {
    const k = `${seed}/${i}`;
    let signer = signerCache.get(k);
    if (signer === undefined) signerCache.set(k, (signer = signerFromSeed(random.fork(`box/${i}/ed25519`).bytes(32))));
    let unsealer = unsealerCache.get(k);
    if (unsealer === undefined) unsealerCache.set(k, (unsealer = unsealerFromSeed(random.fork(`box/${i}/x25519`).bytes(32))));
    list.push({ index: i, signer, unsealer, seq: 1, at: { wall: T0, logical: 0 } });
  }
  return { seed, random, reserveId, secret, secrets: new Map([[0, secret]]), boxes: list };
}

/** Sign an event of `box` with its next sequence number, `dt` ms after its previous one. */
export function sign<K extends StateEventKind>(world: World, box: TestBox, kind: K, body: BodyByKind[K], dt = 1): StateEventOf<K> {
  const at: Hlc = dt > 0 ? { wall: box.at.wall + dt, logical: 0 } : { wall: box.at.wall, logical: box.at.logical + 1 };
  const ev = createEvent(box.signer, { reserveId: world.reserveId }, { seq: box.seq, at }, kind, body);
  box.seq++;
  box.at = at;
  return ev;
}

export function joinBody(world: World, box: TestBox, generation = 0, extra: Partial<BodyByKind['box-joined']> = {}): BodyByKind['box-joined'] {
  const secret = world.secrets.get(generation) ?? world.secret;
  const jk = joinKeySigner(secret, generation);
  return {
    generation,
    joinKey: jk.publicKey,
    proof: jk.sign(joinProofInput(world.reserveId, box.signer.id, generation, box.unsealer.publicKey)),
    xpub: box.unsealer.publicKey,
    capacity: 1_000_000 * (box.index + 1),
    addresses: [`/ip4/10.0.0.${box.index + 1}/tcp/4001`],
    ...extra,
  };
}

/** A rotation by `by` to generation `generation`, sealed to `to`; records the new secret in the world. */
export function rotationBody(world: World, generation: number, to: readonly TestBox[]): BodyByKind['secret-rotated'] {
  const secret = world.random.fork(`gen/${generation}`).bytes(32);
  world.secrets.set(generation, secret);
  const sealed = to
    .map((b) => [b.signer.id, seal(b.unsealer.publicKey, secret, sealContext(world.reserveId, generation, b.signer.id), world.random.fork(`seal/${generation}/${b.index}`))] as [string, Uint8Array])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { generation, joinKey: joinKeySigner(secret, generation).publicKey, sealed };
}

export function snapshotBody(n: number, parent: number | null = null): BodyByKind['snapshot-published'] {
  return {
    root: cidOf(RAW_CODE, new TextEncoder().encode(`snapshot ${n}`)),
    parent: parent === null ? null : cidOf(RAW_CODE, new TextEncoder().encode(`snapshot ${parent}`)),
    time: T0 + n,
    size: 1000 * n,
    files: n,
    chunks: 2 * n,
  };
}

export function logBody(box: TestBox, n: number, severity: LogSeverity = 'normal', kind = 'keeper-health'): BodyByKind['reserve-event'] {
  return { event: { id: `${box.signer.id}/${n}`, source: box.signer.id, seq: n, time: T0 + n * 1000, severity, kind, payload: { n } } };
}

export function holderBody(n: number): BodyByKind['holder-report'] {
  return { count: n, bytes: n * 1024, root: new Uint8Array(32).fill(n & 0xff) };
}

/** Join every Box of the world (generation 0). Returns the join events. */
export function joinAll(world: World): StateEvent[] {
  return world.boxes.map((b) => sign(world, b, 'box-joined', joinBody(world, b)) as StateEvent);
}

/** A deterministic shuffle (Fisher-Yates with the given random). */
export function shuffle<T>(items: readonly T[], random: { u32(): number }): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = random.u32() % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** A JSON-ish rendering of a state (maps, bytes) for comparisons and readable diffs. */
export function plain(value: unknown): unknown {
  if (value instanceof Map) return [...value.entries()].map(([k, v]) => [plain(k), plain(v)]);
  if (value instanceof Uint8Array) return `bytes:${Buffer.from(value).toString('hex')}`;
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    if (typeof (value as { toString?: unknown }).toString === 'function' && (value as { '/'?: unknown })['/'] !== undefined) return String(value);
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) out[k] = plain((value as Record<string, unknown>)[k]);
    return out;
  }
  return value;
}

/** One step of a random scenario (see scenarioEvents). */
export interface ScenarioOp {
  box: number;
  kind: number;
  n: number;
  dt: number;
}

/** fast-check arbitrary for scenario steps over `boxes` Boxes. */
export function scenarioOpArb(boxes: number): fc.Arbitrary<ScenarioOp> {
  return fc.record({
    box: fc.integer({ min: 0, max: boxes - 1 }),
    kind: fc.integer({ min: 0, max: 11 }),
    n: fc.integer({ min: 0, max: 7 }),
    dt: fc.integer({ min: 0, max: 3 }),
  });
}

const CONFIG_CHOICES: Array<[string, (n: number) => unknown]> = [
  ['replication.target', (n) => 1 + (n % 5)],
  ['replication.minimum', (n) => 1 + ((n + 2) % 5)],
  ['limits.maxKeepers', (n) => 3 + n],
  ['regions', (n) => (n % 3 === 0 ? null : ['north', 'south'].slice(0, 1 + (n % 2)))],
  ['events.warningWindowOverrides.disk-capacity', (n) => (n % 2 === 0 ? null : 1000 * n)],
];

/**
 * Signed events for a random scenario: every Box of the world joins first (the last one's join is withheld when
 * `withholdLastJoin`, so its events stay "not a member"), then each op makes one event of some kind by some Box:
 * config changes, snapshots, holder reports, log records, address updates, leaving, declaring another Box dead,
 * decommissioning, rejoining (with the newest or an old secret), rotating the secret (sometimes to a generation
 * already started, a deliberate conflict). Boxes' clocks advance independently, so keys interleave.
 */
export function scenarioEvents(world: World, ops: readonly ScenarioOp[], options: { withholdLastJoin?: boolean } = {}): StateEvent[] {
  const out: StateEvent[] = [];
  const boxes = world.boxes;
  const joins = joinAll(world);
  for (let i = 0; i < joins.length; i++) if (!(options.withholdLastJoin === true && i === joins.length - 1)) out.push(joins[i]);
  let maxGen = 0;
  let snapshot = 0;
  let logN = 0;
  for (const op of ops) {
    const box = boxes[op.box];
    const other = boxes[(op.box + 1 + op.n) % boxes.length];
    const dt = op.dt;
    switch (op.kind) {
      case 0:
      case 1: {
        const [path, value] = CONFIG_CHOICES[op.n % CONFIG_CHOICES.length];
        out.push(sign(world, box, 'config-changed', { set: [[path, value(op.n + op.kind)]] }, dt));
        break;
      }
      case 2:
        snapshot++;
        out.push(sign(world, box, 'snapshot-published', snapshotBody(snapshot, op.n % 2 === 0 && snapshot > 1 ? snapshot - 1 : null), dt));
        break;
      case 3:
        out.push(sign(world, box, 'holder-report', holderBody(op.n), dt));
        break;
      case 4:
      case 5: {
        logN++;
        const severity: LogSeverity = op.n % 4 === 0 ? 'warning' : op.n % 7 === 0 ? 'failure' : 'normal';
        // Occasionally the same envelope again (at-least-once delivery), which must count once.
        const id = op.n === 5 && logN > 1 ? logN - 1 : logN;
        out.push(sign(world, box, 'reserve-event', logBody(box, id, severity, op.n % 3 === 0 ? 'resolved' : 'keeper-health'), dt));
        break;
      }
      case 6:
        out.push(sign(world, box, 'box-updated', { capacity: 1000 * (op.n + 1), addresses: [`/ip4/10.1.0.${op.n}/tcp/1`], ...(op.n % 2 === 0 ? { region: 'north' } : {}) }, dt));
        break;
      case 7:
        if (op.n < 3) out.push(sign(world, box, 'box-left', {}, dt));
        else out.push(sign(world, box, 'holder-report', holderBody(op.n + 1), dt));
        break;
      case 8:
        out.push(sign(world, box, op.n % 3 === 0 ? 'box-decommissioned' : 'box-declared-dead', { box: other.signer.id }, dt));
        break;
      case 9: {
        const gen = op.n % 2 === 0 ? maxGen : 0;
        out.push(sign(world, box, 'box-joined', joinBody(world, box, gen, { capacity: 500 + op.n }), dt));
        break;
      }
      case 10: {
        const gen = op.n % 3 === 0 && maxGen > 0 ? maxGen : maxGen + 1;
        const to = boxes.filter((b) => b !== other || op.n % 2 === 0);
        const body = gen === maxGen ? { ...rotationBody(world, gen + 100, to), generation: gen } : rotationBody(world, gen, to);
        maxGen = Math.max(maxGen, gen);
        out.push(sign(world, box, 'secret-rotated', body, dt));
        break;
      }
      default:
        out.push(sign(world, box, 'snapshot-published', snapshotBody(1000 + op.n), dt));
        break;
    }
  }
  return out;
}
