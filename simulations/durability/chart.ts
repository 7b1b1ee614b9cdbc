/**
 * The durability chart as a self-contained SVG (no chart library): P(data lost by time t) on a log scale
 * against years, one Markov curve per layout (solid for replication, dashed for erasure coding), the Monte Carlo
 * estimates at the horizon with their 95% intervals (circle: exponential repair, square: fixed repair), and the
 * target drawn as a red dashed line. Each layout's marks sit in one <g class="series" data-layout="..."> group.
 */
import type { DurabilityReport, LayoutResult } from './sweep.ts';

const W = 920;
const H = 560;
const M = { left: 90, right: 230, top: 60, bottom: 70 };
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#637939', '#8c6d31', '#843c39', '#7b4173', '#3182bd', '#e6550d', '#31a354', '#756bb1', '#636363'];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** A number for people: 0.704, 36.5, 1.2e-7, 1e-6 (digits + 1 significant digits, trailing zeros dropped). */
export function sci(p: number, digits = 2): string {
  if (p === 0) return '0';
  if (!Number.isFinite(p)) return String(p);
  const a = Math.abs(p);
  if (a >= 0.01 && a < 100000) return String(Number(p.toPrecision(digits + 1)));
  const [mantissa, exponent] = p.toExponential(digits).split('e');
  return `${mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa}e${exponent.replace('+', '')}`;
}

const n2 = (x: number): string => x.toFixed(2);

export function renderChart(report: DurabilityReport): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const positives: number[] = [report.target];
  for (const r of report.layouts) {
    for (const [, p] of r.markov.curve) if (p > 0) positives.push(p);
    for (const mc of [r.mc.exp, r.mc.fixed]) for (const v of [mc.estimate, mc.low]) if (v > 0) positives.push(v);
  }
  // Decades from below the smallest value to 1, at most 300 decades (double range).
  const lo = Math.max(-300, Math.floor(Math.log10(Math.min(...positives))) - 1);
  const hi = 0;
  const x = (t: number): number => M.left + (t / report.years) * pw;
  const y = (p: number): number => {
    const l = Math.min(hi, Math.max(lo, Math.log10(Math.max(p, 1e-300))));
    return M.top + ((hi - l) / (hi - lo)) * ph;
  };

  const out: string[] = [];
  out.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  const title = `Probability of losing data within ${sci(report.years)} years: ${report.boxes} Boxes, AFR ${sci(report.afr * 100)}%, repair ${sci(report.repairHours)} h${report.chunks !== null ? `, ${report.chunks} chunks` : ''}`;
  out.push(`<text x="${W / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`);
  out.push(`<text x="${W / 2}" y="46" text-anchor="middle" fill="#555">${escapeXml('lines: Markov chain (exponential repair); markers at the horizon: Monte Carlo with 95% interval (circle exponential, square fixed repair)')}</text>`);

  // Grid and axes.
  out.push(`<g class="axes" stroke="#000" fill="none">`);
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" stroke="#444"/>`);
  out.push(`</g>`);
  const decades = hi - lo;
  const step = Math.max(1, Math.ceil(decades / 12));
  out.push(`<g class="y-ticks" font-size="11">`);
  for (let d = hi; d >= lo; d -= step) {
    const yy = n2(y(10 ** d));
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${yy}" y2="${yy}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle">${d === 0 ? '1' : `1e${d}`}</text>`);
  }
  out.push(`</g>`);
  out.push(`<g class="x-ticks" font-size="11">`);
  const xTicks = niceTicks(report.years);
  for (const t of xTicks) {
    const xx = n2(x(t));
    out.push(`<line x1="${xx}" x2="${xx}" y1="${M.top}" y2="${M.top + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${xx}" y="${M.top + ph + 18}" text-anchor="middle">${sci(t)}</text>`);
  }
  out.push(`</g>`);
  out.push(`<text class="x-label" x="${M.left + pw / 2}" y="${H - 22}" text-anchor="middle" font-size="13">years since every Box was up</text>`);
  out.push(
    `<text class="y-label" transform="translate(24 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="13">P(data lost by then), log scale</text>`,
  );

  // Target line.
  const ty = n2(y(report.target));
  out.push(`<g class="target">`);
  out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${ty}" y2="${ty}" stroke="#d00" stroke-width="1.5" stroke-dasharray="8 5"/>`);
  out.push(`<text x="${M.left + 6}" y="${n2(y(report.target) - 6)}" fill="#d00">${escapeXml(`target: less than ${sci(report.target)} over ${sci(report.years)} years`)}</text>`);
  out.push(`</g>`);

  // Series.
  report.layouts.forEach((r, i) => out.push(series(r, i, report, x, y)));

  // Layouts that survive the same failures have the same curve (many-chunks model): one label per curve.
  const groups = new Map<string, string[]>();
  for (const r of report.layouts) {
    const key = r.markov.curve.map(([, p]) => p.toPrecision(9)).join(',');
    groups.set(key, [...(groups.get(key) ?? []), r.layout.label]);
  }
  out.push(`<g class="curve-labels" font-size="11" fill="#333">`);
  for (const [key, labels] of groups) {
    const r = report.layouts.find((l) => l.layout.label === labels[0]);
    const at = r?.markov.curve[Math.floor(r.markov.curve.length * 0.3)];
    if (!at || !(at[1] > 0) || key === '') continue;
    const above = y(at[1]) - 7;
    const ly = above < M.top + 14 ? y(at[1]) + 16 : above; // below the curve when it hugs the top
    out.push(`<text x="${n2(x(at[0]))}" y="${n2(ly)}">${escapeXml(labels.join(', '))}</text>`);
  }
  out.push(`</g>`);

  // Legend.
  out.push(`<g class="legend">`);
  const lx = M.left + pw + 16;
  out.push(`<text x="${lx}" y="${M.top + 4}" font-weight="bold">layout (overhead)</text>`);
  report.layouts.forEach((r, i) => {
    const ly = M.top + 24 + i * 20;
    const color = PALETTE[i % PALETTE.length];
    const dash = r.layout.kind === 'erasure' ? ' stroke-dasharray="6 4"' : '';
    const mark = r.meetsTarget ? ' ✓' : '';
    out.push(`<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2.5"${dash}/>`);
    const label = `${r.layout.label}${r.layout.kind === 'erasure' ? ' erasure' : ''} (${sci(r.layout.overhead)}x)${mark}`;
    out.push(`<text x="${lx + 32}" y="${ly}" dominant-baseline="middle">${escapeXml(label)}</text>`);
  });
  out.push(`<text x="${lx}" y="${M.top + 34 + report.layouts.length * 20}" fill="#555" font-size="11">✓ meets the target</text>`);
  out.push(`</g>`);
  out.push(`</svg>`);
  return out.join('\n') + '\n';
}

