/**
 * Summarise V8 CPU profiles (`node --cpu-prof`, one file per thread) into where the time went: self time by
 * category (idle = the thread waited for I/O or for another thread; hashing; chunking; file system; ...) and the
 * hottest functions. Node names each file CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile; thread 0 is the
 * main thread, the others are the chunking workers.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ThreadProfile {
  file: string;
  thread: number;
  totalMs: number;
  categories: Array<{ category: string; ms: number; share: number }>;
  top: Array<{ fn: string; where: string; category: string; ms: number; share: number }>;
}

/** Native fs bindings: what the main thread spends queueing (or doing) file-system calls. */
const FS_BINDINGS =
  /^(open|openFileHandle|close|read|readBuffers|writeBuffer|writeBuffers|writeString|fstat|lstat|stat|lchown|chown|fchown|chmod|fchmod|utimes|futimes|lutimes|readdir|access|fsync|fdatasync|rename|mkdir|unlink|rmdir|readlink|symlink|link|readFileUtf8|realpath|copyFile|ftruncate)$/;

/** The category of a frame, from its function name and script URL. */
export function categorize(f: CallFrame): string {
  const fn = f.functionName;
  const url = f.url;
  if (fn === '(idle)') return 'idle (waiting for I/O or workers)';
  if (fn === '(garbage collector)') return 'garbage collection';
  if (fn === '(program)') return 'V8/native outside JS';
  if (fn === '(root)') return 'other';
  if (/fastcdc/.test(url)) return 'chunking (FastCDC)';
  if (/hashes\/sha2|node:internal\/crypto|digestSync/.test(url + ' ' + fn) || /^(digest|update|createHash|Hash)$/.test(fn)) return 'hashing (sha2-256)';
  if (/tsx|esbuild|node:internal\/modules|get-tsconfig|node:internal\/process\/esm_loader/.test(url)) return 'start-up (module loading, tsx)';
  if (/fs-blockstore/.test(url)) return 'block store (fs-blockstore)';
  if (!url && FS_BINDINGS.test(fn)) return 'file system calls';
  if (/node:internal\/fs|node:fs/.test(url) || /^(read|write|open|close|fsync|fdatasync|datasync|rename|mkdir|access|lstat|readFile|writeFile)$/.test(fn)) return 'file system calls';
  if (/worker_threads|node:internal\/worker|per_context\/messageport|structuredClone|postMessage/.test(url + ' ' + fn)) return 'worker messaging';
  if (/@ipld|cborg/.test(url)) return 'dag-cbor encoding';
  if (/multiformats/.test(url)) return 'CIDs (multiformats)';
  if (/\/core\/snapshot\/|\/core\/util\//.test(url)) return 'engine logic (core/snapshot)';
  if (/\/adapters\/workers\//.test(url)) return 'chunk pool glue';
  if (/\/adapters\//.test(url)) return 'adapters';
  if (/node:internal\/(streams|buffer)|node:buffer/.test(url)) return 'buffers';
  if (/node:internal/.test(url)) return 'node internals';
  return 'other';
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  const i = url.lastIndexOf('/node_modules/');
  if (i >= 0) return url.slice(i + 14);
  const m = /\/(core|adapters|simulations|bin)\/.*$/.exec(url);
  return m ? m[0].slice(1) : url.replace(/^file:\/\//, '');
}

export function summarizeProfile(file: string, topN = 12): ThreadProfile {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; the time after it (until the next sample) belongs to sample i.
  for (let i = 0; i < p.samples.length; i++) {
    const dt = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1] : 0;
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + Math.max(0, dt));
  }
  const cats = new Map<string, number>();
  const fns = new Map<string, { fn: string; where: string; category: string; us: number }>();
  let total = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    total += us;
    const category = categorize(n.callFrame);
    cats.set(category, (cats.get(category) ?? 0) + us);
    const fn = n.callFrame.functionName || '(anonymous)';
    const where = `${shortUrl(n.callFrame.url)}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    const key = `${fn}@${where}`;
    const e = fns.get(key) ?? { fn, where, category, us: 0 };
    e.us += us;
    fns.set(key, e);
  }
  const m = /\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(file);
  const share = (us: number) => (total > 0 ? us / total : 0);
  return {
    file,
    thread: m ? Number(m[2]) : -1,
    totalMs: total / 1000,
    categories: [...cats].sort((a, b) => b[1] - a[1]).map(([category, us]) => ({ category, ms: us / 1000, share: share(us) })),
    top: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map((e) => ({ fn: e.fn, where: e.where, category: e.category, ms: e.us / 1000, share: share(e.us) })),
  };
}

/** Every profile in a directory, main thread first. */
export function summarizeDir(dir: string, topN = 12): ThreadProfile[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => summarizeProfile(join(dir, f), topN))
    .sort((a, b) => a.thread - b.thread);
}

export function formatProfiles(title: string, threads: ThreadProfile[]): string {
  const lines: string[] = [`${title}`];
  for (const t of threads) {
    const idle = t.categories.find((c) => c.category.startsWith('idle'))?.share ?? 0;
    if (t.thread !== 0 && idle >= 0.97) {
      // tsx's module-loader hook threads (one per thread that registers tsx) sit idle after start-up.
      lines.push(`  thread ${t.thread}: ${(idle * 100).toFixed(1)}% idle (a module-loader hooks thread, or a worker with nothing to do)`);
      continue;
    }
    lines.push(`  ${t.thread === 0 ? 'main thread' : `worker thread ${t.thread}`}: ${(t.totalMs / 1000).toFixed(2)} s sampled`);
    for (const c of t.categories.filter((c) => c.share >= 0.01)) {
      lines.push(`    ${(c.share * 100).toFixed(1).padStart(5)}%  ${(c.ms / 1000).toFixed(2).padStart(6)} s  ${c.category}`);
    }
    lines.push('    hottest functions (self time):');
    for (const f of t.top) lines.push(`    ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.fn}  ${f.where}`);
  }
  return lines.join('\n');
}

// `node --import tsx simulations/bench/backup-profile.ts <dir>`: summarise a directory of profiles.
if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: backup-profile.ts <directory of .cpuprofile files>\n');
    process.exit(2);
  }
  process.stdout.write(formatProfiles(`profiles in ${dir}`, summarizeDir(dir)) + '\n');
}
