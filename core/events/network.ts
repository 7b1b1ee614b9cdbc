/**
 * Network disruption as a condition. Whoever knows which members are reachable (the membership/gossip layer, or
 * the simulator from its virtual network) calls `update(members, reachable)` from time to time; the watch raises
 * one "network-disruption" warning when peers have been unreachable for longer than a grace period (a reboot or
 * a brief Wi-Fi hiccup is not news), raises it again only when more peers are lost, quietly records peers coming
 * back, and resolves it once every member is reachable again.
 *
 * `since` in the event is when the earliest of the listed peers became unreachable.
 */
import type { BoxId } from '../net.ts';
import type { Clock } from '../ports.ts';
import { conditionKey } from './conditions.ts';
import type { ConditionTracker } from './conditions.ts';
import type { EventEnvelope, NetworkDisruptionPayload } from './types.ts';

export interface NetworkWatchOptions {
  tracker: ConditionTracker;
  clock: Clock;
  /** How long a peer must stay unreachable before it counts. Default 5 minutes. */
  graceMs?: number;
}

export const NETWORK_CONDITION_KEY = conditionKey('network-disruption', 'peers');

export class NetworkWatch {
  readonly #tracker: ConditionTracker;
  readonly #clock: Clock;
  readonly #graceMs: number;
  /** Unreachable peers and since when. */
  readonly #down = new Map<BoxId, number>();

  constructor(options: NetworkWatchOptions) {
    this.#tracker = options.tracker;
    this.#clock = options.clock;
    this.#graceMs = options.graceMs ?? 5 * 60_000;
    const open = this.#tracker.active(NETWORK_CONDITION_KEY);
    if (open && open.kind === 'network-disruption') {
      const p = open.payload as NetworkDisruptionPayload;
      for (const peer of p.peers) this.#down.set(peer, p.since);
    }
  }

  /** Peers currently counted as disrupted (past the grace period), sorted. */
  disrupted(now = this.#clock.now()): BoxId[] {
    return [...this.#down.entries()]
      .filter(([, since]) => now - since >= this.#graceMs)
      .map(([peer]) => peer)
      .sort();
  }

  /**
   * Report the current view: `members` are the other Boxes of the reserve, `reachable` those this Box can talk
   * to now. Returns the event raised, if any.
   */
  async update(members: Iterable<BoxId>, reachable: Iterable<BoxId>): Promise<EventEnvelope | undefined> {
    const now = this.#clock.now();
    const up = new Set(reachable);
    const all = new Set(members);
    for (const peer of [...this.#down.keys()]) if (up.has(peer) || !all.has(peer)) this.#down.delete(peer);
    for (const peer of all) if (!up.has(peer) && !this.#down.has(peer)) this.#down.set(peer, now);

    const peers = this.disrupted(now);
    const open = this.#tracker.active(NETWORK_CONDITION_KEY);
    if (peers.length === 0) {
      if (!open) return undefined;
      // Recovered, or the missing peers are back within grace: resolved once nobody is down at all.
      if (this.#down.size > 0) return undefined;
      return this.#tracker.end(NETWORK_CONDITION_KEY, 'every peer is reachable again');
    }
    const since = Math.min(...peers.map((p) => this.#down.get(p) as number));
    const payload: NetworkDisruptionPayload = { peers, since };
    const draft = { kind: 'network-disruption', severity: 'warning', payload } as const;
    if (!open) return this.#tracker.begin(NETWORK_CONDITION_KEY, draft);
    const before = new Set((open.payload as NetworkDisruptionPayload).peers);
    if (peers.some((p) => !before.has(p))) return this.#tracker.reraise(NETWORK_CONDITION_KEY, draft);
    if (peers.length !== before.size) await this.#tracker.amend(NETWORK_CONDITION_KEY, 'network-disruption', payload);
    return undefined;
  }
}
