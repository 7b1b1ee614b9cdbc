/**
 * Keeper health from the Linux kernel, as a HealthSource (core/events/health.ts). No dependency: the figures come
 * straight from procfs and statfs, which is all `systeminformation` would read on Linux anyway.
 *
 * - memory: /proc/meminfo MemTotal and MemAvailable (MemFree + Buffers + Cached on kernels without it);
 * - CPU: share of non-idle jiffies in /proc/stat's aggregate line between two samples (idle = idle + iowait);
 * - disk I/O: /proc/diskstats deltas between two samples: bytes read/written per second (sectors are always 512
 *   bytes there) and the share of wall time the device was busy (field "time spent doing I/Os"). The device is the
 *   one holding `path` (from stat's st_dev); when that is not a listed block device (overlay, tmpfs, a container),
 *   all whole disks are summed (from /sys/block, leaving out loop, ram, zram, dm-, md and nbd devices, which
 *   would count the same I/O twice or are not disks), busy = the busiest of them;
 * - disk space: fs.statfs of `path` (blocks * bsize, bavail * bsize).
 *
 * Rates need two readings, so the first sample has no `cpu` and no `diskIo`. The parsers are exported and tested
 * on captured text.
 */
import { readdir, readFile, stat, statfs } from 'node:fs/promises';
import { ReserveError } from '../../core/errors.ts';
import type { DiskIoSample, HealthSample, HealthSource } from '../../core/events/health.ts';

export class ProcParseError extends ReserveError {
  static override readonly name = 'ProcParseError';
}

export interface MemInfo {
  totalBytes: number;
  availableBytes: number;
  freeBytes: number;
}

export function parseMeminfo(text: string): MemInfo {
  const kb = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_()]+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line.trim());
    if (m) kb.set(m[1], Number(m[2]));
  }
  const total = kb.get('MemTotal');
  const free = kb.get('MemFree');
  if (total === undefined || free === undefined) throw new ProcParseError('meminfo has no MemTotal/MemFree');
  const available = kb.get('MemAvailable') ?? free + (kb.get('Buffers') ?? 0) + (kb.get('Cached') ?? 0);
  return { totalBytes: total * 1024, availableBytes: Math.min(total, available) * 1024, freeBytes: free * 1024 };
}

export interface CpuTimes {
  /** Idle + iowait jiffies. */
  idle: number;
  /** All jiffies (guest time is already inside user/nice, so it is not added again). */
  total: number;
}

export function parseCpuTimes(text: string): CpuTimes {
  const line = text.split('\n').find((l) => /^cpu\s/.test(l));
  if (!line) throw new ProcParseError('/proc/stat has no aggregate cpu line');
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 4 || f.some((x) => !Number.isFinite(x))) throw new ProcParseError(`bad cpu line: ${line}`);
  const [user, nice, system, idle, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  return { idle: idle + iowait, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

/** Share of non-idle time between two readings (0 when no time passed). */
export function cpuBusyFraction(prev: CpuTimes, cur: CpuTimes): number {
  const total = cur.total - prev.total;
  if (total <= 0) return 0;
  const busy = total - (cur.idle - prev.idle);
  return Math.min(1, Math.max(0, busy / total));
}

export interface DiskStat {
  major: number;
  minor: number;
  name: string;
  readSectors: number;
  writtenSectors: number;
  /** Milliseconds spent doing I/O. */
  ioMs: number;
}

export function parseDiskstats(text: string): DiskStat[] {
  const out: DiskStat[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 14) continue;
    const n = (i: number): number => Number(f[i]);
    const d = { major: n(0), minor: n(1), name: f[2], readSectors: n(5), writtenSectors: n(9), ioMs: n(12) };
    if ([d.major, d.minor, d.readSectors, d.writtenSectors, d.ioMs].some((x) => !Number.isFinite(x))) throw new ProcParseError(`bad diskstats line: ${line}`);
    out.push(d);
  }
  return out;
}

const SECTOR_BYTES = 512;

/** I/O rates of `devices` between two readings `elapsedMs` apart. */
export function diskIoBetween(prev: readonly DiskStat[], cur: readonly DiskStat[], devices: readonly string[], elapsedMs: number): DiskIoSample | undefined {
  if (!(elapsedMs > 0) || devices.length === 0) return undefined;
  let read = 0;
  let written = 0;
  let busiest = 0;
  let found = 0;
  for (const name of devices) {
    const a = prev.find((d) => d.name === name);
    const b = cur.find((d) => d.name === name);
    if (!a || !b) continue;
    found++;
    // Counters wrap or reset (device re-attached): treat a decrease as no activity.
    read += Math.max(0, b.readSectors - a.readSectors) * SECTOR_BYTES;
    written += Math.max(0, b.writtenSectors - a.writtenSectors) * SECTOR_BYTES;
    busiest = Math.max(busiest, Math.max(0, b.ioMs - a.ioMs) / elapsedMs);
  }
  if (found === 0) return undefined;
  const seconds = elapsedMs / 1000;
  return { device: devices.join('+'), readBytesPerSec: read / seconds, writeBytesPerSec: written / seconds, busyFraction: Math.min(1, busiest) };
}

/** Linux major/minor of a dev_t (glibc's encoding). */
export function splitDev(dev: bigint): { major: number; minor: number } {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & 0xffffff00n));
  return { major, minor };
}

