/**
 * The fuzzer's only door into ghostprep's library: validate, plan and apply
 * as the CLI runs them, with every warning, report, plan text and error
 * message captured as text for the secret scan. If the library's signatures
 * change, this file is the one to adapt.
 */
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import { planEntry } from '../../src/fleet/plan-text.js';
import { runFleet, type MachineResult } from '../../src/fleet/run.js';
import { buildReport, writeKnownHosts } from '../../src/cli/commands/apply.js';
import type { Diagnostic } from '../../src/core/diagnostic.js';
import { errorMessage } from '../../src/util/errors.js';

export interface EngineInput {
  /** -p arguments (absolute). */
  readonly profiles: readonly string[];
  /** -i argument (absolute). */
  readonly inventory: string;
  /** --target pattern, e.g. rootfs:/tmp/x/targets/{name}. */
  readonly target: string;
  /** --state dir. */
  readonly state: string;
  /** Where apply's known_hosts goes. */
  readonly knownHosts: string;
}

export interface ValidateOutcome {
  readonly diagnostics: readonly Diagnostic[];
  /** validate threw instead of returning diagnostics (a bug in itself). */
  readonly threw?: string;
}

export interface MachineOutcome {
  readonly name: string;
  /** Absolute rootfs path the machine was applied to (from its report's target). */
  readonly target: string;
  readonly ok: boolean;
  readonly error: string | null;
  /** Files the report says were written: path in the guest -> sha256 (null when the report gives none). */
  readonly writes: ReadonlyArray<{ path: string; sha256: string | null }>;
  readonly deletes: readonly string[];
}

export interface RunOutcome {
  readonly machines: readonly MachineOutcome[];
  /** Every text the run produced: warnings, plan text or report JSON, known_hosts, error messages. */
  readonly texts: readonly string[];
  /** runFleet threw as a whole (bad input it refused, a target pattern error...). */
  readonly threw?: string;
}

export function validate(input: EngineInput): ValidateOutcome {
  try {
    const { diagnostics } = validateFleet(input.profiles, input.inventory);
    return { diagnostics };
  } catch (err) {
    return { diagnostics: [], threw: describeThrow(err) };
  }
}

function describeThrow(err: unknown): string {
  const e = err as { name?: string; stack?: string };
  return `${e?.name ?? typeof err}: ${errorMessage(err)}`;
}

function outcome(r: MachineResult): MachineOutcome {
  const rep = r.report;
  return {
    name: rep.name,
    target: rep.target.replace(/^rootfs:/, ''),
    ok: rep.status === 'ok',
    error: rep.error,
    writes: rep.changes.filter((c) => c.op === 'write').map((c) => ({ path: c.path, sha256: c.sha256 })),
    deletes: rep.changes.filter((c) => c.op === 'delete').map((c) => c.path),
  };
}

async function run(input: EngineInput, mode: 'plan' | 'apply'): Promise<RunOutcome> {
  const texts: string[] = [];
  let results: MachineResult[];
  try {
    results = await runFleet({
      profiles: input.profiles, inventory: input.inventory, target: input.target, state: input.state, mode,
      jobs: 2, onWarning: (m) => texts.push(`warning: ${m}`),
    });
  } catch (err) {
    texts.push(describeThrow(err));
    const diags = (err as { diagnostics?: unknown }).diagnostics;
    if (diags) texts.push(JSON.stringify(diags));
    return { machines: [], texts, threw: describeThrow(err) };
  }
  if (mode === 'plan') for (const r of results) texts.push(planEntry(r, false), planEntry(r, true));
  else {
    texts.push(JSON.stringify(buildReport('apply', new Date(), results)));
    try { await writeKnownHosts(input.knownHosts, results); } catch (err) { texts.push(`known_hosts: ${describeThrow(err)}`); }
  }
  for (const r of results) if (r.report.error) texts.push(r.report.error);
  return { machines: results.map(outcome), texts };
}

export const plan = (input: EngineInput): Promise<RunOutcome> => run(input, 'plan');
export const apply = (input: EngineInput): Promise<RunOutcome> => run(input, 'apply');

/** The CLI command lines of a case (run as child processes for a sample of cases). */
export function cliCommands(input: EngineInput, report: string): string[][] {
  const io = [...input.profiles.flatMap((p) => ['-p', p]), '-i', input.inventory];
  return [
    ['validate', ...io],
    ['--json', 'plan', ...io, '--target', input.target, '--state', input.state],
    ['apply', ...io, '--target', input.target, '--state', input.state, '--report', report, '--known-hosts', input.knownHosts],
  ];
}
