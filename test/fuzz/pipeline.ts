/**
 * Runs the stages of a case in the worker thread (worker.ts) under a time
 * limit per stage and a memory limit for the process: a stage stuck in an
 * open() of a FIFO is unblocked by opening the FIFO's other end; one that
 * does not end then, or that makes the process grow without bound, is
 * terminated with its worker (a fresh one takes the next case).
 */
import { closeSync, constants, openSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { EngineInput } from './engine.js';
import { fifosUnder } from './tree.js';
import type { StageName, WorkerMessage, WorkerRequest } from './worker.js';

export interface StageOutcome { readonly result: unknown; readonly prototypes: readonly string[]; readonly console: readonly string[] }

export interface PipelineOutcome {
  readonly stages: Partial<Record<StageName, StageOutcome>>;
  /** A stage overran its time limit (unblocked: it ended once its FIFOs were opened from the other side). */
  readonly hung?: { readonly stage: StageName; readonly unblocked: boolean; readonly limitMs: number };
  /** A stage made the process grow past the memory limit, or exhausted the worker's heap. */
  readonly unbounded?: { readonly stage: StageName; readonly detail: string };
  /** The worker died otherwise. */
  readonly crashed?: { readonly stage: StageName | undefined; readonly detail: string };
}

export interface Limits {
  /** Per stage, ms. */
  readonly stageMs: Record<StageName, number>;
  /** Growth of the process's resident memory over its size before the case, bytes. */
  readonly growthBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  stageMs: { validate: 8_000, plan: 30_000, apply: 60_000 },
  growthBytes: 512 * 1024 * 1024,
};

function unblockFifos(dir: string): void {
  for (const f of fifosUnder(dir)) {
    try { closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK)); } catch { /* no reader waiting */ }
    try { closeSync(openSync(f, constants.O_RDONLY | constants.O_NONBLOCK)); } catch { /* a writer waiting gets its reader */ }
  }
}

export class Pipeline {
  private worker: Worker | undefined;

  private spawn(): Worker {
    this.worker ??= new Worker(new URL('./worker.js', import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: 1024 } });
    this.worker.unref();
    return this.worker;
  }

  /** Run `stages` of `input`; FIFOs under `dir` are the ones a stuck stage may wait on. */
  run(input: EngineInput, stages: readonly StageName[], dir: string, limits: Limits = DEFAULT_LIMITS): Promise<PipelineOutcome> {
    const w = this.spawn();
    const base = process.memoryUsage.rss();
    return new Promise((resolve) => {
      const out: { stages: Partial<Record<StageName, StageOutcome>>; hung?: PipelineOutcome['hung']; unbounded?: PipelineOutcome['unbounded']; crashed?: PipelineOutcome['crashed'] } = { stages: {} };
      let current: StageName | undefined;
      let timer: NodeJS.Timeout | undefined;
      let finished = false;
      const finish = (kill: boolean): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        clearInterval(memory);
        w.off('message', onMessage); w.off('error', onError); w.off('exit', onExit);
        if (kill) {
          this.worker = undefined;
          // a thread blocked in a system call ends only once the call returns
          unblockFifos(dir);
          void w.terminate().catch(() => undefined);
        }
        resolve(out);
      };
      const onTimeout = (): void => {
        const stage = current!;
        unblockFifos(dir);
        out.hung = { stage, unblocked: false, limitMs: limits.stageMs[stage] };
        // grace: a stage that was waiting on a FIFO ends now
        timer = setTimeout(() => finish(true), 3000);
        const ended = (m: WorkerMessage): void => { if (m.kind === 'stage' && m.stage === stage) { out.hung = { stage, unblocked: true, limitMs: limits.stageMs[stage] }; w.off('message', ended); } };
        w.on('message', ended);
      };
      const onMessage = (m: WorkerMessage): void => {
        if (m.kind === 'start') { current = m.stage; if (!out.hung) { clearTimeout(timer); timer = setTimeout(onTimeout, limits.stageMs[m.stage]); } }
        else if (m.kind === 'stage') out.stages[m.stage] = { result: m.result, prototypes: m.prototypes, console: m.console };
        else finish(Boolean(out.hung));
      };
      const onError = (err: Error): void => {
        const detail = `${(err as { code?: string }).code ?? err.name}: ${err.message}`;
        if (/OUT_OF_MEMORY|heap/i.test(detail)) out.unbounded = { stage: current ?? 'validate', detail };
        else out.crashed = { stage: current, detail };
        this.worker = undefined;
        finish(false);
      };
      const onExit = (code: number): void => { if (!finished) { out.crashed = { stage: current, detail: `worker exited with ${code}` }; this.worker = undefined; finish(false); } };
      const memory = setInterval(() => {
        const rss = process.memoryUsage.rss();
        if (rss - base > limits.growthBytes) {
          out.unbounded = { stage: current ?? 'validate', detail: `the process grew by ${Math.round((rss - base) / 2 ** 20)} MiB` };
          finish(true);
        }
      }, 25);
      w.on('message', onMessage); w.on('error', onError); w.on('exit', onExit);
      w.postMessage({ input, stages } satisfies WorkerRequest);
    });
  }

  /** The next run starts in a fresh worker. */
  async recycle(): Promise<void> {
    await this.close();
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }
}
