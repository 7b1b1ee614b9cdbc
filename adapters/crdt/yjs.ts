/**
 * The default CRDT backend: a Yjs document with one root map, event id -> event bytes. Yjs updates, state
 * vectors and diffs are used as they are (they are what the network's sync provider exchanges).
 *
 * Genesis entries are written under Yjs client id 0 (a replica's own id is drawn from the injected Random and is
 * never 0), so replicas that open the same epoch independently hold identical items for them.
 */
import * as Y from 'yjs';
import { CrdtUpdateError } from '../../core/state/crdt.ts';
import type { CrdtBackend, CrdtBackendFactory, CrdtBackendOptions, CrdtChange, CrdtEntry } from '../../core/state/crdt.ts';
import type { Random } from '../../core/ports.ts';

const GENESIS_CLIENT = 0;
const REMOTE = Symbol('remote');

/** Yjs stores only exact Uint8Arrays as binary content (a Buffer is refused). */
function plain(bytes: Uint8Array): Uint8Array {
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes);
}

function writerId(random: Random): number {
  for (;;) {
    const id = random.u32() >>> 0;
    if (id !== GENESIS_CLIENT) return id;
  }
}

class YjsBackend implements CrdtBackend {
  readonly name = 'yjs';
  readonly #doc: Y.Doc;
  readonly #map: Y.Map<unknown>;
  readonly #listeners = new Set<(change: CrdtChange) => void>();
  #added: CrdtEntry[] = [];

  constructor(options: CrdtBackendOptions) {
    this.#doc = new Y.Doc({ gc: true });
    this.#map = this.#doc.getMap('events');
    if (options.state !== undefined) {
      this.#doc.clientID = writerId(options.random);
      try {
        Y.applyUpdate(this.#doc, options.state, REMOTE);
      } catch (cause) {
        this.#doc.destroy();
        throw new CrdtUpdateError('the saved document is not a Yjs update', { cause });
      }
    } else {
      this.#doc.clientID = GENESIS_CLIENT;
      const genesis = options.genesis ?? [];
      if (genesis.length > 0) this.#doc.transact(() => {
        for (const [id, bytes] of genesis) if (!this.#map.has(id)) this.#map.set(id, plain(bytes));
      });
      this.#doc.clientID = writerId(options.random);
    }
    this.#map.observe((event) => {
      for (const key of event.keysChanged) {
        const value = this.#map.get(key);
        if (value instanceof Uint8Array) this.#added.push([key, value]);
      }
    });
    this.#doc.on('update', (update: Uint8Array, origin: unknown) => {
      const added = this.#added;
      this.#added = [];
      if (this.#listeners.size === 0) return;
      const change: CrdtChange = { added, update, origin: origin === REMOTE ? 'remote' : 'local' };
      for (const l of this.#listeners) l(change);
    });
  }

  get size(): number {
    return this.#map.size;
  }

  add(id: string, bytes: Uint8Array): boolean {
    return this.addMany([[id, bytes]]) === 1;
  }

  addMany(entries: Iterable<CrdtEntry>): number {
    let n = 0;
    this.#doc.transact(() => {
      for (const [id, bytes] of entries) {
        if (this.#map.has(id)) continue;
        this.#map.set(id, plain(bytes));
        n++;
      }
    });
    return n;
  }

  has(id: string): boolean {
    return this.#map.get(id) instanceof Uint8Array;
  }

  get(id: string): Uint8Array | undefined {
    const v = this.#map.get(id);
    return v instanceof Uint8Array ? v : undefined;
  }

  *entries(): IterableIterator<CrdtEntry> {
    for (const [id, v] of this.#map.entries()) if (v instanceof Uint8Array) yield [id, v];
  }

  encodeState(): Uint8Array {
    return Y.encodeStateAsUpdate(this.#doc);
  }

  encodeStateVector(): Uint8Array {
    return Y.encodeStateVector(this.#doc);
  }

  encodeDiff(stateVector: Uint8Array): Uint8Array {
    try {
      return Y.encodeStateAsUpdate(this.#doc, stateVector);
    } catch (cause) {
      throw new CrdtUpdateError('not a Yjs state vector', { cause });
    }
  }

  applyUpdate(update: Uint8Array): void {
    try {
      Y.applyUpdate(this.#doc, update, REMOTE);
    } catch (cause) {
      this.#added = [];
      throw new CrdtUpdateError('not a Yjs update', { cause });
    }
  }

  get missingDependencies(): boolean {
    return this.#doc.store.pendingStructs !== null || this.#doc.store.pendingDs !== null;
  }

  onUpdate(listener: (change: CrdtChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  destroy(): void {
    this.#listeners.clear();
    this.#doc.destroy();
  }
}

/** The Yjs backend factory (the default). */
export const createYjsBackend: CrdtBackendFactory = (options) => new YjsBackend(options);
