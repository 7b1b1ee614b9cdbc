/**
 * One convention for every property test. CI runs a fixed seed (derived from the property's name, so each
 * property explores different ground but the same ground every run); RESERVE_SEED overrides it for soaks and
 * replays, RESERVE_RUNS sets every property's number of runs and RESERVE_RUNS_SCALE multiplies each one's own
 * (`npm run soak:proofs` uses both). fast-check prints the seed and the shrunk counterexample path on failure; we
 * add the one-line command that replays it.
 */
import fc from 'fast-check';

/** FNV-1a of the name: a stable 31-bit seed per property. */
export function seedFor(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) & 0x7fffffff;
}

export function propertyOptions<T>(name: string, defaults: { numRuns?: number } = {}): fc.Parameters<T> {
  const seed = seedOf(name);
  const numRuns = runsFor(defaults.numRuns ?? 100);
  return {
    seed,
    numRuns,
    reporter(details) {
      if (!details.failed) return;
      const replay = `RESERVE_SEED=${details.seed} npx vitest run -t ${JSON.stringify(name)}`;
      const cause = details.errorInstance instanceof Error ? `\ncause: ${details.errorInstance.message}` : '';
      throw new Error(`${fc.defaultReportMessage(details)}${cause}\nreplay: ${replay} (fast-check path ${JSON.stringify(details.counterexamplePath)})`, { cause: details.errorInstance });
    },
  };
}

/** The seed a test named `name` runs with: RESERVE_SEED when set, else its own fixed one (seedFor). */
export function seedOf(name: string): number {
  const given = process.env.RESERVE_SEED;
  if (given === undefined) return seedFor(name);
  const n = Number(given);
  if (!Number.isInteger(n)) throw new RangeError(`RESERVE_SEED must be an integer, got ${JSON.stringify(given)}`);
  return n;
}

/**
 * How many runs (or rounds, for tests that loop over seeded rounds themselves) a test makes whose CI default is
 * `ciRuns`: RESERVE_RUNS when set, else `ciRuns` times RESERVE_RUNS_SCALE (default 1), at least 1.
 */
export function runsFor(ciRuns: number): number {
  const env = process.env;
  if (env.RESERVE_RUNS !== undefined) return positive('RESERVE_RUNS', env.RESERVE_RUNS, true);
  const scale = env.RESERVE_RUNS_SCALE !== undefined ? positive('RESERVE_RUNS_SCALE', env.RESERVE_RUNS_SCALE, false) : 1;
  return Math.max(1, Math.round(ciRuns * scale));
}

function positive(name: string, value: string, integer: boolean): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new RangeError(`${name} must be a positive ${integer ? 'integer' : 'number'}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Pinned counterexamples found earlier: run these seeds/paths on every CI run as regressions. */
export function pinned<T>(name: string, seed: number, path: string): fc.Parameters<T> {
  return { ...propertyOptions<T>(name), seed, path, endOnFailure: true };
}
