/**
 * Named, composable resilience scenarios over the production Box in the simulator. Each runs a safety phase
 * (work plus faults, checkers after every step), heals, then a liveness phase with a stated bound. The same seed
 * replays the same run exactly (see simulations/sim/runner.ts for the replay line and exit codes).
 *
 *   flood             4 Boxes RF 3; the home Box is bricked; a factory-new Box joins with an invite and restores
 *   add-box           a Box joins a settled reserve: it receives its share, the others drop theirs after it confirms
 *   remove-box        a Box leaves gracefully: its new keepers copy its blocks before it goes
 *   decommission      a Box goes missing and is removed from another: its share is re-made at once, and it cannot
 *                     rejoin when it turns up
 *   bitrot            random bytes flipped on random Boxes: one integrity sweep finds and repairs every block
 *   partition         two halves back up independently, then heal: everything converges and is protected
 *   churn             Boxes crash and restart while backups run
 *   crash-mid-backup  the author crashes in the middle of a backup; older snapshots stay restorable, the next
 *                     backup succeeds, leftovers are collected
 *   swarm             faults and their rates drawn from the seed (some kinds off entirely), VOPR style
 */
import { InvalidInputError } from '../../core/errors.ts';
import type { BoxId } from '../../core/net.ts';
import { option, type Checker, type Overrides, type RunContext, type Scenario } from '../sim/runner.ts';
import { FaultInjector, swarmOptions, type SwarmOptions } from '../sim/faults.ts';
import type { SimRandom } from '../sim/rng.ts';
import { ReserveSim, type ChangeMark, type ChangeReport, type Notice } from './harness.ts';
import { ownerView } from './owner-view.ts';
import { formatMs } from '../sim/trace.ts';
import { MemSourceTree, generateTree, mutateTree, type MemNode } from './memtree.ts';

export interface ReserveOptions {
  boxes: number;
  rf: number;
  minimum: number;
  /** Files in the first backup (a chunk is ~4 KiB in the simulator; mean file 12 KiB gives ~3 chunks per file). */
  files: number;
  meanBytes: number;
}

export interface ReserveState {
  sim: ReserveSim;
  /** Snapshot root -> the tree it was taken of. */
  originals: Map<string, MemNode>;
  /** The tree each Box backs up (its "home"). */
  homes: Map<BoxId, MemNode>;
  /** Snapshots that reached the minimum replication factor at some check. */
  protectedRoots: Set<string>;
  /** Boxes lost for good (bricked or removed suddenly). */
  lost: BoxId[];
  restoreProblems: string[] | null;
  restoredOn?: BoxId;
  notes: string[];
  /** Chunk copies per root at the start of a membership change (add/remove), for the no-dip check. */
  baseline?: Map<string, number>;
  injector?: FaultInjector<any, any>;
  rotted?: Array<{ box: BoxId; cid: string }>;
  swarm?: SwarmOptions;
  /** Where things stood when the change under test began (first step; bitrot: after the rot). */
  mark?: ChangeMark;
  /** What the change cost (computed once every liveness checker passes). */
  change?: ChangeReport;
  /** Moments a chunk had fewer copies than before the change (seen at the delete that caused it). */
  dips: string[];
  /** Chunks whose every copy was corrupted on purpose (conflict). */
  conflicted?: string[];
  /** decommission: the removed Box, and the chunks still short of copies 15 min after its removal. */
  removed?: BoxId;
  shortAfterRemoval?: number;
}

function baseOptions(rng: SimRandom, o: Overrides, defaults: Partial<ReserveOptions> = {}): ReserveOptions {
  const boxes = option(o, 'boxes', defaults.boxes ?? 4);
  const rf = option(o, 'rf', defaults.rf ?? 3);
  const minimum = option(o, 'minimum', defaults.minimum ?? Math.min(2, rf));
  const files = option(o, 'files', defaults.files ?? 60 + rng.int(120));
  const meanBytes = option(o, 'meanBytes', defaults.meanBytes ?? 12_000);
  if (!(boxes >= 1 && boxes <= 64)) throw new InvalidInputError(`--boxes must be 1-64, got ${boxes}`);
  if (!(rf >= 1 && rf <= boxes)) throw new InvalidInputError(`--rf must be between 1 and --boxes (${boxes}), got ${rf}`);
  if (!(minimum >= 1 && minimum <= rf)) throw new InvalidInputError(`--minimum must be between 1 and --rf (${rf}), got ${minimum}`);
  if (!(files >= 1 && files <= 200_000)) throw new InvalidInputError(`--files must be 1-200000, got ${files}`);
  return { boxes, rf, minimum, files, meanBytes };
}

