/** Options shared by plan and apply. */
import type { Command } from 'commander';
import { parseShard } from '../../fleet/shard.js';
import { DEFAULT_STATE_DIR } from '../../identity/state.js';
import type { RunOptions } from '../../fleet/run.js';
import { collect } from '../common.js';
import { defaultLibraryDir } from '../../image/library.js';

export interface FleetCliOptions { profile: string[]; inventory: string; target?: string; machine?: string[]; shard?: string; jobs?: string; state: string }

export function addFleetOptions(cmd: Command): Command {
  return cmd
    .requiredOption('-p, --profile <file|dir>', 'profile file or directory of profiles (repeatable)', collect)
    .requiredOption('-i, --inventory <file>', 'machine inventory')
    .option('-t, --target <TARGET>', "image, rootfs:DIR, /dev/X, or a pattern with {name}: 'clones/{name}.qcow2'")
    .option('-m, --machine <name>', 'only this machine (repeatable)', collect)
    .option('--shard <I/N>', 'a stable slice of the inventory (0 <= I < N)')
    .option('-j, --jobs <n>', 'machines (rootfs) or appliances (images) in parallel')
    .option('--state <dir>', 'where generated identities are kept', process.env.GHOSTPREP_STATE ?? DEFAULT_STATE_DIR);
}

export function runOptions(o: FleetCliOptions, mode: 'plan' | 'apply'): Omit<RunOptions, 'onWarning' | 'onMachineDone'> {
  return {
    profiles: o.profile, inventory: o.inventory, target: o.target, machines: o.machine,
    shard: o.shard ? parseShard(o.shard) : undefined,
    jobs: o.jobs ? Math.max(1, Number(o.jobs)) : undefined,
    state: o.state, mode,
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
