/** Options shared by plan and apply. */
import type { Command } from 'commander';
import { parseShard } from '../../fleet/shard.js';
import { DEFAULT_STATE_DIR } from '../../identity/state.js';
import type { RunOptions } from '../../fleet/run.js';
import { collect } from '../common.js';
import { GhostprepError } from '../../util/errors.js';
import { defaultLibraryDir } from '../../image/library.js';
import { DEFAULT_DRIVES_PER_APPLIANCE } from '../../backends/guestfs/defaults.js';

export interface FleetCliOptions { profile: string[]; inventory: string; target?: string; machine?: string[]; shard?: string; jobs?: string; drivesPerAppliance?: string; state: string; allowHostRoot?: boolean }

const JOBS_HELP = 'appliances in parallel for images (default: one per core, ~2 GiB of RAM each), machines in parallel for rootfs (default 4)';
const DRIVES_HELP = `most clones in one appliance (default ${DEFAULT_DRIVES_PER_APPLIANCE})`;

/** A positive integer option, or undefined when not given. */
export function positiveInt(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new GhostprepError(`${flag} ${value}: a positive integer`);
  return n;
}

export function addFleetOptions(cmd: Command): Command {
  return cmd
    .requiredOption('-p, --profile <file|dir>', 'profile file or directory of profiles (repeatable)', collect)
    .requiredOption('-i, --inventory <file>', 'machine inventory')
    .option('-t, --target <TARGET>', "image, rootfs:DIR, /dev/X, or a pattern with {name}: 'clones/{name}.qcow2'")
    .option('-m, --machine <name>', 'only this machine (repeatable)', collect)
    .option('--shard <I/N>', 'a stable slice of the inventory (0 <= I < N)')
    .option('-j, --jobs <n>', JOBS_HELP)
    .option('--drives-per-appliance <n>', DRIVES_HELP)
    .option('--state <dir>', 'where generated identities are kept', process.env.GHOSTPREP_STATE ?? DEFAULT_STATE_DIR)
    .option('--allow-host-root', "let a rootfs target be this host's own / (refused otherwise, from --target and inventory target: alike)");
}

export function runOptions(o: FleetCliOptions, mode: 'plan' | 'apply'): Omit<RunOptions, 'onWarning' | 'onMachineDone'> {
  return {
    profiles: o.profile, inventory: o.inventory, target: o.target, machines: o.machine,
    shard: o.shard ? parseShard(o.shard) : undefined,
    jobs: positiveInt(o.jobs, '--jobs'),
    drivesPerAppliance: positiveInt(o.drivesPerAppliance, '--drives-per-appliance'),
    state: o.state, mode, allowHostRoot: o.allowHostRoot === true,
  };
}

/** --base and where a library:NAME base comes from (restore, deploy). */
export function addBaseOptions(cmd: Command, keyNote: string): Command {
  return cmd
    .requiredOption('--base <image|library:NAME>', 'base image (never written: overlays use it read-only), or a library image')
    .option('--library <dir>', 'image library for library:NAME (default $GHOSTPREP_LIBRARY or ./images)', defaultLibraryDir())
    .option('--key-file <file>', `key of an encrypted library image${keyNote}`)
    .option('--key-env <var>', 'environment variable holding that key')
    .option('--sha256 <hex>', 'refuse the base unless its sha256 is this (cached by size and mtime)');
}
