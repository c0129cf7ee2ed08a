/**
 * The text of a plan, one machine at a time: what `plan` prints, built from a
 * machine's result. The engine (run.ts) returns results and prints nothing;
 * the CLI and the plan worker threads (parallel-tasks.ts) both format with this.
 */
import { renderDiff } from '../plan/diff.js';
import type { MachineResult } from './run.js';
import { deviceChangesText } from './storage-stage.js';

export function diffText(r: MachineResult): string {
  return r.changes.map(renderDiff).join('');
}

/**
 * What `plan` prints for one machine: with --json its entry of the machines
 * array (one line, no separator), else its header line and diff. The
 * single-threaded and the parallel plan (fleet/parallel.ts) both print this.
 */
export function planEntry(r: MachineResult, json: boolean): string {
  if (json) return JSON.stringify({ ...r.report, diff: diffText(r) });
  const head = `=== ${r.report.name} (${r.report.target})`;
  const devices = r.deviceChanges ?? [];
  const count = r.changes.length + devices.length;
  let text = r.report.status !== 'ok' ? `${head}: FAILED: ${r.report.error}\n` : `${head}: ${count ? `${count} change(s)` : 'no changes'}\n`;
  text += deviceChangesText(devices);
  if (r.changes.length) {
    const diff = diffText(r);
    text += diff.endsWith('\n') || diff === '' ? diff : diff + '\n';
  }
  return text;
}
