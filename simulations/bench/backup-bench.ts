/**
 * `npm run bench`: Reserve against restic and borg on the reference data set (issue 2, "Benchmark").
 *
 *   npm run bench                          1 GiB data set, best of 2 for full backup and restore
 *   npm run bench -- --size-mib 128        a quick run (also BENCH_SIZE_MIB=128)
 *   npm run bench -- --profile             also profile Reserve's backup and restore (node --cpu-prof)
 *   npm run bench -- --help                every option
 *
 * For each tool, in a fresh repository: a full backup of a copy of the data set; `modify_data.py` changes 5% of
 * the files of that copy (once; every tool then backs up the same modified tree); an incremental backup; a verify
 * (reserve verify, restic check --read-data, borg check --verify-data); a restore into an empty directory, checked
 * byte-identical against the source. Each command runs alone, after the page cache is dropped when permitted,
 * and is measured for wall time, peak RSS and CPU time. Reserve is also run on a smaller data set so its peak
 * RSS can be compared across sizes. Results: a table on stdout and .bench/backup-results.json.
 *
 * Not a test: the figures depend on the machine and on whatever else runs on it.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpus, loadavg, totalmem } from 'node:os';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compareTrees } from '../../adapters/fs/compare.ts';
import { CommandFailedError, cleanupMeasure, dirSize, dropCaches, haveGnuTime, measure, run, setScratchDir, type Command } from './backup-measure.ts';
import { PROJECT_ROOT, TOOL_NAMES, makeProfiledReserve, makeTool, type Tool, type ToolName } from './backup-tools.ts';
import { formatProfiles, summarizeDir, type ThreadProfile } from './backup-profile.ts';

const MiB = 1024 * 1024;

interface Options {
  sizeMib: number;
  smallMib: number;
  repeat: number;
  tools: ToolName[];
  profile: boolean;
  keep: boolean;
  datasets: string;
  reserveRoot: string;
  benchDir: string;
  /** Scratch for copies, repositories, restored trees and profiles (data sets stay in benchDir, shared). */
  workDir: string;
  out: string;
}

const HELP = `usage: npm run bench -- [options]
  --size-mib N     data set size in MiB (default 1024; env BENCH_SIZE_MIB)
  --small-mib N    smaller data set for Reserve's peak-RSS-vs-size check (default size/4, at most 256; 0 = skip)
  --repeat N       runs of the full backup and the restore, best kept (default 2; env BENCH_REPEAT)
  --tools LIST     comma-separated subset of reserve,restic,borg (default all three)
  --profile        also profile Reserve's backup and restore with node --cpu-prof (kept in .bench/profiles/)
  --keep           keep the repositories and restored trees in .bench/work afterwards
  --datasets DIR   where gen_data.py and modify_data.py are (default ../shared/datasets)
  --reserve-root D run Reserve from another checkout D (e.g. a prototype copy under /tmp) instead of this one
                   (env BENCH_RESERVE_ROOT); the data sets and results stay in this project's .bench/
  --work DIR       scratch directory for copies, repositories, restored trees and profiles (default .bench;
                   env BENCH_WORK_DIR), so two benches can run at once; the data sets stay in .bench
  --out FILE       JSON results (default .bench/backup-results.json)`;

