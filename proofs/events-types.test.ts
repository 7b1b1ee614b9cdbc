/**
 * The event model: every kind round-trips through its versioned dag-cbor encoding, and malformed input (bad bytes,
 * unknown version, unknown kind, bad payload, id not matching source/seq) is rejected with a named error.
 */
import * as dagCbor from '@ipld/dag-cbor';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cidOf, RAW_CODE } from '../core/blocks/cid.ts';
import {
  decodeEvent,
  encodeEvent,
  EVENT_FORMAT_VERSION,
  eventId,
  fromStoredEvent,
  toStoredEvent,
  EventKind,
  isConditionKind,
  MalformedEventError,
  parseEventId,
  UnsupportedEventVersionError,
  validateDraft,
  validateEvent,
} from '../core/events/types.ts';
import type { EventDraft, EventEnvelope } from '../core/events/types.ts';
import { propertyOptions } from './support/fc.ts';

const CID_A = cidOf(RAW_CODE, new Uint8Array([1, 2, 3])).toString();
const CID_B = cidOf(RAW_CODE, new Uint8Array([4, 5, 6])).toString();

const drafts: EventDraft[] = [
  {
    kind: 'limitation-imminent',
    severity: 'warning',
    payload: { limitation: 'disk-capacity', subject: 'box-b', value: 900, limit: 1000, eta: 1_700_000_000_000, method: 'theil-sen', slope: 0.25, windowMs: 86_400_000 },
  },
  { kind: 'limitation-encountered', severity: 'failure', payload: { limitation: 'file-size', subject: '/home/a/big.iso', value: 5e9, limit: 4e9 } },
  { kind: 'keeper-health', severity: 'warning', payload: { metric: 'memory', keeper: 'box-a', usedBytes: 9e9, totalBytes: 1e10, usedFraction: 0.9, threshold: 0.9 } },
  { kind: 'keeper-health', severity: 'warning', payload: { metric: 'cpu', keeper: 'box-a', busyFraction: 0.99, threshold: 0.95 } },
  {
    kind: 'keeper-health',
    severity: 'warning',
    payload: { metric: 'disk-io', keeper: 'box-a', device: 'sda', readBytesPerSec: 1e6, writeBytesPerSec: 2e6, busyFraction: 0.97, threshold: 0.95 },
  },
  { kind: 'keeper-health', severity: 'failure', payload: { metric: 'disk-corruption', keeper: 'box-a', blocks: [CID_A, CID_B], totalBlocks: 2 } },
  { kind: 'unresolved-conflict', severity: 'warning', payload: { block: CID_A, snapshots: ['snap-1', 'snap-2'], reason: 'two versions of the catalog entry' } },
  { kind: 'unacceptable-replication', severity: 'failure', payload: { snapshots: [{ snapshot: 'snap-1', belowMinimum: 3, belowTarget: 10, lost: 1 }] } },
  { kind: 'keeper-added', severity: 'normal', payload: { keeper: 'box-c', name: 'attic', by: 'box-a' } },
  { kind: 'keeper-added', severity: 'normal', payload: { keeper: 'box-d' } },
  { kind: 'keeper-removed', severity: 'normal', payload: { keeper: 'box-c', reason: 'retired' } },
  { kind: 'network-disruption', severity: 'warning', payload: { peers: ['box-b', 'box-c'], since: 1_000 } },
  { kind: 'resolved', severity: 'normal', payload: { of: 'network-disruption', condition: 'network-disruption/box-b', resolves: 'box-a/3', latest: 'box-a/7', since: 1_000, note: 'reachable again' } },
];

function envelope(d: EventDraft, seq = 1, source = 'box-a', time = 5_000): EventEnvelope {
  return { id: eventId(source, seq), source, seq, time, ...d } as EventEnvelope;
}

