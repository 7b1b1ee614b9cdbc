/**
 * `reserve/report/1`: a member asks another for its own view of itself, for the status page: the bytes of blocks it
 * holds and its latest health reading. Only members can ask (the network admits nothing else past JOIN). Asked on
 * demand by `status()` (never gossiped, so it costs nothing while nobody looks), answered from caches.
 *
 *   request:  dag-cbor {v: 1}
 *   response: dag-cbor {v: 1, at: ms, used?: bytes, mem?: [availableBytes, totalBytes], cpu?: busy 0..1,
 *                       io?: bytes/s read+write, disk?: [availableBytes, totalBytes]}
 *
 * Decoding checks every field (type, range) and the size, and throws MalformedReportError otherwise.
 */
import * as dagCbor from '@ipld/dag-cbor';
import { ReserveError } from '../../core/errors.ts';
import type { HealthReading } from '../../core/box/health.ts';
import type { HealthView } from '../daemon/api.ts';

export const REPORT_PROTOCOL = 'reserve/report/1';
export const REPORT_VERSION = 1;
export const MAX_REPORT_BYTES = 1024;

export class MalformedReportError extends ReserveError {
  static override readonly name = 'MalformedReportError';
}

export interface BoxReport {
  /** When the health reading was taken (or the report made, without one). */
  at: number;
  used?: number;
  health?: HealthView;
}

const count = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 2 ** 60;
const fraction = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 1;
const pair = (v: unknown): v is [number, number] => Array.isArray(v) && v.length === 2 && count(v[0]) && count(v[1]) && v[0] <= v[1];

export function encodeReportRequest(): Uint8Array {
  return dagCbor.encode({ v: REPORT_VERSION });
}

export function decodeReportRequest(bytes: Uint8Array): void {
  const o = decodeObject(bytes, 'report request');
  if (Object.keys(o).length !== 1) throw new MalformedReportError('report request: unexpected fields');
}

export function encodeReport(r: BoxReport): Uint8Array {
  const o: Record<string, unknown> = { v: REPORT_VERSION, at: Math.round(r.at) };
  if (r.used !== undefined) o.used = Math.round(r.used);
  const h = r.health;
  if (h?.memoryUsed !== undefined) o.mem = [Math.round((1 - h.memoryUsed) * 1e6), 1e6];
  if (h?.cpuBusy !== undefined) o.cpu = h.cpuBusy;
  if (h?.diskIoBytesPerSecond !== undefined) o.io = Math.round(h.diskIoBytesPerSecond);
  if (h?.diskFreeBytes !== undefined && h.diskTotalBytes !== undefined) o.disk = [h.diskFreeBytes, h.diskTotalBytes];
  return dagCbor.encode(o);
}

export function decodeReport(bytes: Uint8Array): BoxReport {
  const o = decodeObject(bytes, 'report');
  if (!count(o.at)) throw new MalformedReportError('report: time missing');
  const out: BoxReport = { at: o.at };
  if (o.used !== undefined) {
    if (!count(o.used)) throw new MalformedReportError('report: bad used bytes');
    out.used = o.used;
  }
  const health: HealthView = {};
  if (o.mem !== undefined) {
    if (!pair(o.mem) || o.mem[1] === 0) throw new MalformedReportError('report: bad memory');
    health.memoryUsed = 1 - o.mem[0] / o.mem[1];
  }
  if (o.cpu !== undefined) {
    if (!fraction(o.cpu)) throw new MalformedReportError('report: bad cpu');
    health.cpuBusy = o.cpu;
  }
  if (o.io !== undefined) {
    if (!count(o.io)) throw new MalformedReportError('report: bad disk I/O');
    health.diskIoBytesPerSecond = o.io;
  }
  if (o.disk !== undefined) {
    if (!pair(o.disk)) throw new MalformedReportError('report: bad disk space');
    health.diskFreeBytes = o.disk[0];
    health.diskTotalBytes = o.disk[1];
  }
  if (Object.keys(health).length > 0) out.health = { ...health, sampledAt: o.at };
  for (const k of Object.keys(o)) if (!['v', 'at', 'used', 'mem', 'cpu', 'io', 'disk'].includes(k)) throw new MalformedReportError(`report: unknown field ${k}`);
  return out;
}

function decodeObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  if (bytes.byteLength > MAX_REPORT_BYTES) throw new MalformedReportError(`${what}: ${bytes.byteLength} bytes, more than ${MAX_REPORT_BYTES}`);
  let o: unknown;
  try {
    o = dagCbor.decode(bytes);
  } catch (err) {
    throw new MalformedReportError(`${what}: not dag-cbor`, { cause: err });
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new MalformedReportError(`${what}: not a map`);
  const r = o as Record<string, unknown>;
  if (r.v !== REPORT_VERSION) throw new MalformedReportError(`${what}: unsupported version ${JSON.stringify(r.v)}`);
  return r;
}

/** A health reading as the status page shows it. */
export function healthView(r: HealthReading | undefined): HealthView | undefined {
  if (!r) return undefined;
  const s = r.sample;
  const v: HealthView = { sampledAt: r.at };
  if (s.memory && s.memory.totalBytes > 0) v.memoryUsed = 1 - s.memory.availableBytes / s.memory.totalBytes;
  if (s.cpu) v.cpuBusy = s.cpu.busyFraction;
  if (s.diskIo) v.diskIoBytesPerSecond = s.diskIo.readBytesPerSec + s.diskIo.writeBytesPerSec;
  if (s.disk) {
    v.diskFreeBytes = s.disk.availableBytes;
    v.diskTotalBytes = s.disk.totalBytes;
  }
  return v;
}
