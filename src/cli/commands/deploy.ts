import type { Command } from 'commander';
import { deploy, resumeSummary } from '../../fleet/deploy.js';
import { resolveBase } from '../../image/base.js';
import path from 'node:path';
import { parseShard } from '../../fleet/shard.js';
import { DEFAULT_STATE_DIR } from '../../identity/state.js';
import { writeAtomic } from '../../report/report.js';
import { GhostprepError } from '../../util/errors.js';
import { collect, Logger, out, type GlobalOptions } from '../common.js';
import { buildReport, exitFor, printSummary, writeKnownHosts } from './apply.js';
import { addBaseOptions, positiveInt } from './fleet-options.js';
import { fleetProgress } from '../progress.js';
import { DEFAULT_DRIVES_PER_APPLIANCE } from '../../backends/guestfs/defaults.js';

interface DeployCliOptions { library: string; keyFile?: string; keyEnv?: string; profile: string[]; inventory: string; base: string; out: string; mode: string; size?: string; force?: boolean; sha256?: string; machine?: string[]; shard?: string; jobs?: string; drivesPerAppliance?: string; state: string; report?: string; knownHosts?: string; allowHostRoot?: boolean }

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  addBaseOptions(program.command('deploy'), ' (decrypted once into OUT/.bases/)')
    .description('restore one clone per inventory machine from a base image into OUT/{name}.qcow2, then apply')
    .requiredOption('-p, --profile <file|dir>', 'profile file or directory of profiles (repeatable)', collect)
    .requiredOption('-i, --inventory <file>', 'machine inventory')
    .requiredOption('--out <dir>', 'directory for the clones')
    .option('--mode <mode>', 'overlay (qcow2 backed by the base, instant) or copy (standalone qcow2)', 'overlay')
    .option('--size <size>', 'grow each clone\'s disk, last partition and filesystem (e.g. 20G)')
    .option('--force', 'restore clones that already exist again (default: reuse them and re-apply)')
    .option('-m, --machine <name>', 'only this machine (repeatable)', collect)
    .option('--shard <I/N>', 'a stable slice of the inventory (0 <= I < N)')
    .option('-j, --jobs <n>', 'appliances customizing batches in parallel (default: one per core, ~2 GiB of RAM each)')
    .option('--drives-per-appliance <n>', `most clones in one batch / appliance (default ${DEFAULT_DRIVES_PER_APPLIANCE})`)
    .option('--state <dir>', 'where generated identities are kept', process.env.GHOSTPREP_STATE ?? DEFAULT_STATE_DIR)
    .option('--report <file>', 'write the JSON run report here')
    .option('--known-hosts <file>', 'write/update an ssh known_hosts file with the clones\' new host keys')
    .option('--allow-host-root', "let an inventory target: be this host's own / (refused otherwise)")
    .addHelpText('after', `
Stages: verify the base (sha256, cached) -> restore each clone -> apply in shared appliances
-> verify by reading back -> check the base is unchanged. Re-running resumes: existing
clones are reused and apply only changes what is still different.

Examples:
  ghostprep deploy -p profiles/ -i inventory.yaml --base images/debian12.qcow2 --out clones/ --report report.json --known-hosts known_hosts
  ghostprep deploy -p profiles/ -i inventory.yaml --base golden.qcow2 --out clones/ --mode copy --size 40G --jobs 2`)
    .action((o: DeployCliOptions) => run(async (g) => {
      if (o.mode !== 'overlay' && o.mode !== 'copy') throw new GhostprepError(`--mode ${o.mode}: use overlay or copy (restore --mode device writes a block device)`);
      const log = new Logger(g);
      const started = new Date();
      const event = (e: object) => { if (g.json) out(JSON.stringify(e)); };
      const base = await resolveBase(o.base, { library: o.library, key: { file: o.keyFile, env: o.keyEnv }, clearDir: path.join(o.out, '.bases') });
      const { stages, display } = fleetProgress(g, true);
      // with the live display, per-machine lines only for failures (all of them with -v)
      const line = (msg: string, failed: boolean) => {
        if (!display) log.progress(msg);
        else if (failed || g.verbose) display.log(msg);
      };
      let result;
      try {
        result = await deploy({
          profiles: o.profile, inventory: o.inventory, base: base.path, out: o.out, restoreMode: o.mode, size: o.size, force: o.force,
          expectedSha256: o.sha256 ?? base.expectedSha256, machines: o.machine, shard: o.shard ? parseShard(o.shard) : undefined,
          jobs: positiveInt(o.jobs, '--jobs'), drivesPerAppliance: positiveInt(o.drivesPerAppliance, '--drives-per-appliance'), state: o.state, allowHostRoot: o.allowHostRoot === true,
          onWarning: (m) => (display ? display.log(`warning: ${m}`) : log.warn(m)),
          onPlanned: (p) => {
            stages.planned(p.machines);
            log.verbose(`deploy: ${p.machines} machine(s) in ${p.batches} batch(es) of up to ${p.perBatch}, ${p.jobs} appliance(s) in parallel`);
          },
          onBatch: (b) => { if (b.stage === 'customize' && b.phase === 'start') stages.customizeStarted(); },
          onRestored: (e, n, total) => {
            stages.restored(e.machine, e.action !== 'failed');
            event({ event: 'restore', ...e, done: n, total });
            line(`[restore ${n}/${total}] ${e.machine}: ${e.action}${e.error ? `: ${e.error}` : ''}`, e.action === 'failed');
          },
          onMachineApplied: (m) => stages.machineApplied(m),
          onMachineDone: (r, n, total) => {
            stages.machineDone(r.report.name, r.report.status === 'ok');
            event({ event: 'apply', machine: r.report.name, status: r.report.status, error: r.report.error, changes: r.changes.length, done: n, total });
            line(`[apply ${n}/${total}] ${r.report.name}: ${r.report.status === 'ok' ? `ok, ${r.changes.length} change(s)` : `FAILED: ${r.report.error}`}`, r.report.status !== 'ok');
          },
        });
      } finally {
        display?.stop();
      }
      const resume = resumeSummary(result);
      const report = { ...buildReport('deploy', started, result.results), base: result.base, resume };
      if (resume.reused) log.info(`deploy resumed: ${resume.reused} existing clone(s) reused, ${resume.redone.length} of them redone${resume.redone.length ? ` (${resume.redone.join(', ')})` : ''}, ${resume.alreadyDone.length} already done; ${resume.restored} restored`);
      if (o.report) writeAtomic(o.report, JSON.stringify(report, null, 2) + '\n');
      if (o.knownHosts) await writeKnownHosts(o.knownHosts, result.results);
      if (g.json) out(JSON.stringify({ event: 'done', summary: report.summary, base: result.base }));
      else {
        printSummary(result.results);
        log.info(`deploy: ${report.summary.ok} ok, ${report.summary.failed} failed; base ${result.base.path} sha256 ${result.base.sha256.slice(0, 16)}… unchanged`);
      }
      return exitFor(report);
    }));
}
