/** MemoryKvStore runs the shared KvStore acceptance suite. */
import { runKvAcceptance } from './kv-acceptance.ts';
import { MemoryKvStore } from './memory-kv.ts';

runKvAcceptance('MemoryKvStore', async () => {
  const store = new MemoryKvStore();
  return { store, teardown: () => store.close() };
});
