/**
 * What the benches read about a process from Linux's /proc. Every reader answers 0 (or undefined) for a process
 * that is gone, or off Linux, instead of throwing: a bench polls processes that may exit between two reads.
 */
import { readFileSync } from 'node:fs';

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** CPU milliseconds a process has used so far: user + system, and system (kernel) alone. */
export function cpuMsOf(pid: number | undefined): { total: number; sys: number } {
  const stat = pid === undefined ? undefined : read(`/proc/${pid}/stat`);
  if (stat === undefined) return { total: 0, sys: 0 };
  const f = stat.split(') ')[1].split(' ');
  const ms = (ticks: number) => (ticks * 1000) / 100; // clock ticks of 10 ms
  return { total: ms(Number(f[11]) + Number(f[12])), sys: ms(Number(f[12])) };
}

/** Peak resident memory of a process so far, in KiB (VmHWM: a high-water mark, so a late read loses nothing). */
export function peakRssKiB(pid: number | undefined): number {
  const status = pid === undefined ? undefined : read(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status ?? '')?.[1] ?? 0);
}

/** Bytes sent over the loopback interface so far (machine-wide). */
export function loopbackBytes(): number {
  return Number(read('/sys/class/net/lo/statistics/tx_bytes') ?? 0);
}