/** Names of whole disks worth summing when the path's own device is unknown. */
export function wholeDisks(sysBlockNames: readonly string[]): string[] {
  return sysBlockNames.filter((n) => !/^(loop|ram|zram|dm-|md|nbd|sr)/.test(n)).sort();
}

export interface OsHealthSourceOptions {
  /** A path on the disk that holds the Box's data. Default '.'. */
  path?: string;
  /** Default '/proc'. */
  procRoot?: string;
  /** Default '/sys/block'. */
  sysBlock?: string;
  /** Monotonic milliseconds, for rates. Default performance.now. */
  monotonicMs?: () => number;
}

export class OsHealthSource implements HealthSource {
  readonly #path: string;
  readonly #proc: string;
  readonly #sysBlock: string;
  readonly #now: () => number;
  #devices?: string[];
  #prev?: { at: number; cpu: CpuTimes; disks: DiskStat[] };

  constructor(options: OsHealthSourceOptions = {}) {
    this.#path = options.path ?? '.';
    this.#proc = options.procRoot ?? '/proc';
    this.#sysBlock = options.sysBlock ?? '/sys/block';
    this.#now = options.monotonicMs ?? (() => performance.now());
  }

  /** The block device(s) measured for I/O. */
  async devices(): Promise<string[]> {
    if (this.#devices) return this.#devices;
    const disks = parseDiskstats(await readFile(`${this.#proc}/diskstats`, 'utf8'));
    const { major, minor } = splitDev((await stat(this.#path, { bigint: true })).dev);
    const own = disks.find((d) => d.major === major && d.minor === minor);
    if (own) this.#devices = [own.name];
    else {
      let names: string[] = [];
      try {
        names = await readdir(this.#sysBlock);
      } catch {
        names = disks.map((d) => d.name);
      }
      const listed = new Set(disks.map((d) => d.name));
      this.#devices = wholeDisks(names).filter((n) => listed.has(n));
    }
    return this.#devices;
  }

  async sample(): Promise<HealthSample> {
    const [meminfo, statText, diskText, fsStats, devices] = await Promise.all([
      readFile(`${this.#proc}/meminfo`, 'utf8'),
      readFile(`${this.#proc}/stat`, 'utf8'),
      readFile(`${this.#proc}/diskstats`, 'utf8'),
      statfs(this.#path),
      this.devices(),
    ]);
    const at = this.#now();
    const mem = parseMeminfo(meminfo);
    const cpu = parseCpuTimes(statText);
    const disks = parseDiskstats(diskText);
    const sample: HealthSample = {
      memory: { totalBytes: mem.totalBytes, availableBytes: mem.availableBytes },
      disk: { path: this.#path, totalBytes: fsStats.blocks * fsStats.bsize, availableBytes: fsStats.bavail * fsStats.bsize },
    };
    if (this.#prev) {
      sample.cpu = { busyFraction: cpuBusyFraction(this.#prev.cpu, cpu) };
      const io = diskIoBetween(this.#prev.disks, disks, devices, at - this.#prev.at);
      if (io) sample.diskIo = io;
    }
    this.#prev = { at, cpu, disks };
    return sample;
  }
}
