/**
 * The OS health adapter: /proc parsers on captured text (with known answers), device-number decoding, the
 * whole-disk fallback, a fake procfs directory driving the source end to end, and one live read on this machine
 * checked against sanity ranges.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cpuBusyFraction, diskIoBetween, OsHealthSource, parseCpuTimes, parseDiskstats, parseMeminfo, ProcParseError, splitDev, wholeDisks } from './os-health.ts';

const MEMINFO = `MemTotal:       24684084 kB
MemFree:        19572016 kB
MemAvailable:   22374288 kB
Buffers:          102836 kB
Cached:          2866464 kB
SwapCached:            0 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
`;

const MEMINFO_OLD_KERNEL = `MemTotal:        1000 kB
MemFree:          100 kB
Buffers:           50 kB
Cached:           250 kB
`;

const STAT_1 = `cpu  3736 0 2670 66970 222 0 59 16 0 0
cpu0 1550 0 1191 33985 84 0 12 7 0 0
cpu1 2186 0 1478 32984 138 0 46 8 0 0
intr 1234 0 0
ctxt 99
`;
// 1000 jiffies later: 600 busy (user 400, system 150, irq 0, softirq 50), 400 idle (idle 350, iowait 50).
const STAT_2 = `cpu  4136 0 2820 67320 272 0 109 16 0 0
cpu0 1750 0 1266 34160 109 0 37 7 0 0
`;

const DISKSTATS_1 = `   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 11774 4288 655474 13216 31940 12352 5524456 8971 0 3540 25042 11772 19 2533096 2459 5630 394
 254       1 vda1 11000 4000 600000 13000 31000 12000 5500000 8900 0 3400 25000 11772 19 2533096 2459 0 0
 253       0 zram0 0 0 0 0
 8       16 sdb 100 0 2000 10 100 0 4000 10 0 20 20
`;
// 2 s later on vda: +2048 sectors read (1 MiB), +4096 written (2 MiB), 500 ms busy. sdb: 1000 ms busy.
const DISKSTATS_2 = `   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 11800 4288 657522 13300 32000 12352 5528552 9000 0 4040 25500 11772 19 2533096 2459 5630 394
 254       1 vda1 11000 4000 600000 13000 31000 12000 5500000 8900 0 3400 25000 11772 19 2533096 2459 0 0
 253       0 zram0 0 0 0 0
 8       16 sdb 100 0 2000 10 100 0 4000 10 0 1020 20
`;

/** A disk with a device number no real one has, so the fake tree never matches the temp directory's device. */
const FAKE_1 = ` 999 999 sdq 10 0 100 0 10 0 200 0 0 0 0
`;
const FAKE_2 = ` 999 999 sdq 20 0 2148 0 10 0 200 0 0 1000 0
`;

describe('/proc parsers', () => {
  it('reads memory totals, with MemAvailable or its approximation on old kernels', () => {
    expect(parseMeminfo(MEMINFO)).toEqual({ totalBytes: 24684084 * 1024, availableBytes: 22374288 * 1024, freeBytes: 19572016 * 1024 });
    expect(parseMeminfo(MEMINFO_OLD_KERNEL)).toEqual({ totalBytes: 1000 * 1024, availableBytes: 400 * 1024, freeBytes: 100 * 1024 });
    expect(() => parseMeminfo('nothing here')).toThrow(ProcParseError);
  });

  it('computes CPU busy share from /proc/stat deltas', () => {
    const a = parseCpuTimes(STAT_1);
    expect(a).toEqual({ idle: 66970 + 222, total: 3736 + 2670 + 66970 + 222 + 59 + 16 });
    const b = parseCpuTimes(STAT_2);
    expect(b.total - a.total).toBe(1000);
    expect(cpuBusyFraction(a, b)).toBeCloseTo(0.6, 9);
    expect(cpuBusyFraction(a, a)).toBe(0);
    expect(() => parseCpuTimes('intr 1 2 3')).toThrow(ProcParseError);
  });

  it('computes disk I/O rates and busy share from /proc/diskstats deltas', () => {
    const a = parseDiskstats(DISKSTATS_1);
    expect(a.map((d) => d.name)).toEqual(['loop0', 'vda', 'vda1', 'sdb']); // zram0 line is too short: skipped
    expect(a[1]).toEqual({ major: 254, minor: 0, name: 'vda', readSectors: 655474, writtenSectors: 5524456, ioMs: 3540 });
    const b = parseDiskstats(DISKSTATS_2);
    expect(diskIoBetween(a, b, ['vda'], 2_000)).toEqual({ device: 'vda', readBytesPerSec: 512 * 1024, writeBytesPerSec: 1024 * 1024, busyFraction: 0.25 });
    const both = diskIoBetween(a, b, ['vda', 'sdb'], 2_000)!;
    expect(both.device).toBe('vda+sdb');
    expect(both.busyFraction).toBe(0.5);
    expect(diskIoBetween(a, b, ['nvme0n1'], 2_000)).toBeUndefined();
    expect(diskIoBetween(a, b, ['vda'], 0)).toBeUndefined();
    // A counter reset reads as no activity, not as a negative rate.
    expect(diskIoBetween(b, a, ['vda'], 2_000)).toMatchObject({ readBytesPerSec: 0, writeBytesPerSec: 0, busyFraction: 0 });
  });

  it('decodes device numbers and picks whole disks', () => {
    expect(splitDev(0xfe00n)).toEqual({ major: 254, minor: 0 });
    expect(splitDev(0x0803n)).toEqual({ major: 8, minor: 3 });
    // Large minors (e.g. nvme partitions) use the high bits.
    expect(splitDev((0x103n << 8n) | 0x45n | (0x12345n << 12n & 0xffffff00000n))).toEqual({ major: 0x103, minor: 0x45 | (0x12345 & ~0xff) });
    expect(wholeDisks(['loop0', 'vda', 'zram0', 'dm-0', 'md0', 'sda', 'nvme0n1', 'ram1'])).toEqual(['nvme0n1', 'sda', 'vda']);
  });
});

