/** describeEvent: one readable sentence per event kind, with the numbers a person needs and no raw ids or ms. */
import { describe, expect, it } from 'vitest';
import { describeEvent } from '../core/events/describe.ts';
import type { EventEnvelope, EventKind, PayloadByKind } from '../core/events/types.ts';

const T = 1_800_000_000_000;
const A = '12D3KooWAvKSYVsxrWkxWXuMi8RDZqSaqQvKeTv3jZWwSg8jVRuD';
const B = '12D3KooWSCoFwKSnksbL3HgCDQtQYur5bPCkvJWwDjBXGdGKtCHM';
const SNAP = 'bafyreienxnrkcvfojgkqgw3gzwz5myoy4zrw3gyfz63vpjhczug5iichjy';

function ev<K extends EventKind>(kind: K, payload: PayloadByKind[K], severity: EventEnvelope['severity'] = 'warning'): EventEnvelope {
  return { id: `${A}/1`, source: A, seq: 1, time: T, severity, kind, payload } as unknown as EventEnvelope;
}

const names = new Map([[B, 'Parents']]);

describe('describeEvent', () => {
  const cases: Array<[EventEnvelope, string]> = [
    [ev('network-disruption', { peers: [B], since: T - 7 * 60_000 }), 'cannot reach Parents for 7 min'],
    [ev('keeper-removed', { keeper: B, by: A, reason: 'unreachable for 2 h' }), 'Parents was removed from the reserve (unreachable for 2 h) by …Sg8jVRuD'],
    [ev('keeper-removed', { keeper: B, by: B, reason: 'its blocks were handed over first' }, 'normal'), 'Parents left the reserve (its blocks were handed over first)'],
    [ev('keeper-added', { keeper: B }, 'normal'), 'Parents joined the reserve'],
    [ev('resolved', { of: 'network-disruption', condition: 'c', resolves: `${A}/1`, since: T - 30_000, note: 'reachable again' }, 'normal'), 'back to normal after 30 s: network-disruption (reachable again)'],
    [
      ev('unacceptable-replication', { snapshots: [{ snapshot: SNAP, belowMinimum: 12, belowTarget: 40, lost: 3, files: ['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg'] }] }, 'failure'),
      'snapshot …hczug5iichjy: 3 blocks LOST, 12 below the minimum copies, 40 below target; files affected: a.jpg, b.jpg, c.jpg, and 1 more',
    ],
    [ev('unresolved-conflict', { block: SNAP, snapshots: [SNAP], reason: 'every copy is corrupt' }, 'failure'), 'block …hczug5iichjy cannot be repaired: every copy is corrupt; needed by 1 snapshot (…hczug5iichjy)'],
    [ev('keeper-health', { metric: 'memory', keeper: A, usedBytes: 7.5 * 2 ** 30, totalBytes: 8 * 2 ** 30, usedFraction: 0.9375, threshold: 0.9 }), '…Sg8jVRuD uses 94% of its memory (7.5 GiB of 8.0 GiB)'],
    [ev('keeper-health', { metric: 'disk-corruption', keeper: B, blocks: [SNAP], totalBlocks: 1 }), "1 corrupt block found on Parents's disk, quarantined and being re-fetched"],
    [
      ev('limitation-imminent', { limitation: 'disk-capacity', subject: B, value: 900 * 2 ** 30, limit: 2 ** 40, eta: T + 6 * 86_400_000, method: 'holt-linear', slope: 1, windowMs: 7 * 86_400_000 }),
      'disk capacity of Parents is 900.0 GiB of 1.0 TiB; at its current growth it reaches the limit in 6 days',
    ],
    [ev('limitation-encountered', { limitation: 'files-per-directory', subject: 'Photos/2024', value: 120_000, limit: 100_000 }), 'files in one directory of Photos/2024 is 120000, over the limit of 100000'],
  ];
  it.each(cases.map(([e, s]) => [e.kind, e, s] as const))('%s', (_kind, e, sentence) => {
    expect(describeEvent(e, { name: (id) => names.get(id) })).toBe(sentence);
  });

  it('never prints undefined, NaN or raw objects', () => {
    for (const [e] of cases) expect(describeEvent(e)).not.toMatch(/undefined|NaN|\[object/);
  });
});
