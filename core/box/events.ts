/**
 * A Box's reserve events: keeper notices become typed events (core/events), written to the durable outbox first and
 * then delivered at least once to the reserve's shared log (a `reserve-event` in the ledger, which every Box
 * replicates) and to a local inbox (what `reserve events` and the admin UI read). Conditions (a peer unreachable, a
 * corrupt block) are opened once and resolved once. Normal events are batched at the shared config's
 * `events.normalFrequencyMs`, read again while a batch waits, so a changed setting applies without a restart.
 */
import type { BoxId } from '../net.ts';
import type { Clock, Random } from '../ports.ts';
import type { KvStore } from '../kv.ts';
import { ConditionTracker, conditionKey } from '../events/conditions.ts';
import { EventDispatcher, type EventRaiser, type RaiseOptions } from '../events/dispatcher.ts';
import { EventInbox } from '../events/inbox.ts';
import { humanDuration } from '../events/describe.ts';
import { sharedLogSink } from '../events/sinks.ts';
import { toStoredEvent, type EventDraft, type EventEnvelope, type EventKind } from '../events/types.ts';
import type { KeeperNotice } from '../keeper/keeper.ts';
import type { ReserveLedger } from '../state/ledger.ts';

export interface BoxEventsOptions {
  id: BoxId;
  kv: KvStore;
  clock: Clock;
  random: Random;
  ledger: ReserveLedger;
  /** How often normal events go out. Default: the shared config's events.normalFrequencyMs, followed as it
   * changes. */
  batchIntervalMs?: number | (() => number);
  /** A waiting batch re-reads a changing interval this often (default 60 s). */
  batchRecheckMs?: number;
  /** Make the ledger durable; the shared-log sink acknowledges a batch only after this resolves. */
  persist: () => Promise<void>;
  /** Every event this Box raised, once durable (for tests and the simulator's delivery check). */
  onRaised?: (e: EventEnvelope) => void;
  onError?: (e: unknown) => void;
  /** How long a peer must stay unreachable before a network-disruption warning (default: half the shared
   * config's repair grace, at most 5 min). */
  disruptionGraceMs?: number;
}

export class BoxEvents {
  readonly inbox = new EventInbox({ id: 'inbox' });
  readonly #o: BoxEventsOptions;
  #dispatcher!: EventDispatcher;
  #conditions!: ConditionTracker;
  /** Peers unreachable but still within the disruption grace: cancels their pending warning. */
  readonly #pending = new Map<BoxId, () => void>();
  /** Raises through the dispatcher and reports every raised event to `onRaised`: conditions, health and limits
   * raise through it. */
  readonly raiser: EventRaiser;

  constructor(options: BoxEventsOptions) {
    this.#o = options;
    const self = this;
    this.raiser = {
      get kv() {
        return self.#o.kv;
      },
      async raise<K extends EventKind>(draft: EventDraft<K>, raiseOptions?: RaiseOptions): Promise<EventEnvelope<K>> {
        const e = await self.#dispatcher.raise(draft, raiseOptions);
        self.#o.onRaised?.(e);
        return e;
      },
    };
  }

  get dispatcher(): EventDispatcher {
    return this.#dispatcher;
  }

  /** The Box's open conditions (durable; each raised once and resolved once). */
  get conditions(): ConditionTracker {
    return this.#conditions;
  }