describe('event envelopes', () => {
  it('covers every kind but the summary with a sample', () => {
    const kinds = new Set(drafts.map((d) => d.kind));
    for (const k of Object.values(EventKind)) if (k !== 'events-summary') expect(kinds.has(k), k).toBe(true);
  });

  it('round-trips every kind through dag-cbor', () => {
    drafts.forEach((d, i) => {
      const e = envelope(d, i + 1);
      expect(decodeEvent(encodeEvent(e))).toEqual(e);
    });
  });

  it('keeps the field names the shared log stores, and a version', () => {
    const raw = dagCbor.decode(encodeEvent(envelope(drafts[0]))) as Record<string, unknown>;
    expect(Object.keys(raw).sort()).toEqual(['id', 'kind', 'payload', 'seq', 'severity', 'source', 'time', 'v']);
    expect(raw.v).toBe(EVENT_FORMAT_VERSION);
  });

  it('converts to and from the shape the shared log stores', () => {
    drafts.forEach((d, i) => {
      const e = envelope(d, i + 7);
      const stored = toStoredEvent(e);
      expect(Object.keys(stored).sort()).toEqual(['id', 'kind', 'payload', 'severity', 'source', 'time']);
      expect(fromStoredEvent(JSON.parse(JSON.stringify(stored)))).toEqual(e);
    });
    expect(() => fromStoredEvent({ ...toStoredEvent(envelope(drafts[0])), id: 'nope' })).toThrow(MalformedEventError);
    expect(() => fromStoredEvent(null)).toThrow(MalformedEventError);
  });

  it('derives ids from source and seq, and parses them back', () => {
    expect(eventId('12D3KooWabc', 42)).toBe('12D3KooWabc/42');
    expect(parseEventId('12D3KooWabc/42')).toEqual({ source: '12D3KooWabc', seq: 42 });
    for (const bad of ['x', '/3', 'a/0', 'a/01', 'a/b/3', 'a/1.5', 'a/-1']) expect(parseEventId(bad), bad).toBeUndefined();
  });

  it('rejects bytes that are not dag-cbor', () => {
    const err = (() => {
      try {
        decodeEvent(new Uint8Array([0xff, 0x00, 0x13]));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(MalformedEventError);
    expect((err as Error).name).toBe('MalformedEventError');
  });

  it('rejects an unknown format version with its own error', () => {
    const bytes = dagCbor.encode({ ...envelope(drafts[0]), v: 99 });
    expect(() => decodeEvent(bytes)).toThrow(UnsupportedEventVersionError);
    expect(() => decodeEvent(dagCbor.encode([1, 2]))).toThrow(MalformedEventError);
  });

  it('rejects malformed envelopes and payloads', () => {
    const good = envelope(drafts[2]) as unknown as Record<string, unknown>;
    const bad: Array<[string, unknown]> = [
      ['id mismatch', { ...good, id: 'box-a/2' }],
      ['seq 0', { ...good, seq: 0, id: 'box-a/0' }],
      ['unknown kind', { ...good, kind: 'keeper-exploded' }],
      ['unknown severity', { ...good, severity: 'panic' }],
      ['extra field', { ...good, extra: 1 }],
      ['source with slash', { ...good, source: 'a/b', id: 'a/b/1' }],
      ['payload of another kind', { ...good, payload: (drafts[0] as { payload: unknown }).payload }],
      ['fraction over 1', { ...good, payload: { metric: 'cpu', keeper: 'box-a', busyFraction: 1.5, threshold: 0.9 } }],
      ['not a CID', { ...good, payload: { metric: 'disk-corruption', keeper: 'box-a', blocks: ['nope'], totalBlocks: 1 } }],
      ['missing payload field', { ...good, payload: { metric: 'cpu', keeper: 'box-a', busyFraction: 0.5 } }],
      ['resolution not normal', { ...(envelope(drafts[12]) as object), severity: 'warning' }],
      ['resolution with bad link', { ...(envelope(drafts[12]) as object), payload: { of: 'keeper-health', condition: 'c', resolves: 'nope', since: 0 } }],
      ['NaN time', { ...good, time: Number.NaN }],
    ];
    for (const [why, value] of bad) {
      expect(() => validateEvent(value), why).toThrow(MalformedEventError);
      if (why !== 'NaN time') expect(() => decodeEvent(dagCbor.encode({ v: 1, ...(value as object) })), why).toThrow(MalformedEventError);
    }
  });

  it('validates drafts before they are raised', () => {
    expect(validateDraft(drafts[8])).toEqual(drafts[8]);
    expect(() => validateDraft({ kind: 'resolved', severity: 'failure', payload: (drafts[12] as { payload: unknown }).payload } as EventDraft)).toThrow(MalformedEventError);
    expect(() => validateDraft({ kind: 'nope', severity: 'normal', payload: {} } as unknown as EventDraft)).toThrow(MalformedEventError);
    // Optional fields given as undefined are simply absent.
    expect(validateDraft({ kind: 'keeper-added', severity: 'normal', payload: { keeper: 'k', name: undefined } })).toEqual({ kind: 'keeper-added', severity: 'normal', payload: { keeper: 'k' } });
  });

  it('knows which kinds are conditions', () => {
    expect(isConditionKind('keeper-health')).toBe(true);
    expect(isConditionKind('keeper-added')).toBe(false);
    expect(isConditionKind('resolved')).toBe(false);
  });

  it('round-trips arbitrary valid envelopes (property)', () => {
    const name = 'events: arbitrary envelopes round-trip';
    const arb = fc.record({
      draft: fc.constantFrom(...drafts),
      seq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      source: fc.stringMatching(/^[A-Za-z0-9]{1,20}$/),
      time: fc.double({ noNaN: true, noDefaultInfinity: true, min: 0, max: 1e15 }),
    });
    fc.assert(
      fc.property(arb, ({ draft, seq, source, time }) => {
        const e = envelope(draft, seq, source, time);
        expect(decodeEvent(encodeEvent(e))).toEqual(e);
      }),
      propertyOptions(name),
    );
  });

  it('never decodes random bytes into anything but a valid event or a named error (property)', () => {
    const name = 'events: random bytes are rejected cleanly';
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          validateEvent(decodeEvent(bytes));
        } catch (e) {
          expect(['MalformedEventError', 'UnsupportedEventVersionError']).toContain((e as Error).name);
        }
      }),
      propertyOptions(name),
    );
  });
});
