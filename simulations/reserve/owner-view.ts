/**
 * The owner's view of a simulated run: the reserve events the Boxes raised (what `reserve events` and the admin
 * page show), in order, each as one line a person can read, plus whether it reached the shared event log.
 */
import { describeEvent } from '../../core/events/describe.ts';
import type { EventEnvelope } from '../../core/events/types.ts';
import { formatMs } from '../sim/trace.ts';
import type { RaisedEvent } from './harness.ts';

export interface OwnerEvent {
  /** Simulated time since the start of the run. */
  atMs: number;
  box: string;
  severity: string;
  kind: string;
  /** One line for a person. */
  text: string;
  /** In the shared event log of a running Box at the end (false: still in its Box's outbox, or its Box is gone). */
  delivered: boolean;
  payload: unknown;
}

const short = (id: string): string => (id.length > 12 ? `…${id.slice(-8)}` : id);

/** One readable line: which Box said it, and what (core/events/describe.ts, as `reserve events` prints it). */
export function describeRaised(e: RaisedEvent): string {
  const envelope = { id: e.id, source: e.box, time: e.at, severity: e.severity, kind: e.kind, payload: e.payload } as unknown as EventEnvelope;
  return `${short(e.box)}: ${describeEvent(envelope)}`;
}

/** The events raised in a run, oldest first, as the owner would read them. */
export function ownerView(raised: readonly RaisedEvent[], delivered: ReadonlySet<string>, epochMs: number): OwnerEvent[] {
  return [...raised]
    .sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((e) => ({
      atMs: e.at - epochMs,
      box: e.box,
      severity: e.severity,
      kind: e.kind,
      text: describeRaised(e),
      delivered: delivered.has(e.id),
      payload: e.payload,
    }));
}

/** One line per event: time, severity, what happened. */
export function formatOwnerView(events: readonly OwnerEvent[], max = 40): string[] {
  const lines = events.slice(0, max).map((e) => `${formatMs(e.atMs).padStart(8)}  ${e.severity.padEnd(7)} ${e.text}${e.delivered ? '' : ' [not in the shared log]'}`);
  if (events.length > max) lines.push(`… and ${events.length - max} more`);
  return lines;
}
