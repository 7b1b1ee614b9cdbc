/**
 * `npm run bench:placement`: the placement figures at full scale (1M chunks by default; PLACEMENT_CHUNKS=N to
 * change it, PLACEMENT_SEED=S for another seed).
 *
 *  1. throughput: 1M placements over 5, 20 and 50 Boxes (rf 3), with and without regions and capacity skew:
 *     compile time, wall and CPU seconds, placements per second;
 *  2. movement: moved replicas against the theoretical minimum (core/placement/analysis.ts) when one Box is
 *     added or removed, for equal capacities (with and without regions) and for skewed ones;
 *  3. balance: max/mean load for equal capacities, 5-50 Boxes, rf 1-5; and the largest per-Box error against
 *     the capacity-fair share for unequal capacities.
 * Figures are printed as tables; nothing is asserted here (the property tests in proofs/ assert the bounds).
 */
import { compileView, measureChange, measureLayout, syntheticKeys } from '../../core/placement/index.ts';
import type { KeeperView, PlacementView } from '../../core/placement/index.ts';

const CHUNKS = Number(process.env.PLACEMENT_CHUNKS ?? 1_000_000);
const SEED = Number(process.env.PLACEMENT_SEED ?? 1);

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** A seeded xorshift for capacities. */
function rng(seed: number): () => number {
  let s = (seed * 2654435761) >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

/** n Boxes; `skew` = largest/smallest capacity ratio (log-uniform), 1 for equal; regions round-robin. */
function keepers(n: number, skew: number, regions: number, tag: string): KeeperView[] {
  const r = rng(n * 131 + skew * 7 + regions);
  return Array.from({ length: n }, (_, i) => {
    const k: KeeperView = {
      id: `${tag}-${String(i).padStart(2, '0')}`,
      capacity: skew === 1 ? 4e12 : Math.round(1e12 * Math.exp(r() * Math.log(skew))),
      live: true,
    };
    if (regions > 1) k.region = `region${i % regions}`;
    return k;
  });
}

function table(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: string[]) => cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  process.stdout.write(`\n${title}\n${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n`);
  for (const row of rows) process.stdout.write(line(row) + '\n');
}

const fmt = (v: number, d = 0) => v.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });

function throughput(): void {
  const rows: string[][] = [];
  const cases: Array<[number, number, number, number]> = [
    [5, 3, 1, 1],
    [20, 3, 1, 1],
    [50, 3, 1, 1],
    [50, 1, 1, 1],
    [50, 5, 1, 1],
    [50, 3, 1, 8],
    [50, 3, 3, 1],
    [50, 2, 5, 1],
  ];
  for (const [n, rf, regions, skew] of cases) {
    const view: PlacementView = { rf, keepers: keepers(n, skew, regions, 'tp') };
    const c0 = performance.now();
    const placer = compileView(view);
    const compile = performance.now() - c0;
    const keys = syntheticKeys(SEED, CHUNKS);
    const buf = new Uint8Array(keys.length);
    const out = new Int32Array(64);
    // Key generation is timed separately and subtracted: it is the benchmark's cost, not placement's.
    let w0 = performance.now();
    let k0 = cpuMs();
    for (let j = 0; j < CHUNKS; j++) keys.key(j, buf);
    const keyWall = performance.now() - w0;
    const keyCpu = cpuMs() - k0;
    w0 = performance.now();
    k0 = cpuMs();
    let sink = 0;
    for (let j = 0; j < CHUNKS; j++) sink += placer.placeIndexes(keys.key(j, buf), out);
    const wall = performance.now() - w0 - keyWall;
    const cpu = cpuMs() - k0 - keyCpu;
    if (sink !== CHUNKS * placer.replicas) throw new Error('placement count mismatch');
    rows.push([
      `${n} Boxes, rf ${rf}`,
      regions > 1 ? String(regions) : '-',
      skew === 1 ? 'equal' : `1-${skew}x`,
      fmt(compile, 1),
      fmt(wall / 1000, 2),
      fmt(cpu / 1000, 2),
      fmt(CHUNKS / (Math.max(cpu, 1e-6) / 1000) / 1e6, 2),
    ]);
  }
  table(`Throughput: ${fmt(CHUNKS)} placements (key generation excluded)`, ['layout', 'regions', 'capacity', 'compile ms', 'wall s', 'cpu s', 'M/s (cpu)'], rows);
}

