import type { Command } from 'commander';
import { operations, summarize, type OperationSummary } from '../../operations/index.js';
import { ExitCode } from '../../util/errors.js';
import { out, type GlobalOptions } from '../common.js';

/** One line per operation: name, kind, order (- for none), guests, * when on by default, description. */
export function operationLines(list: readonly OperationSummary[]): string[] {
  const width = Math.max(...list.map((o) => o.name.length));
  return list.map((o) => `${o.name.padEnd(width)}  ${o.kind.padEnd(9)}  ${String(o.order ?? '-').padStart(3)}  ${o.guests.join(',').padEnd(13)}  ${o.defaultEnabled ? '*' : ' '} ${o.description}`);
}

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  program.command('operations')
    .description('list the operations apply (customize, in run order) and seal perform, with the guests each applies to')
    .addHelpText('after', `
Columns: name, kind, order, guests, * when on by default, description.`)
    .action(() => run(async (g) => {
      const list = [...operations.runOrder(), ...operations.list('seal')].map(summarize);
      if (g.json) out(JSON.stringify(list, null, 2));
      else for (const line of operationLines(list)) out(line);
      return ExitCode.ok;
    }));
}
