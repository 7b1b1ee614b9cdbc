/**
 * Limitations of a reserve (from its shared config) and the pre-flight check a backup runs before it writes
 * anything: given what the backup plans to store, which limits would it break? A backup that would break one
 * fails at once with LimitExceededError listing every violation, instead of half-way through.
 *
 * Every limitation is an upper bound: file size, entries in one directory, snapshot size, number of keepers, and
 * each keeper's disk capacity (bytes it is asked to take vs bytes it has free, less a reserve).
 */
import { ReserveError } from '../errors.ts';
import type { BoxId } from '../net.ts';
import type { EventDraft } from '../events/types.ts';

export const Limitation = {
  fileSize: 'file-size',
  filesPerDirectory: 'files-per-directory',
  snapshotSize: 'snapshot-size',
  keepers: 'keepers',
  diskCapacity: 'disk-capacity',
} as const;
export type Limitation = (typeof Limitation)[keyof typeof Limitation];

/** The limits in force (absent: unlimited). */
export interface Limits {
  maxFileBytes?: number;
  maxFilesPerDirectory?: number;
  maxSnapshotBytes?: number;
  maxKeepers?: number;
  /** Bytes every keeper keeps free beyond what it stores for the reserve. Default 0. */
  keeperReserveBytes?: number;
}

/** What a keeper has and what the backup would ask of it. */
export interface KeeperDemand {
  keeper: BoxId;
  freeBytes: number;
  plannedBytes: number;
}

/** What a backup is about to store, as known after scanning and before writing. Every field is optional. */
export interface PlannedBackup {
  files?: Iterable<{ path: string; bytes: number }>;
  directories?: Iterable<{ path: string; entries: number }>;
  snapshotBytes?: number;
  keepers?: number;
  keeperDemand?: Iterable<KeeperDemand>;
}

export interface LimitViolation {
  limitation: Limitation;
  /** The file, directory or keeper concerned; '' for the whole snapshot/reserve. */
  subject: string;
  value: number;
  limit: number;
  message: string;
}

/** A backup would exceed one or more limits; nothing was written. */
export class LimitExceededError extends ReserveError {
  static override readonly name = 'LimitExceededError';
  constructor(
    readonly violations: readonly LimitViolation[],
    readonly omitted = 0,
  ) {
    const head = violations.slice(0, 3).map((v) => v.message);
    const more = violations.length - head.length + omitted;
    super(`the backup would exceed the reserve's limits: ${head.join('; ')}${more > 0 ? ` (and ${more} more)` : ''}`);
  }
}

export interface CheckLimitsResult {
  violations: LimitViolation[];
  /** Violations not listed because of `maxPerLimitation`. */
  omitted: number;
}

/** 1.5 GiB, 900.0 MiB, 12 B. */
export function bytesText(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/**
 * Every limit `planned` would break, file and directory violations capped at `maxPerLimitation` each (the rest are
 * counted in `omitted`). Pure; iterates each iterable once.
 */
export function checkLimitsDetailed(planned: PlannedBackup, limits: Limits, options: { maxPerLimitation?: number } = {}): CheckLimitsResult {
  const cap = options.maxPerLimitation ?? 100;
  const violations: LimitViolation[] = [];
  let omitted = 0;
  const push = (v: LimitViolation, listedSoFar: number): void => {
    if (listedSoFar < cap) violations.push(v);
    else omitted++;
  };
  if (limits.maxFileBytes !== undefined && planned.files) {
    let n = 0;
    for (const f of planned.files) {
      if (f.bytes > limits.maxFileBytes) {
        push({ limitation: Limitation.fileSize, subject: f.path, value: f.bytes, limit: limits.maxFileBytes, message: `${f.path} is ${bytesText(f.bytes)}, over the ${bytesText(limits.maxFileBytes)} file size limit` }, n);
        n++;
      }
    }
  }
  if (limits.maxFilesPerDirectory !== undefined && planned.directories) {
    let n = 0;
    for (const d of planned.directories) {
      if (d.entries > limits.maxFilesPerDirectory) {
        push({ limitation: Limitation.filesPerDirectory, subject: d.path, value: d.entries, limit: limits.maxFilesPerDirectory, message: `${d.path} has ${d.entries} entries, over the limit of ${limits.maxFilesPerDirectory} per directory` }, n);
        n++;
      }
    }
  }
  if (limits.maxSnapshotBytes !== undefined && planned.snapshotBytes !== undefined && planned.snapshotBytes > limits.maxSnapshotBytes) {
    violations.push({ limitation: Limitation.snapshotSize, subject: '', value: planned.snapshotBytes, limit: limits.maxSnapshotBytes, message: `the snapshot would be ${bytesText(planned.snapshotBytes)}, over the ${bytesText(limits.maxSnapshotBytes)} snapshot size limit` });
  }
  if (limits.maxKeepers !== undefined && planned.keepers !== undefined && planned.keepers > limits.maxKeepers) {
    violations.push({ limitation: Limitation.keepers, subject: '', value: planned.keepers, limit: limits.maxKeepers, message: `${planned.keepers} keepers, over the limit of ${limits.maxKeepers}` });
  }
  if (planned.keeperDemand) {
    const reserve = limits.keeperReserveBytes ?? 0;
    let n = 0;
    for (const k of planned.keeperDemand) {
      const room = Math.max(0, k.freeBytes - reserve);
      if (k.plannedBytes > room) {
        push({ limitation: Limitation.diskCapacity, subject: k.keeper, value: k.plannedBytes, limit: room, message: `keeper ${k.keeper} would need ${bytesText(k.plannedBytes)} but has ${bytesText(room)} to spare` }, n);
        n++;
      }
    }
  }
  return { violations, omitted };
}

/** The pre-flight check: every limit `planned` would break (empty when the backup may proceed). */
export function checkLimits(planned: PlannedBackup, limits: Limits): LimitViolation[] {
  return checkLimitsDetailed(planned, limits).violations;
}

/** Throw LimitExceededError when `planned` breaks any limit. */
export function assertWithinLimits(planned: PlannedBackup, limits: Limits): void {
  const { violations, omitted } = checkLimitsDetailed(planned, limits);
  if (violations.length > 0) throw new LimitExceededError(violations, omitted);
}

/** The "limitation encountered" event for a violation found before a backup (a one-off: raise it directly). */
export function encounteredDraft(v: LimitViolation): EventDraft<'limitation-encountered'> {
  return { kind: 'limitation-encountered', severity: 'failure', payload: { limitation: v.limitation, subject: v.subject, value: v.value, limit: v.limit } };
}
