/** reserve/report/1: reports round-trip; the decoders refuse junk, oversize and other versions by name. */
import { describe, expect, it } from 'vitest';
import * as dagCbor from '@ipld/dag-cbor';
import fc from 'fast-check';
import { propertyOptions } from '../../proofs/support/fc.ts';
import { decodeReport, decodeReportRequest, encodeReport, encodeReportRequest, MalformedReportError, MAX_REPORT_BYTES, type BoxReport } from './report.ts';

const report: fc.Arbitrary<BoxReport> = fc.record(
  {
    at: fc.integer({ min: 0, max: 2 ** 45 }),
    used: fc.integer({ min: 0, max: 2 ** 50 }),
    health: fc.record(
      {
        memoryUsed: fc.integer({ min: 0, max: 1e6 }).map((n) => n / 1e6),
        cpuBusy: fc.double({ min: 0, max: 1, noNaN: true }),
        diskIoBytesPerSecond: fc.integer({ min: 0, max: 2 ** 40 }),
        disk: fc.tuple(fc.integer({ min: 0, max: 2 ** 44 }), fc.integer({ min: 0, max: 2 ** 44 })),
      },
      { requiredKeys: [] },
    ).map(({ disk, ...h }) => (disk ? { ...h, diskFreeBytes: disk[0], diskTotalBytes: disk[0] + disk[1] } : h)),
  },
  { requiredKeys: ['at'] },
);

describe('box reports', () => {
  it('round-trip every field the status page shows', () => {
    fc.assert(
      fc.property(report, (r) => {
        const input = r;
        const out = decodeReport(encodeReport(input));
        expect(out.at).toBe(input.at);
        expect(out.used).toBe(input.used);
        const hv = input.health ?? {};
        if (Object.keys(hv).length === 0) {
          expect(out.health).toBeUndefined();
          return;
        }
        if (hv.memoryUsed !== undefined) expect(out.health?.memoryUsed).toBeCloseTo(hv.memoryUsed, 5);
        expect(out.health?.cpuBusy).toBe(hv.cpuBusy);
        expect(out.health?.diskIoBytesPerSecond).toBe(hv.diskIoBytesPerSecond);
        expect(out.health?.diskFreeBytes).toBe(hv.diskFreeBytes);
        expect(out.health?.diskTotalBytes).toBe(hv.diskTotalBytes);
        expect(out.health?.sampledAt).toBe(input.at);
      }),
      propertyOptions('box reports round-trip', { numRuns: 200 }),
    );
    expect(() => decodeReportRequest(encodeReportRequest())).not.toThrow();
  });

  it('refuses junk, oversize, other versions and out-of-range values by name, never anything else', () => {
    const anyCbor = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.dictionary(fc.constantFrom('v', 'at', 'used', 'mem', 'cpu', 'io', 'disk', 'x'), fc.oneof(fc.integer(), fc.double(), fc.string(), fc.array(fc.integer(), { maxLength: 3 }), fc.constant(null))).map((o) => {
        try {
          return dagCbor.encode(o);
        } catch {
          return new Uint8Array([0xff]);
        }
      }),
    );
    fc.assert(
      fc.property(anyCbor, (bytes) => {
        for (const decode of [decodeReport, decodeReportRequest]) {
          try {
            decode(bytes);
          } catch (err) {
            expect(err).toBeInstanceOf(MalformedReportError);
          }
        }
      }),
      propertyOptions('box report decoders refuse junk by name', { numRuns: 400 }),
    );
    expect(() => decodeReport(new Uint8Array(MAX_REPORT_BYTES + 1))).toThrow(/more than/);
    expect(() => decodeReport(dagCbor.encode({ v: 2, at: 1 }))).toThrow(/unsupported version/);
    expect(() => decodeReport(dagCbor.encode({ v: 1, at: 1, cpu: 1.5 }))).toThrow(/bad cpu/);
    expect(() => decodeReport(dagCbor.encode({ v: 1, at: 1, disk: [10, 5] }))).toThrow(/bad disk space/);
    expect(() => decodeReport(dagCbor.encode({ v: 1, at: 1, extra: 1 }))).toThrow(/unknown field/);
  });
});
