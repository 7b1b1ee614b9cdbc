/** MemoryBlockstore runs the shared Blockstore acceptance suite. */
import { runBlockstoreAcceptance } from './blockstore-acceptance.ts';
import { MemoryBlockstore } from './memory-blockstore.ts';

runBlockstoreAcceptance('MemoryBlockstore', async () => {
  const store = new MemoryBlockstore();
  return { store, teardown: () => store.close() };
});
