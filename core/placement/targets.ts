/**
 * Capacity-fair shares: the inclusion probability each live Box should have (the chance that a given chunk has
 * a replica on it), which is what balance, capacity-following and "fair share" are measured against.
 *
 * With R' replicas per chunk and capacities c_i, Box i's fair inclusion is
 *
 *   t_i = min(1, lambda * c_i)   with lambda chosen so that sum t_i = R'
 *
 * i.e. proportional to capacity, except that no Box can hold more than one replica of a chunk: a Box with more
 * than 1/R' of the (remaining) capacity is capped at every chunk once (t_i = 1) and the others share the rest
 * in proportion to their capacity (water-filling). Its unusable capacity is not spread over the others.
 *
 * Computed exactly by capping the largest Boxes one at a time (no iteration tolerance), in a fixed order, so
 * every Box derives identical values.
 */

/** Fair inclusion per Box for `replicas` replicas per chunk (0 <= replicas <= capacities.length). */
export function cappedShares(capacities: readonly number[], replicas: number): number[] {
  const n = capacities.length;
  const t: number[] = new Array(n).fill(0);
  if (replicas <= 0 || n === 0) return t;
  // Largest first; ties by index so the order is total.
  const order = capacities.map((_, i) => i).sort((a, b) => capacities[b]! - capacities[a]! || a - b);
  // rest[k] = capacity of order[k..n-1], summed from the smallest up (no cancellation from subtracting).
  const rest = new Array<number>(n + 1).fill(0);
  for (let k = n - 1; k >= 0; k--) rest[k] = rest[k + 1]! + capacities[order[k]!]!;
  let capped = 0;
  // Cap Box order[k] while its proportional share of what remains reaches 1; when as many replicas remain as
  // Boxes, every remaining Box holds every chunk.
  while (capped < replicas && (n - capped === replicas - capped || capacities[order[capped]!]! * (replicas - capped) >= rest[capped]!)) {
    t[order[capped]!] = 1;
    capped++;
  }
  const left = replicas - capped;
  for (let k = capped; k < n; k++) {
    const i = order[k]!;
    t[i] = left === 0 ? 0 : (capacities[i]! * left) / rest[capped]!;
  }
  return t;
}
