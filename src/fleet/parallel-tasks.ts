/**
 * The units of work of a parallel validate / render-only plan (fleet/parallel.ts),
 * run alike by the main thread and by worker threads (fleet/parallel-worker.ts):
 * every thread loads the same fleet, so a task names machines by their position
 * in it, and its result is plain data (structured-cloned between threads).
 */
import { StateDir } from '../identity/state.js';
import { planEntry } from './plan-text.js';
import { planRenderOnly, type RunOptions } from './run.js';
import { checkSlice, type LoadedFleet, type SliceResult } from './validate-fleet.js';

/** Render and check machines [start, end). */
export interface ValidateTask { readonly kind: 'validate'; readonly start: number; readonly end: number }

/** Plan these machines (positions, ascending) against the empty guest of a render-only plan. */
export interface PlanTask {
  readonly kind: 'plan';
  readonly machines: readonly number[];
  readonly json: boolean;
  readonly state: string;
}

export type FleetTask = ValidateTask | PlanTask;

/**
 * A slice of the plan's stdout, ready to print: with --json the slice's entries
 * joined by ",\n" (the caller puts ",\n" between slices), else the machines'
 * headers and diffs. A warning is printed before the text from its offset on.
 */
export interface PlanChunk {
  readonly text: string;
  readonly warnings: ReadonlyArray<{ readonly at: number; readonly message: string }>;
  readonly machines: number;
  readonly changed: number;
  readonly failed: number;
}

export type TaskResult<T extends FleetTask> = T extends ValidateTask ? SliceResult : PlanChunk;

/** The state dir of a plan is only read; one object per thread and directory keeps its listing cache. */
const stateDirs = new Map<string, StateDir>();

export async function runTask(fleet: LoadedFleet, task: FleetTask): Promise<SliceResult | PlanChunk> {
  if (task.kind === 'validate') return checkSlice(fleet.machines, task.start, task.end);
  let state = stateDirs.get(task.state);
  if (!state) stateDirs.set(task.state, (state = new StateDir(task.state)));
  let text = '';
  const warnings: Array<{ at: number; message: string }> = [];
  const opts: RunOptions = {
    profiles: [], inventory: '', state: task.state, mode: 'plan', retainChanges: false,
    // the text plan prints no report: its files' hashes would be computed for nothing
    reportHashes: task.json,
    onWarning: (message) => warnings.push({ at: text.length, message }),
  };
  let changed = 0;
  let failed = 0;
  for (const i of task.machines) {
    const r = await planRenderOnly(fleet.machines[i]!, opts, state);
    if (r.report.status !== 'ok') failed++;
    if (r.changes.length) changed++;
    const entry = planEntry(r, task.json);
    text += task.json && text ? ',\n' + entry : entry;
  }
  return { text, warnings, machines: task.machines.length, changed, failed };
}
