/**
 * One convention for every property test. CI runs a fixed seed (derived from the property's name, so each
 * property explores different ground but the same ground every run); RESERVE_SEED and RESERVE_RUNS override it
 * for soaks and replays. fast-check prints the seed and the shrunk counterexample path on failure; we add the
 * one-line command that replays it.
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
  const seed = process.env.RESERVE_SEED !== undefined ? Number(process.env.RESERVE_SEED) : seedFor(name);
  const numRuns = process.env.RESERVE_RUNS !== undefined ? Number(process.env.RESERVE_RUNS) : (defaults.numRuns ?? 100);
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

/** Pinned counterexamples found earlier: run these seeds/paths on every CI run as regressions. */
export function pinned<T>(name: string, seed: number, path: string): fc.Parameters<T> {
  return { ...propertyOptions<T>(name), seed, path, endOnFailure: true };
}
