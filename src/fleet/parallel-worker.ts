/**
 * A worker thread of a parallel validate / render-only plan (fleet/parallel.ts):
 * load the same fleet as the main thread, say how many machines it saw, then
 * run tasks one at a time, in the order they come.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { errorMessage } from '../util/errors.js';
import type { TaskMessage, WorkerMessage } from './parallel-pool.js';
import { runTask, type FleetTask } from './parallel-tasks.js';
import { loadFleet } from './validate-fleet.js';
import type { WorkerData } from './parallel.js';

const port = parentPort!;
const post = (msg: WorkerMessage): void => port.postMessage(msg);

try {
  const { profiles, inventory } = workerData as WorkerData;
  const fleet = loadFleet(profiles, inventory);
  post({ type: 'ready', info: fleet.machines.map((m) => m.name).join('\n') });
  let queue = Promise.resolve();
  port.on('message', ({ id, task }: TaskMessage<FleetTask>) => {
    queue = queue.then(async () => post({ type: 'result', id, result: await runTask(fleet, task) }))
      .catch((err: unknown) => post({ type: 'error', message: `worker thread: ${errorMessage(err)}` }));
  });
} catch (err) {
  post({ type: 'error', message: `worker thread: ${errorMessage(err)}` });
}
