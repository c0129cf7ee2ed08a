/**
 * Worker threads plus the main thread working through a list of tasks, with
 * results handed back strictly in task order.
 *
 * Each worker takes tasks as it becomes free (up to PREFETCH queued, so it does
 * not idle while the main thread is busy with a task of its own); the main
 * thread runs a task itself whenever one is free. Results that come in out of
 * turn are held until their turn; no task beyond `window` tasks ahead of the
 * next one to deliver is started, so held results stay bounded. Any worker
 * failure (an exception, a crash, an exit) rejects the run with a
 * GhostprepError; close() terminates the workers.
 */
import { Worker } from 'node:worker_threads';
import { GhostprepError } from '../util/errors.js';

/** Tasks queued at a worker at once. */
const PREFETCH = 2;

/** Worker -> main messages. */
export type WorkerMessage =
  | { readonly type: 'ready'; readonly info: unknown }
  | { readonly type: 'result'; readonly id: number; readonly result: unknown }
  | { readonly type: 'error'; readonly message: string };

/** Main -> worker: one task, numbered. */
export interface TaskMessage<T> { readonly id: number; readonly task: T }

interface Slot {
  readonly worker: Worker;
  /** 1.. (0 is the main thread). */
  readonly thread: number;
  ready: boolean;
  outstanding: number;
}

export interface RunOrdered<T, R> {
  readonly tasks: readonly T[];
  /** The main thread's share. */
  readonly local: (task: T) => Promise<R>;
  /** Called once per task, in task order. */
  readonly deliver: (result: R, index: number) => void;
  /** Most tasks started beyond the next one to deliver (default: no limit). */
  readonly window?: number;
  /** Leave every task to the workers (tests: to be sure that they did some). */
  readonly workersOnly?: boolean;
}

export class WorkerPool<T> {
  private readonly slots: Slot[] = [];
  private failure: Error | undefined;
  private closing = false;
  private wake: (() => void) | undefined;
  /** Results by message id of the run in progress. */
  private onResult: ((id: number, result: unknown) => void) | undefined;
  private nextId = 0;
  /** Which thread ran each task of the last run (0 = main). */
  threadOf: number[] = [];

  /**
   * Start `count` workers running `script` with `data`; each posts 'ready' with
   * some info, which `checkReady` may reject (e.g. it saw another inventory).
   */
  constructor(script: URL, count: number, data: unknown, private readonly checkReady: (info: unknown) => string | undefined = () => undefined) {
    for (let i = 0; i < count; i++) {
      const worker = new Worker(script, { workerData: data, stdout: false, stderr: false });
      const slot: Slot = { worker, thread: i + 1, ready: false, outstanding: 0 };
      worker.on('message', (msg: WorkerMessage) => this.message(slot, msg));
      worker.on('error', (err) => this.fail(`worker thread ${slot.thread} failed: ${err.message}`));
      worker.on('exit', (code) => { if (!this.closing) this.fail(`worker thread ${slot.thread} exited (code ${code})`); });
      this.slots.push(slot);
    }
  }

  get threads(): number { return this.slots.length + 1; }

  private message(slot: Slot, msg: WorkerMessage): void {
    if (msg.type === 'ready') {
      const problem = this.checkReady(msg.info);
      if (problem) return this.fail(problem);
      slot.ready = true;
    } else if (msg.type === 'result') {
      slot.outstanding--;
      this.onResult?.(msg.id, msg.result);
    } else this.fail(msg.message);
    this.poke();
  }

  private fail(message: string): void {
    this.failure ??= new GhostprepError(message);
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Until the next message from a worker (or failure). */
  private event(): Promise<void> {
    return new Promise((resolve) => { this.wake = resolve; });
  }

  async run<R>(o: RunOrdered<T, R>): Promise<void> {
    const n = o.tasks.length;
    const window = o.window ?? n;
    const started = new Array<boolean>(n).fill(false);
    const results = new Map<number, R>();
    const byId = new Map<number, number>();
    this.threadOf = new Array<number>(n).fill(0);
    let delivered = 0;
    let lowest = 0; // no task below this is unstarted
    const pick = (): number => {
      while (lowest < n && started[lowest]) lowest++;
      const end = Math.min(n, delivered + window);
      for (let i = lowest; i < end; i++) if (!started[i]) return i;
      return -1;
    };
    const flush = (): void => {
      while (results.has(delivered)) {
        const r = results.get(delivered)!;
        results.delete(delivered);
        o.deliver(r, delivered++);
      }
    };
    this.onResult = (id, result) => {
      const i = byId.get(id);
      if (i === undefined) return;
      byId.delete(id);
      results.set(i, result as R);
    };
    try {
      for (;;) {
        // results that came in (during our own task, or while we waited) may open the window
        flush();
        if (delivered >= n) break;
        if (this.failure) throw this.failure;
        for (const s of this.slots) {
          while (s.ready && s.outstanding < PREFETCH) {
            const i = pick();
            if (i < 0) break;
            started[i] = true;
            this.threadOf[i] = s.thread;
            const id = this.nextId++;
            byId.set(id, i);
            s.outstanding++;
            s.worker.postMessage({ id, task: o.tasks[i] } satisfies TaskMessage<T>);
          }
        }
        const mine = o.workersOnly ? -1 : pick();
        if (mine >= 0) {
          started[mine] = true;
          results.set(mine, await o.local(o.tasks[mine]!));
          // let the workers' messages in between two tasks of our own
          await new Promise<void>((resolve) => setImmediate(resolve));
          continue;
        }
        // Nothing to start here: a worker holds the next task to deliver (or is still starting).
        // Everything since flush() ran synchronously, so no message was missed.
        await this.event();
      }
    } finally {
      this.onResult = undefined;
    }
  }

  /** Terminate every worker (idempotent). */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
