/**
 * A Box's reserve events: keeper notices become typed events (core/events), written to the durable outbox first and
 * then delivered at least once to the reserve's shared log (a `reserve-event` in the ledger, which every Box
 * replicates) and to a local inbox (what `reserve events` and the admin UI read). Conditions (a peer unreachable, a
 * corrupt block) are opened once and resolved once.
 */
import type { BoxId } from '../net.ts';
import type { Clock, Random } from '../ports.ts';
import type { KvStore } from '../kv.ts';
import { ConditionTracker, conditionKey } from '../events/conditions.ts';
import { EventDispatcher } from '../events/dispatcher.ts';
import { EventInbox } from '../events/inbox.ts';
import { sharedLogSink } from '../events/sinks.ts';
import { toStoredEvent, type EventEnvelope } from '../events/types.ts';
import type { KeeperNotice } from '../keeper/keeper.ts';
import type { ReserveLedger } from '../state/ledger.ts';

export interface BoxEventsOptions {
  id: BoxId;
  kv: KvStore;
  clock: Clock;
  random: Random;
  ledger: ReserveLedger;
  batchIntervalMs: number;
  /** Make the ledger durable; the shared-log sink acknowledges a batch only after this resolves. */
  persist: () => Promise<void>;
  /** Every event this Box raised, once durable (for tests and the simulator's delivery check). */
  onRaised?: (e: EventEnvelope) => void;
  onError?: (e: unknown) => void;
}

export class BoxEvents {
  readonly inbox = new EventInbox({ id: 'inbox' });
  readonly #o: BoxEventsOptions;
  #dispatcher!: EventDispatcher;
  #conditions!: ConditionTracker;

  constructor(options: BoxEventsOptions) {
    this.#o = options;
  }

  get dispatcher(): EventDispatcher {
    return this.#dispatcher;
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
      batchIntervalMs: o.batchIntervalMs,
      onError: (e) => o.onError?.(e),
    });
    this.#conditions = await ConditionTracker.open(this.#dispatcher);
  }

  async close(): Promise<void> {
    await this.#dispatcher?.close();
  }

  /** Turn a keeper notice into events. Never throws: a failure to raise is reported through onError. */
  notice(n: KeeperNotice, context: { chunksOf?: (root: string) => number } = {}): void {
    void this.#notice(n, context).catch((e) => this.#o.onError?.(e));
  }

  async #raised(e: EventEnvelope | undefined): Promise<void> {
    if (e) this.#o.onRaised?.(e);
  }

  async #notice(n: KeeperNotice, context: { chunksOf?: (root: string) => number }): Promise<void> {
    const id = this.#o.id;
    const c = this.#conditions;
    const d = this.#dispatcher;
    switch (n.type) {
      case 'peer-unreachable':
        return this.#raised(await c.begin(conditionKey('network-disruption', n.box), { kind: 'network-disruption', severity: 'warning', payload: { peers: [n.box], since: n.since } }));
      case 'peer-reachable':
        return this.#raised(await c.end(conditionKey('network-disruption', n.box), 'reachable again'));
      case 'peer-departed':
        return this.#raised(await c.end(conditionKey('network-disruption', n.box), 'no longer a member of the reserve'));
      case 'declared-dead':
        await this.#raised(await c.end(conditionKey('network-disruption', n.box), 'declared dead; its data is being re-replicated'));
        return this.#raised(await d.raise({ kind: 'keeper-removed', severity: 'warning', payload: { keeper: n.box, by: id, reason: `unreachable for ${Math.round(n.unreachableMs / 60_000)} min` } }));
      case 'corrupt-block': {
        const key = conditionKey('keeper-health', 'disk-corruption', n.cid);
        if (n.action === 'quarantined') {
          return this.#raised(await c.begin(key, { kind: 'keeper-health', severity: 'warning', payload: { metric: 'disk-corruption', keeper: id, blocks: [n.cid], totalBlocks: 1 } }));
        }
        if (n.action === 'repaired') return this.#raised(await c.end(key, 're-fetched a healthy copy'));
        return this.#raised(await d.raise({ kind: 'unresolved-conflict', severity: 'failure', payload: { block: n.cid, snapshots: [], reason: 'no healthy copy answered; every copy found was corrupt or missing' } }));
      }
      case 'snapshot-lost':
        return this.#raised(
          await d.raise({
            kind: 'unacceptable-replication',
            severity: 'failure',
            payload: { snapshots: [{ snapshot: n.root, belowMinimum: context.chunksOf?.(n.root) ?? 0, belowTarget: context.chunksOf?.(n.root) ?? 0, lost: context.chunksOf?.(n.root) ?? 0 }] },
          }),
        );
      default:
        return undefined;
    }
  }

  /** This Box joined the reserve. */
  async joined(): Promise<void> {
    await this.#raised(await this.#dispatcher.raise({ kind: 'keeper-added', severity: 'normal', payload: { keeper: this.#o.id } }));
  }
}
