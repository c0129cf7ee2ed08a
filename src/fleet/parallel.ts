/**
 * `validate` and render-only `plan` of a big inventory on every core
 * (the target: 10,000 machines validated and planned in under 10 s on 2 cores).
 *
 * The main thread and `threads - 1` worker threads each load the same fleet
 * (loading is cheap next to rendering; the parsed files cannot be shared). Phase
 * 1 renders and checks contiguous slices of the machines wherever a thread is
 * free; the main thread joins the slices' diagnostics in machine order and runs
 * the fleet-wide uniqueness check on the small facts each slice returns, so the
 * diagnostics are exactly those of one thread. Only when there is no error do
 * the threads plan the selected machines (phase 2), and the main thread prints
 * the slices' text in inventory order as it comes (fleet/parallel-pool.ts holds
 * the few that arrive out of turn). Smaller fleets stay on one thread: see
 * VALIDATE_MACHINES_PER_THREAD for what a thread costs.
 */
import { readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import type { Diagnostic } from '../core/diagnostic.js';
import { GhostprepError } from '../util/errors.js';
import { WorkerPool } from './parallel-pool.js';
import { runTask, type FleetTask, type PlanChunk, type PlanTask, type ValidateTask } from './parallel-tasks.js';
import type { PreparedMachine } from '../core/machine.js';
import { checkSlice, finishValidation, loadFleet, type LoadedFleet, type SliceResult } from './validate-fleet.js';

/** What a worker thread is started with. */
export interface WorkerData { readonly profiles: readonly string[]; readonly inventory: string | undefined }

/** Default thread count: one per idle core, at most this many (each thread holds its own copy of the fleet). */
export const MAX_DEFAULT_THREADS = 4;

/**
 * Fewest machines per thread, for `validate` and for `plan`. Each thread pays
 * its own start (modules, the fleet: ~0.6 s) and, above all, its own JIT
 * warm-up: its first 1,000 machines take 4-5 times the steady pace (validate
 * ~260 ms vs ~60 ms per 1,000, plan ~800 vs ~340), and with every core busy
 * the optimizing compiler has no idle core left. Measured on 2 idle cores,
 * 10,000 machines (2026-11-29): validate 1.85-2.05 s on one thread, 1.75-2.30 s
 * on two (and 50% more CPU); plan 5.5-7.4 s on one, 5.1-6.6 s on two. So a
 * second thread starts at 30,000 machines for validate, 8,000 for plan.
 */
export const VALIDATE_MACHINES_PER_THREAD = 15_000;
export const PLAN_MACHINES_PER_THREAD = 4_000;

/** $GHOSTPREP_WORKERS_ONLY=1: the main thread leaves all slices to the workers (tests: to be sure they did some). */
const workersOnly = (): boolean => process.env.GHOSTPREP_WORKERS_ONLY === '1';

/** $GHOSTPREP_MACHINES_PER_THREAD (both commands): for tests, which run small fleets on several threads. */
function machinesPerThread(plan: boolean): number {
  const n = Number(process.env.GHOSTPREP_MACHINES_PER_THREAD);
  return Number.isInteger(n) && n > 0 ? n : plan ? PLAN_MACHINES_PER_THREAD : VALIDATE_MACHINES_PER_THREAD;
}

/**
 * --threads N, else $GHOSTPREP_THREADS; undefined when neither is given: then
 * a big fleet gets one thread per idle core, up to MAX_DEFAULT_THREADS (see
 * defaultThreads; decided only for a fleet big enough to use them).
 */
export function threadCount(option?: string): number | undefined {
  const given = option ?? process.env.GHOSTPREP_THREADS;
  if (given === undefined || given === '') return undefined;
  const n = Number(given);
  if (!Number.isInteger(n) || n < 1) throw new GhostprepError(`${option !== undefined ? '--threads ' : 'GHOSTPREP_THREADS='}${given}: a positive integer`);
  return n;
}

export function defaultThreads(): number {
  return Math.max(1, Math.min(idleCores(), MAX_DEFAULT_THREADS));
}

/**
 * Cores that no other process wants right now: the cores less the tasks
 * running or runnable (the 4th field of /proc/loadavg, less this one), at the
 * busiest of a few samples over ~15 ms. A worker only helps on an idle core: on
 * a busy machine the process as a whole gets about the same CPU time with one
 * thread or two (measured at load 6 on 2 cores: 10,000 machines validated in
 * 7.3-7.7 s on one thread, 11.3-12.3 s on two, which also cost 2.5 s more CPU).
 * Elsewhere than Linux: every core.
 */
export function idleCores(samples = 5): number {
  const cores = os.availableParallelism();
  let busy = 0;
  for (let i = 0; i < samples; i++) {
    let text: string;
    try {
      text = readFileSync('/proc/loadavg', 'utf8');
    } catch {
      return cores;
    }
    const running = Number(/ (\d+)\/\d+ /.exec(text)?.[1]);
    if (!Number.isFinite(running)) return cores;
    busy = Math.max(busy, running - 1);
    if (i + 1 < samples) Atomics.wait(SLEEP, 0, 0, 3);
  }
  return Math.max(0, cores - busy);
}
const SLEEP = new Int32Array(new SharedArrayBuffer(4));

export interface ThreadedValidation {
  readonly fleet: LoadedFleet;
  readonly diagnostics: Diagnostic[];
  /** The workers, when the fleet was big enough for them (the caller closes the pool). */
  readonly pool?: WorkerPool<FleetTask>;
  /** Phase 1's slices and the thread that checked each. */
  readonly slices: readonly ValidateTask[];
  readonly sliceThread: readonly number[];
}

export interface ValidateOptions {
  /** At most this many threads; undefined: defaultThreads(). */
  readonly threads: number | undefined;
  readonly onMachine?: (done: number, total: number) => void;
  /** A plan follows: its thread count, and keep the workers for it (then the caller must close `pool`). */
  readonly keepPool?: boolean;
}

/**
 * Bytes of inventory per machine, at the least (`- {name: n1, ip: …}`): from
 * the file's size, the workers are started before the main thread has read the
 * file, so that their start overlaps its own loading (a few tenths of a second).
 */
const MIN_BYTES_PER_MACHINE = 40;

/** validateFleet on up to `threads` threads; the same diagnostics in the same order. */
export async function validateThreaded(profiles: readonly string[], inventory: string | undefined, o: ValidateOptions): Promise<ThreadedValidation> {
  let names: string | undefined;
  const startPool = (workers: number): WorkerPool<FleetTask> => new WorkerPool<FleetTask>(
    new URL('./parallel-worker.js', import.meta.url), workers, { profiles, inventory } satisfies WorkerData,
    // messages are read only once this thread has loaded the fleet: `names` is set by then
    (info) => (info === names ? undefined : 'a worker thread read other machines from the inventory: was it changed while ghostprep ran?'));
  let wanted = o.threads;
  const cap = (): number => (wanted ??= defaultThreads());
  const bytes = inventory && o.threads !== 1 ? fileSize(inventory) : 0;
  const perThread = machinesPerThread(o.keepPool === true);
  const bySize = Math.floor(bytes / MIN_BYTES_PER_MACHINE / perThread);
  const early = bySize >= 2 ? Math.min(cap(), bySize) - 1 : 0;
  let pool = early > 0 ? startPool(early) : undefined;
  try {
    const fleet = loadFleet(profiles, inventory);
    const n = fleet.machines.length;
    const byCount = Math.floor(n / perThread);
    const threads = byCount >= 2 ? Math.min(cap(), byCount) : 1;
    let done = 0;
    if (threads <= 1) {
      await pool?.close();
      pool = undefined;
      const slice = checkSlice(fleet.machines, 0, n, o.onMachine && (() => o.onMachine!(++done, n)));
      return { fleet, diagnostics: finishValidation(fleet, [slice]), slices: [{ kind: 'validate', start: 0, end: n }], sliceThread: [0] };
    }
    names = fleet.machines.map((m) => m.name).join('\n');
    pool ??= startPool(threads - 1);
    // small slices balance threads that start late or are slowed by other load; big ones cost fewer messages
    const size = Math.max(10, Math.min(250, Math.ceil(n / (threads * 8))));
    const tasks: ValidateTask[] = [];
    for (let start = 0; start < n; start += size) tasks.push({ kind: 'validate', start, end: Math.min(n, start + size) });
    const results: SliceResult[] = [];
    await pool.run<SliceResult>({
      tasks,
      local: async (t) => (await runTask(fleet, t)) as SliceResult,
      workersOnly: workersOnly(),
      deliver: (r, i) => {
        results.push(r);
        if (o.onMachine) for (let k = tasks[i]!.start; k < tasks[i]!.end; k++) o.onMachine(++done, n);
      },
    });
    const v = { fleet, diagnostics: finishValidation(fleet, results), slices: tasks, sliceThread: [...pool.threadOf] };
    if (!o.keepPool) await pool.close();
    return { ...v, ...(o.keepPool && { pool }) };
  } catch (err) {
    await pool?.close();
    throw err;
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0; // loading reports it
  }
}

export interface PlanOptions {
  readonly json: boolean;
  readonly state: string;
  /** Each slice's output, in inventory order. */
  readonly onChunk: (chunk: PlanChunk) => void;
}

/**
 * Render-only plan of `selected` (in inventory order) on the pool of a
 * validation; `onChunk` gets the printed text slice by slice, in order.
 */
export async function planThreaded(v: ThreadedValidation & { pool: WorkerPool<FleetTask> }, selected: readonly PreparedMachine[], o: PlanOptions): Promise<void> {
  const position = new Map(v.fleet.machines.map((m, i) => [m, i]));
  const tasks: PlanTask[] = [];
  let s = 0;
  const positions = selected.map((m) => position.get(m)!);
  for (const slice of v.slices) {
    const machines: number[] = [];
    while (s < positions.length && positions[s]! < slice.end) machines.push(positions[s++]!);
    if (machines.length) tasks.push({ kind: 'plan', machines, json: o.json, state: o.state });
  }
  await v.pool.run<PlanChunk>({
    tasks,
    local: async (t) => (await runTask(v.fleet, t)) as PlanChunk,
    deliver: (chunk) => o.onChunk(chunk),
    // about a megabyte of text per slice: a few slices ahead keep every thread busy
    window: v.pool.threads * 3,
    workersOnly: workersOnly(),
  });
}
