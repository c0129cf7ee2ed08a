import type { Command } from 'commander';
import { mergeReports, readReport } from '../../fleet/merge-reports.js';
import { loadConfig } from '../../profile/config.js';
import { writeAtomic } from '../../report/report.js';
import { GhostprepError } from '../../util/errors.js';
import { fleetExitCode, out, type GlobalOptions } from '../common.js';

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  const report = program.command('report').description('work with run reports');
  report.command('merge <files...>')
    .description('join per-shard reports into one; overlaps (and, with -i, gaps) are errors')
    .option('-o, --output <file>', 'write the merged report here (default: stdout)')
    .option('-i, --inventory <file>', 'check that every machine of this inventory is in exactly one report')
    .addHelpText('after', `
Exit: 0 all machines ok, 3 some failed, 1 overlap, gap or unreadable report.

Examples:
  ghostprep report merge reports/shard-*.json -o report.json
  ghostprep report merge reports/*.json -i inventory.yaml -o report.json`)
    .action((files: string[], o: { output?: string; inventory?: string }) => run(async () => {
      let expected: string[] | undefined;
      if (o.inventory) {
        const config = loadConfig([], o.inventory);
        if (!config.inventory) throw new GhostprepError(`${o.inventory}: cannot read the inventory`);
        expected = config.inventory.data.machines.map((m) => m.name);
      }
      const merged = mergeReports(files.map((file) => ({ file, report: readReport(file) })), expected);
      const text = JSON.stringify(merged, null, 2) + '\n';
      if (o.output) writeAtomic(o.output, text); else out(text);
      process.stderr.write(`merged ${files.length} report(s): ${merged.summary.ok} ok, ${merged.summary.failed} failed\n`);
      return fleetExitCode(merged.summary);
    }));
}
