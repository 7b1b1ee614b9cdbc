/**
 * core/ is pure: no clock, randomness, file system, network or processes of its own. Those are injected
 * (core/ports.ts). This test reads every non-test source file under core/ and fails on any direct reach.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const CORE = new URL('../core/', import.meta.url).pathname;

const BANNED: Array<[RegExp, string]> = [
  [/from\s+['"](node:)?(fs|fs\/promises|net|dgram|os|child_process|worker_threads|http|https|tls|dns|cluster)['"]/, 'imports an OS module'],
  [/import\(\s*['"](node:)?(fs|fs\/promises|net|dgram|os|child_process|worker_threads|http|https)['"]\s*\)/, 'imports an OS module'],
  [/require\(\s*['"](node:)?(fs|net|os|child_process)['"]\s*\)/, 'requires an OS module'],
  [/\bDate\.now\s*\(/, 'reads the wall clock (Date.now)'],
  [/\bnew\s+Date\s*\(\s*\)/, 'reads the wall clock (new Date())'],
  [/\bperformance\.now\s*\(/, 'reads the clock (performance.now)'],
  [/\bMath\.random\s*\(/, 'uses unseeded randomness (Math.random)'],
  [/\bcrypto\.(getRandomValues|randomUUID|randomBytes)\s*\(/, 'uses unseeded randomness (crypto)'],
  [/(?<![\w.])(setTimeout|setInterval|setImmediate)\s*\(/, 'schedules on the real clock'],
  [/\bprocess\.(env|argv|exit|hrtime|cwd)\b/, 'reads the process environment'],
];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts') && !p.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

/** Strip comments so that documentation may mention what the code must not do. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

export function violations(files: Array<{ path: string; text: string }>): string[] {
  const found: string[] = [];
  for (const { path, text } of files) {
    code(text)
      .split('\n')
      .forEach((line, i) => {
        for (const [re, why] of BANNED) if (re.test(line)) found.push(`${path}:${i + 1} ${why}: ${line.trim()}`);
      });
  }
  return found;
}

describe('core/ purity', () => {
  it('has source files to check', () => {
    expect(sources(CORE).length).toBeGreaterThan(3);
  });

  it('no file under core/ reaches for the clock, randomness, disk, network or processes', () => {
    const files = sources(CORE).map((p) => ({ path: relative(CORE, p), text: readFileSync(p, 'utf8') }));
    expect(violations(files)).toEqual([]);
  });

  it('the checker itself catches each banned pattern', () => {
    const bad = [
      `import { readFile } from 'node:fs/promises';`,
      `import net from 'net';`,
      `import * as os from "os";`,
      `import { spawn } from 'child_process';`,
      `const t = Date.now();`,
      `const r = Math.random();`,
      `setTimeout(() => {}, 5);`,
      `const id = setInterval(f, 1);`,
      `const d = new Date();`,
    ];
    for (const text of bad) expect(violations([{ path: 'x.ts', text }]), text).toHaveLength(1);
    expect(violations([{ path: 'x.ts', text: `// Date.now() is banned\nclock.setTimer(5, f);` }])).toEqual([]);
  });
});
