/**
 * The reserve's shared state: the public surface for the keeper, the CLI, the network layer and the simulator.
 *
 *   events.ts      signed, content-addressed events (create, decode/validate, named errors)
 *   reducer.ts     reduce(events) -> ReserveState, the incremental StateReducer, toPlacementView, checkEvent
 *   config.ts      shared and local config schemas (parse, per-field validation, materialise)
 *   crdt.ts        the CRDT backend interface (adapters/crdt/yjs.ts, adapters/crdt/automerge.ts implement it)
 *   compaction.ts  checkpoints and epochs (online compaction)
 *   ledger.ts      ReserveLedger: one Box's replica (publish, sync, compaction, persistence)
 *   crypto.ts      Signer / Unsealer ports, reserve secrets, join keys, sealing
 *   hlc.ts         hybrid logical clock
 *   summary.ts     the state as a lattice (what checkpoints carry)
 */
export * from './events.ts';
export * from './reducer.ts';
export * from './config.ts';
export * from './crdt.ts';
export * from './compaction.ts';
export * from './ledger.ts';
export * from './crypto.ts';
export * from './hlc.ts';
export {
  compareKey,
  emptySummary,
  joinSummaries,
  summaryToWire,
  summaryFromWire,
  MalformedSummaryError,
  MAX_LOG_RECORDS,
  LOG_DAYS,
} from './summary.ts';
export type { Summary, LogEnvelope, LogSeverity } from './summary.ts';