async function setupReserve(ctx: RunContext<ReserveOptions>, backupOn = 1): Promise<ReserveState> {
  const o = ctx.options;
  const sim = new ReserveSim(ctx.world, { boxes: o.boxes, rf: o.rf, minimum: o.minimum });
  const ids = await sim.found();
  const state: ReserveState = { sim, originals: new Map(), homes: new Map(), protectedRoots: new Set(), lost: [], restoreProblems: null, notes: [], dips: [] };
  for (const id of ids.slice(0, backupOn)) {
    const tree = generateTree(ctx.rng.fork(`home/${id}`), { files: o.files, meanBytes: o.meanBytes });
    state.homes.set(id, tree);
    await backupHome(state, id);
  }
  await settleReplication(state, 1_800_000);
  return state;
}

/** Back up Box `id`'s home tree (a snapshot of its current contents) and remember what it held. */
async function backupHome(state: ReserveState, id: BoxId): Promise<string | null> {
  const tree = state.homes.get(id);
  if (!tree) return null;
  const frozen = cloneTree(tree);
  const root = await state.sim.backup(id, frozen);
  state.originals.set(root, frozen);
  return root;
}

function cloneTree(n: MemNode): MemNode {
  if (n.kind === 'dir') return { ...n, children: new Map([...n.children].map(([k, v]) => [k, { name: v.name, node: cloneTree(v.node) }])) };
  return { ...n };
}

async function settleReplication(state: ReserveState, maxMs: number): Promise<void> {
  const sim = state.sim;
  let ok = false;
  const poll = async () => {
    const u = await sim.underReplicated();
    ok = u.below === 0 && sim.converged();
  };
  await poll();
  for (let t = 0; !ok && t < maxMs; t += 30_000) {
    await sim.cluster.runFor(30_000);
    await poll();
  }
}

// ------------------------------------------------------------------------------------------------ checkers

/** Protected snapshots keep a copy of every chunk while at most RF-1 Boxes are lost at once. */
const noLoss: Checker<ReserveOptions, ReserveState> = {
  name: 'no-protected-snapshot-lost',
  kind: 'safety',
  async check(state, ctx) {
    const sim = state.sim;
    const copies = state.sim.intactCopies();
    const problems: string[] = [];
    for (const root of state.originals.keys()) {
      const chunks = await sim.chunksOf(root);
      if (!chunks) {
        if (state.protectedRoots.has(root) && state.lost.length < ctx.options.rf) problems.push(`protected snapshot ${root.slice(-8)} lost a manifest block`);
        continue;
      }
      let min = Infinity;
      for (const c of chunks) if (!state.conflicted?.includes(c)) min = Math.min(min, copies.get(c) ?? 0);
      if (min >= ctx.options.minimum) state.protectedRoots.add(root);
      if (state.protectedRoots.has(root) && min === 0 && state.lost.length < ctx.options.rf) {
        problems.push(`protected snapshot ${root.slice(-8)} lost a chunk with only ${state.lost.length} Box(es) lost (rf ${ctx.options.rf})`);
      }
    }
    return problems;
  },
};

const converged: Checker<ReserveOptions, ReserveState> = {
  name: 'state-converged',
  kind: 'liveness',
  check(state) {
    return state.sim.converged() ? undefined : 'running Boxes disagree on members, config or catalog';
  },
};

const samePlacement: Checker<ReserveOptions, ReserveState> = {
  name: 'same-placement',
  kind: 'safety',
  check(state) {
    const boxes = state.sim.upBoxes();
    const groups = new Map<string, string>();
    for (const b of boxes) {
      const s = b.state();
      const sig = JSON.stringify([[...s.members.values()].map((m) => [m.id, m.status, m.capacity]).sort(), s.config.replication]);
      const probe = b.keeper.placement().place(new Uint8Array(32).fill(7)).join(',');
      const seen = groups.get(sig);
      if (seen !== undefined && seen !== probe) return `two Boxes with the same state place a chunk differently (${seen} vs ${probe})`;
      groups.set(sig, probe);
    }
  },
};

/**
 * Every chunk back at the target number of copies, except in snapshots the reserve has reported lost (in whole or
 * in part): a snapshot whose only copies were on a Box bricked before it was protected cannot come back. Losing a
 * protected one is the safety checker's business (noLoss); a loss nobody reported still fails here.
 */
const fullyReplicated: Checker<ReserveOptions, ReserveState> = {
  name: 'fully-replicated',
  kind: 'liveness',
  async check(state) {
    const u = await state.sim.underReplicated(state.sim.reportedLost());
    if (u.below > 0) return `${u.below} of ${u.chunks} chunks below the target replication factor (${u.lost} with no copy, not reported lost)`;
  },
};

/** Every snapshot not reported lost restores byte-identical on a running Box (the new one, when there is one). */
const restorable: Checker<ReserveOptions, ReserveState> = {
  name: 'every-snapshot-restores',
  kind: 'liveness',
  async check(state) {
    const sim = state.sim;
    // Restoring everything is the expensive check: only once the cheap ones pass.
    const lost = sim.reportedLost(); // lost before they were protected (fullyReplicated tells those apart)
    if (!sim.converged() || (await sim.underReplicated(lost)).below > 0) return 'waiting for convergence and replication';
    const on = state.restoredOn && sim.cluster.box(state.restoredOn).state === 'up' ? state.restoredOn : sim.upBoxes()[0]?.id;
    if (!on) return 'no running Box';
    const problems = await sim.restoreAll(on, new Map([...state.originals].filter(([root]) => !lost.has(root))));
    state.restoreProblems = problems;
    return problems;
  },
};

