/**
 * Retention of the shared event log (core/events/retention.ts): within the bound always; warnings, failures and
 * resolutions kept whenever they fit next to one summary; the newest normal events kept, older ones summarized;
 * counts conserved; the result independent of input order, and stable under a second compaction.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compactEvents, eventCount } from '../core/events/retention.ts';
import { compareEvents, validateEvent } from '../core/events/types.ts';
import type { EventEnvelope, Severity } from '../core/events/types.ts';
import { propertyOptions } from './support/fc.ts';

interface Spec {
  source: number;
  time: number;
  severity: Severity;
  kind: 0 | 1 | 2;
  resolve: boolean;
}

/** Build a log from specs: per-source seqs; a warning/failure spec with `resolve` gets a later resolution. */
function build(specs: readonly Spec[]): EventEnvelope[] {
  const seqs = [0, 0, 0];
  const out: EventEnvelope[] = [];
  for (const s of specs) {
    const source = `box${s.source}`;
    const seq = ++seqs[s.source];
    const id = `${source}/${seq}`;
    if (s.severity === 'normal') {
      out.push(
        s.kind === 0
          ? { id, source, seq, time: s.time, severity: 'normal', kind: 'keeper-added', payload: { keeper: `k${seq}` } }
          : { id, source, seq, time: s.time, severity: 'normal', kind: 'keeper-removed', payload: { keeper: `k${seq}` } },
      );
      continue;
    }
    out.push({ id, source, seq, time: s.time, severity: s.severity, kind: 'network-disruption', payload: { peers: ['x'], since: s.time } });
    if (s.resolve) {
      const rseq = ++seqs[s.source];
      out.push({
        id: `${source}/${rseq}`,
        source,
        seq: rseq,
        time: s.time + 1,
        severity: 'normal',
        kind: 'resolved',
        payload: { of: 'network-disruption', condition: `c${seq}`, resolves: id, since: s.time },
      });
    }
  }
  return out;
}

const spec: fc.Arbitrary<Spec> = fc.record({
  source: fc.integer({ min: 0, max: 2 }),
  time: fc.integer({ min: 0, max: 1_000 }),
  severity: fc.constantFrom<Severity>('normal', 'normal', 'normal', 'normal', 'warning', 'failure'),
  kind: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
  resolve: fc.boolean(),
});

const isCritical = (e: EventEnvelope): boolean => e.severity !== 'normal' || e.kind === 'resolved';

describe('compactEvents', () => {
  it('returns a log that fits unchanged (in canonical order)', () => {
    const log = build([
      { source: 0, time: 5, severity: 'normal', kind: 0, resolve: false },
      { source: 1, time: 1, severity: 'warning', kind: 0, resolve: true },
    ]);
    expect(compactEvents(log, 10)).toEqual([...log].sort(compareEvents));
  });

  it('summarizes the oldest normal events per source and kind, keeping warnings and their resolutions', () => {
    const specs: Spec[] = [];
    for (let i = 0; i < 20; i++) specs.push({ source: i % 2, time: i * 10, severity: i === 7 ? 'failure' : 'normal', kind: (i % 3 === 0 ? 1 : 0) as 0 | 1, resolve: true });
    const log = build(specs);
    const out = compactEvents(log, 10);
    expect(out.length).toBeLessThanOrEqual(10);
    expect(out.filter(isCritical).map((e) => e.id)).toEqual(log.filter(isCritical).map((e) => e.id));
    const summaries = out.filter((e) => e.kind === 'events-summary');
    expect(summaries.length).toBeGreaterThan(0);
    for (const s of summaries) {
      expect(() => validateEvent(s)).not.toThrow();
      if (s.kind === 'events-summary') {
        expect(s.payload.firstSeq).toBeDefined();
        expect(s.payload.lastTime).toBeGreaterThanOrEqual(s.payload.firstTime);
      }
    }
    expect(eventCount(out)).toBe(log.length);
  });

  it('rejects a bound below 1', () => {
    expect(() => compactEvents([], 0)).toThrow(expect.objectContaining({ name: 'InvalidInputError' }));
  });

  it('never exceeds the bound, conserves counts, and keeps what it promises (property)', () => {
    const name = 'events: retention bound, conservation and priorities';
    fc.assert(
      fc.property(fc.array(spec, { maxLength: 120 }), fc.integer({ min: 1, max: 60 }), (specs, bound) => {
        const log = build(specs);
        const out = compactEvents(log, bound);
        expect(out.length).toBeLessThanOrEqual(bound);
        expect(eventCount(out)).toBe(log.length);
        for (const e of out) validateEvent(e);
        const critical = log.filter(isCritical);
        const keptIds = new Set(out.map((e) => e.id));
        // Warnings, failures and resolutions survive whenever they fit beside one summary.
        if (critical.length + 1 <= bound) for (const e of critical) expect(keptIds.has(e.id), e.id).toBe(true);
        // The kept normal events are the newest ones: none older than any folded one.
        const keptNormal = out.filter((e) => e.kind !== 'events-summary' && !isCritical(e));
        const folded = log.filter((e) => !isCritical(e) && !keptIds.has(e.id));
        if (keptNormal.length > 0 && folded.length > 0) {
          const oldestKept = [...keptNormal].sort(compareEvents)[0];
          for (const f of folded) expect(compareEvents(f, oldestKept)).toBeLessThan(0);
        }
      }),
      propertyOptions(name, { numRuns: 300 }),
    );
  });

  it('does not depend on input order, and a second compaction changes nothing (property)', () => {
    const name = 'events: retention is order-independent and idempotent';
    fc.assert(
      fc.property(
        fc.array(spec, { maxLength: 80 }).chain((specs) => fc.tuple(fc.constant(build(specs)), fc.shuffledSubarray(build(specs), { minLength: build(specs).length }))),
        fc.integer({ min: 1, max: 40 }),
        ([log, shuffled], bound) => {
          const once = compactEvents(log, bound);
          expect(compactEvents(shuffled, bound)).toEqual(once);
          expect(compactEvents(once, bound)).toEqual(once);
          // Duplicates (a log merged twice) change nothing either.
          expect(compactEvents([...log, ...shuffled], bound)).toEqual(once);
          // Compacting further from an already compacted log conserves counts too.
          const tighter = Math.max(1, bound >> 1);
          expect(eventCount(compactEvents(once, tighter))).toBe(log.length);
          expect(compactEvents(once, tighter).length).toBeLessThanOrEqual(tighter);
        },
      ),
      propertyOptions(name, { numRuns: 200 }),
    );
  });
});
