/**
 * The second CRDT backend: an Automerge document `{ events: { [id]: bytes } }`.
 *
 * Mapping onto the Yjs-style interface: the state vector is the document's heads (change hashes, dag-cbor
 * encoded); a diff is `saveSince` the heads of the remote that this replica also knows (unknown heads are
 * skipped, so the diff may be larger than needed, never smaller); any update is applied with `loadIncremental`.
 * Genesis is one change by a fixed actor at time 0, so replicas opening the same epoch produce the same change
 * hash and the same `events` map object (otherwise each replica's map would be a different object and only one
 * would win the root key).
 *
 * A JS map mirrors the entries so that has/get/size do not walk the Automerge document.
 */
import * as A from '@automerge/automerge';
import * as dagCbor from '@ipld/dag-cbor';
import { CrdtUpdateError } from '../../core/state/crdt.ts';
import type { CrdtBackend, CrdtBackendFactory, CrdtBackendOptions, CrdtChange, CrdtEntry } from '../../core/state/crdt.ts';

type EventsDoc = { events: Record<string, Uint8Array> };

const GENESIS_ACTOR = '00'.repeat(16);
/** Every Automerge document and change chunk starts with these bytes. */
const MAGIC = [0x85, 0x6f, 0x4a, 0x83];

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function hasMagic(bytes: Uint8Array): boolean {
  return bytes.byteLength >= 4 && MAGIC.every((b, i) => bytes[i] === b);
}

class AutomergeBackend implements CrdtBackend {
  readonly name = 'automerge';
  #doc: A.Doc<EventsDoc>;
  readonly #mirror = new Map<string, Uint8Array>();
  readonly #listeners = new Set<(change: CrdtChange) => void>();

  constructor(options: CrdtBackendOptions) {
    let actor = hex(options.random.bytes(16));
    while (actor === GENESIS_ACTOR) actor = hex(options.random.bytes(16));
    if (options.state !== undefined) {
      if (!hasMagic(options.state)) throw new CrdtUpdateError('the saved document is not an Automerge document');
      try {
        this.#doc = A.load<EventsDoc>(options.state, { actor });
      } catch (cause) {
        throw new CrdtUpdateError('the saved document is not an Automerge document', { cause });
      }
      const events = this.#doc.events;
      if (events !== undefined) for (const [id, v] of Object.entries(events)) if (v instanceof Uint8Array) this.#mirror.set(id, v);
    } else {
      const genesis = options.genesis ?? [];
      let g = A.init<EventsDoc>({ actor: GENESIS_ACTOR });
      g = A.change(g, { time: 0 }, (d) => {
        d.events = {};
        for (const [id, bytes] of genesis) d.events[id] = bytes;
      });
      this.#doc = A.clone(g, { actor });
      A.free(g);
      for (const [id, bytes] of genesis) this.#mirror.set(id, bytes);
    }
  }

  get size(): number {
    return this.#mirror.size;
  }

  add(id: string, bytes: Uint8Array): boolean {
    return this.addMany([[id, bytes]]) === 1;
  }

  addMany(entries: Iterable<CrdtEntry>): number {
    const fresh: CrdtEntry[] = [];
    const seen = new Set<string>();
    for (const [id, bytes] of entries) {
      if (this.#mirror.has(id) || seen.has(id)) continue;
      seen.add(id);
      fresh.push([id, bytes]);
    }
    if (fresh.length === 0) return 0;
    this.#doc = A.change(this.#doc, (d) => {
      for (const [id, bytes] of fresh) d.events[id] = bytes;
    });
    for (const [id, bytes] of fresh) this.#mirror.set(id, bytes);
    if (this.#listeners.size > 0) {
      const change = A.getLastLocalChange(this.#doc);
      if (change !== undefined) this.#emit({ added: fresh, update: change, origin: 'local' });
    }
    return fresh.length;
  }

  has(id: string): boolean {
    return this.#mirror.has(id);
  }

  get(id: string): Uint8Array | undefined {
    return this.#mirror.get(id);
  }

  entries(): IterableIterator<CrdtEntry> {
    return this.#mirror.entries();
  }

  encodeState(): Uint8Array {
    return A.save(this.#doc);
  }

  encodeStateVector(): Uint8Array {
    return dagCbor.encode(A.getHeads(this.#doc));
  }

  encodeDiff(stateVector: Uint8Array): Uint8Array {
    let heads: unknown;
    try {
      heads = dagCbor.decode(stateVector);
    } catch (cause) {
      throw new CrdtUpdateError('not an Automerge state vector', { cause });
    }
    if (!Array.isArray(heads) || !heads.every((h) => typeof h === 'string' && /^[0-9a-f]{64}$/.test(h))) {
      throw new CrdtUpdateError('not an Automerge state vector');
    }
    const known = (heads as string[]).filter((h) => A.hasHeads(this.#doc, [h]));
    return known.length === 0 ? A.save(this.#doc) : A.saveSince(this.#doc, known);
  }

  applyUpdate(update: Uint8Array): void {
    if (update.byteLength === 0) return; // an empty diff: nothing to bring
    if (!hasMagic(update)) throw new CrdtUpdateError('not an Automerge update');
    const before = A.getHeads(this.#doc);
    let next: A.Doc<EventsDoc>;
    try {
      next = A.loadIncremental(this.#doc, update);
    } catch (cause) {
      throw new CrdtUpdateError('not an Automerge update', { cause });
    }
    this.#doc = next;
    const after = A.getHeads(next);
    if (before.length === after.length && before.every((h, i) => h === after[i])) return;
    const added: CrdtEntry[] = [];
    for (const p of A.diff(next, before, after)) {
      if (p.action !== 'put' || p.path.length !== 2 || p.path[0] !== 'events') continue;
      const id = String(p.path[1]);
      const value = p.value;
      if (!(value instanceof Uint8Array)) continue;
      this.#mirror.set(id, value);
      added.push([id, value]);
    }
    this.#emit({ added, update, origin: 'remote' });
  }

  get missingDependencies(): boolean {
    return A.getMissingDeps(this.#doc, []).length > 0;
  }

  onUpdate(listener: (change: CrdtChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(change: CrdtChange): void {
    for (const l of this.#listeners) l(change);
  }

  destroy(): void {
    this.#listeners.clear();
    A.free(this.#doc);
  }
}

/** The Automerge backend factory. */
export const createAutomergeBackend: CrdtBackendFactory = (options) => new AutomergeBackend(options);