const noCopyDip: Checker<ReserveOptions, ReserveState> = {
  name: 'no-chunk-below-its-copies-before-the-change',
  kind: 'safety',
  check(state) {
    if (state.dips.length) return state.dips;
    if (!state.baseline) return;
    const now = state.sim.intactCopies();
    const problems: string[] = [];
    for (const [cid, before] of state.baseline) {
      const n = now.get(cid) ?? 0;
      if (n < before) problems.push(`chunk ${cid.slice(-8)} had ${before} copies before the change and has ${n}`);
      if (problems.length > 5) break;
    }
    return problems;
  },
};

const eventsDelivered: Checker<ReserveOptions, ReserveState> = {
  name: 'every-dispatched-event-delivered',
  kind: 'liveness',
  check(state) {
    const missing = state.sim.undeliveredEvents();
    if (missing.length) return [`${missing.length} raised events not yet in every running Box's shared log`, ...missing.slice(0, 3)];
  },
};

/** Last liveness checker: once everything else holds, measure what the change cost (never fails). */
const changeReport: Checker<ReserveOptions, ReserveState> = {
  name: 'change-report',
  kind: 'liveness',
  async check(state) {
    if (state.mark && !state.change) state.change = await state.sim.report(state.mark);
  },
};

const LIVENESS = [converged, fullyReplicated, eventsDelivered];
const SAFETY = [noLoss, samePlacement];

function metrics(state: ReserveState, ctx: RunContext<ReserveOptions>): Record<string, unknown> {
  const stats = ctx.world.net.stats();
  const sim = state.sim;
  const viewer = sim.upBoxes().find((b) => b.id === state.restoredOn) ?? sim.upBoxes()[0];
  const delivered = new Set(viewer ? viewer.state().log.entries.map((r) => r.event.id) : []);
  // Normal events are folded into per-kind totals in the shared log: count those as delivered when their totals do.
  if (viewer) {
    for (const e of sim.raised) {
      if (e.severity === 'normal' && viewer.state().log.totals.some((t) => t.source === e.box && t.kind === e.kind && (t.lastSeq === undefined || Number(e.id.split('/').pop()) <= t.lastSeq))) delivered.add(e.id);
    }
  }
  return {
    change: state.change,
    owner: ownerView(sim.raised, delivered, ctx.world.scheduler.epochMs),
    snapshots: state.originals.size,
    lostBoxes: state.lost.length,
    bytesMoved: stats.total.bytes,
    messages: stats.total.delivered,
    restoreProblems: state.restoreProblems,
    notices: state.sim.notices.map((n) => n.notice.type).reduce<Record<string, number>>((acc, t) => ((acc[t] = (acc[t] ?? 0) + 1), acc), {}),
    events: state.sim.raised.map((e) => `${e.kind}/${e.severity}`).reduce<Record<string, number>>((acc, t) => ((acc[t] = (acc[t] ?? 0) + 1), acc), {}),
    notes: state.notes,
  };
}

// ------------------------------------------------------------------------------------------------ scenarios

type S = Scenario<ReserveOptions, ReserveState>;
type C = Checker<ReserveOptions, ReserveState>;

/** A scenario with the shared defaults: no heal, a 2 h liveness bound polled every 5 min, the standard checkers. */
function scenario(
  def: Pick<S, 'name' | 'description' | 'options' | 'setup' | 'steps' | 'step'> &
    Partial<Pick<S, 'heal' | 'livenessBoundMs'>> & {
      safety?: C[];
      liveness?: C[];
      /** false: data is lost on purpose, so neither full replication nor a full restore is expected. */
      whole?: boolean;
    },
): S {
  const { safety = [], liveness = [], heal, livenessBoundMs, whole = true, ...rest } = def;
  return {
    ...rest,
    heal: heal ?? (async () => {}),
    livenessBoundMs: livenessBoundMs ?? (() => 2 * 3_600_000),
    livenessPollMs: () => 300_000,
    step: async (state, ctx) => {
      // The change under test begins with the first step (a scenario may mark again later, as bitrot does).
      if (ctx.step === 0 && !state.mark) state.mark = state.sim.mark();
      await rest.step(state, ctx);
    },
    // The change is measured before the restore check, whose reads are not replication.
    checkers: whole ? [...SAFETY, ...safety, ...LIVENESS, ...liveness, changeReport, restorable] : [...SAFETY, ...safety, converged, eventsDelivered, ...liveness, changeReport],
    metrics,
  };
}

/**
 * Set up a reserve with one backup and remember every chunk's copies (for the no-dip check), at most rf each: a
 * chunk may lose a surplus copy, never one it needs. The check runs after every step and at every delete.
 */