function series(r: LayoutResult, i: number, report: DurabilityReport, x: (t: number) => number, y: (p: number) => number): string {
  const color = PALETTE[i % PALETTE.length];
  const label = r.layout.label;
  const parts: string[] = [];
  parts.push(`<g class="series" data-layout="${escapeXml(label)}" data-kind="${r.layout.kind}">`);
  parts.push(`<title>${escapeXml(`${label}: Markov ${sci(r.markov.loss)}, Monte Carlo ${sci(r.mc.exp.estimate)} (exponential repair), ${sci(r.mc.fixed.estimate)} (fixed repair) over ${sci(report.years)} years`)}</title>`);
  const pts = r.markov.curve.filter(([, p]) => p > 0).map(([t, p]) => `${n2(x(t))},${n2(y(p))}`);
  if (pts.length > 0) {
    const dash = r.layout.kind === 'erasure' ? ' stroke-dasharray="6 4"' : '';
    parts.push(`<polyline class="markov" fill="none" stroke="${color}" stroke-width="2"${dash} points="${pts.join(' ')}"/>`);
  }
  // Monte Carlo at the horizon, nudged sideways per layout so overlapping layouts stay visible.
  const n = report.layouts.length;
  const base = x(report.years) - 4 - (n - 1 - i) * 5;
  for (const [mc, shape] of [
    [r.mc.exp, 'circle'],
    [r.mc.fixed, 'square'],
  ] as const) {
    const cx = shape === 'circle' ? base : base + 2.5;
    if (mc.estimate > 0) {
      parts.push(`<line class="mc-interval" x1="${n2(cx)}" x2="${n2(cx)}" y1="${n2(y(mc.low > 0 ? mc.low : mc.estimate))}" y2="${n2(y(mc.high))}" stroke="${color}" stroke-width="1"/>`);
      const cy = y(mc.estimate);
      if (shape === 'circle') parts.push(`<circle class="mc-exp" cx="${n2(cx)}" cy="${n2(cy)}" r="3" fill="${color}"/>`);
      else parts.push(`<rect class="mc-fixed" x="${n2(cx - 2.5)}" y="${n2(cy - 2.5)}" width="5" height="5" fill="none" stroke="${color}"/>`);
    }
  }
  parts.push(`</g>`);
  return parts.join('\n');
}

/** About five round tick values from 0 to `max`. */
export function niceTicks(max: number): number[] {
  const raw = max / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = 0; t <= max * (1 + 1e-9); t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}
