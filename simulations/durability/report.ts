/**
 * The human-readable durability report: the asked-for RF first (Markov and Monte Carlo side by side, both repair
 * models, both estimators), then the sweep as a table, then the answer to "which RF meets the target".
 */
import { sci } from './chart.ts';
import { Z95 } from './montecarlo.ts';
import type { DurabilityReport, EstimatorResult, LayoutResult, McResult } from './sweep.ts';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const pct = (p: number): string => `${Number((p * 100).toPrecision(3))}%`;
const signedPct = (r: number): string => `${r >= 0 ? '+' : ''}${(r * 100).toFixed(1)}%`;

/** Estimates with four significant digits: the intervals are often well under 1% wide. */
function interval(mc: { estimate: number; low: number; high: number }): string {
  return `${sci(mc.estimate, 3)} [${sci(mc.low, 3)}, ${sci(mc.high, 3)}]`;
}

function naiveLine(e: EstimatorResult): string {
  if (e.hits === 0) return `naive: 0 of ${int(e.trials)} histories lost data (95% upper bound ${sci(e.high)})`;
  return `naive: ${int(e.hits)} of ${int(e.trials)} lost, ${interval(e)} (Wilson)`;
}

function mcLine(mc: McResult): string {
  const how = mc.best === 'is' ? `importance sampling, ${int(mc.is.hits)} weighted hits, ±${Number((mc.is.relativeError * 100).toPrecision(2))}%` : `naive, ${int(mc.naive.hits)} hits`;
  const flag = mc.reliable ? '' : ' (too few hits: indicative only)';
  return `${interval(mc)}  ${how}${flag}`;
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => pad(cell, widths[c])).join('  ').trimEnd()).join('\n');
}

function markovCell(r: LayoutResult): string {
  return `${r.markov.bound === 'upper' ? '<= ' : ''}${sci(r.markov.loss, 3)}`;
}

export function formatReport(report: DurabilityReport, chartPath: string | null): string {
  const lines: string[] = [];
  const years = sci(report.years);
  lines.push(
    `Durability of a reserve of ${report.boxes} Boxes: AFR ${pct(report.afr)} per Box (lambda ${sci(report.lambdaPerYear, 3)}/year), ` +
      `repair ${sci(report.repairHours)} h (exponential with that mean, or exactly that long), horizon ${years} years` +
      (report.chunks !== null ? `, ${int(report.chunks)} chunks placed by rendezvous hashing` : ', many chunks (chunks >> C(N, n): every set of n Boxes holds some chunk, so loss = more Boxes down at once than the layout survives)'),
  );
  const t = report.timing;
  lines.push(
    `Monte Carlo: ${int(report.trials)} histories per layout, repair model and estimator; seed ${report.seed}; ` +
      `${t.threads} thread${t.threads === 1 ? '' : 's'}; ${t.seconds.toFixed(1)} s, ${sci(t.boxYearsPerSecond)} Box-years/s`,
  );
  lines.push('');

  const asked = report.layouts.find((r) => r.layout.label === report.requested);
  if (asked) {
    lines.push(`${asked.layout.label}: probability of losing data within ${years} years`);
    const m = asked.markov;
    lines.push(
      `  Markov chain (exponential repair)   ${m.bound === 'upper' ? '<= ' : ''}${sci(m.loss, 3)}   MTTDL ${m.bound === 'upper' ? '>= ' : ''}${sci(m.mttdlYears)} years` +
        (m.chain === 'set' ? '  (chain over sets of failed Boxes)' : m.bound === 'upper' ? '  (count chain: an upper bound with finite chunks)' : ''),
    );
    lines.push(`  Monte Carlo, exponential repair     ${mcLine(asked.mc.exp)}`);
    lines.push(`                                      ${naiveLine(asked.mc.exp.naive)}`);
    lines.push(`  Monte Carlo, fixed repair           ${mcLine(asked.mc.fixed)}`);
    lines.push(`                                      ${naiveLine(asked.mc.fixed.naive)}`);
    if (m.bound === 'exact' && asked.mc.exp.estimate > 0) {
      const e = asked.mc.exp;
      const se = (e.high - e.low) / (2 * Z95);
      const z = se > 0 ? (e.estimate - m.loss) / se : 0;
      const inside = m.loss >= e.low && m.loss <= e.high;
      lines.push(
        `  Markov vs Monte Carlo (exponential repair): ${signedPct(e.estimate / m.loss - 1)}, ${Math.abs(z).toFixed(1)} standard errors; ` +
          (inside ? 'the Markov value is inside the 95% interval' : 'outside the 95% interval (expected about 1 run in 20)'),
      );
    }
    if (asked.mc.exp.estimate > 0 && asked.mc.fixed.estimate > 0) {
      lines.push(`  Fixed vs exponential repair time: ${(asked.mc.fixed.estimate / asked.mc.exp.estimate).toFixed(2)}x the loss probability`);
    }
    lines.push('');
  }

  lines.push(`Sweep: P(loss within ${years} years), Monte Carlo with 95% intervals (importance sampling or naive, whichever is tighter)`);
  const rows: string[][] = [['', 'layout', 'overhead', 'survives', 'Markov', 'MC exponential repair', 'MC fixed repair', 'MTTDL years', `< ${sci(report.target)}?`]];
  for (const r of report.layouts) {
    rows.push([
      r.layout.label === report.requested ? '>' : '',
      r.layout.kind === 'erasure' ? `${r.layout.label} erasure` : r.layout.label,
      `${sci(r.layout.overhead)}x`,
      `${r.layout.tolerance} down`,
      markovCell(r),
      interval(r.mc.exp) + (r.mc.exp.reliable ? '' : ' ?'),
      interval(r.mc.fixed) + (r.mc.fixed.reliable ? '' : ' ?'),
      `${r.markov.bound === 'upper' ? '>= ' : ''}${sci(r.markov.mttdlYears)}`,
      r.meetsTarget ? 'yes' : 'no',
    ]);
  }
  lines.push(table(rows).replace(/^/gm, '  '));
  if (report.layouts.some((r) => !r.mc.exp.reliable || !r.mc.fixed.reliable)) lines.push('  ? fewer than 10 hits with either estimator: the interval is only indicative');
  lines.push('');

  const goal = `less than ${sci(report.target)} over ${years} years`;
  if (report.smallestRf !== null) {
    const r = report.layouts.find((l) => l.layout.kind === 'replication' && l.layout.n === report.smallestRf);
    lines.push(`Smallest replication factor meeting ${goal}: RF=${report.smallestRf} (worst of Markov and the Monte Carlo upper bounds: ${sci(r?.worstCase ?? NaN)})`);
  } else {
    lines.push(`No replication factor up to RF=${report.boxes} meets ${goal} on ${report.boxes} Boxes: add Boxes, repair faster or use more reliable ones`);
  }
  if (report.cheapest !== null) {
    const c = report.layouts.find((l) => l.layout.label === report.cheapest);
    if (c) lines.push(`Least storage meeting it: ${c.layout.label}${c.layout.kind === 'erasure' ? ' erasure coding' : ''} (${sci(c.layout.overhead)}x, survives ${c.layout.tolerance} Boxes down at once)`);
  }
  if (chartPath !== null) lines.push(`Chart written to ${chartPath}`);
  return lines.join('\n');
}
