/** IdbKvStore runs the shared KvStore acceptance suite under fake-indexeddb, as a durable store. */
import 'fake-indexeddb/auto';
import { deleteIdbDatabase } from './idb-types.ts';
import { IdbKvStore } from './idb-kv.ts';
import { runKvAcceptance } from './kv-acceptance.ts';

let dbCounter = 0;

runKvAcceptance(
  'IdbKvStore',
  async () => {
    const dbName = `reserve-kv-${dbCounter++}`;
    const opened: IdbKvStore[] = [];
    const open = async (): Promise<IdbKvStore> => {
      const store = new IdbKvStore(dbName);
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
  { durable: true },
);
