// Worker bootstrap: Node 20 workers do not inherit the tsx loader, so register it here, then load the entry.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
