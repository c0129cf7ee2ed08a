/**
 * Diagnostics (src/core/diagnostic.ts) in their text, json and github formats, and their order.
 */
import type { Diagnostic } from '../core/diagnostic.js';

export function hasErrors(diags: readonly Diagnostic[]): boolean {
  return diags.some((d) => d.severity === 'error');
}

/** `profiles/lab.yaml:12:7: error: /network/…: message` */
export function formatText(d: Diagnostic): string {
  const where = d.file ? `${d.file}${d.line ? `:${d.line}:${d.col ?? 1}` : ''}: ` : '';
  const path = d.path ? `${d.path}: ` : '';
  return `${where}${d.severity}: ${path}${d.message}`;
}

/** GitHub Actions workflow command; its values must escape %, CR, LF (and , : in properties). */
export function formatGithub(d: Diagnostic): string {
  const esc = (s: string) => s.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  const prop = (s: string) => esc(s).replace(/:/g, '%3A').replace(/,/g, '%2C');
  const props: string[] = [];
  if (d.file) props.push(`file=${prop(d.file)}`);
  if (d.line) props.push(`line=${d.line}`);
  if (d.col) props.push(`col=${d.col}`);
  const msg = `${d.path ? `${d.path}: ` : ''}${d.message}`;
  return `::${d.severity}${props.length ? ' ' + props.join(',') : ''}::${esc(msg)}`;
}

export function formatDiagnostics(diags: readonly Diagnostic[], format: 'text' | 'json' | 'github'): string {
  if (format === 'json') return JSON.stringify({ ok: !hasErrors(diags), diagnostics: diags }, null, 2);
  const f = format === 'github' ? formatGithub : formatText;
  return diags.map(f).join('\n');
}

/** Sort by file, then line, then column, so that all errors of a file read top to bottom. */
export function sortDiagnostics(diags: readonly Diagnostic[]): Diagnostic[] {
  return [...diags].sort((a, b) =>
    (a.file ?? '').localeCompare(b.file ?? '') || (a.line ?? 0) - (b.line ?? 0) || (a.col ?? 0) - (b.col ?? 0) || a.path.localeCompare(b.path));
}
