/**
 * deploy: restore one clone per machine from a base image, then apply. The
 * base is checked once (sha256, cached by size and mtime) and only ever
 * used read-only: overlays keep it as their backing file, copies read it.
 * An existing clone is reused (apply is idempotent, so a re-run resumes a
 * broken deploy) unless --force asks to restore it again.
 *
 * Pipelined by batch: the machines are split into batches of at most
 * drivesPerAppliance (spread evenly over `jobs`, see batchSize); one
 * producer restores batch after batch (with --size, growing a whole batch in
 * one appliance) while `jobs` workers customize the restored batches, one
 * appliance each. The producer stays at most `jobs` batches ahead of the
 * workers, so restore of batch k+1 overlaps customization of batch k.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { cachedSha256, restoreBatch, type RestoreMode } from '../image/restore.js';
import { DEFAULT_DRIVES_PER_APPLIANCE, defaultJobs, splitBatches } from '../backends/guestfs/backend.js';
import { GhostprepError, errorMessage } from '../util/errors.js';
import { openFleet, runMachines, sortByInventory, type MachineResult, type RunOptions } from './run.js';
import type { PreparedMachine } from '../core/machine.js';

export interface DeployOptions extends Omit<RunOptions, 'target' | 'mode'> {
  readonly base: string;
  readonly out: string;
  readonly restoreMode: Exclude<RestoreMode, 'device'>;
  readonly size?: string;
  readonly force?: boolean;
  /** Expected sha256 of the base (from the library or --sha256); computed and reported otherwise. */
  readonly expectedSha256?: string;
  readonly onRestored?: (event: RestoreEvent, done: number, total: number) => void;
  /** Machines selected and split: called once before the first restore. */
  readonly onPlanned?: (p: { machines: number; batches: number; perBatch: number; jobs: number }) => void;
  /** A batch starts or ends a stage (restore: built and grown; customize: applied and verified in one appliance). */
  readonly onBatch?: (event: BatchEvent) => void;
}

export interface BatchEvent { batch: number; batches: number; stage: 'restore' | 'customize'; phase: 'start' | 'end'; machines: readonly string[] }

export interface RestoreEvent { machine: string; path: string; action: 'restored' | 'reused' | 'failed'; error?: string; durationMs: number }

export interface DeployResult {
  readonly base: { path: string; sha256: string; sha256After: string };
  readonly restores: RestoreEvent[];
  readonly results: MachineResult[];
}

export async function deploy(opts: DeployOptions): Promise<DeployResult> {
  const fleet = openFleet({ ...opts, mode: 'apply' });
  if (!existsSync(opts.base)) throw new GhostprepError(`base image ${opts.base} not found`);
  const selected = fleet.selected;
  const { sha256 } = await cachedSha256(opts.base);
  if (opts.expectedSha256 && sha256 !== opts.expectedSha256) throw new GhostprepError(`base image ${opts.base}: sha256 ${sha256} does not match the expected ${opts.expectedSha256}; refusing to deploy from it`);
  await mkdir(opts.out, { recursive: true });

  const jobs = Math.max(1, opts.jobs ?? defaultJobs());
  const batches = splitBatches(selected, opts.drivesPerAppliance ?? DEFAULT_DRIVES_PER_APPLIANCE, jobs);
  opts.onPlanned?.({ machines: selected.length, batches: batches.length, perBatch: batches[0]?.length ?? 0, jobs });
  const restores: RestoreEvent[] = [];
  const results: MachineResult[] = [];
  const finish = (r: MachineResult): void => {
    opts.onMachineDone?.(r, results.length + 1, selected.length);
    results.push(r);
  };
  const batchEvent = (batch: number, stage: BatchEvent['stage'], phase: BatchEvent['phase']): void =>
    opts.onBatch?.({ batch, batches: batches.length, stage, phase, machines: batches[batch]!.map((m) => m.name) });

  // picked[k]: a worker took batch k (the producer may then restore batch k + jobs);
  // restored[k]: batch k's restore events.
  const picked = batches.map(() => deferred<void>());
  const restored = batches.map(() => deferred<RestoreEvent[]>());
  // a worker that throws stops the run: no further batches are restored or customized
  let aborted = false;
  const abort = (): void => {
    aborted = true;
    for (const d of picked) d.resolve();
  };
  const producer = (async () => {
    for (const [k, batch] of batches.entries()) {
      if (k >= jobs) await picked[k - jobs]!.promise;
      if (aborted) throw new GhostprepError('deploy stopped');
      batchEvent(k, 'restore', 'start');
      const events = await restoreGroup(batch, opts, sha256);
      for (const e of events) {
        restores.push(e);
        opts.onRestored?.(e, restores.length, selected.length);
      }
      batchEvent(k, 'restore', 'end');
      restored[k]!.resolve(events);
    }
  })().catch((err: unknown) => {
    for (const d of restored) d.reject(err);
  });

  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < batches.length && !aborted) {
      const k = next++;
      picked[k]!.resolve();
      const events = await restored[k]!.promise;
      const ok = new Set(events.filter((e) => e.action !== 'failed').map((e) => e.machine));
      // clones made from the base just now are laid out like it (reused ones may come from anywhere)
      const layoutKeys = new Map(events.filter((e) => e.action === 'restored').map((e) => [e.machine, `base:${sha256}`]));
      for (const e of events.filter((x) => x.action === 'failed')) finish(failedRestore(e));
      const list = batches[k]!.filter((m) => ok.has(m.name));
      if (!list.length) continue;
      batchEvent(k, 'customize', 'start');
      // a clone restored by this run whose plan failed (nothing written to it) is a bare copy of the base:
      // it is removed once the batch's appliance is closed, so the output directory holds only customized clones
      const fresh = new Set(events.filter((e) => e.action === 'restored').map((e) => e.machine));
      const discard: MachineResult[] = [];
      const onDone = (r: MachineResult): void => {
        if (r.report.status === 'failed' && r.failedBeforeWrite && fresh.has(r.report.name)) discard.push(r);
        else finish(r);
      };
      // one appliance per batch: this worker is one of the `jobs`
      try {
        await runMachines(fleet, list, { ...opts, jobs: 1, shard: undefined, target: path.join(opts.out, '{name}.qcow2'), mode: 'apply', layoutKeys }, onDone);
      } finally {
        for (const r of discard) {
          const removed = await rm(r.report.target, { force: true }).then(() => true, () => false);
          finish({ ...r, report: { ...r.report, error: `${r.report.error}${removed ? ' (its clone, a bare copy of the base, was removed from the output directory)' : ''}` } });
        }
      }
      batchEvent(k, 'customize', 'end');
    }
  };
  const workers = Array.from({ length: Math.min(jobs, batches.length) }, () => worker().catch((err: unknown) => {
    abort();
    throw err;
  }));
  const settled = await Promise.allSettled([...workers, producer]);
  const failure = settled.find((x): x is PromiseRejectedResult => x.status === 'rejected');
  if (failure) throw failure.reason;

  // the base must come out exactly as it went in
  const after = await cachedSha256(opts.base);
  if (after.sha256 !== sha256) throw new GhostprepError(`base image ${opts.base} changed during the deploy (sha256 ${sha256} -> ${after.sha256})`);
  const order = new Map(selected.map((m, i) => [m.name, i]));
  restores.sort((a, b) => order.get(a.machine)! - order.get(b.machine)!);
  return { base: { path: opts.base, sha256, sha256After: after.sha256 }, restores, results: sortByInventory(results, selected) };
}

