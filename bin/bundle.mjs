// Bundles of hot entry points, built on demand with esbuild and cached under node_modules/.cache/reserve-bundles/<root hash>/.
//
// Loading the TypeScript sources through tsx costs each process (and each worker thread, which must register tsx
// again) a few hundred milliseconds of compiling and resolving on every start. A bundle is one plain ES module:
// node loads it in a few milliseconds. There is still no build step: a bundle is rebuilt whenever any of its
// input files differs (mtime or size) from when it was built, so what runs is always the current source. Packages
// stay external (node_modules is resolved from the cache directory, which is inside it). Without esbuild (a
// production install without devDependencies) or on any build error, `bundled` returns null and callers fall back
// to tsx.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

function root() {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..');
}

/** Inputs as [path relative to the root, mtimeMs, size]; fresh when every one is unchanged. */
function fresh(manifestPath, out, base) {
  let manifest;
  try {
    manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    statSync(out);
  } catch {
    return false;
  }
  if (!Array.isArray(manifest.inputs) || manifest.node !== process.version) return false;
  for (const [rel, mtimeMs, size] of manifest.inputs) {
    try {
      const s = statSync(join(base, rel));
      if (s.mtimeMs !== mtimeMs || s.size !== size) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * The path of a fresh bundle of `entry` (relative to the project root), built now if missing or stale; null when
 * it cannot be built (the caller then loads the sources through tsx). Dynamic imports of our own modules stay
 * dynamic imports of the sources (which need tsx when reached: a launcher uses such a bundle only for commands that
 * do not reach them). Asynchronous (esbuild plugins need its async API).
 */
export async function bundled(name, entry) {
  return build(name, entry, async (esbuild, options) =>
    esbuild.build({
      ...options,
      plugins: [
        {
          name: 'keep-dynamic-imports',
          setup(b) {
            b.onResolve({ filter: /^\./ }, (args) =>
              args.kind === 'dynamic-import' ? { path: pathToFileURL(resolve(args.resolveDir, args.path)).href, external: true } : undefined,
            );
          },
        },
      ],
    }),
  );
}

/**
 * `bundled` for an entry without dynamic imports of its own modules, synchronously (for a worker's script); with
 * `withPackages` its packages are bundled too (only for entries whose packages are plain JavaScript).
 */
export function bundledSync(name, entry, withPackages = false) {
  return build(name, entry, (esbuild, options) => esbuild.buildSync(withPackages ? { ...options, packages: undefined } : options));
}

function build(name, entry, run) {
  const base = root();
  // One cache per checkout (node_modules may be shared with another checkout through a symlink).
  const cache = join(base, 'node_modules', '.cache', 'reserve-bundles', createHash('sha256').update(base).digest('hex').slice(0, 12));
  const out = join(cache, `${name}.mjs`);
  const manifestPath = join(cache, `${name}.json`);
  const finish = (result, started) => {
    const inputs = [];
    for (const rel of Object.keys(result.metafile.inputs)) {
      const s = statSync(join(base, rel));
      // Edited while we built: the bundle may hold the old text. Use the sources this time.
      if (s.mtimeMs >= started - 1) return null;
      inputs.push([rel, s.mtimeMs, s.size]);
    }
    mkdirSync(cache, { recursive: true });
    const tag = `${process.pid}-${Math.random().toString(36).slice(2)}`;
    for (const f of result.outputFiles) {
      writeFileSync(`${f.path}.${tag}`, f.contents);
      renameSync(`${f.path}.${tag}`, f.path);
    }
    writeFileSync(`${manifestPath}.${tag}`, JSON.stringify({ node: process.version, entry, inputs }));
    renameSync(`${manifestPath}.${tag}`, manifestPath);
    return out;
  };
  try {
    if (process.env.RESERVE_NO_BUNDLE === '1') return null;
    if (fresh(manifestPath, out, base)) return out;
    const esbuild = createRequire(import.meta.url)('esbuild');
    const started = Date.now();
    const options = {
      absWorkingDir: base,
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      metafile: true,
      write: false,
      outfile: out,
      logLevel: 'silent',
    };
    const result = run(esbuild, options);
    if (result instanceof Promise) return result.then((r) => finish(r, started)).catch(() => null);
    return finish(result, started);
  } catch {
    return null;
  }
}

/** Where a launcher leaves the chunk worker's bundle for the chunking pool (adapters/workers/chunk-pool.ts). */
export const CHUNK_WORKER_KEY = Symbol.for('reserve.chunkWorkerBundle');
