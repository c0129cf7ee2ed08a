/**
 * `validate`: every check that needs no target, all problems at once,
 * duplicates (the same template error in 500 machines) reported once.
 */
import { loadConfig, type LoadedConfig } from '../profile/config.js';
import { sortDiagnostics, type Diagnostic } from '../report/diagnostics.js';
import { checkFleetUniqueness, checkMachine, checkReferencedFiles } from '../schema/rules.js';
import { siteSecret } from '../identity/resolve.js';
import { prepareFleet, renderMachine, type PreparedMachine } from './prepare.js';

export function validateFleet(profiles: readonly string[], inventory: string | undefined): { config: LoadedConfig; machines: PreparedMachine[]; diagnostics: Diagnostic[] } {
  const config = loadConfig(profiles, inventory);
  const diagnostics: Diagnostic[] = [...config.diagnostics, ...checkReferencedFiles(config)];
  const { machines, diagnostics: prepDiags } = prepareFleet(config);
  diagnostics.push(...prepDiags);
  const rendered = machines.map((m) => renderMachine(m));
  for (const r of rendered) diagnostics.push(...r.diagnostics, ...checkMachine(r));
  diagnostics.push(...checkFleetUniqueness(rendered, siteSecret));
  const seen = new Set<string>();
  const unique = diagnostics.filter((d) => {
    const key = `${d.file}:${d.line}:${d.col}:${d.path}:${d.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return { config, machines, diagnostics: sortDiagnostics(unique) };
}