async function setupWithBaseline(ctx: RunContext<ReserveOptions>): Promise<ReserveState> {
  const state = await setupReserve(ctx, 1);
  state.baseline = new Map([...state.sim.intactCopies()].map(([k, v]) => [k, Math.min(v, ctx.options.rf)]));
  state.sim.onCopyDeleted((cid) => {
    const before = state.baseline?.get(cid.toString());
    if (before === undefined || state.dips.length >= 5) return;
    const now = state.sim.copiesOf(cid);
    if (now < before) state.dips.push(`chunk ${cid.toString().slice(-8)} went from ${before} copies to ${now} at ${formatMs(ctx.world.elapsed)} (a delete)`);
  });
  return state;
}

const GRACE_MS = 3_600_000;

export const flood: S = scenario({
  name: 'flood',
  description: 'the home Box is bricked; a factory-new Box joins with an invite and restores everything',
  options: (rng, o) => baseOptions(rng, o, { boxes: 4, rf: 3 }),
  setup: (ctx) => setupReserve(ctx, 1),
  steps: () => 3,
  async step(state, ctx) {
    const sim = state.sim;
    const home = [...state.homes.keys()][0];
    if (ctx.step === 0) {
      sim.cluster.brick(home);
      state.lost.push(home);
      state.notes.push(`bricked ${home.slice(-6)} (the home Box)`);
      await sim.cluster.runFor(10 * 60_000);
    } else if (ctx.step === 1) {
      await sim.cluster.runFor(GRACE_MS + 10 * 60_000); // the grace period passes; the Box is declared dead
    } else {
      const survivor = sim.upBoxes()[0].id;
      const fresh = sim.addBox(sim.invite(survivor));
      state.restoredOn = fresh;
      state.notes.push(`factory-new Box ${fresh.slice(-6)} joined with an invite from ${survivor.slice(-6)}`);
      await sim.cluster.runUntil(() => sim.converged() && sim.activeIds().includes(fresh), { maxMs: 600_000 });
    }
  },
  livenessBoundMs: () => 6 * 3_600_000,
});

export const addBox: S = scenario({
  name: 'add-box',
  description: 'a Box joins a settled reserve; the others hand over its share and drop theirs once it confirms',
  options: (rng, o) => baseOptions(rng, o, { boxes: 3, rf: 2 }),
  setup: setupWithBaseline,
  steps: () => 4,
  async step(state, ctx) {
    const sim = state.sim;
    if (ctx.step === 0) {
      const fresh = sim.addBox(sim.invite(sim.upBoxes()[0].id));
      state.notes.push(`added ${fresh.slice(-6)}`);
    }
    await sim.cluster.runFor(5 * 60_000);
  },
  safety: [noCopyDip],
  liveness: [
    {
      name: 'surplus-dropped',
      kind: 'liveness',
      check(state, ctx) {
        const over = [...state.sim.intactCopies().values()].filter((n) => n > ctx.options.rf).length;
        if (over > 0) return `${over} chunks still have more than rf copies`;
      },
    },
  ],
});

export const removeBox: S = scenario({
  name: 'remove-box',
  description: 'a Box leaves gracefully: its new keepers copy its blocks before it goes',
  options: (rng, o) => baseOptions(rng, o, { boxes: 4, rf: 2 }),
  setup: setupWithBaseline,
  steps: () => 2,
  async step(state, ctx) {
    const sim = state.sim;
    if (ctx.step === 0) {
      const leaving = sim.upBoxes()[sim.upBoxes().length - 1];
      state.notes.push(`${leaving.id.slice(-6)} leaves gracefully`);
      const moved = await sim.cluster.settle(leaving.leave(), { maxMs: 3_600_000, what: 'drain' });
      state.notes.push(`its ${moved.held} blocks held: ${moved.copies} copies made by their new keepers before it left`);
      // The leaving Box's copies count until it is gone; by then each chunk's new keeper holds one.
      await sim.cluster.runFor(60_000);
      await sim.cluster.remove(leaving.id, { graceful: true });
    } else await sim.cluster.runFor(10 * 60_000);
  },
  safety: [noCopyDip],
});

