/**
 * What an exported fleet job runs: one `ghostprep deploy` (or `apply`) per
 * shard, then `report merge` and `audit`. Shared by the Slurm and Kubernetes
 * generators, which only decide how the shard index and the paths are given.
 * Pure: no I/O.
 */
import { GhostprepError } from '../../util/errors.js';

export type FleetCommand = 'deploy' | 'apply';

export interface FleetJob {
  readonly command: FleetCommand;
  readonly profiles: readonly string[];
  readonly inventory: string;
  readonly state: string;
  /** deploy: base image path or library:NAME */
  readonly base?: string;
  readonly library?: string;
  /** deploy: directory of the clones */
  readonly out?: string;
  readonly mode?: 'overlay' | 'copy';
  readonly size?: string;
  readonly sha256?: string;
  readonly keyFile?: string;
  /** apply: target pattern with {name} */
  readonly target?: string;
  /** appliances (images) or machines (rootfs) in parallel inside one shard; unset: the generator's default */
  readonly jobs?: number;
}

/** Refuse a job that cannot run, naming the missing option. */
export function checkJob(job: FleetJob): void {
  const need = (value: unknown, option: string) => { if (value === undefined || value === '') throw new GhostprepError(`export ${job.command}: ${option} is required`); };
  if (!job.profiles.length) throw new GhostprepError(`export ${job.command}: -p/--profile is required`);
  need(job.inventory, '-i/--inventory');
  need(job.state, '--state');
  if (job.command === 'deploy') {
    need(job.base, '--base');
    need(job.out, '--out');
    if (job.target) throw new GhostprepError('export deploy: --target is for apply (deploy writes OUT/{name}.qcow2)');
  } else {
    need(job.target, '--target');
    if (!job.target!.includes('{name}')) throw new GhostprepError(`export apply: --target ${job.target} needs {name}: every shard applies many machines`);
    if (job.base || job.out) throw new GhostprepError('export apply: --base and --out are for deploy');
  }
  if (job.jobs !== undefined && (!Number.isInteger(job.jobs) || job.jobs < 1)) throw new GhostprepError(`--jobs ${job.jobs}: need a whole number >= 1`);
}

/** The arguments of the per-shard command, without --shard, --report and --jobs. */
export function shardArgs(job: FleetJob): string[] {
  const args: string[] = [job.command];
  for (const p of job.profiles) args.push('-p', p);
  args.push('-i', job.inventory);
  if (job.command === 'deploy') {
    args.push('--base', job.base!);
    if (job.library) args.push('--library', job.library);
    args.push('--out', job.out!);
    if (job.mode) args.push('--mode', job.mode);
    if (job.size) args.push('--size', job.size);
    if (job.sha256) args.push('--sha256', job.sha256);
    if (job.keyFile) args.push('--key-file', job.keyFile);
  } else {
    args.push('--target', job.target!);
  }
  args.push('--state', job.state);
  return args;
}

/** The audit target over every machine of the job: the clones, or the apply pattern with {name} as `*`. */
export function auditTarget(job: FleetJob): string {
  if (job.command === 'deploy') return `${job.out!.replace(/\/+$/, '')}/*.qcow2`;
  return job.target!.split('{name}').join('*');
}

/** Report file of shard I of N inside a reports directory. */
export function shardReportName(index: number | string, count: number): string {
  return `shard-${index}-of-${count}.json`;
}
