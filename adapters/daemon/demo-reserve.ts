/**
 * A realistic reserve for the admin page's test and screenshot: four Boxes in four places (one of them cut off
 * for hours), snapshots at every protection level, and the events such a week produces (a Box joining, a disk
 * filling up, a network disruption that ended and one that did not, a corrupt block repaired, a snapshot below
 * its minimum). Times are relative to `now`; ids and CIDs are well-formed (libp2p-style Box ids, CIDv1 roots), and
 * every event passes the event schema.
 */
import { createHash } from 'node:crypto';
import { DAG_CBOR_CODE, RAW_CODE, cidOf } from '../../core/blocks/cid.ts';
import type { EventEnvelope } from '../../core/events/types.ts';
import type { Protection } from '../../core/keeper/keeper.ts';
import type { BoxView, ReserveStatus, SnapshotView } from './api.ts';
import { EventMaker } from './memory-daemon.ts';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const GiB = 1024 ** 3;
const TiB = 1024 ** 4;
const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

/** A libp2p-looking Ed25519 peer id (12D3KooW + 44 base58 characters), derived from `name`. */
export function demoBoxId(name: string): string {
  const h = createHash('sha256').update(`box:${name}`).digest();
  let s = '12D3KooW';
  for (let i = 0; s.length < 52; i++) s += BASE58[h[i % h.length] % 58];
  return s;
}

export function demoCid(label: string, codec = DAG_CBOR_CODE): string {
  return cidOf(codec, new TextEncoder().encode(label)).toString();
}

export interface DemoReserve {
  status: Omit<ReserveStatus, 'open' | 'time'>;
  events: EventEnvelope[];
  boxes: Record<'home' | 'parents' | 'office' | 'cabin', string>;
  /** Makes further events with the right per-source seqs (for a live stream). */
  maker: EventMaker;
}

function protection(root: string, chunks: number, p: Partial<Protection>): Protection {
  const base = { root, chunks, atTarget: chunks, belowTarget: 0, belowMinimum: 0, lost: 0, unknown: 0, target: 3, minimum: 2 };
  const out = { ...base, ...p };
  return { ...out, protected: out.belowMinimum === 0 && out.lost === 0 && out.unknown === 0 };
}

