import type { Command } from 'commander';
import type { MachineResult, RunOptions } from '../../fleet/run.js';
import type { PlanChunk } from '../../fleet/parallel-tasks.js';
import { ExitCode } from '../../util/errors.js';
import { fleetExitCode, Logger, OutputBuffer, type GlobalOptions } from '../common.js';
import { Progress, progressWanted } from '../progress.js';
import { stage } from '../../fleet/fleet-stages.js';
import { addFleetOptions, runOptions, type FleetCliOptions } from './fleet-options.js';
import { THREADS_HELP } from './validate.js';

type PlanCliOptions = FleetCliOptions & { detailedExitcode?: boolean; threads?: string };

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  addFleetOptions(program.command('plan'))
    .description('show, per machine, a unified diff of what apply would change (never writes)')
    .option('--detailed-exitcode', 'exit 2 when there are changes, 0 when none')
    .option('--threads <n>', `${THREADS_HELP}; only without --target`)
    .addHelpText('after', `
Images are opened read-only; rootfs trees are only read. Secrets (private keys,
shadow) are never shown. Without --target, templates are rendered against an
empty guest: every file is shown as new.

Examples:
  ghostprep plan -p profiles/ -i inventory.yaml --target 'rootfs:/srv/nodes/{name}'
  ghostprep plan -p profiles/ -i inventory.yaml --target 'clones/{name}.qcow2' --detailed-exitcode
  ghostprep plan -p profiles/ -i inventory.yaml --machine node01 --json`)
    .action((o: PlanCliOptions) => run((g) => plan(o, g)));
}

/**
 * What plan prints, from single machines (one thread) or from slices of
 * machines (fleet/parallel.ts): the same bytes either way. Each machine is
 * printed as soon as it is planned, then dropped: memory stays flat for big
 * fleets. --json: one JSON document, each machine's entry on a line of its
 * own, so that a consumer can also read it line by line.
 */
class PlanPrinter {
  readonly out = new OutputBuffer();
  machines = 0;
  changed = 0;
  failed = 0;
  private entries = false;

  constructor(private readonly json: boolean, private readonly warn: (msg: string) => void, private readonly progress?: Progress) {
    if (json) this.out.write('{"machines": [\n');
  }

  warning(msg: string): void {
    this.out.flush();
    this.warn(msg);
  }

  chunk(c: PlanChunk): void {
    let from = 0;
    const text = (to: number): void => {
      if (to <= from) return;
      // --json: entries are separated by ",\n" (the slice has them inside)
      if (this.json && from === 0) this.out.write(this.entries ? ',\n' : '');
      this.out.write(c.text.slice(from, to));
      this.entries = true;
      from = to;
    };
    for (const w of c.warnings) {
      text(w.at);
      this.warning(w.message);
    }
    text(c.text.length);
    this.machines += c.machines;
    this.changed += c.changed;
    this.failed += c.failed;
    if (this.progress) {
      for (let i = 0; i < c.machines; i++) this.progress.tick('plan', i >= c.failed);
    }
  }

  /** The summary (--json: closes the document) and the exit code. */
  finish(log: Logger, detailedExitcode: boolean): number {
    if (this.json) {
      this.out.write(`${this.entries ? '\n' : ''}], "summary": ${JSON.stringify({ machines: this.machines, changed: this.changed, failed: this.failed })}}\n`);
      this.out.flush();
    } else {
      this.out.flush();
      log.info(`plan: ${this.machines} machine(s), ${this.changed} with changes, ${this.failed} failed`);
    }
    if (this.failed) return fleetExitCode({ ok: this.machines - this.failed, failed: this.failed });
    return detailedExitcode && this.changed ? ExitCode.changes : ExitCode.ok;
  }
}

async function plan(o: PlanCliOptions, g: GlobalOptions): Promise<number> {
  // loaded here, not at the top: `ghostprep validate` and --help need none of it
  const { planEntry } = await import('../../fleet/plan-text.js');
  const { threadCount } = await import('../../fleet/parallel.js');
  const log = new Logger(g);
  const json = g.json === true;
  // A progress line on stderr only while the plan itself goes elsewhere (a file, a pipe).
  const progress = progressWanted(g) && !process.stdout.isTTY ? new Progress([stage('plan', 0)]) : undefined;
  const printer = new PlanPrinter(json, (m) => (progress ? progress.log(`warning: ${m}`) : log.warn(m)), progress);
  const one = (r: MachineResult): void => {
    const text = planEntry(r, json);
    printer.chunk({ text, warnings: [], machines: 1, changed: r.changes.length ? 1 : 0, failed: r.report.status !== 'ok' ? 1 : 0 });
  };
  const opts = {
    ...runOptions(o, 'plan'), retainChanges: false, reportHashes: json, onWarning: (m: string) => printer.warning(m),
    onStart: (total: number) => { if (progress) progress.stages.get('plan')!.total = total; },
    onMachineDone: one,
  };
  try {
    const threads = threadCount(o.threads);
    if (o.target === undefined && threads !== 1) await planRenderOnly(opts, threads, json, printer);
    else await (await import('../../fleet/run.js')).runFleet(opts);
  } finally {
    progress?.stop();
  }
  return printer.finish(log, o.detailedExitcode === true);
}

/**
 * Plan without --target on several threads: validate as `openFleet` would, then
 * plan on the workers if there are any (a big fleet), else here, machine by machine.
 */
async function planRenderOnly(opts: RunOptions, threads: number | undefined, json: boolean, printer: PlanPrinter): Promise<void> {
  const { runMachines, selectMachines } = await import('../../fleet/run.js');
  const { planThreaded, validateThreaded } = await import('../../fleet/parallel.js');
  const { StateDir } = await import('../../identity/state.js');
  const { InvalidInputError } = await import('../../util/errors.js');
  const v = await validateThreaded(opts.profiles, opts.inventory, { threads, keepPool: true });
  try {
    const errors = v.diagnostics.filter((d) => d.severity === 'error');
    if (errors.length) throw new InvalidInputError(v.diagnostics, `${errors.length} error(s) in the input`);
    const selected = selectMachines(v.fleet.machines, opts.machines, opts.shard);
    const state = new StateDir(opts.state);
    opts.onStart?.(selected.length);
    // a machine with its own target in the inventory is opened like with --target: on this thread
    if (v.pool && !selected.some((m) => m.entry.target)) {
      await planThreaded({ ...v, pool: v.pool }, selected, { json, state: opts.state, onChunk: (c) => printer.chunk(c) });
    } else {
      await runMachines({ selected, state }, selected, opts, (r) => opts.onMachineDone?.(r, 0, selected.length));
    }
  } finally {
    await v.pool?.close();
  }
}
