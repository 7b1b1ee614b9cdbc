/** The CRDT law suite on the second backend, Automerge (adapters/crdt/automerge.ts). */
import { createAutomergeBackend } from '../adapters/crdt/automerge.ts';
import { crdtLaws } from './crdt-laws.ts';

crdtLaws('automerge', createAutomergeBackend);