/**
 * What a re-run redid, for the report: clones that already existed were
 * reused (a resumed deploy); of those, `redone` still needed changes (their
 * customization had been cut short) and `alreadyDone` needed none.
 */
export interface ResumeSummary {
  readonly reused: number;
  readonly restored: number;
  readonly failed: number;
  readonly redone: readonly string[];
  readonly alreadyDone: readonly string[];
}

export function resumeSummary(r: DeployResult): ResumeSummary {
  const changed = new Set(r.results.filter((x) => x.report.changes.length > 0 || x.report.status !== 'ok').map((x) => x.report.name));
  const reused = r.restores.filter((e) => e.action === 'reused');
  return {
    reused: reused.length,
    restored: r.restores.filter((e) => e.action === 'restored').length,
    failed: r.restores.filter((e) => e.action === 'failed').length,
    redone: reused.filter((e) => changed.has(e.machine)).map((e) => e.machine),
    alreadyDone: reused.filter((e) => !changed.has(e.machine)).map((e) => e.machine),
  };
}

/** Restore one batch: existing clones are reused (unless --force), the others built and, with --size, grown in one appliance. */
async function restoreGroup(batch: readonly PreparedMachine[], opts: DeployOptions, sha256: string): Promise<RestoreEvent[]> {
  const started = Date.now();
  const to = batch.map((m) => path.join(opts.out, `${m.name}.qcow2`));
  const reuse = batch.map((_, i) => existsSync(to[i]!) && !opts.force);
  const todo = batch.map((m, i) => ({ m, i })).filter((x) => !reuse[x.i]);
  let outcome: Array<{ error?: string }> = [];
  if (todo.length) {
    try {
      const r = await restoreBatch({ base: opts.base, to: todo.map((x) => to[x.i]!), mode: opts.restoreMode, size: opts.size, force: opts.force, expectedSha256: sha256 });
      outcome = r.map((x) => (x instanceof Error ? { error: errorMessage(x) } : {}));
    } catch (err) {
      outcome = todo.map(() => ({ error: errorMessage(err) }));
    }
  }
  const durationMs = Date.now() - started;
  const byIndex = new Map(todo.map((x, k) => [x.i, outcome[k]!]));
  return batch.map((m, i): RestoreEvent => {
    if (reuse[i]) return { machine: m.name, path: to[i]!, action: 'reused', durationMs: 0 };
    const o = byIndex.get(i)!;
    return o.error !== undefined
      ? { machine: m.name, path: to[i]!, action: 'failed', error: o.error, durationMs }
      : { machine: m.name, path: to[i]!, action: 'restored', durationMs };
  });
}

function failedRestore(r: RestoreEvent): MachineResult {
  return {
    report: { name: r.machine, target: r.path, status: 'failed', error: `restore: ${r.error}`, distro: null, identity: null, changes: [], durationMs: r.durationMs },
    changes: [], publicKeys: [],
  };
}

interface Deferred<T> { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void }

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => undefined); // a rejection nobody awaits (no worker left for that batch) is not unhandled
  return { promise, resolve, reject };
}