function movement(): void {
  const rows: string[][] = [];
  const cases: Array<[number, number, number, number]> = [
    [5, 3, 1, 1],
    [20, 3, 1, 1],
    [50, 3, 1, 1],
    [20, 1, 1, 1],
    [20, 5, 1, 1],
    [20, 3, 2, 1],
    [20, 3, 3, 1],
    [20, 2, 4, 1],
    [20, 3, 1, 4],
    [50, 3, 1, 8],
    [8, 3, 1, 4],
    [8, 5, 1, 8],
  ];
  for (const [n, rf, regions, skew] of cases) {
    const all = keepers(n + 1, skew, regions, `mv${n}`);
    const small: PlacementView = { rf, keepers: all.slice(0, n) };
    const big: PlacementView = { rf, keepers: all };
    for (const [label, before, after] of [
      ['add 1', small, big],
      ['remove 1', big, small],
    ] as const) {
      const r = measureChange(before, after, syntheticKeys(SEED, CHUNKS));
      rows.push([
        label === 'add 1' ? `add 1: ${n}->${n + 1} Boxes, rf ${rf}` : `remove 1: ${n + 1}->${n} Boxes, rf ${rf}`,
        regions > 1 ? String(regions) : '-',
        skew === 1 ? 'equal' : `1-${skew}x`,
        fmt(r.moved),
        fmt(r.minimal),
        r.ratio.toFixed(4),
        (r.moved / Math.max(1, label === 'add 1' ? r.addedLoad : r.removedLoad)).toFixed(4),
      ]);
    }
  }
  table(
    `Movement: one Box added or removed, ${fmt(CHUNKS)} chunks (ratio = moved / theoretical minimum; excess = moved / replicas on the changed Box)`,
    ['change', 'regions', 'capacity', 'moved', 'minimal', 'ratio', 'excess'],
    rows,
  );
}

function balance(): void {
  const rows: string[][] = [];
  for (const n of [5, 20, 50]) {
    const cells: string[] = [`${n} Boxes, equal`];
    for (let rf = 1; rf <= 5; rf++) {
      const layout = measureLayout({ rf, keepers: keepers(n, 1, 1, `bl${n}`) }, syntheticKeys(SEED, CHUNKS));
      cells.push(layout.maxOverMean.toFixed(4));
    }
    rows.push(cells);
  }
  table(`Balance: max/mean load, ${fmt(CHUNKS)} chunks`, ['layout', 'rf 1', 'rf 2', 'rf 3', 'rf 4', 'rf 5'], rows);

  const caps: Array<[string, number[]]> = [
    ['10 Boxes, 1..10', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]],
    ['5 Boxes, 8,4,2,1,1', [8, 4, 2, 1, 1]],
    ['20 Boxes, 1-8x', keepers(20, 8, 1, 'x').map((k) => k.capacity)],
  ];
  const rows2: string[][] = [];
  for (const [label, cs] of caps) {
    const cells: string[] = [label];
    for (let rf = 1; rf <= 5; rf++) {
      const view: PlacementView = { rf, keepers: cs.map((c, i) => ({ id: `cap-${i}`, capacity: c, live: true })) };
      const layout = measureLayout(view, syntheticKeys(SEED, CHUNKS));
      const capped = compileView(view).targets.filter((t) => t.inclusion === 1).length;
      cells.push(`${(layout.maxShareError * 100).toFixed(2)}%${capped > 0 ? ` (${capped} capped)` : ''}`);
    }
    rows2.push(cells);
  }
  table(
    'Capacity-following: largest |load / capacity-fair share - 1| over the Boxes (capped = Boxes holding every chunk)',
    ['capacities', 'rf 1', 'rf 2', 'rf 3', 'rf 4', 'rf 5'],
    rows2,
  );
}

process.stdout.write(`reserve placement benchmark: ${fmt(CHUNKS)} chunks, seed ${SEED}, node ${process.version}\n`);
throughput();
movement();
balance();