describe('OsHealthSource', () => {
  it('samples a procfs tree: no rates on the first sample, deltas afterwards', async () => {
    const root = await mkdtemp(join(tmpdir(), 'reserve-proc-'));
    try {
      await mkdir(join(root, 'block', 'sdq'), { recursive: true });
      await mkdir(join(root, 'block', 'loop0'), { recursive: true });
      await writeFile(join(root, 'meminfo'), MEMINFO);
      await writeFile(join(root, 'stat'), STAT_1);
      await writeFile(join(root, 'diskstats'), FAKE_1);
      let now = 10_000;
      // The temp directory's device is not among the fake disks: the source falls back to the whole disks listed
      // in the fake /sys/block (sdq; loop0 is not a disk).
      const source = new OsHealthSource({ path: root, procRoot: root, sysBlock: join(root, 'block'), monotonicMs: () => now });
      const first = await source.sample();
      expect(first.memory).toEqual({ totalBytes: 24684084 * 1024, availableBytes: 22374288 * 1024 });
      expect(first.cpu).toBeUndefined();
      expect(first.diskIo).toBeUndefined();
      expect(first.disk!.totalBytes).toBeGreaterThan(0);
      expect(await source.devices()).toEqual(['sdq']);
      await writeFile(join(root, 'stat'), STAT_2);
      await writeFile(join(root, 'diskstats'), FAKE_2);
      now += 2_000;
      const second = await source.sample();
      expect(second.cpu!.busyFraction).toBeCloseTo(0.6, 9);
      expect(second.diskIo).toEqual({ device: 'sdq', readBytesPerSec: 512 * 1024, writeBytesPerSec: 0, busyFraction: 0.5 });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('reads this machine within sanity ranges (live)', async () => {
    const source = new OsHealthSource({ path: process.cwd() });
    await source.sample();
    // Some CPU work so the second sample has something to measure.
    let x = 0;
    for (let i = 0; i < 2_000_000; i++) x += Math.sqrt(i);
    expect(x).toBeGreaterThan(0);
    const s = await source.sample();
    expect(s.memory!.totalBytes).toBeGreaterThan(64 * 2 ** 20);
    expect(s.memory!.totalBytes).toBeLessThan(2 ** 50);
    expect(s.memory!.availableBytes).toBeGreaterThan(0);
    expect(s.memory!.availableBytes).toBeLessThanOrEqual(s.memory!.totalBytes);
    expect(s.cpu!.busyFraction).toBeGreaterThanOrEqual(0);
    expect(s.cpu!.busyFraction).toBeLessThanOrEqual(1);
    expect(s.disk!.totalBytes).toBeGreaterThan(2 ** 20);
    expect(s.disk!.availableBytes).toBeLessThanOrEqual(s.disk!.totalBytes);
    expect((await source.devices()).length).toBeGreaterThan(0);
    if (s.diskIo) {
      expect(s.diskIo.readBytesPerSec).toBeGreaterThanOrEqual(0);
      expect(s.diskIo.writeBytesPerSec).toBeGreaterThanOrEqual(0);
      expect(s.diskIo.busyFraction).toBeGreaterThanOrEqual(0);
      expect(s.diskIo.busyFraction).toBeLessThanOrEqual(1);
    }
  });
});
