/**
 * The SVG chart: well-formed XML (checked by xml-check.ts, a small tokenizer, since no XML parser is installed),
 * one series per layout with its Markov curve and Monte Carlo marks, the target line, labelled axes, and text
 * escaped.
 */
import { describe, expect, it } from 'vitest';
import { escapeXml, niceTicks, renderChart, sci } from './chart.ts';
import { replication } from './model.ts';
import { assertWellFormed } from './xml-check.ts';
import type { DurabilityReport, LayoutResult, McResult } from './sweep.ts';

function mc(repair: 'exp' | 'fixed', estimate: number): McResult {
  const e = { estimate, low: estimate * 0.9, high: estimate * 1.1, trials: 1000, hits: 500, relativeError: 0.1 };
  return {
    repair,
    naive: { ...e, estimator: 'naive' },
    is: { ...e, estimator: 'is' },
    best: 'is',
    estimate,
    low: e.low,
    high: e.high,
    reliable: true,
  };
}

function fakeReport(): DurabilityReport {
  const layouts: LayoutResult[] = [1, 2, 3].map((rf) => {
    const final = 10 ** (-3 * rf);
    return {
      layout: rf === 3 ? { ...replication(3), label: 'RF=3 <&>' } : replication(rf),
      markov: { loss: final, mttdlYears: 10 ** rf, chain: 'count', bound: 'exact', curve: Array.from({ length: 10 }, (_, i) => [i + 1, (final * (i + 1)) / 10] as [number, number]) },
      mc: { exp: mc('exp', final), fixed: mc('fixed', final * 0.9) },
      worstCase: final * 1.1,
      meetsTarget: final * 1.1 < 1e-6,
    };
  });
  return {
    boxes: 4,
    afr: 0.03,
    repairHours: 48,
    years: 10,
    trials: 1000,
    seed: 1,
    target: 1e-6,
    chunks: null,
    lambdaPerYear: 0.03,
    muPerYear: 182.5,
    requested: 'RF=2',
    layouts,
    smallestRf: 3,
    cheapest: 'RF=3 <&>',
    timing: { seconds: 1, boxYears: 1, boxYearsPerSecond: 1, threads: 1 },
  };
}

describe('renderChart', () => {
  const svg = renderChart(fakeReport());

  it('is well-formed XML with an <svg> root', () => {
    assertWellFormed(svg);
    expect(svg).toMatch(/<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  });

  it('has one series per layout, each with a Markov curve and both Monte Carlo marks', () => {
    const groups = [...svg.matchAll(/<g class="series" data-layout="([^"]*)"[^>]*>([\s\S]*?)<\/g>/g)];
    expect(groups.map((g) => g[1])).toEqual(['RF=1', 'RF=2', 'RF=3 &lt;&amp;&gt;']);
    for (const g of groups) {
      expect(g[2]).toMatch(/<polyline class="markov"[^>]* points="(\d+\.\d+,\d+\.\d+ ?){10}"/);
      expect(g[2]).toContain('class="mc-exp"');
      expect(g[2]).toContain('class="mc-fixed"');
    }
  });

  it('marks the target and labels both axes and the log scale', () => {
    expect(svg).toMatch(/<g class="target">\s*<line[^>]*stroke="#d00"/);
    expect(svg).toContain('target: less than 1e-6 over 10 years');
    expect(svg).toContain('class="x-label"');
    expect(svg).toContain('years since every Box was up');
    expect(svg).toContain('log scale');
    for (const d of ['1e-3', '1e-6', '1e-9']) expect(svg).toContain(`>${d}</text>`);
  });

  it('the tokenizer rejects broken documents', () => {
    expect(() => assertWellFormed('<svg><g></svg>')).toThrow();
    expect(() => assertWellFormed('<svg a="1" a="2"/>')).toThrow();
    expect(() => assertWellFormed('<svg>a & b</svg>')).toThrow();
    expect(() => assertWellFormed('<svg/><svg/>')).toThrow();
  });
});

describe('chart helpers', () => {
  it('sci writes numbers compactly', () => {
    expect(sci(1e-6)).toBe('1e-6');
    expect(sci(1.2345e-7)).toBe('1.23e-7');
    expect(sci(0.704)).toBe('0.704');
    expect(sci(16411.6)).toBe('16400');
    expect(sci(9.83e7)).toBe('9.83e7');
    expect(sci(0)).toBe('0');
  });

  it('escapeXml escapes the five XML specials', () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;');
  });

  it('niceTicks gives round steps from 0 to the horizon', () => {
    expect(niceTicks(10)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(25)).toEqual([0, 5, 10, 15, 20, 25]);
  });
});