export function demoReserve(now: number): DemoReserve {
  const boxes = { home: demoBoxId('home'), parents: demoBoxId('parents'), office: demoBoxId('office'), cabin: demoBoxId('cabin') };
  const addr = (ip: string, id: string) => [`/ip4/${ip}/tcp/4001/p2p/${id}`];
  const views: BoxView[] = [
    {
      id: boxes.home, name: 'Living room', status: 'active', self: true, reachable: true, capacity: 4 * TiB, used: 1.62 * TiB, region: 'home',
      addresses: addr('192.168.1.20', boxes.home), lastSeen: now,
      health: { memoryUsed: 0.46, cpuBusy: 0.12, diskIoBytesPerSecond: 2.4e6, diskFreeBytes: 2.05 * TiB, diskTotalBytes: 3.64 * TiB, sampledAt: now - 40_000 },
    },
    {
      id: boxes.parents, name: "Parents' house", status: 'active', self: false, reachable: true, capacity: 2 * TiB, used: 1.78 * TiB, region: 'north',
      addresses: addr('203.0.113.17', boxes.parents), lastSeen: now - 25_000,
      health: { memoryUsed: 0.63, cpuBusy: 0.07, diskIoBytesPerSecond: 0.4e6, diskFreeBytes: 96 * GiB, diskTotalBytes: 1.82 * TiB, sampledAt: now - 70_000 },
    },
    {
      id: boxes.office, name: 'Office', status: 'active', self: false, reachable: true, capacity: 3 * TiB, used: 1.05 * TiB, region: 'city',
      addresses: addr('198.51.100.4', boxes.office), lastSeen: now - 8_000,
      health: { memoryUsed: 0.93, cpuBusy: 0.31, diskIoBytesPerSecond: 18.2e6, diskFreeBytes: 1.9 * TiB, diskTotalBytes: 2.73 * TiB, sampledAt: now - 55_000 },
    },
    {
      id: boxes.cabin, name: 'Lake cabin', status: 'active', self: false, reachable: false, capacity: 1 * TiB, used: 0.41 * TiB, region: 'lake',
      addresses: addr('192.0.2.88', boxes.cabin), lastSeen: now - 5 * HOUR - 12 * MIN,
      health: { memoryUsed: 0.38, cpuBusy: 0.04, diskFreeBytes: 0.52 * TiB, diskTotalBytes: 0.91 * TiB, sampledAt: now - 5 * HOUR - 13 * MIN },
    },
  ];

  const snap = (label: string, author: string, ago: number, size: number, files: number, p: Partial<Protection>): SnapshotView => {
    const root = demoCid(`snapshot:${label}`);
    const chunks = Math.max(1, Math.round(size / (1024 * 1024)));
    return { root, author, time: now - ago, size, files, chunks, protection: protection(root, chunks, p) };
  };
  const s = (n: number) => Math.round(n);
  const snapshots: SnapshotView[] = [
    snap('photos-w1', boxes.home, 9 * DAY + 3 * HOUR, s(611.4 * GiB), 182_340, {}),
    snap('documents-w1', boxes.office, 8 * DAY + 5 * HOUR, s(38.2 * GiB), 64_118, {}),
    snap('photos-w2', boxes.home, 2 * DAY + 2 * HOUR, s(618.9 * GiB), 184_002, {}),
    snap('phone-backup', boxes.parents, 27 * HOUR, s(54.7 * GiB), 12_407, { atTarget: s(54.7 * 1024) - 9_310, belowTarget: 9_310 }),
    snap('photos-w3', boxes.home, 3 * HOUR + 20 * MIN, s(621.3 * GiB), 184_655, { atTarget: s(621.3 * 1024) - 26_872, belowTarget: 22_968, belowMinimum: 3_904 }),
    snap('cabin-cameras', boxes.cabin, 6 * HOUR, s(12.6 * GiB), 2_980, { atTarget: 0, belowMinimum: s(12.6 * 1024) - 1_214 - 9_000, lost: 1_214, unknown: 9_000 }),
  ];
  const bad = demoCid('corrupt-chunk', RAW_CODE);
  const m = new EventMaker();
  const events: EventEnvelope[] = [];
  const push = (e: EventEnvelope) => {
    events.push(e);
    return e;
  };
  push(m.make(boxes.cabin, now - 6 * DAY, { kind: 'keeper-added', severity: 'normal', payload: { keeper: boxes.cabin, name: 'Lake cabin', by: boxes.home } }));
  const io = push(m.make(boxes.office, now - 4 * DAY, { kind: 'keeper-health', severity: 'warning', payload: { metric: 'disk-io', keeper: boxes.office, device: 'sda', readBytesPerSec: 182e6, writeBytesPerSec: 41e6, busyFraction: 0.98, threshold: 0.95 } }));
  push(m.make(boxes.office, now - 4 * DAY + 40 * MIN, { kind: 'resolved', severity: 'normal', payload: { of: 'keeper-health', condition: `keeper-health/disk-io/${boxes.office}`, resolves: io.id, since: io.time } }));
  const corrupt = push(m.make(boxes.home, now - 3 * DAY, { kind: 'keeper-health', severity: 'warning', payload: { metric: 'disk-corruption', keeper: boxes.home, blocks: [bad], totalBlocks: 1 } }));
  push(m.make(boxes.home, now - 3 * DAY + 2 * MIN, { kind: 'resolved', severity: 'normal', payload: { of: 'keeper-health', condition: `keeper-health/disk-corruption/${bad}`, resolves: corrupt.id, since: corrupt.time, note: 're-fetched a healthy copy' } }));
  const flap = push(m.make(boxes.home, now - 2 * DAY, { kind: 'network-disruption', severity: 'warning', payload: { peers: [boxes.parents], since: now - 2 * DAY - 5 * MIN } }));
  push(m.make(boxes.home, now - 2 * DAY + 50 * MIN, { kind: 'resolved', severity: 'normal', payload: { of: 'network-disruption', condition: `network-disruption/${boxes.parents}`, resolves: flap.id, since: flap.time, note: 'reachable again' } }));
  push(m.make(boxes.parents, now - 20 * HOUR, {
    kind: 'limitation-imminent', severity: 'warning',
    payload: { limitation: 'disk-capacity', subject: boxes.parents, value: 1.72 * TiB, limit: 1.82 * TiB, eta: now + 4 * DAY + 6 * HOUR, method: 'theil-sen', slope: 2.3e-4, windowMs: 7 * DAY },
  }));
  push(m.make(boxes.office, now - 9 * HOUR, { kind: 'keeper-health', severity: 'warning', payload: { metric: 'memory', keeper: boxes.office, usedBytes: 7.44 * GiB, totalBytes: 8 * GiB, usedFraction: 0.93, threshold: 0.9 } }));
  push(m.make(boxes.home, now - 5 * HOUR, { kind: 'network-disruption', severity: 'warning', payload: { peers: [boxes.cabin], since: now - 5 * HOUR - 12 * MIN } }));
  push(m.make(boxes.home, now - 3 * HOUR, {
    kind: 'unacceptable-replication', severity: 'failure',
    payload: { snapshots: [{ snapshot: snapshots[5].root, belowMinimum: snapshots[5].chunks, belowTarget: snapshots[5].chunks, lost: 1_214 }] },
  }));
  return { status: { reserveId: demoCid('reserve:family'), self: boxes.home, replication: { target: 3, minimum: 2 }, boxes: views, snapshots }, events, boxes, maker: m };
}