/** A Box gone for good (stolen, sold, broken beyond repair) is decommissioned from another Box; comes back later. */
export const decommission: S = scenario({
  name: 'decommission',
  description: 'a Box goes missing and the owner removes it from another Box: its share is re-made at once, without waiting out the repair grace, and when it turns up again it cannot rejoin',
  options: (rng, o) => baseOptions(rng, o, { boxes: 4, rf: 2 }),
  setup: (ctx) => setupReserve(ctx, 1),
  steps: () => 2,
  async step(state, ctx) {
    const sim = state.sim;
    if (ctx.step === 0) {
      const home = [...state.homes.keys()][0];
      const gone = sim.upBoxes().find((b) => b.id !== home)!.id;
      sim.cluster.crash(gone); // its disk intact, in someone else's hands
      state.removed = gone;
      const by = sim.upBoxes()[0];
      const r = await sim.cluster.settle(by.decommission(gone.slice(-10), { reason: 'stolen' }), { maxMs: 600_000, what: 'decommission' });
      state.notes.push(`${gone.slice(-6)} went missing; ${by.id.slice(-6)} decommissioned it (secret generation ${r.generation})`);
      // well inside the repair grace period (1 h): the reserve does not wait for it
      await sim.cluster.runFor(15 * 60_000);
      state.shortAfterRemoval = (await sim.underReplicated()).below;
    } else {
      sim.cluster.restart(state.removed!); // it turns up again
      state.notes.push(`${state.removed!.slice(-6)} turned up again`);
      await sim.cluster.runFor(10 * 60_000);
    }
  },
  liveness: [
    {
      name: 'repaired-before-the-grace-period',
      kind: 'liveness',
      check(state) {
        if (state.shortAfterRemoval !== 0) return `${state.shortAfterRemoval} chunks were still below the target 15 min after the removal`;
      },
    },
    {
      name: 'removed-for-good',
      kind: 'liveness',
      check(state) {
        const gone = state.removed!;
        const problems: string[] = [];
        for (const b of state.sim.upBoxes()) {
          const st = b.state().members.get(gone)?.status;
          if (b.id !== gone && st !== 'decommissioned') problems.push(`${b.id.slice(-6)} sees the removed Box as ${st}`);
        }
        if (state.sim.activeIds().includes(gone)) problems.push('the removed Box is an active member again');
        return problems;
      },
    },
  ],
});

export const bitrot: S = scenario({
  name: 'bitrot',
  description: 'random bytes flipped in random blocks on random Boxes; one sweep finds and repairs every one',
  options: (rng, o) => ({ ...baseOptions(rng, o, { boxes: 4, rf: 3 }) }),
  setup: (ctx) => setupReserve(ctx, 1),
  steps: () => 2,
  async step(state, ctx) {
    const sim = state.sim;
    if (ctx.step === 0) {
      state.rotted = [];
      // Rot some blocks on each Box, never every copy of one chunk (that would be an unresolvable conflict).
      const hit = new Map<string, number>();
      for (const b of sim.cluster.all().filter((x) => x.state === 'up')) {
        const reports = b.blocks.rot(1 + ctx.rng.int(5), 1 + ctx.rng.int(3), ctx.rng.fork(`rot/${b.id}`), (cid) => (hit.get(cid.toString()) ?? 0) < ctx.options.rf - 1);
        for (const r of reports) {
          hit.set(r.cid.toString(), (hit.get(r.cid.toString()) ?? 0) + 1);
          state.rotted.push({ box: b.id, cid: r.cid.toString() });
        }
      }
      state.notes.push(`rotted ${state.rotted.length} blocks`);
      state.mark = sim.mark(); // what the repair costs: measured from the rot
      await sim.cluster.settle(Promise.all(sim.upBoxes().map((b) => b.integrity.sweep())), { maxMs: 3_600_000, what: 'sweeps' });
    } else await sim.cluster.runFor(5 * 60_000);
  },
  liveness: [
    {
      name: 'every-rotted-block-repaired',
      kind: 'liveness',
      check(state) {
        const bad = state.sim.cluster.all().filter((b) => b.state === 'up').flatMap((b) => b.blocks.corrupted().map((c) => `${b.id.slice(-6)}:${c.toString().slice(-8)}`));
        if (bad.length) return `corrupt blocks remain: ${bad.slice(0, 5).join(', ')}`;
      },
    },
  ],
});

export const partition: S = scenario({
  name: 'partition',
  description: 'two halves back up independently, then heal: everything converges and is protected',
  options: (rng, o) => baseOptions(rng, o, { boxes: 4, rf: 2, minimum: 1 }),
  setup: (ctx) => setupReserve(ctx, 1),
  steps: () => 3,
  async step(state, ctx) {
    const sim = state.sim;
    const ids = sim.upBoxes().map((b) => b.id).sort();
    if (ctx.step === 0) {
      const half = Math.floor(ids.length / 2);
      ctx.world.net.partition([ids.slice(0, half), ids.slice(half)]);
      state.notes.push('partitioned into halves');
      await sim.cluster.runFor(60_000);
    } else if (ctx.step === 1) {
      for (const id of [ids[0], ids[ids.length - 1]]) {
        const tree = state.homes.get(id) ?? generateTree(ctx.rng.fork(`home/${id}`), { files: Math.ceil(ctx.options.files / 3), meanBytes: ctx.options.meanBytes });
        state.homes.set(id, mutateTree(ctx.rng.fork(`edit/${id}`), tree, 0.3));
        await backupHome(state, id);
      }
      await sim.cluster.runFor(10 * 60_000);
    } else await sim.cluster.runFor(10 * 60_000);
  },
  async heal(state, ctx) {
    ctx.world.net.heal();
    state.notes.push('healed');
  },
});

