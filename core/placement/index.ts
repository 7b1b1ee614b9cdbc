/**
 * Chunk placement: which Boxes keep which chunk, as a pure function of the chunk key and the merged view.
 * The public surface; see place.ts for the method and its guarantees.
 */
export type {
  CompiledPlacement,
  KeeperView,
  Moves,
  PlacementTarget,
  PlacementView,
  Shortfall,
} from './types.ts';
export { compileView, movesFor, place, placeCid, repairerFor, shortfall } from './place.ts';
export { cappedShares } from './targets.ts';
export {
  DuplicateKeeperError,
  InvalidCapacityError,
  InvalidKeeperIdError,
  InvalidReplicationFactorError,
} from './errors.ts';
export { measureChange, measureLayout, syntheticKeys, transportBound } from './analysis.ts';
export type { BoxLoad, ChangeReport, KeySource, LayoutReport } from './analysis.ts';