function parseOptions(argv: string[]): Options {
  const env = process.env;
  const benchDir = join(PROJECT_ROOT, '.bench');
  const o: Options = {
    sizeMib: Number(env.BENCH_SIZE_MIB ?? 1024),
    smallMib: -1,
    repeat: Number(env.BENCH_REPEAT ?? 2),
    tools: [...TOOL_NAMES],
    profile: false,
    keep: false,
    datasets: resolve(PROJECT_ROOT, '..', 'shared', 'datasets'),
    reserveRoot: env.BENCH_RESERVE_ROOT ? resolve(env.BENCH_RESERVE_ROOT) : PROJECT_ROOT,
    benchDir,
    workDir: env.BENCH_WORK_DIR ? resolve(env.BENCH_WORK_DIR) : benchDir,
    out: join(benchDir, 'backup-results.json'),
  };
  const num = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) usage(`${flag} needs an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--size-mib':
        o.sizeMib = num(flag, value(), 8);
        break;
      case '--small-mib':
        o.smallMib = num(flag, value(), 0);
        break;
      case '--repeat':
        o.repeat = num(flag, value(), 1);
        break;
      case '--tools': {
        const list = (value() ?? '').split(',').filter(Boolean);
        for (const t of list) if (!TOOL_NAMES.includes(t as ToolName)) usage(`unknown tool ${t}; choose from ${TOOL_NAMES.join(', ')}`);
        if (!list.includes('reserve')) usage('--tools must include reserve');
        o.tools = TOOL_NAMES.filter((t) => list.includes(t));
        break;
      }
      case '--profile':
        o.profile = true;
        break;
      case '--keep':
        o.keep = true;
        break;
      case '--datasets':
        o.datasets = resolve(value() ?? usage('--datasets needs a directory'));
        break;
      case '--reserve-root':
        o.reserveRoot = resolve(value() ?? usage('--reserve-root needs a directory'));
        if (!existsSync(join(o.reserveRoot, 'bin', 'reserve.mjs'))) usage(`${o.reserveRoot} has no bin/reserve.mjs`);
        break;
      case '--work':
        o.workDir = resolve(value() ?? usage('--work needs a directory'));
        break;
      case '--out':
        o.out = resolve(value() ?? usage('--out needs a file'));
        break;
      case '--help':
      case '-h':
        process.stdout.write(HELP + '\n');
        process.exit(0);
        break;
      default:
        usage(`unknown option ${a}`);
    }
  }
  if (!Number.isInteger(o.sizeMib) || o.sizeMib < 8) usage('the data set size must be an integer >= 8 MiB');
  if (!Number.isInteger(o.repeat) || o.repeat < 1) usage('--repeat must be >= 1');
  if (o.smallMib < 0) o.smallMib = Math.min(256, Math.floor(o.sizeMib / 4));
  if (o.smallMib >= o.sizeMib) usage('--small-mib must be smaller than --size-mib');
  return o;
}

function usage(msg: string): never {
  process.stderr.write(`bench: ${msg}\n${HELP}\n`);
  process.exit(2);
}

function fail(msg: string): never {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(1);
}

const log = (s: string) => process.stdout.write(s + '\n');
const note = (s: string) => process.stderr.write(`  ${s}\n`);

// ---------------------------------------------------------------------------------------------------------------
// Set-up: tools and data

function commandExists(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function ensureTools(o: Options): void {
  const missing = [
    ...(o.tools.includes('restic') && !commandExists('restic') ? ['restic'] : []),
    ...(o.tools.includes('borg') && !commandExists('borg') ? ['borg'] : []),
    ...(!existsSync('/usr/bin/time') ? ['GNU time'] : []),
  ];
  if (missing.length === 0) return;
  log(`installing ${missing.join(', ')} (simulations/bench/install-tools.sh)`);
  const r = spawnSync('bash', [join(PROJECT_ROOT, 'simulations', 'bench', 'install-tools.sh')], { stdio: 'inherit' });
  const still = [...(o.tools.includes('restic') && !commandExists('restic') ? ['restic'] : []), ...(o.tools.includes('borg') && !commandExists('borg') ? ['borg (package borgbackup)'] : [])];
  if (r.status !== 0 || still.length > 0) {
    if (still.length > 0) {
      fail(
        `could not install ${still.join(' and ')}: run \`apt-get update && apt-get install -y restic borgbackup time\` as root, ` +
          `or run Reserve alone with --tools reserve`,
      );
    }
    note('GNU time could not be installed: peak RSS will be read by polling /proc/<pid>/status (VmHWM)');
  }
}

/**
 * Names, sizes and mtimes of every entry under `dir`, hashed: the data set as generated, so a copy changed since
 * (modify_data.py run on it by hand, a stray file) is noticed and generated again instead of skewing the figures.
 */
function fingerprint(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string, rel: string) => {
    for (const name of readdirSync(d).sort()) {
      const st = lstatSync(join(d, name));
      h.update(`${rel}${name}\0${st.mode}\0${st.size}\0${st.mtimeMs}\n`);
      if (st.isDirectory()) walk(join(d, name), `${rel}${name}/`);
    }
  };
  walk(dir, '');
  return h.digest('hex');
}

