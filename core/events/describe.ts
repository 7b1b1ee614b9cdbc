/**
 * One sentence per event, for people: what `reserve events`, the daemon's log and the flood demo print. Box ids
 * are shortened to their last 8 characters unless `name` knows a better name; times are relative to the event's
 * own time (this module has no clock).
 */
import { bytesText } from '../forecast/limits.ts';
import type { BoxId } from '../net.ts';
import type { EventEnvelope, PayloadByKind } from './types.ts';

export interface DescribeOptions {
  /** A person's name for a Box ("Parents' house"), when known. */
  name?: (box: BoxId) => string | undefined;
}

const shortId = (id: string) => (id.length > 12 ? `…${id.slice(-8)}` : id);
/** Snapshot and block ids as `reserve snapshots` shows them: the last 12 characters. */
const shortCid = (cid: string) => (cid.length > 12 ? `…${cid.slice(-12)}` : cid);

const bytes = bytesText;

/** 45 s, 12 min, 3.5 h, 2 days. */
export function humanDuration(ms: number): string {
  const s = Math.max(0, ms) / 1000;
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.round((s / 3600) * 10) / 10} h`;
  return `${Math.round(s / 86400)} days`;
}

const pct = (f: number) => `${Math.round(f * 100)}%`;

const LIMIT_NAMES: Record<string, string> = {
  'file-size': 'file size',
  'files-per-directory': 'files in one directory',
  'snapshot-size': 'snapshot size',
  'keepers': 'number of Boxes',
  'disk-capacity': 'disk capacity',
};

function limitValue(limitation: string, v: number): string {
  return limitation === 'files-per-directory' || limitation === 'keepers' ? String(v) : bytes(v);
}

export function describeEvent(e: EventEnvelope, options: DescribeOptions = {}): string {
  const who = (id: BoxId) => options.name?.(id) ?? shortId(id);
  const subject = (s: string) => (s === '' ? 'the reserve' : s.startsWith('12D3') || s.length > 40 ? who(s) : s);
  switch (e.kind) {
    case 'limitation-imminent': {
      const p = e.payload as PayloadByKind['limitation-imminent'];
      return `${LIMIT_NAMES[p.limitation] ?? p.limitation} of ${subject(p.subject)} is ${limitValue(p.limitation, p.value)} of ${limitValue(p.limitation, p.limit)}; at its current growth it reaches the limit in ${humanDuration(p.eta - e.time)}`;
    }
    case 'limitation-encountered': {
      const p = e.payload as PayloadByKind['limitation-encountered'];
      return `${LIMIT_NAMES[p.limitation] ?? p.limitation} of ${subject(p.subject)} is ${limitValue(p.limitation, p.value)}, over the limit of ${limitValue(p.limitation, p.limit)}`;
    }
    case 'keeper-health': {
      const p = e.payload as PayloadByKind['keeper-health'];
      switch (p.metric) {
        case 'memory':
          return `${who(p.keeper)} uses ${pct(p.usedFraction)} of its memory (${bytes(p.usedBytes)} of ${bytes(p.totalBytes)})`;
        case 'cpu':
          return `${who(p.keeper)} is ${pct(p.busyFraction)} busy`;
        case 'disk-io':
          return `disk ${p.device} of ${who(p.keeper)} is ${pct(p.busyFraction)} busy (read ${bytes(p.readBytesPerSec)}/s, write ${bytes(p.writeBytesPerSec)}/s)`;
        case 'disk-corruption':
          return `${p.totalBlocks} corrupt block${p.totalBlocks === 1 ? '' : 's'} found on ${who(p.keeper)}'s disk, quarantined and being re-fetched`;
      }
      return 'keeper health';
    }
    case 'unresolved-conflict': {
      const p = e.payload as PayloadByKind['unresolved-conflict'];
      const needed = p.snapshots.length === 0 ? 'no snapshot needs it' : `needed by ${p.snapshots.length} snapshot${p.snapshots.length === 1 ? '' : 's'} (${p.snapshots.slice(0, 3).map(shortCid).join(', ')}${p.snapshots.length > 3 ? ', …' : ''})`;
      return `block ${shortCid(p.block)} cannot be repaired: ${p.reason}; ${needed}`;
    }
    case 'unacceptable-replication': {
      const p = e.payload as PayloadByKind['unacceptable-replication'];
      return p.snapshots
        .map((s) => {
          const head = `snapshot ${shortCid(s.snapshot)}: ${s.lost > 0 ? `${s.lost} blocks LOST, ` : ''}${s.belowMinimum} below the minimum copies, ${s.belowTarget} below target`;
          return s.files && s.files.length > 0 ? `${head}; files affected: ${s.files.slice(0, 3).join(', ')}${s.files.length > 3 ? `, and ${s.files.length - 3} more` : ''}` : head;
        })
        .join('; ');
    }
    case 'keeper-added': {
      const p = e.payload as PayloadByKind['keeper-added'];
      return `${p.name ?? who(p.keeper)} joined the reserve`;
    }
    case 'keeper-removed': {
      const p = e.payload as PayloadByKind['keeper-removed'];
      if (p.by === p.keeper) return `${who(p.keeper)} left the reserve${p.reason ? ` (${p.reason})` : ''}`;
      return `${who(p.keeper)} was removed from the reserve${p.reason ? ` (${p.reason})` : ''}${p.by ? ` by ${who(p.by)}` : ''}`;
    }
    case 'network-disruption': {
      const p = e.payload as PayloadByKind['network-disruption'];
      return `cannot reach ${p.peers.map(who).join(', ')} for ${humanDuration(e.time - p.since)}`;
    }
    case 'resolved': {
      const p = e.payload as PayloadByKind['resolved'];
      return `back to normal after ${humanDuration(e.time - p.since)}: ${p.of}${p.note ? ` (${p.note})` : ''}`;
    }
    case 'events-summary': {
      const p = e.payload as PayloadByKind['events-summary'];
      return `${p.count} earlier ${p.of === '*' ? '' : `${p.of} `}events folded (${p.bySeverity.normal} normal, ${p.bySeverity.warning} warnings, ${p.bySeverity.failure} failures) over ${humanDuration(p.lastTime - p.firstTime)}`;
    }
  }
  return String((e as { kind: string }).kind);
}
