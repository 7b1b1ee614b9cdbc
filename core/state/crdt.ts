/**
 * The CRDT document behind shared state, as core sees it: a grow-only map from event id to event bytes that
 * replicates through opaque update bytes (Yjs style: a state vector says what a replica has, a diff against it
 * is what that replica lacks, and applying any update any number of times in any order converges).
 *
 * Backends live in adapters/crdt/ (Yjs is the default, Automerge the second); both pass proofs/crdt-laws.ts.
 * A backend does not interpret the bytes: the ledger checks that every id is the hash of its bytes and that the
 * bytes are a valid, signed event before anything reaches the reducer, so a peer can put junk into the document
 * but never into the state.
 *
 * Deterministic genesis: a document can be created with initial entries written by a fixed pseudo-writer, so two
 * replicas that start the same epoch independently produce byte-identical history for those entries (they
 * merge as one instead of twice). Each replica then writes under its own writer id, drawn from `random`.
 */
import { ReserveError } from '../errors.ts';
import type { Random } from '../ports.ts';

export type CrdtEntry = readonly [id: string, bytes: Uint8Array];

/** Where a change came from: this replica's own `add`, or a peer's update through `applyUpdate`. */
export type CrdtOrigin = 'local' | 'remote';

export interface CrdtChange {
  /** Entries that became visible with this change (an id may be reported again; callers dedupe). */
  added: CrdtEntry[];
  /** The update bytes to send to peers (for remote changes: the bytes that were applied). */
  update: Uint8Array;
  origin: CrdtOrigin;
}

export interface CrdtBackend {
  /** 'yjs' or 'automerge'. */
  readonly name: string;
  /** Entries currently visible. */
  readonly size: number;
  /** Add one entry; false (and nothing written) when the id is already present. */
  add(id: string, bytes: Uint8Array): boolean;
  /** Add several entries as one change; returns how many were new. */
  addMany(entries: Iterable<CrdtEntry>): number;
  has(id: string): boolean;
  get(id: string): Uint8Array | undefined;
  entries(): IterableIterator<CrdtEntry>;
  /** The whole document as one update. */
  encodeState(): Uint8Array;
  /** What this replica has, compactly. */
  encodeStateVector(): Uint8Array;
  /** What a replica with `stateVector` lacks (a superset is allowed; never less). */
  encodeDiff(stateVector: Uint8Array): Uint8Array;
  /**
   * Merge an update (a diff, a whole state, a local change of a peer). Idempotent. Throws CrdtUpdateError on bytes
   * that are not an update of this backend; the document is unchanged then.
   */
  applyUpdate(update: Uint8Array): void;
  /**
   * True while the document holds changes it cannot integrate yet because an earlier change is missing (a
   * gossiped update arrived before one it builds on): the caller should run a state-vector sync with a peer.
   */
  readonly missingDependencies: boolean;
  /** Subscribe to changes; returns an unsubscribe function. */
  onUpdate(listener: (change: CrdtChange) => void): () => void;
  /** Release resources (listeners, wasm memory). */
  destroy(): void;
}

export interface CrdtBackendOptions {
  /** Source of this replica's writer id. */
  random: Random;
  /** Entries every replica of this document starts with, written deterministically (see module comment). */
  genesis?: readonly CrdtEntry[];
  /** A previously encoded state to load (instead of genesis). */
  state?: Uint8Array;
}

export type CrdtBackendFactory = (options: CrdtBackendOptions) => CrdtBackend;

/** Bytes that are not an update of this backend (or a state vector that does not decode). */
export class CrdtUpdateError extends ReserveError {
  static override readonly name = 'CrdtUpdateError';
}
