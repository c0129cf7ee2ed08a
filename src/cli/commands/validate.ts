import type { Command } from 'commander';
import { validateFleet } from '../../fleet/validate.js';
import { hasErrors } from '../../report/diagnostics.js';
import { ExitCode, GhostprepError } from '../../util/errors.js';
import { collect, printDiagnostics, type GlobalOptions } from '../common.js';
import { Progress, progressWanted, stage } from '../progress.js';

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  program.command('validate')
    .description('check profiles and inventory: schema, templates, fleet rules (no target needed)')
    .requiredOption('-p, --profile <file|dir>', 'profile file or directory of profiles (repeatable)', collect)
    .option('-i, --inventory <file>', 'machine inventory')
    .option('--format <fmt>', 'text | json | github (GitHub Actions annotations)', 'text')
    .addHelpText('after', `
Every problem is reported at once, as FILE:LINE:COL: error: JSON/PATH: message.
Exit 0 when valid, 1 when not.

Example:
  ghostprep validate -p profiles/ -i inventory.yaml
  ghostprep validate -p profiles/ -i inventory.yaml --format github   # in CI`)
    .action((o: { profile: string[]; inventory?: string; format: string }) => run(async (g) => {
      const format = (g.json ? 'json' : o.format) as 'text' | 'json' | 'github';
      if (!['text', 'json', 'github'].includes(format)) throw new GhostprepError(`--format ${o.format}: use text, json or github`);
      const progress = progressWanted(g) && format === 'text' ? new Progress([stage('validate', 0)]) : undefined;
      const counter = progress?.stages.get('validate');
      let result: ReturnType<typeof validateFleet>;
      try {
        result = validateFleet(o.profile, o.inventory, progress && counter ? {
          onMachine: (_done, total) => { counter.total = total; progress.tick('validate'); },
        } : {});
      } finally {
        progress?.stop();
      }
      const { machines, diagnostics } = result;
      printDiagnostics(diagnostics, format);
      const errors = diagnostics.filter((d) => d.severity === 'error').length;
      if (format === 'text') {
        const msg = errors ? `${errors} error(s)` : `ok: ${machines.length} machine(s), ${diagnostics.length} warning(s)`;
        (errors ? process.stderr : process.stdout).write(msg + '\n');
      }
      return hasErrors(diagnostics) ? ExitCode.error : ExitCode.ok;
    }));
}