function ensureData(o: Options, sizeMib: number): string {
  const dir = join(o.benchDir, `data-${sizeMib}mib`);
  const stamp = `${dir}.fingerprint`;
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    if (existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === fingerprint(dir)) return dir;
    log(`the ${sizeMib} MiB data set in ${dir} is not as generated (changed since, or from an older bench): generating it again`);
  }
  const gen = join(o.datasets, 'gen_data.py');
  if (!existsSync(gen)) fail(`the data set generator ${gen} is missing (use --datasets DIR)`);
  if (!commandExists('python3')) fail('python3 is needed to generate the data set');
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(o.benchDir, { recursive: true });
  log(`generating the ${sizeMib} MiB data set into ${dir} (gen_data.py --seed 42) ...`);
  const started = performance.now();
  run('python3', [gen, '--out', partial, '--size-mib', String(sizeMib), '--seed', '42']);
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  writeFileSync(stamp, fingerprint(dir) + '\n');
  log(`  done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return dir;
}

// ---------------------------------------------------------------------------------------------------------------
// Measurement records

type Phase = 'full' | 'incremental' | 'verify' | 'restore' | 'small-full' | 'small-restore';

const PHASE_TITLE: Record<Phase, string> = {
  full: 'full backup',
  incremental: 'incremental',
  verify: 'verify',
  restore: 'restore',
  'small-full': 'full backup (small set)',
  'small-restore': 'restore (small set)',
};

interface RunRecord {
  tool: ToolName;
  phase: Phase;
  round: number;
  seconds: number;
  peakRssBytes: number;
  cpuSeconds: number | null;
  sysSeconds: number | null;
  /** Logical bytes the phase is rated on (the input tree's size). */
  bytes: number;
  mbPerSecond: number;
  cache: 'cold' | 'warm';
  /** Reserve's own --json report, when the tool is Reserve. */
  report?: unknown;
}

interface Summary {
  tool: ToolName;
  phase: Phase;
  seconds: number;
  allSeconds: number[];
  mbPerSecond: number;
  peakRssBytes: number;
  cpuSeconds: number | null;
  sysSeconds: number | null;
}

interface Failure {
  tool: ToolName;
  phase: Phase;
  error: string;
}

class Recorder {
  readonly runs: RunRecord[] = [];
  readonly failures: Failure[] = [];
  coldCache = true;
  constructor(readonly gnuTime: boolean) {}

  failed(tool: ToolName): boolean {
    return this.failures.some((f) => f.tool === tool);
  }

  /** Time one command. A failing command is recorded (the tool then sits out the later phases), not thrown. */
  async time(tool: Tool, phase: Phase, round: number, bytes: number, cmd: Command | (() => Command)): Promise<RunRecord | null> {
    let m: Awaited<ReturnType<typeof measure>>;
    let cold = false;
    try {
      const c = typeof cmd === 'function' ? cmd() : cmd; // before the cache drop: it may run a small query
      cold = dropCaches();
      if (!cold) this.coldCache = false;
      m = await measure(c, this.gnuTime);
    } catch (e) {
      if (!(e instanceof CommandFailedError)) throw e;
      this.failures.push({ tool: tool.name, phase, error: e.message });
      note(`${PHASE_TITLE[phase].padEnd(24)} ${tool.name.padEnd(8)} FAILED: ${e.message.split('\n').slice(1).join(' ').slice(0, 400)}`);
      return null;
    }
    let report: unknown;
    if (tool.name === 'reserve') {
      try {
        report = JSON.parse(m.stdout);
      } catch {
        report = undefined;
      }
    }
    const r: RunRecord = {
      tool: tool.name,
      phase,
      round,
      seconds: m.seconds,
      peakRssBytes: m.peakRss,
      cpuSeconds: m.cpuSeconds,
      sysSeconds: m.sysSeconds,
      bytes,
      mbPerSecond: bytes / 1e6 / m.seconds,
      cache: cold ? 'cold' : 'warm',
      ...(report !== undefined ? { report } : {}),
    };
    this.runs.push(r);
    const warnings = (report as { warnings?: unknown[] } | undefined)?.warnings;
    if (Array.isArray(warnings) && warnings.length > 0) note(`${tool.name} warned ${warnings.length}x, e.g. ${String(warnings[0]).slice(0, 200)}`);
    note(
      `${PHASE_TITLE[phase].padEnd(24)} ${tool.name.padEnd(8)} ${m.seconds.toFixed(2).padStart(7)} s  ${r.mbPerSecond.toFixed(0).padStart(5)} MB/s  ` +
        `${(m.peakRss / MiB).toFixed(0).padStart(5)} MiB RSS${m.cpuSeconds !== null ? `  ${m.cpuSeconds.toFixed(1)} CPU s (${m.sysSeconds!.toFixed(1)} sys)` : ''}`,
    );
    return r;
  }

  summary(tool: ToolName, phase: Phase): Summary | undefined {
    const rs = this.runs.filter((r) => r.tool === tool && r.phase === phase);
    if (rs.length === 0) return undefined;
    const best = rs.reduce((a, b) => (b.seconds < a.seconds ? b : a));
    return {
      tool,
      phase,
      seconds: best.seconds,
      allSeconds: rs.map((r) => r.seconds),
      mbPerSecond: best.mbPerSecond,
      peakRssBytes: Math.max(...rs.map((r) => r.peakRssBytes)),
      cpuSeconds: best.cpuSeconds,
      sysSeconds: best.sysSeconds,
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The run

interface Target {
  name: string;
  measured: string;
  met: boolean;
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  ensureTools(o);
  const gnuTime = haveGnuTime();
  const data = ensureData(o, o.sizeMib);
  const small = o.smallMib > 0 ? ensureData(o, o.smallMib) : null;
  const modify = join(o.datasets, 'modify_data.py');
  if (!existsSync(modify)) fail(`${modify} is missing (use --datasets DIR)`);

  const work = join(o.workDir, 'work');
  rmSync(work, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  mkdirSync(work, { recursive: true });
  setScratchDir(join(o.workDir, 'tmp'));
  const tools = o.tools.map((t) => makeTool(t, work, o.reserveRoot));
  const versions = Object.fromEntries(tools.map((t) => [t.name, t.version()]));
  const rec = new Recorder(gnuTime);
  const alive = (ts: Tool[]) => ts.filter((t) => !rec.failed(t.name));
  const load0 = loadavg();
  const startedAt = new Date();

  // One copy of the data set that every tool backs up: full backups of it, then the 5% change, then incrementals
  // (the same path throughout, so each tool finds its parent snapshot / files cache).
  const src = join(work, 'src');
  log(`copying the data set to ${src} ...`);
  run('cp', ['-a', data, src]);
  const input = await dirSize(src);
  log(`data set: ${(input.bytes / MiB).toFixed(0)} MiB in ${input.files} files; ${tools.map((t) => versions[t.name]).join('; ')}`);
  log(`phases (page cache dropped before each command when permitted; order alternates between rounds):`);

  // Disk references, cold like every tool's run: what this disk and kernel take to read every file of the tree
  // (8 parallel readers: no backup can finish sooner, it must read each byte) and to copy it (cp -a, and 8 cp -a at
  // once: reading and writing every file once, no hashing and no fsync; a restore writes as much). They say what
  // bounds the ratios.
  const references: Record<'read' | 'copy' | 'pcopy', number | null> = { read: null, copy: null, pcopy: null };
  {
    const refCopy = join(work, 'reference-copy');
    const runs: Record<'read' | 'copy' | 'pcopy', Command> = {
      read: { cmd: 'sh', args: ['-c', 'find "$1" -type f -print0 | xargs -0 -P 8 -n 64 cat > /dev/null', 'sh', src] },
      copy: { cmd: 'cp', args: ['-a', src, refCopy] },
      // The directories first (a restore makes them too), then the files 64 at a time, 8 copies at once.
      pcopy: {
        cmd: 'sh',
        args: [
          '-c',
          'cd "$1" && mkdir -p "$2" && find . -type d -print0 | (cd "$2" && xargs -0 mkdir -p) && find . -type f -print0 | xargs -0 -P 8 -n 64 cp -a --parents -t "$2"',
          'sh',
          src,
          refCopy,
        ],
      },
    };
    for (let round = 0; round < o.repeat; round++) {
      for (const k of ['read', 'copy', 'pcopy'] as const) {
        rmSync(refCopy, { recursive: true, force: true });
        if (!dropCaches()) rec.coldCache = false;
        const m = await measure(runs[k], gnuTime);
        references[k] = Math.min(references[k] ?? Infinity, m.seconds);
      }
    }
    rmSync(refCopy, { recursive: true, force: true });
    note(
      `disk references: every file read by 8 parallel readers ${references.read!.toFixed(2)} s, cp -a of the tree ${references.copy!.toFixed(2)} s, ` +
        `8 cp -a at once ${references.pcopy!.toFixed(2)} s (best of ${o.repeat})`,
    );
  }

  // Full backup, best of `repeat`, each in a fresh repository; the last round's repositories carry on.
  for (let round = 0; round < o.repeat; round++) {
    const order = round % 2 === 0 ? tools : [...tools].reverse();
    for (const t of alive(order)) {
      t.reset();
      await rec.time(t, 'full', round, input.bytes, t.backup(src, 'full'));
    }
  }
  const repoAfterFull: Record<string, number> = {};
  for (const t of tools) repoAfterFull[t.name] = existsSync(t.repo) ? (await dirSize(t.repo)).bytes : 0;

  // The 5% change, once, on the shared copy.
  const modOut = run('python3', [modify, src, '--fraction', '0.05', '--seed', '7']).trim();
  note(`modify_data.py: ${modOut}`);
  const changed = await dirSize(src);

  // Incremental: one run each (it needs the repository exactly as the full backup left it); reverse order.
  for (const t of alive([...tools].reverse())) await rec.time(t, 'incremental', 0, changed.bytes, t.backup(src, 'incremental'));
  const repoAfterIncr: Record<string, { bytes: number; diskBytes: number; files: number }> = {};
  for (const t of tools) repoAfterIncr[t.name] = existsSync(t.repo) ? await dirSize(t.repo) : { bytes: 0, diskBytes: 0, files: 0 };

  // Verify: one run each.
  for (const t of alive(tools)) await rec.time(t, 'verify', 0, changed.bytes, t.verify());

  // Restore, best of `repeat`, into an empty directory; the first round's result is compared with the source.
  const identical: Record<string, { diffs: number; first: string[] }> = {};
  for (let round = 0; round < o.repeat; round++) {
    const order = round % 2 === 0 ? tools : [...tools].reverse();
    for (const t of alive(order)) {
      const target = join(work, `restore-${t.name}`);
      rmSync(target, { recursive: true, force: true });
      mkdirSync(target);
      const r = await rec.time(t, 'restore', round, changed.bytes, () => t.restore(target));
      if (r && round === 0) {
        const diffs = await compareTrees(src, t.restoredRoot(target, src));
        identical[t.name] = { diffs: diffs.length, first: diffs.slice(0, 5) };
        note(`restore of ${t.name}: ${diffs.length === 0 ? 'byte-identical (names, contents, modes, mtimes, links)' : `${diffs.length} differences, e.g. ${diffs.slice(0, 3).join('; ')}`}`);
      }
      rmSync(target, { recursive: true, force: true });
    }
  }

  // Reserve on the smaller data set: is peak RSS flat as the data grows?
  let smallInput: number | null = null;
  let smallIdentical: number | null = null;
  if (small) {
    const sw = join(work, 'small');
    const r = makeTool('reserve', sw, o.reserveRoot);
    smallInput = (await dirSize(small)).bytes;
    let ok = true;
    for (let round = 0; round < o.repeat && ok; round++) {
      r.reset();
      ok = (await rec.time(r, 'small-full', round, smallInput, r.backup(small, 'full'))) !== null;
    }
    const target = join(sw, 'restore');
    mkdirSync(target);
    if (ok && (await rec.time(r, 'small-restore', 0, smallInput, r.restore(target)))) smallIdentical = (await compareTrees(small, target)).length;
    rmSync(sw, { recursive: true, force: true });
  }

  // Optional: profile Reserve's backup and restore of the modified tree (fresh repository).
  let profiles: Record<string, ThreadProfile[]> | undefined;
  if (o.profile) {
    profiles = {};
    const profRoot = join(o.workDir, 'profiles');
    rmSync(profRoot, { recursive: true, force: true });
    const pw = join(work, 'profile');
    note('profiling Reserve (node --cpu-prof; these runs are slower and are not counted)');
    for (const phase of ['backup', 'restore'] as const) {
      const dir = join(profRoot, phase);
      mkdirSync(dir, { recursive: true });
      const r = makeProfiledReserve(pw, dir, o.reserveRoot);
      let ran: RunRecord | null;
      if (phase === 'backup') {
        r.reset();
        ran = await rec.time(r, 'full', 99, changed.bytes, r.backup(src, 'profiled'));
      } else {
        const target = join(pw, 'restore');
        mkdirSync(target);
        ran = await rec.time(r, 'restore', 99, changed.bytes, r.restore(target));
      }
      if (!ran) break;
      rec.runs.pop(); // profiled runs are slower; keep them out of the figures
      profiles[phase] = summarizeDir(dir);
    }
  }
  const load1 = loadavg();

  // -------------------------------------------------------------------------------------------------------------
  // Report
  const S = (tool: ToolName, phase: Phase) => rec.summary(tool, phase);
  const mib = (b: number) => `${(b / MiB).toFixed(0)} MiB`;
  const phases: Phase[] = ['full', 'incremental', 'verify', 'restore'];
  const cacheWord = rec.coldCache ? 'cold cache (page cache dropped before each command)' : 'warm cache (could not drop the page cache: not root?)';
  log('');
  log(`Reserve backup benchmark, ${startedAt.toISOString()}: ${mib(input.bytes)} in ${input.files} files (gen_data.py seed 42), ${cacheWord}, best of ${o.repeat} for full backup and restore`);
  log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; load average ${load0[0].toFixed(2)} at start, ${load1[0].toFixed(2)} at end (other work on the machine makes these figures noisy)`);
  log(`versions: ${Object.values(versions).join('; ')}`);
  log('MB/s = input tree size (10^6 bytes) / wall time of the command, including process start-up.');
  log('');
  log(`${'phase'.padEnd(13)}${'tool'.padEnd(9)}${'time s'.padStart(8)}${'(all runs)'.padStart(16)}${'MB/s'.padStart(8)}${'peak RSS'.padStart(11)}${'CPU s'.padStart(8)}${'(sys)'.padStart(7)}`);
  for (const phase of phases) {
    o.tools.forEach((t, i) => {
      const s = S(t, phase);
      const head = `${(i === 0 ? PHASE_TITLE[phase] : '').padEnd(13)}${t.padEnd(9)}`;
      const f = rec.failures.find((x) => x.tool === t && x.phase === phase);
      if (f) log(`${head}  FAILED (see below)`);
      else if (!s) log(`${head}  skipped (failed earlier)`);
      else
        log(
          `${head}${s.seconds.toFixed(2).padStart(8)}${('(' + s.allSeconds.map((x) => x.toFixed(2)).join(', ') + ')').padStart(16)}` +
            `${s.mbPerSecond.toFixed(0).padStart(8)}${mib(s.peakRssBytes).padStart(11)}${(s.cpuSeconds === null ? '-' : s.cpuSeconds.toFixed(1)).padStart(8)}${(s.sysSeconds === null ? '' : `(${s.sysSeconds.toFixed(1)})`).padStart(7)}`,
        );
    });
  }
  log('');
  log(`${'repository'.padEnd(10)}${'after full'.padStart(14)}${'after incr'.padStart(14)}${'on disk'.padStart(12)}${'files'.padStart(9)}${'x input'.padStart(9)}`);
  for (const t of o.tools) {
    const a = repoAfterIncr[t];
    log(`${t.padEnd(10)}${mib(repoAfterFull[t]).padStart(14)}${mib(a.bytes).padStart(14)}${mib(a.diskBytes).padStart(12)}${String(a.files).padStart(9)}${(a.bytes / changed.bytes).toFixed(2).padStart(9)}`);
  }

  // Targets (issue 2).
  const targets: Target[] = [];
  const missing = (phase: Phase, ...ts: ToolName[]) => {
    const f = rec.failures.find((x) => ts.includes(x.tool));
    return f ? `${f.tool} failed (${PHASE_TITLE[f.phase]})` : `no ${PHASE_TITLE[phase]} figures`;
  };
  const ratio = (phase: Phase, other: ToolName, need: number, label: string) => {
    if (!o.tools.includes(other)) return;
    const r = S('reserve', phase);
    const x = S(other, phase);
    const name = `${label} >= ${need}x ${other}`;
    if (!r || !x) return void targets.push({ name, measured: missing(phase, 'reserve', other), met: false });
    const v = r.mbPerSecond / x.mbPerSecond;
    targets.push({ name, measured: `${v.toFixed(2)}x (${r.mbPerSecond.toFixed(0)} vs ${x.mbPerSecond.toFixed(0)} MB/s)`, met: v >= need });
  };
  ratio('full', 'restic', 4, 'full backup');
  ratio('full', 'borg', 2.5, 'full backup');
  ratio('restore', 'restic', 3, 'restore');
  ratio('restore', 'borg', 2, 'restore');
  for (const other of o.tools.filter((t) => t !== 'reserve')) {
    const r = S('reserve', 'incremental');
    const x = S(other, 'incremental');
    const name = `incremental no slower than ${other}`;
    if (!r || !x) targets.push({ name, measured: missing('incremental', 'reserve', other), met: false });
    else targets.push({ name, measured: `${r.seconds.toFixed(2)} s vs ${x.seconds.toFixed(2)} s (${(x.seconds / r.seconds).toFixed(2)}x)`, met: r.seconds <= x.seconds });
  }
  const reserveRuns = rec.runs.filter((r) => r.tool === 'reserve');
  const reserveRss = reserveRuns.length ? Math.max(...reserveRuns.map((r) => r.peakRssBytes)) : 0;
  targets.push({ name: 'Reserve peak RSS <= 256 MiB (every phase, both sizes)', measured: reserveRuns.length ? mib(reserveRss) : 'no runs', met: reserveRuns.length > 0 && reserveRss <= 256 * MiB });
  const flat: Array<{ phase: string; small: number; large: number }> = [];
  if (small) {
    for (const [lp, sp] of [['full', 'small-full'], ['restore', 'small-restore']] as Array<[Phase, Phase]>) {
      const l = S('reserve', lp);
      const s = S('reserve', sp);
      const name = `peak RSS flat as data grows: ${PHASE_TITLE[lp]} ${o.smallMib} -> ${o.sizeMib} MiB (<= +20%)`;
      if (!l || !s) {
        targets.push({ name, measured: missing(lp, 'reserve'), met: false });
        continue;
      }
      flat.push({ phase: PHASE_TITLE[lp], small: s.peakRssBytes, large: l.peakRssBytes });
      const growth = l.peakRssBytes / s.peakRssBytes - 1;
      targets.push({ name, measured: `${mib(s.peakRssBytes)} -> ${mib(l.peakRssBytes)} (${growth >= 0 ? '+' : ''}${(growth * 100).toFixed(0)}%)`, met: growth <= 0.2 });
    }
    targets.push({ name: `restore of the ${o.smallMib} MiB set byte-identical`, measured: smallIdentical === null ? missing('small-restore', 'reserve') : smallIdentical === 0 ? 'identical' : `${smallIdentical} differences`, met: smallIdentical === 0 });
  }
  for (const t of o.tools) {
    const d = identical[t];
    const name = `${t} restore byte-identical to the source`;
    if (!d) {
      if (t === 'reserve') targets.push({ name, measured: missing('restore', t), met: false });
    } else if (t === 'reserve' || d.diffs > 0) {
      targets.push({ name, measured: d.diffs === 0 ? 'identical' : `${d.diffs} differences: ${d.first.slice(0, 2).join('; ')}`, met: d.diffs === 0 });
    }
  }
  // The times the speed targets ask for, against the disk references measured above.
  const needs = (phase: Phase, other: ToolName, factor: number) => {
    const x = S(other, phase);
    return x && o.tools.includes(other) ? `${factor}x ${other} needs ${(x.seconds / factor).toFixed(2)} s` : null;
  };
  const fullRun = S('reserve', 'full');
  const restoreRun = S('reserve', 'restore');
  log('');
  log(
    `disk references: every file read cold by 8 parallel readers ${references.read!.toFixed(2)} s (the least any full backup takes), ` +
      `cp -a of the tree ${references.copy!.toFixed(2)} s, 8 cp -a at once ${references.pcopy!.toFixed(2)} s (reading and writing every file once)`,
  );
  if (fullRun) log(`  full backup: Reserve ${fullRun.seconds.toFixed(2)} s = ${(fullRun.seconds / references.read!).toFixed(2)}x the read; ${[needs('full', 'restic', 4), needs('full', 'borg', 2.5)].filter(Boolean).join(', ') || 'no other tool ran'}`);
  if (restoreRun) log(`  restore: Reserve ${restoreRun.seconds.toFixed(2)} s = ${(restoreRun.seconds / references.copy!).toFixed(2)}x cp -a, ${(restoreRun.seconds / references.pcopy!).toFixed(2)}x 8 cp -a at once; ${[needs('restore', 'restic', 3), needs('restore', 'borg', 2)].filter(Boolean).join(', ') || 'no other tool ran'}`);
  log('');
  log(`${'target (issue 2)'.padEnd(68)}${'measured'.padEnd(38)}result`);
  for (const t of targets) log(`${t.name.padEnd(67)} ${t.measured.padEnd(37)} ${t.met ? 'met' : 'NOT met'}`);
  if (flat.length) {
    log('');
    log(`Reserve peak RSS by data set size: ${flat.map((f) => `${f.phase} ${mib(f.small)} at ${o.smallMib} MiB, ${mib(f.large)} at ${o.sizeMib} MiB`).join('; ')}`);
  }
  if (rec.failures.length) {
    log('');
    log('FAILURES:');
    for (const f of rec.failures) log(`  ${f.tool} ${PHASE_TITLE[f.phase]}: ${f.error}`);
  }
  if (profiles) {
    for (const phase of ['backup', 'restore'] as const) {
      if (!profiles[phase]) continue;
      log('');
      log(formatProfiles(`Reserve ${phase} profile (node --cpu-prof; files in .bench/profiles/${phase})`, profiles[phase]));
    }
  }

  const result = {
    date: startedAt.toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, memoryBytes: totalmem(), loadAverageStart: load0, loadAverageEnd: load1, node: process.version },
    versions,
    options: { sizeMib: o.sizeMib, smallMib: o.smallMib, repeat: o.repeat, tools: o.tools, reserveRoot: o.reserveRoot },
    cache: rec.coldCache ? 'cold' : 'warm',
    rssMeasuredBy: gnuTime ? 'GNU time (wait4 rusage ru_maxrss)' : '/proc/<pid>/status VmHWM polling',
    input: { files: input.files, bytes: input.bytes, modifiedBytes: changed.bytes, modify: modOut, smallBytes: smallInput },
    summary: Object.fromEntries(
      o.tools.map((t) => [t, Object.fromEntries((['full', 'incremental', 'verify', 'restore', 'small-full', 'small-restore'] as Phase[]).map((p) => [p, S(t, p)]).filter(([, s]) => s))]),
    ),
    repository: Object.fromEntries(
      o.tools.map((t) => [t, { afterFullBytes: repoAfterFull[t], afterIncrementalBytes: repoAfterIncr[t].bytes, diskBytes: repoAfterIncr[t].diskBytes, files: repoAfterIncr[t].files, ratioToInput: repoAfterIncr[t].bytes / changed.bytes }]),
    ),
    restoreIdentical: identical,
    diskReferences: { readSeconds: references.read, copySeconds: references.copy, parallelCopySeconds: references.pcopy },
    rssBySize: flat.map((f) => ({ phase: f.phase, smallMib: o.smallMib, smallBytes: f.small, largeMib: o.sizeMib, largeBytes: f.large })),
    targets,
    failures: rec.failures,
    runs: rec.runs,
    profiles,
  };
  mkdirSync(join(o.out, '..'), { recursive: true });
  writeFileSync(o.out, JSON.stringify(result, null, 2) + '\n');
  log('');
  log(`results written to ${o.out}`);
  if (!o.keep) rmSync(work, { recursive: true, force: true });
  cleanupMeasure();
  if (rec.failures.length) process.exitCode = 1;
}

main().catch((e: unknown) => {
  cleanupMeasure();
  fail(e instanceof Error ? e.message : String(e));
});
