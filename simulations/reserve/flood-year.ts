/**
 * The flood over a simulated year, for the benchmark: 5 Boxes at RF 3 hold a ~10,000-chunk backup; monthly
 * incremental backups; on day 30 the home Box is bricked; on day 31 a factory-new Box joins with an invite and
 * restores everything byte-identical; the reserve runs on to day 365 with weekly integrity sweeps. Returns what
 * happened and how long it took in wall time.
 */
import { SimWorld } from '../sim/world.ts';
import { ReserveSim } from './harness.ts';
import { generateTree, mutateTree, type MemNode } from './memtree.ts';

const DAY = 24 * 3_600_000;

export interface FloodYearResult {
  chunks: number;
  snapshots: number;
  virtualDays: number;
  wallMs: number;
  events: number;
  messages: number;
  restoreProblems: string[];
  underReplicatedAtEnd: number;
  /** Identifies the whole run: the same seed must give the same hash (speed work must not change it). */
  traceHash: string;
}

export async function floodYear(seed = 1, files = 2500): Promise<FloodYearResult> {
  const started = performance.now();
  // A year of weekly integrity sweeps reads every block 52 times: no defensive copies of payloads and reads
  // (they guard against aliasing bugs, which the scenario tests catch with copies on), and with reads not copied the
  // simulated ChunkingService remembers each stored buffer's digest (see simChunking). Nothing computed changes: the
  // trace hash is the same as with copies on.
  const world = new SimWorld({ seed, net: { copyPayloads: false } });
  const sim = new ReserveSim(world, { boxes: 5, rf: 3, disk: { copyReads: false } });
  const ids = await sim.found();
  const home = ids[0];
  const tree = generateTree(world.rng.fork('home'), { files, meanBytes: 16_000, duplicates: 0.02 });
  const originals = new Map<string, MemNode>();
  const snap = async () => {
    const frozen = structuredClone(tree);
    originals.set(await sim.backup(home, frozen), frozen);
  };
  await snap();
  let day = 0;
  let fresh = '';
  const days = Number(process.env.FLOOD_DAYS ?? 365);
  while (day < days) {
    await sim.cluster.runFor(DAY);
    day++;
    if (day % 30 === 0 && day !== 30 && sim.cluster.box(home).state === 'up') {
      mutateTree(world.rng.fork(`edit/${day}`), tree, 0.02);
      await snap();
    }
    if (day === 30) sim.cluster.brick(home);
    if (day === 31) {
      fresh = sim.addBox(sim.invite(sim.upBoxes()[0].id));
      await sim.cluster.runUntil(() => sim.converged() && sim.activeIds().includes(fresh), { maxMs: DAY });
    }
  }
  const restoreProblems = await sim.restoreAll(fresh, originals);
  const u = await sim.underReplicated();
  const stats = world.net.stats();
  return {
    chunks: u.chunks,
    snapshots: originals.size,
    virtualDays: day,
    wallMs: performance.now() - started,
    events: world.scheduler.eventsRun ?? 0,
    messages: stats.total.delivered,
    restoreProblems,
    underReplicatedAtEnd: u.below,
    traceHash: world.trace.hash(),
  };
}
