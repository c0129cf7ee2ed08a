import type { Command } from 'commander';
import { ExitCode, GhostprepError } from '../../util/errors.js';
import { collect, printDiagnostics, type GlobalOptions } from '../common.js';
import { Progress, progressWanted } from '../progress.js';
import { stage } from '../../fleet/fleet-stages.js';

export const THREADS_HELP = 'threads for a big inventory: validate uses a second one from 30,000 machines, plan from 8,000 (default: $GHOSTPREP_THREADS, else one per idle core, at most 4; 1: no worker threads)';

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  program.command('validate')
    .description('check profiles and inventory: schema, templates, fleet rules (no target needed)')
    .requiredOption('-p, --profile <file|dir>', 'profile file or directory of profiles (repeatable)', collect)
    .option('-i, --inventory <file>', 'machine inventory')
    .option('--format <fmt>', 'text | json | github (GitHub Actions annotations)', 'text')
    .option('--threads <n>', THREADS_HELP)
    .addHelpText('after', `
Every problem is reported at once, as FILE:LINE:COL: error: JSON/PATH: message.
Exit 0 when valid, 1 when not.

Example:
  ghostprep validate -p profiles/ -i inventory.yaml
  ghostprep validate -p profiles/ -i inventory.yaml --format github   # in CI`)
    .action((o: { profile: string[]; inventory?: string; format: string; threads?: string }) => run(async (g) => {
      const format = (g.json ? 'json' : o.format) as 'text' | 'json' | 'github';
      if (!['text', 'json', 'github'].includes(format)) throw new GhostprepError(`--format ${o.format}: use text, json or github`);
      // loaded here, not at the top: --help and the other commands need none of it
      const { threadCount, validateThreaded } = await import('../../fleet/parallel.js');
      const { hasErrors } = await import('../../report/diagnostics.js');
      const threads = threadCount(o.threads);
      const progress = progressWanted(g) && format === 'text' ? new Progress([stage('validate', 0)]) : undefined;
      const counter = progress?.stages.get('validate');
      let result: Awaited<ReturnType<typeof validateThreaded>>;
      try {
        result = await validateThreaded(o.profile, o.inventory, {
          threads,
          ...(progress && counter && { onMachine: (_done: number, total: number) => { counter.total = total; progress.tick('validate'); } }),
        });
      } finally {
        progress?.stop();
      }
      const { fleet: { machines }, diagnostics } = result;
      printDiagnostics(diagnostics, format);
      const errors = diagnostics.filter((d) => d.severity === 'error').length;
      if (format === 'text') {
        const msg = errors ? `${errors} error(s)` : `ok: ${machines.length} machine(s), ${diagnostics.length} warning(s)`;
        (errors ? process.stderr : process.stdout).write(msg + '\n');
      }
      return hasErrors(diagnostics) ? ExitCode.error : ExitCode.ok;
    }));
}
