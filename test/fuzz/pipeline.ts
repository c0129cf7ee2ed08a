/**
 * Runs the stages of a case in a child process (worker.ts) under a time
 * limit per stage and a memory limit: a stage stuck in an open() of a FIFO
 * is unblocked by opening the FIFO's other end; one that does not end then,
 * or whose process grows past the limit, is killed (SIGKILL) with its
 * process, and a fresh one takes the next case.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
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
  /** Resident memory of the child process, bytes. */
  readonly growthBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  stageMs: { validate: 8_000, plan: 30_000, apply: 60_000 },
  growthBytes: 768 * 1024 * 1024,
};

function unblockFifos(dir: string): void {
  for (const f of fifosUnder(dir)) {
    try { closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK)); } catch { /* no reader waiting */ }
    try { closeSync(openSync(f, constants.O_RDONLY | constants.O_NONBLOCK)); } catch { /* a writer waiting gets its reader */ }
  }
}

function residentBytes(pid: number): number {
  try { return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096; } catch { return 0; }
}

export class Pipeline {
  private child: ChildProcess | undefined;
  private stderr = '';

  private spawn(): ChildProcess {
    if (!this.child) {
      this.stderr = '';
      this.child = fork(fileURLToPath(new URL('./worker.js', import.meta.url)), [], {
        serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        env: { ...process.env, GHOSTPREP_FUZZ_WORKER: '1' }, execArgv: ['--max-old-space-size=1024'],
      });
      const c = this.child;
      c.stderr!.on('data', (d: Buffer) => { if (c === this.child) this.stderr = (this.stderr + d.toString()).slice(-2000); });
      c.unref(); (c as unknown as { channel?: { unref(): void } }).channel?.unref();
    }
    return this.child;
  }

  private kill(): void {
    const c = this.child;
    this.child = undefined;
    c?.kill('SIGKILL');
  }

  /** Run `stages` of `input`; FIFOs under `dir` are the ones a stuck stage may wait on. */
  run(input: EngineInput, stages: readonly StageName[], dir: string, limits: Limits = DEFAULT_LIMITS): Promise<PipelineOutcome> {
    const w = this.spawn();
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
        w.off('message', onMessage); w.off('exit', onExit);
        if (kill) { this.kill(); unblockFifos(dir); }
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
      const onExit = (code: number | null, signal: string | null): void => {
        if (finished) return;
        this.child = undefined;
        const detail = `the process exited (${signal ?? code}): ${this.stderr.split('\n').filter((l) => /error|fatal/i.test(l)).slice(0, 3).join(' / ').slice(0, 400)}`;
        if (/out of memory|heap limit/i.test(this.stderr)) out.unbounded = { stage: current ?? 'validate', detail };
        else out.crashed = { stage: current, detail };
        finish(false);
      };
      const memory = setInterval(() => {
        const rss = residentBytes(w.pid!);
        if (rss > limits.growthBytes) {
          out.unbounded = { stage: current ?? 'validate', detail: `the process grew to ${Math.round(rss / 2 ** 20)} MiB` };
          finish(true);
        }
      }, 20);
      w.on('message', onMessage); w.on('exit', onExit);
      w.send({ input, stages } satisfies WorkerRequest);
    });
  }

  /** The next run starts in a fresh process. */
  async recycle(): Promise<void> {
    this.kill();
  }

  async close(): Promise<void> {
    this.kill();
  }
}
