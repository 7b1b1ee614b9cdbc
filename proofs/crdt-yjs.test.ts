/** The CRDT law suite on the default backend, Yjs (adapters/crdt/yjs.ts). */
import { createYjsBackend } from '../adapters/crdt/yjs.ts';
import { crdtLaws } from './crdt-laws.ts';

crdtLaws('yjs', createYjsBackend);
