/**
 * `validate`: every check that needs no target, all problems at once,
 * duplicates (the same template error in 500 machines) reported once.
 */
import { loadConfig, type LoadedConfig } from '../profile/config.js';
import { sortDiagnostics } from '../report/diagnostics.js';
import { type Diagnostic } from '../core/diagnostic.js';
import { checkMachine, checkReferencedFiles, checkUniqueness, uniquenessFacts, type UniquenessFacts } from './rules.js';
import { siteSecret } from '../identity/resolve.js';
import { windowsRefusals } from '../windows/check.js';
import { checkTargets } from './rules-targets.js';
import { prepareFleet, renderMachine } from './prepare.js';
import { locateProblem } from '../template/locate.js';
import { type PreparedMachine, type RenderedMachine } from '../core/machine.js';
import { fileContent, HostFileProblem } from '../template/files.js';
import { TemplateError } from '../template/render.js';
import path from 'node:path';

/** Render every `files` entry: errors in template files point into the template file. */
function checkFiles(r: RenderedMachine): Diagnostic[] {
  const out: Diagnostic[] = [];
  r.profile.files?.forEach((f, i) => {
    try {
      fileContent(r, f, i);
    } catch (err) {
      if (err instanceof HostFileProblem) { out.push(err.diagnostic); return; } // a FIFO, a device, a directory, too large
      if (!(err instanceof TemplateError)) return; // missing files are reported by checkReferencedFiles
      if (f.template !== undefined) out.push({ severity: 'error', path: '', message: err.detail, file: path.relative(process.cwd(), path.resolve(err.template)) || err.template, line: err.line, col: err.col });
      else out.push(locateProblem(r.prepared, `/files/${i}/content`, `template: ${err.detail}${err.line > 1 ? ` (line ${err.line} of the content)` : ''}`));
    }
  });
  return out;
}

export interface ValidateHooks {
  /** After each machine is rendered and checked (a progress display). */
  readonly onMachine?: (done: number, total: number) => void;
}

/** The loaded input before any machine is rendered: what every thread of a parallel run builds alike. */
export interface LoadedFleet {
  readonly config: LoadedConfig;
  readonly machines: PreparedMachine[];
  /** Problems of the files themselves (schema, references, extends), before the per-machine ones. */
  readonly diagnostics: Diagnostic[];
}

/** One contiguous slice of the machines rendered and checked. */
export interface SliceResult {
  /** Per-machine problems, in machine order. */
  readonly diagnostics: Diagnostic[];
  /** Of the machines that rendered cleanly, for the fleet-wide uniqueness check. */
  readonly facts: UniquenessFacts[];
}

export function loadFleet(profiles: readonly string[], inventory: string | undefined): LoadedFleet {
  const config = loadConfig(profiles, inventory);
  const diagnostics: Diagnostic[] = [...config.diagnostics, ...checkReferencedFiles(config)];
  const { machines, diagnostics: prepDiags } = prepareFleet(config);
  diagnostics.push(...prepDiags, ...checkTargets(machines));
  return { config, machines, diagnostics };
}

/**
 * Render and check machines [start, end) of the fleet. The renders are not kept
 * for a plan or apply that follows: 10,000 kept renders survived every
 * young-generation collection and made checking twice as slow (115 vs 60 ms per
 * 1,000 machines), more than rendering again costs the plan.
 */
export function checkSlice(machines: readonly PreparedMachine[], start: number, end: number, onMachine?: () => void): SliceResult {
  const diagnostics: Diagnostic[] = [];
  const facts: UniquenessFacts[] = [];
  for (let i = start; i < end; i++) {
    const r = renderMachine(machines[i]!, undefined, undefined, false);
    // a value whose template failed is still its raw text: checking it would only repeat the error
    if (r.diagnostics.length) diagnostics.push(...r.diagnostics, ...windowsRefusals(r.prepared));
    else {
      diagnostics.push(...checkMachine(r), ...checkFiles(r));
      facts.push(uniquenessFacts(r, i, siteSecret));
    }
    onMachine?.();
  }
  return { diagnostics, facts };
}

/** All slices' results (in machine order) + the uniqueness check -> the diagnostics, once each, sorted. */
export function finishValidation(fleet: LoadedFleet, slices: readonly SliceResult[]): Diagnostic[] {
  const diagnostics = [...fleet.diagnostics];
  for (const s of slices) for (const d of s.diagnostics) diagnostics.push(d);
  diagnostics.push(...checkUniqueness(fleet.machines, (function* () { for (const s of slices) yield* s.facts; })()));
  const seen = new Set<string>();
  const unique = diagnostics.filter((d) => {
    const key = `${d.file}:${d.line}:${d.col}:${d.path}:${d.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return sortDiagnostics(unique);
}

export function validateFleet(profiles: readonly string[], inventory: string | undefined, hooks: ValidateHooks = {}): { config: LoadedConfig; machines: PreparedMachine[]; diagnostics: Diagnostic[] } {
  const fleet = loadFleet(profiles, inventory);
  const { machines } = fleet;
  let done = 0;
  const slice = checkSlice(machines, 0, machines.length, hooks.onMachine && (() => hooks.onMachine!(++done, machines.length)));
  return { config: fleet.config, machines, diagnostics: finishValidation(fleet, [slice]) };
}
