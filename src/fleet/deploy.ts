/**
 * deploy: restore one clone per machine from a base image, then apply. The
 * base is checked once (sha256, cached by size and mtime) and only ever
 * used read-only: overlays keep it as their backing file, copies read it.
 * An existing clone is reused (apply is idempotent, so a re-run resumes a
 * broken deploy) unless --force asks to restore it again.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { cachedSha256, restore, type RestoreMode } from '../image/restore.js';
import { GhostprepError, InvalidInputError, errorMessage } from '../util/errors.js';
import { runFleet, selectMachines, type MachineResult, type RunOptions } from './run.js';
import { validateFleet } from './validate.js';

export interface DeployOptions extends Omit<RunOptions, 'target' | 'mode'> {
  readonly base: string;
  readonly out: string;
  readonly restoreMode: Exclude<RestoreMode, 'device'>;
  readonly size?: string;
  readonly force?: boolean;
  /** Expected sha256 of the base (from the library or --sha256); computed and reported otherwise. */
  readonly expectedSha256?: string;
  readonly onRestored?: (event: RestoreEvent, done: number, total: number) => void;
}

export interface RestoreEvent { machine: string; path: string; action: 'restored' | 'reused' | 'failed'; error?: string; durationMs: number }

export interface DeployResult {
  readonly base: { path: string; sha256: string; sha256After: string };
  readonly restores: RestoreEvent[];
  readonly results: MachineResult[];
}

export async function deploy(opts: DeployOptions): Promise<DeployResult> {
  const { machines, diagnostics } = validateFleet(opts.profiles, opts.inventory);
  if (diagnostics.some((d) => d.severity === 'error')) throw new InvalidInputError(diagnostics, 'invalid input');
  if (!existsSync(opts.base)) throw new GhostprepError(`base image ${opts.base} not found`);
  const selected = selectMachines(machines, opts.machines, opts.shard);
  const { sha256 } = await cachedSha256(opts.base);
  if (opts.expectedSha256 && sha256 !== opts.expectedSha256) throw new GhostprepError(`base image ${opts.base}: sha256 ${sha256} does not match the expected ${opts.expectedSha256}; refusing to deploy from it`);
  await mkdir(opts.out, { recursive: true });

  const restores: RestoreEvent[] = [];
  for (const m of selected) {
    const to = path.join(opts.out, `${m.name}.qcow2`);
    const started = Date.now();
    let event: RestoreEvent;
    if (existsSync(to) && !opts.force) {
      event = { machine: m.name, path: to, action: 'reused', durationMs: 0 };
    } else {
      try {
        await restore({ base: opts.base, to, mode: opts.restoreMode, size: opts.size, force: opts.force, expectedSha256: sha256 });
        event = { machine: m.name, path: to, action: 'restored', durationMs: Date.now() - started };
      } catch (err) {
        event = { machine: m.name, path: to, action: 'failed', error: errorMessage(err), durationMs: Date.now() - started };
      }
    }
    restores.push(event);
    opts.onRestored?.(event, restores.length, selected.length);
  }
  const restored = restores.filter((r) => r.action !== 'failed').map((r) => r.machine);
  const results = restored.length
    ? await runFleet({ ...opts, machines: restored, shard: undefined, target: path.join(opts.out, '{name}.qcow2'), mode: 'apply' })
    : [];
  const failedRestores: MachineResult[] = restores.filter((r) => r.action === 'failed').map((r) => ({
    report: { name: r.machine, target: r.path, status: 'failed', error: `restore: ${r.error}`, distro: null, identity: null, changes: [], durationMs: r.durationMs },
    changes: [], publicKeys: [],
  }));
  // the base must come out exactly as it went in
  const after = await cachedSha256(opts.base);
  if (after.sha256 !== sha256) throw new GhostprepError(`base image ${opts.base} changed during the deploy (sha256 ${sha256} -> ${after.sha256})`);
  const order = new Map(selected.map((m, i) => [m.name, i]));
  return { base: { path: opts.base, sha256, sha256After: after.sha256 }, restores, results: [...results, ...failedRestores].sort((a, b) => order.get(a.report.name)! - order.get(b.report.name)!) };
}
