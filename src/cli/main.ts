#!/usr/bin/env node
/**
 * ghostprep command line. Thin: parse arguments, call the library, map
 * errors to exit codes (cli/common.ts). One file per command.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { LUKS_KEY_ENV, readLuksKeys } from '../backends/guestfs/luks.js';
import { collect, handleError, type GlobalOptions } from './common.js';
import * as apply from './commands/apply.js';
import * as audit from './commands/audit.js';
import * as inspect from './commands/inspect.js';
import * as operations from './commands/operations.js';
import * as plan from './commands/plan.js';
import * as deploy from './commands/deploy.js';
import * as exportCmd from './commands/export.js';
import * as restore from './commands/restore.js';
import * as images from './commands/images.js';
import * as report from './commands/report.js';
import * as seal from './commands/seal.js';
import * as validate from './commands/validate.js';

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
  await readLuksKeys(files);
  process.env[LUKS_KEY_ENV] = files.map((f) => path.resolve(f)).join(path.delimiter);
}

for (const mod of [validate, plan, apply, deploy, restore, seal, images, inspect, audit, report, exportCmd, operations]) mod.register(program, run);

await program.parseAsync(process.argv);
process.exitCode = exitCode;