export const churn: S = scenario({
  name: 'churn',
  description: 'Boxes crash and restart (at most rf-1 down at once) while backups run',
  options: (rng, o) => baseOptions(rng, o, { boxes: 5, rf: 3 }),
  setup: (ctx) => setupReserve(ctx, 2),
  steps: () => 12,
  async step(state, ctx) {
    const sim = state.sim;
    const cluster = sim.cluster;
    const down = cluster.all().filter((b) => b.state === 'down');
    if (down.length && ctx.rng.chance(0.5)) cluster.restart(down[ctx.rng.int(down.length)].id);
    const up = cluster.all().filter((b) => b.state === 'up' && b.started);
    if (down.length < ctx.options.rf - 1 && up.length > 1 && ctx.rng.chance(0.5)) cluster.crash(up[ctx.rng.int(up.length)].id);
    if (ctx.rng.chance(0.4)) {
      const author = [...state.homes.keys()].find((id) => cluster.box(id).state === 'up' && cluster.box(id).started);
      if (author) {
        mutateTree(ctx.rng.fork(`edit/${ctx.step}`), state.homes.get(author)!, 0.2);
        await backupHome(state, author);
      }
    }
    await cluster.runFor(2 * 60_000);
  },
  async heal(state) {
    for (const b of state.sim.cluster.all()) if (b.state === 'down') state.sim.cluster.restart(b.id);
  },
  livenessBoundMs: () => 3 * 3_600_000,
});

export const crashMidBackup: S = scenario({
  name: 'crash-mid-backup',
  description: 'the author crashes in the middle of a backup; older snapshots stay restorable, the next backup succeeds',
  options: (rng, o) => baseOptions(rng, o, { boxes: 3, rf: 2 }),
  setup: (ctx) => setupReserve(ctx, 1),
  steps: () => 3,
  async step(state, ctx) {
    const sim = state.sim;
    const home = [...state.homes.keys()][0];
    if (ctx.step === 0) {
      mutateTree(ctx.rng.fork('edit'), state.homes.get(home)!, 0.5);
      const box = sim.box(home);
      void box.backup(new MemSourceTree(cloneTree(state.homes.get(home)!))).catch(() => undefined);
      await sim.cluster.runFor(ctx.rng.int(50)); // part-way
      sim.cluster.crash(home);
      state.notes.push('crashed the author mid-backup');
      await sim.cluster.runFor(60_000);
    } else if (ctx.step === 1) {
      sim.cluster.restart(home);
      await sim.cluster.runUntil(() => sim.cluster.box(home).started, { maxMs: 60_000 });
      await backupHome(state, home);
      state.notes.push('backed up again after the restart');
    } else await sim.cluster.runFor(10 * 60_000);
  },
  livenessBoundMs: () => 3 * 3_600_000,
});

export const swarm: S = scenario({
  name: 'swarm',
  description: 'faults and their rates drawn from the seed, some kinds switched off entirely (VOPR style)',
  options: (rng, o) => baseOptions(rng, o, { boxes: 3 + rng.int(3), rf: 2 + rng.int(2), files: 40 + rng.int(60) }),
  async setup(ctx) {
    const state = await setupReserve(ctx, 1);
    const swarm = swarmOptions(ctx.rng.fork('swarm'), { off: ['torn'] });
    state.swarm = swarm;
    state.injector = new FaultInjector(state.sim.cluster, swarm, ctx.rng.fork('faults'), {
      maxUnavailable: ctx.options.rf - 1,
      onBrick: (id) => {
        state.lost.push(id);
        // The owner replaces a bricked Box with a factory-new one.
        const survivor = state.sim.upBoxes().find((b) => b.id !== id);
        if (survivor) state.sim.addBox(state.sim.invite(survivor.id));
      },
      mayRot: (_box, cid) => (state.sim.intactCopies().get(cid.toString()) ?? 0) >= 2,
      // A rotted copy not yet repaired is a failure too: no brick that, with it, destroys every copy of a chunk
      // (two failures of one chunk at RF 2 is more than a reserve can survive; found by sim:soak seeds 500255, 500466).
      mayBrick: (id) => !state.sim.lastIntactCopyOfRotted(id),
    });
    state.injector.applyNetwork();
    state.notes.push(`swarm ${JSON.stringify(swarm.enabled)}`);
    return state;
  },
  steps: () => 16,
  async step(state, ctx) {
    const sim = state.sim;
    const inj = state.injector!;
    const done = inj.step();
    if (done.length) state.notes.push(...done);
    // A bricked Box counts as lost until the reserve is fully re-replicated after it.
    if (state.lost.length) {
      const u = await sim.underReplicated(sim.reportedLost());
      if (u.below === 0 && sim.converged()) {
        for (const id of state.lost) inj.replaced(id);
        state.lost = [];
      }
    }
    if (ctx.rng.chance(0.3)) {
      const author = [...state.homes.keys()].find((id) => sim.cluster.box(id).state === 'up' && sim.cluster.box(id).started);
      if (author) {
        mutateTree(ctx.rng.fork(`edit/${ctx.step}`), state.homes.get(author)!, 0.2);
        await backupHome(state, author);
      }
    }
    await sim.cluster.runFor(60_000 + ctx.rng.int(240_000));
  },
  async heal(state) {
    state.injector?.heal();
    state.sim.world.net.configure({ loss: 0, duplicate: 0, reorder: 0 });
    const cluster = state.sim.cluster;
    await cluster.runUntil(() => cluster.all().every((b) => b.state !== 'up' || b.started), { maxMs: 600_000 });
    // Bit rot is found by the integrity monitor: run a sweep everywhere after the faults end.
    await state.sim.cluster.settle(Promise.all(state.sim.upBoxes().map((b) => b.integrity.sweep().catch(() => undefined))), { maxMs: 3_600_000, what: 'sweeps' });
  },
  livenessBoundMs: () => 6 * 3_600_000,
});

