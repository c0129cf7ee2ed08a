#!/usr/bin/env node
/**
 * ghostprep command line. Thin: parse arguments, call the library, map
 * errors to exit codes (cli/common.ts). One file per command.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { LUKS_KEY_ENV } from '../backends/guestfs/defaults.js';
import { collect, handleError, type GlobalOptions } from './common.js';

/**
 * The commands, in the order of --help. Each module is imported only when
 * needed: the one command on the command line, or all of them for the overview
 * (--help, `help`, no or an unknown command). `validate` and `plan` thus load
 * neither execa nor the guestfs code (startup was half a second).
 */
type CommandModule = { register: (program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>) => void };
/** [commands a module registers, the module] */
const COMMANDS: ReadonlyArray<readonly [readonly string[], () => Promise<CommandModule>]> = [
  [['validate'], () => import('./commands/validate.js')],
  [['plan'], () => import('./commands/plan.js')],
  [['apply'], () => import('./commands/apply.js')],
  [['deploy'], () => import('./commands/deploy.js')],
  [['restore'], () => import('./commands/restore.js')],
  [['seal'], () => import('./commands/seal.js')],
  [['capture', 'images'], () => import('./commands/images.js')],
  [['inspect'], () => import('./commands/inspect.js')],
  [['audit'], () => import('./commands/audit.js')],
  [['report'], () => import('./commands/report.js')],
  [['export'], () => import('./commands/export.js')],
  [['operations'], () => import('./commands/operations.js')],
];


/**
 * The command named on the command line, when everything before it is a global
 * option we know (anything else: undefined, and every command is registered, so
 * that commander's errors and help read as always).
 */
function commandOf(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--luks-key-file') { i++; continue; }
    if (a.startsWith('--luks-key-file=') || ['--json', '-q', '--quiet', '-v', '--verbose', '--no-progress'].includes(a)) continue;
    return COMMANDS.some(([names]) => names.includes(a)) ? a : undefined;
  }
  return undefined;
}

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

if (!process.env.LIBGUESTFS_BACKEND_SETTINGS) {
  // Nested KVM hangs the libguestfs appliance at SeaBIOS on many CI hosts; TCG is slower but always works.
  process.env.LIBGUESTFS_BACKEND_SETTINGS = 'force_tcg';
}

// `ghostprep … | head` closes stdout early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const program = new Command();
program
  .name('ghostprep')
  .description('Give every cloned machine its own identity: profile + inventory -> validate -> plan -> apply offline -> verify -> report.')
  .version(pkg.version)
  .option('--json', 'machine-readable output on stdout (logs stay on stderr)')
  .option('-q, --quiet', 'only errors')
  .option('-v, --verbose', 'more detail, stack traces on errors')
  .option('--no-progress', 'no progress lines (they are shown only on a TTY anyway)')
  .option('--luks-key-file <file>', `passphrase (first line of FILE) for guest volumes encrypted with LUKS; repeatable, tried in order (default: $${LUKS_KEY_ENV})`, collect)
  .showHelpAfterError()
  .addHelpText('after', `
Exit codes: 0 ok (plan --detailed-exitcode: no changes), 1 invalid input or error,
2 plan has changes, 3 some machines failed, 4 a required tool is missing,
5 audit found duplicate identities.

Start here:
  ghostprep validate -p profiles/ -i inventory.yaml
  ghostprep plan  -p profiles/ -i inventory.yaml --target 'rootfs:nodes/{name}'
  ghostprep apply -p profiles/ -i inventory.yaml --target 'rootfs:nodes/{name}' --report report.json
  ghostprep audit --target 'rootfs:nodes/*'`);

let exitCode = 0;
const run = async (fn: (g: GlobalOptions) => Promise<number>): Promise<void> => {
  const g = program.opts<GlobalOptions>();
  try {
    await useLuksKeyFiles(g.luksKeyFile);
    exitCode = await fn(g);
  } catch (err) {
    exitCode = handleError(err, g);
  }
};

/** Check the key files now (a typo fails before any appliance starts), then hand them to the guestfs backend. */
async function useLuksKeyFiles(files: string[] | undefined): Promise<void> {
  if (!files?.length) return;
  const { readLuksKeys } = await import('../backends/guestfs/luks.js');
  await readLuksKeys(files);
  process.env[LUKS_KEY_ENV] = files.map((f) => path.resolve(f)).join(path.delimiter);
}

const wanted = commandOf(process.argv.slice(2));
for (const [names, load] of COMMANDS) if (!wanted || names.includes(wanted)) (await load()).register(program, run);

await program.parseAsync(process.argv);
process.exitCode = exitCode;