  async open(): Promise<void> {
    const o = this.#o;
    const log = sharedLogSink({
      append: async (events) => {
        for (const e of events) o.ledger.publish('reserve-event', { event: toStoredEvent(e) });
        await o.persist(); // acknowledged only once the ledger holding them is on disk
      },
    });
    this.#dispatcher = await EventDispatcher.open({
      kv: o.kv,
      clock: o.clock,
      random: o.random,
      source: o.id,
      sinks: [log, this.inbox],
      batchIntervalMs: o.batchIntervalMs ?? (() => o.ledger.state().config.events.normalFrequencyMs),
      batchRecheckMs: o.batchRecheckMs,
      onError: (e) => o.onError?.(e),
    });
    this.#conditions = await ConditionTracker.open(this.raiser, { onError: (e) => o.onError?.(e) });
  }

  async close(): Promise<void> {
    for (const cancel of this.#pending.values()) cancel();
    this.#pending.clear();
    await this.#dispatcher?.close();
  }

  /** How long a peer must stay unreachable before a network-disruption warning: half the repair grace period,
   * at most 5 minutes (so the warning always comes before the data is moved). */
  #disruptionGraceMs(): number {
    if (this.#o.disruptionGraceMs !== undefined) return this.#o.disruptionGraceMs;
    return Math.min(5 * 60_000, this.#o.ledger.state().config.repair.graceMs / 2);
  }

  /** Drop a warning still waiting out its grace; true when there was one (nothing was raised). */
  #cancelPending(box: BoxId): boolean {
    const cancel = this.#pending.get(box);
    if (!cancel) return false;
    cancel();
    this.#pending.delete(box);
    return true;
  }

  /** Turn a keeper notice into events. Never throws: a failure to raise is reported through onError. */
  notice(n: KeeperNotice, context: { chunksOf?: (root: string) => number } = {}): void {
    void this.#notice(n, context).catch((e) => this.#o.onError?.(e));
  }

  async #notice(n: KeeperNotice, context: { chunksOf?: (root: string) => number }): Promise<void> {
    const id = this.#o.id;
    const c = this.#conditions;
    const d = this.raiser;
    switch (n.type) {
      case 'peer-unreachable': {
        // A reboot or a Box restarting after `reserve join` is not news: the warning goes out only if the peer is
        // still unreachable after the disruption grace.
        if (this.#pending.has(n.box)) return;
        const raise = () => {
          this.#pending.delete(n.box);
          void c.begin(conditionKey('network-disruption', n.box), { kind: 'network-disruption', severity: 'warning', payload: { peers: [n.box], since: n.since } }).catch((e) => this.#o.onError?.(e));
        };
        const grace = this.#disruptionGraceMs();
        if (grace <= 0) return raise();
        this.#pending.set(n.box, this.#o.clock.setTimer(grace, raise));
        return;
      }
      case 'peer-answered':
      case 'peer-reachable':
        // Answering is enough for the owner; the keeper's absence clock has its own probation (hysteresis).
        if (this.#cancelPending(n.box)) return;
        await c.end(conditionKey('network-disruption', n.box), 'reachable again');
        return;
      case 'peer-departed':
        this.#cancelPending(n.box);
        await c.end(conditionKey('network-disruption', n.box), 'no longer a member of the reserve');
        return;
      case 'declared-dead':
        this.#cancelPending(n.box);
        await c.end(conditionKey('network-disruption', n.box), 'declared dead; its data is being re-replicated');
        await d.raise({ kind: 'keeper-removed', severity: 'warning', payload: { keeper: n.box, by: id, reason: `unreachable for ${humanDuration(n.unreachableMs)}` } });
        return;
      case 'corrupt-block': {
        const key = conditionKey('keeper-health', 'disk-corruption', n.cid);
        if (n.action === 'quarantined') {
          await c.begin(key, { kind: 'keeper-health', severity: 'warning', payload: { metric: 'disk-corruption', keeper: id, blocks: [n.cid], totalBlocks: 1 } });
          return;
        }
        if (n.action === 'repaired') {
          await c.end(key, 're-fetched a healthy copy');
          return;
        }
        await d.raise({ kind: 'unresolved-conflict', severity: 'failure', payload: { block: n.cid, snapshots: n.snapshots ?? [], reason: 'no healthy copy answered; every copy found was corrupt or missing' } });
        return;
      }
      case 'snapshot-lost':
        await d.raise({
          kind: 'unacceptable-replication',
          severity: 'failure',
          payload: { snapshots: [{ snapshot: n.root, belowMinimum: context.chunksOf?.(n.root) ?? 0, belowTarget: context.chunksOf?.(n.root) ?? 0, lost: context.chunksOf?.(n.root) ?? 0 }] },
        });
        return;
      case 'chunks-lost':
        await d.raise({
          kind: 'unacceptable-replication',
          severity: 'failure',
          payload: { snapshots: [{ snapshot: n.root, belowMinimum: n.lost, belowTarget: n.lost, lost: n.lost, files: n.files }] },
        });
        return;
      default:
        return undefined;
    }
  }

  /**
   * This Box is leaving the reserve: say so, and deliver everything it raised to the shared log now, while it can
   * (a Box that has left publishes nothing more).
   */
  async leaving(): Promise<void> {
    const id = this.#o.id;
    await this.raiser.raise({ kind: 'keeper-removed', severity: 'normal', payload: { keeper: id, by: id, reason: 'its blocks were handed over first' } });
    await this.#dispatcher.flush();
  }

  /** This Box decommissioned `box` (the owner removed it for good). */
  async decommissioned(box: BoxId, reason?: string): Promise<void> {
    const why = `decommissioned${reason ? `: ${reason}` : ''}; the reserve secret was rotated`;
    await this.raiser.raise({ kind: 'keeper-removed', severity: 'warning', payload: { keeper: box, by: this.#o.id, reason: why } });
    await this.#dispatcher.flush();
  }

  /** This Box joined the reserve. */
  async joined(): Promise<void> {
    await this.raiser.raise({ kind: 'keeper-added', severity: 'normal', payload: { keeper: this.#o.id } });
  }
}

