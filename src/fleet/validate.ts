/**
 * `validate`: every check that needs no target, all problems at once,
 * duplicates (the same template error in 500 machines) reported once.
 */
import { loadConfig, type LoadedConfig } from '../profile/config.js';
import { sortDiagnostics, type Diagnostic } from '../report/diagnostics.js';
import { checkFleetUniqueness, checkMachine, checkReferencedFiles } from '../schema/rules.js';
import { siteSecret } from '../identity/resolve.js';
import { locateProblem, prepareFleet, renderMachine, type PreparedMachine, type RenderedMachine } from './prepare.js';
import { fileContent } from '../template/files.js';
import { TemplateError } from '../template/render.js';
import path from 'node:path';

/** Render every `files` entry: errors in template files point into the template file. */
function checkFiles(r: RenderedMachine): Diagnostic[] {
  const out: Diagnostic[] = [];
  r.profile.files?.forEach((f, i) => {
    try {
      fileContent(r, f, i);
    } catch (err) {
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

export function validateFleet(profiles: readonly string[], inventory: string | undefined, hooks: ValidateHooks = {}): { config: LoadedConfig; machines: PreparedMachine[]; diagnostics: Diagnostic[] } {
  const config = loadConfig(profiles, inventory);
  const diagnostics: Diagnostic[] = [...config.diagnostics, ...checkReferencedFiles(config)];
  const { machines, diagnostics: prepDiags } = prepareFleet(config);
  diagnostics.push(...prepDiags);
  const rendered: RenderedMachine[] = [];
  for (const m of machines) {
    const r = renderMachine(m);
    rendered.push(r);
    // a value whose template failed is still its raw text: checking it would only repeat the error
    if (r.diagnostics.length) diagnostics.push(...r.diagnostics);
    else diagnostics.push(...checkMachine(r), ...checkFiles(r));
    hooks.onMachine?.(rendered.length, machines.length);
  }
  diagnostics.push(...checkFleetUniqueness(rendered.filter((r) => !r.diagnostics.length), siteSecret));
  const seen = new Set<string>();
  const unique = diagnostics.filter((d) => {
    const key = `${d.file}:${d.line}:${d.col}:${d.path}:${d.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return { config, machines, diagnostics: sortDiagnostics(unique) };
}
