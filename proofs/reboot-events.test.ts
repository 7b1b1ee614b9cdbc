/**
 * What the owner hears when a member goes away, on the production Box in the simulator with the default repair
 * settings (grace 1 h, so a network-disruption warning after 5 min; hysteresis 10 min before the keeper resets a
 * member's absence clock). A reboot is not news: a member back within the warning's grace raises nothing, even
 * though the keeper keeps it on probation for longer. A member away past the grace is reported, and the warning is
 * resolved as soon as it answers again, not after the probation. A connection closing wakes an idle keeper.
 */
import { describe, expect, it } from 'vitest';
import { ReserveSim, SIM_TIMING } from '../simulations/reserve/harness.ts';
import { SimWorld } from '../simulations/sim/world.ts';
import { seedFor } from './support/fc.ts';

const MIN = 60_000;

describe('network disruption warnings on the production Box (simulated)', () => {
  it('a member back within the grace raises nothing; one away longer is raised, and resolved once it answers', async () => {
    const world = new SimWorld({ seed: seedFor('a reboot is not news') });
    // Idle keeper rounds (and their pings) back off to at most a minute here, not the default 30 minutes, so that a
    // member going away in a quiet reserve is noticed within the test's minutes.
    const sim = new ReserveSim(world, { boxes: 3, rf: 2, minimum: 1, timing: { ...SIM_TIMING, idleTickMs: MIN } });
    const ids = await sim.found();
    const [a, b, away] = ids;
    const config = sim.box(a).ledger.state().config.repair;
    expect(config.hysteresisMs).toBeGreaterThan(Math.min(5 * MIN, config.graceMs / 2)); // the probation outlasts the warning's grace
    const disruptions = () => sim.raised.filter((e) => e.kind === 'network-disruption');
    const resolutions = () => sim.raised.filter((e) => e.kind === 'resolved' && (e.payload as { of: string }).of === 'network-disruption');

    // A 2-minute reboot: the others notice (their pings fail) but nothing reaches the owner.
    sim.cluster.crash(away);
    await sim.cluster.runFor(2 * MIN);
    sim.cluster.restart(away);
    await sim.cluster.runFor(20 * MIN);
    expect(disruptions()).toEqual([]);
    expect(resolutions()).toEqual([]);

    // Away for 8 minutes: both others report it once the grace is over.
    sim.cluster.crash(away);
    await sim.cluster.runFor(8 * MIN);
    expect(disruptions().map((e) => e.box).sort()).toEqual([a, b].sort());
    expect(disruptions().every((e) => (e.payload as { peers: string[] }).peers.includes(away))).toBe(true);

    // Back: resolved within two keeper rounds of its return, long before the 10-minute probation ends.
    sim.cluster.restart(away);
    await sim.cluster.runFor(1 * MIN);
    expect(resolutions().map((e) => e.box).sort()).toEqual([a, b].sort());
    expect(disruptions()).toHaveLength(2);
  });

  it('a member whose connection closes is checked at once, not after the idle back-off', async () => {
    const world = new SimWorld({ seed: seedFor('a closed connection wakes the keeper') });
    const sim = new ReserveSim(world, { boxes: 3, rf: 2, minimum: 1 }); // the default idle back-off: up to 30 min
    const [a, b, away] = await sim.found();
    await sim.cluster.runFor(3 * 60 * MIN); // a quiet reserve: every keeper's rounds are 30 min apart by now
    const seen = sim.notices.length;
    const unreachable = () =>
      sim.notices
        .slice(seen)
        .filter((n) => n.notice.type === 'peer-unreachable' && (n.notice as { box: string }).box === away)
        .map((n) => n.box);
    sim.cluster.crash(away);
    sim.box(a).connectionChanged(away); // what the runtime does when libp2p reports the connection closed
    await sim.cluster.runFor(30_000);
    expect(unreachable()).toEqual([a]); // b, not told, has not looked yet
    expect(unreachable()).not.toContain(b);
  });
});