/** Brick `n` Boxes at once (the home Box among them), let the grace period pass, note what happened. */
async function brickAtOnce(state: ReserveState, n: number, ctx: RunContext<ReserveOptions>): Promise<void> {
  const sim = state.sim;
  const home = [...state.homes.keys()][0];
  const others = sim.upBoxes().map((b) => b.id).filter((id) => id !== home).sort();
  const victims = [home, ...ctx.rng.shuffle(others).slice(0, n - 1)];
  for (const id of victims) {
    sim.cluster.brick(id);
    state.lost.push(id);
  }
  state.notes.push(`bricked ${victims.map((v) => v.slice(-6)).join(', ')} at once (${n} of ${ctx.options.boxes} Boxes, rf ${ctx.options.rf})`);
}

/** The Boxes that stay must be a strict majority, or nobody may declare the others dead. */
function lossOptions(rng: SimRandom, o: Overrides, defaults: Partial<ReserveOptions>, lose: (rf: number) => number): ReserveOptions {
  const opts = baseOptions(rng, o, defaults);
  const n = lose(opts.rf);
  if (n < 1 || 2 * (opts.boxes - n) <= opts.boxes) throw new InvalidInputError(`losing ${n} of ${opts.boxes} Boxes leaves no strict majority to declare them dead; use more --boxes`);
  return opts;
}

export const loseRfMinus1: S = scenario({
  name: 'lose-rf-1',
  description: 'rf-1 Boxes bricked at once (the home Box among them): nothing is lost, rf is back after the grace period',
  options: (rng, o) => lossOptions(rng, o, { boxes: 5, rf: 3 }, (rf) => rf - 1),
  setup: (ctx) => setupReserve(ctx, 1),
  steps: () => 2,
  async step(state, ctx) {
    if (ctx.step === 0) {
      await brickAtOnce(state, ctx.options.rf - 1, ctx);
      await state.sim.cluster.runFor(10 * 60_000);
    } else await state.sim.cluster.runFor(GRACE_MS + 10 * 60_000);
  },
  livenessBoundMs: () => 6 * 3_600_000,
});

/** The files of each snapshot that need a chunk no disk holds an intact copy of (ground truth). */
async function lostFiles(state: ReserveState): Promise<Map<string, { lost: number; files: Set<string> }>> {
  const sim = state.sim;
  const copies = sim.intactCopies();
  const out = new Map<string, { lost: number; files: Set<string> }>();
  for (const root of state.originals.keys()) {
    const chunks = await sim.chunksOf(root);
    if (!chunks) continue;
    const lost = new Set(chunks.filter((c) => (copies.get(c) ?? 0) === 0));
    if (lost.size === 0) continue;
    const { files } = await sim.filesNeeding(root, lost);
    out.set(root, { lost: lost.size, files: new Set(files) });
  }
  return out;
}

/** Every lost chunk reported once, with the snapshots and files that need it, as failure events. */
const lossReportedPrecisely: C = {
  name: 'loss-reported-precisely',
  kind: 'liveness',
  async check(state) {
    const truth = await lostFiles(state);
    if (truth.size === 0) return; // nothing was lost (every chunk had a copy on a Box that stayed)
    const reported = new Map<string, { lost: number; files: Set<string> }>();
    for (const { notice } of state.sim.notices) {
      if (notice.type !== 'chunks-lost') continue;
      const n = notice as Extract<Notice, { type: 'chunks-lost' }>;
      const r = reported.get(n.root) ?? { lost: 0, files: new Set<string>() };
      r.lost += n.lost;
      for (const f of n.files) r.files.add(f);
      reported.set(n.root, r);
    }
    const problems: string[] = [];
    for (const [root, t] of truth) {
      const r = reported.get(root);
      if (!r) {
        problems.push(`snapshot ${root.slice(-8)} lost ${t.lost} chunks (${t.files.size} files) and nobody said so`);
        continue;
      }
      if (r.lost !== t.lost) problems.push(`snapshot ${root.slice(-8)}: ${r.lost} chunks reported lost, ${t.lost} are`);
      const missing = [...t.files].filter((f) => !r.files.has(f));
      const extra = [...r.files].filter((f) => !t.files.has(f));
      if (missing.length || extra.length) problems.push(`snapshot ${root.slice(-8)}: files not reported ${missing.slice(0, 3).join(', ')}; reported but intact ${extra.slice(0, 3).join(', ')}`);
      const events = state.sim.raised.filter((e) => e.kind === 'unacceptable-replication' && JSON.stringify(e.payload).includes(root));
      if (events.length === 0) problems.push(`snapshot ${root.slice(-8)}: no unacceptable-replication event`);
    }
    for (const root of reported.keys()) if (!truth.has(root)) problems.push(`snapshot ${root.slice(-8)} reported lost but every chunk has a copy`);
    if (problems.length === 0) state.notes.push(`lost: ${[...truth].map(([r, t]) => `snapshot ${r.slice(-8)}: ${t.lost} chunks, ${t.files.size} files`).join('; ')}; all reported`);
    return problems;
  },
};

