import type { Command } from 'commander';
import { diffText, runFleet } from '../../fleet/run.js';
import { ExitCode } from '../../util/errors.js';
import { Logger, out, type GlobalOptions } from '../common.js';
import { Progress, progressWanted, stage } from '../progress.js';
import { addFleetOptions, runOptions, type FleetCliOptions } from './fleet-options.js';

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  addFleetOptions(program.command('plan'))
    .description('show, per machine, a unified diff of what apply would change (never writes)')
    .option('--detailed-exitcode', 'exit 2 when there are changes, 0 when none')
    .addHelpText('after', `
Images are opened read-only; rootfs trees are only read. Secrets (private keys,
shadow) are never shown. Without --target, templates are rendered against an
empty guest: every file is shown as new.

Examples:
  ghostprep plan -p profiles/ -i inventory.yaml --target 'rootfs:/srv/nodes/{name}'
  ghostprep plan -p profiles/ -i inventory.yaml --target 'clones/{name}.qcow2' --detailed-exitcode
  ghostprep plan -p profiles/ -i inventory.yaml --machine node01 --json`)
    .action((o: FleetCliOptions & { detailedExitcode?: boolean }) => run(async (g) => {
      const log = new Logger(g);
      let changed = 0;
      let failed = 0;
      // A progress line on stderr only while the plan itself goes elsewhere (a file, a pipe).
      const progress = progressWanted(g) && !process.stdout.isTTY ? new Progress([stage('plan', 0)]) : undefined;
      // Each machine is printed as soon as it is planned, then dropped: memory stays flat for big fleets.
      // --json: one JSON document, each machine's entry on a line of its own (written when the next
      // one comes, to add the comma), so that a consumer can also read it line by line.
      let pending: string | undefined;
      if (g.json) out('{"machines": [');
      const results = await runFleet({
        ...runOptions(o, 'plan'), retainChanges: false, onWarning: (m) => (progress ? progress.log(`warning: ${m}`) : log.warn(m)),
        onMachineDone: (r, _done, total) => {
          if (progress) {
            progress.stages.get('plan')!.total = total;
            progress.tick('plan', r.report.status === 'ok');
          }
          if (r.report.status !== 'ok') failed++;
          if (r.changes.length) changed++;
          if (g.json) {
            if (pending !== undefined) out(pending + ',');
            pending = JSON.stringify({ ...r.report, diff: diffText(r) });
            return;
          }
          const head = `=== ${r.report.name} (${r.report.target})`;
          if (r.report.status !== 'ok') out(`${head}: FAILED: ${r.report.error}`);
          else out(`${head}: ${r.changes.length ? `${r.changes.length} change(s)` : 'no changes'}`);
          if (r.changes.length) out(diffText(r));
        },
      }).finally(() => progress?.stop());
      if (g.json) {
        if (pending !== undefined) out(pending);
        out(`], "summary": ${JSON.stringify({ machines: results.length, changed, failed })}}`);
      } else log.info(`plan: ${results.length} machine(s), ${changed} with changes, ${failed} failed`);
      if (failed) return failed === results.length ? ExitCode.error : ExitCode.partial;
      return o.detailedExitcode && changed ? ExitCode.changes : ExitCode.ok;
    }));
}
