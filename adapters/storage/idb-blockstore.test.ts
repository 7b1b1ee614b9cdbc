/** IdbBlockstore runs the shared Blockstore acceptance suite under fake-indexeddb, as a durable store. */
import 'fake-indexeddb/auto';
import { runBlockstoreAcceptance } from './blockstore-acceptance.ts';
import { IdbBlockstore } from './idb-blockstore.ts';
import { deleteIdbDatabase } from './idb-types.ts';

let dbCounter = 0;

runBlockstoreAcceptance(
  'IdbBlockstore',
  async () => {
    const dbName = `reserve-blocks-${dbCounter++}`;
    const opened: IdbBlockstore[] = [];
    const open = async (): Promise<IdbBlockstore> => {
      const store = new IdbBlockstore(dbName, 'blocks', { batchSize: 16 });
      opened.push(store);
      return store;
    };
    return {
      store: await open(),
      reopen: open,
      teardown: async () => {
        for (const s of opened) await s.close();
        await deleteIdbDatabase(dbName);
      },
    };
  },
  { durable: true, numRuns: 60 },
);