/** Every chunk that still has a copy is back at the target copy count. */
const survivorsReplicated: C = {
  name: 'surviving-chunks-replicated',
  kind: 'liveness',
  async check(state) {
    const u = await state.sim.underReplicated();
    if (u.below > u.lost) return `${u.below - u.lost} chunks with a copy are below the target replication factor`;
  },
};

export const loseRf: S = scenario({
  name: 'lose-rf',
  description: 'rf Boxes bricked at once: the chunks only they held are lost, and the loss is reported precisely (snapshots, files)',
  options: (rng, o) => lossOptions(rng, o, { boxes: 5, rf: 2, minimum: 1 }, (rf) => rf),
  setup: (ctx) => setupReserve(ctx, 1),
  steps: () => 2,
  async step(state, ctx) {
    if (ctx.step === 0) {
      await brickAtOnce(state, ctx.options.rf, ctx);
      await state.sim.cluster.runFor(10 * 60_000);
    } else await state.sim.cluster.runFor(GRACE_MS + 10 * 60_000);
  },
  whole: false,
  liveness: [survivorsReplicated, lossReportedPrecisely],
  livenessBoundMs: () => 6 * 3_600_000,
});

/** Every unrepairable block reported in an unresolved-conflict event naming it and the snapshots that need it. */
const conflictReported: C = {
  name: 'conflict-reported',
  kind: 'liveness',
  async check(state) {
    const problems: string[] = [];
    for (const cid of state.conflicted ?? []) {
      const needing: string[] = [];
      for (const root of state.originals.keys()) if ((await state.sim.chunksOf(root))?.includes(cid)) needing.push(root);
      const events = state.sim.raised.filter((e) => e.kind === 'unresolved-conflict' && (e.payload as { block?: string }).block === cid);
      if (events.length === 0) {
        problems.push(`block ${cid.slice(-8)}: every copy is corrupt and no unresolved-conflict event names it`);
        continue;
      }
      for (const e of events) {
        const named = [...((e.payload as { snapshots?: string[] }).snapshots ?? [])].sort();
        if (JSON.stringify(named) !== JSON.stringify(needing.sort())) problems.push(`block ${cid.slice(-8)}: event names snapshots [${named.map((r) => r.slice(-8))}], needed by [${needing.map((r) => r.slice(-8))}]`);
      }
    }
    return problems;
  },
};

export const conflict: S = scenario({
  name: 'conflict',
  description: 'every copy of some chunks is corrupt: the sweeps cannot repair them, and say which block and which snapshots',
  options: (rng, o) => baseOptions(rng, o, { boxes: 4, rf: 3 }),
  setup: (ctx) => setupReserve(ctx, 1),
  steps: () => 2,
  async step(state, ctx) {
    const sim = state.sim;
    if (ctx.step === 0) {
      const root = [...state.originals.keys()][0];
      const chunks = [...((await sim.chunksOf(root)) ?? [])].sort();
      const victims = ctx.rng.shuffle(chunks).slice(0, 1 + ctx.rng.int(2));
      state.conflicted = victims;
      for (const b of sim.cluster.all().filter((x) => x.state === 'up')) {
        for (const v of victims) b.blocks.rot(1, 1 + ctx.rng.int(3), ctx.rng.fork(`rot/${b.id}/${v}`), (cid) => cid.toString() === v);
      }
      state.notes.push(`corrupted every copy of ${victims.map((v) => v.slice(-8)).join(', ')}`);
      state.mark = sim.mark();
      await sim.cluster.settle(Promise.all(sim.upBoxes().map((b) => b.integrity.sweep())), { maxMs: 3_600_000, what: 'sweeps' });
    } else await sim.cluster.runFor(10 * 60_000);
  },
  whole: false,
  liveness: [conflictReported, lossReportedPrecisely],
});

export const SCENARIOS: Record<string, S> = {
  flood,
  'add-box': addBox,
  'remove-box': removeBox,
  decommission,
  bitrot,
  partition,
  churn,
  'crash-mid-backup': crashMidBackup,
  swarm,
  'lose-rf-1': loseRfMinus1,
  'lose-rf': loseRf,
  conflict,
};

export function scenarioByName(name: string): S {
  const s = SCENARIOS[name];
  if (!s) throw new InvalidInputError(`unknown scenario ${JSON.stringify(name)}; known: ${Object.keys(SCENARIOS).join(', ')}`);
  return s;
}
