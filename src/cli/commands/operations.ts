import type { Command } from 'commander';
import { operations } from '../../operations/index.js';
import { ExitCode } from '../../util/errors.js';
import { out, type GlobalOptions } from '../common.js';

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  program.command('operations')
    .description('list the operations apply (customize) and seal perform')
    .action(() => run(async (g) => {
      const list = operations.list();
      if (g.json) out(JSON.stringify(list.map(({ name, kind, description, defaultEnabled }) => ({ name, kind, description, defaultEnabled })), null, 2));
      else for (const op of list) out(`${op.name.padEnd(18)} ${op.kind.padEnd(9)} ${op.defaultEnabled ? '*' : ' '} ${op.description}`);
      return ExitCode.ok;
    }));
}
