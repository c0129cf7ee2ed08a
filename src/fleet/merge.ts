/**
 * report merge: join per-shard reports into one. A machine in two reports
 * (overlap) is an error; with the inventory, a machine in none (gap) is too.
 */
import { readFileSync } from 'node:fs';
import type { RunReport } from '../report/report.js';
import { validateAgainst } from '../schema/validate.js';
import { GhostprepError } from '../util/errors.js';

export function readReport(file: string): RunReport {
  let data: unknown;
  try { data = JSON.parse(readFileSync(file, 'utf8')); } catch (err) {
    throw new GhostprepError(`${file}: not a JSON report (${(err as Error).message})`);
  }
  const problems = validateAgainst('report', data);
  if (problems.length) throw new GhostprepError(`${file}: not a ghostprep report: ${problems.slice(0, 3).map((p) => `${p.path || '/'}: ${p.message}`).join('; ')}`);
  return data as RunReport;
}

export function mergeReports(reports: ReadonlyArray<{ file: string; report: RunReport }>, expected?: readonly string[]): RunReport {
  if (!reports.length) throw new GhostprepError('report merge needs at least one report');
  const owner = new Map<string, string>();
  const problems: string[] = [];
  for (const { file, report } of reports) {
    for (const m of report.machines) {
      const prior = owner.get(m.name);
      if (prior) problems.push(`machine ${m.name} is in both ${prior} and ${file} (overlapping shards)`);
      else owner.set(m.name, file);
    }
  }
  if (expected) {
    const missing = expected.filter((n) => !owner.has(n));
    if (missing.length) problems.push(`${missing.length} machine(s) of the inventory are in no report (a shard missing?): ${missing.slice(0, 10).join(', ')}${missing.length > 10 ? ', …' : ''}`);
    const extra = [...owner.keys()].filter((n) => !expected.includes(n));
    if (extra.length) problems.push(`machine(s) not in the inventory: ${extra.slice(0, 10).join(', ')}`);
  }
  if (problems.length) throw new GhostprepError(problems.join('\n'));
  const machines = reports.flatMap((r) => r.report.machines);
  const order = expected ? new Map(expected.map((n, i) => [n, i])) : undefined;
  machines.sort((a, b) => (order ? order.get(a.name)! - order.get(b.name)! : a.name.localeCompare(b.name)));
  const started = reports.map((r) => r.report.started).sort()[0]!;
  const finished = reports.map((r) => r.report.finished).sort().at(-1)!;
  const ok = machines.filter((m) => m.status === 'ok').length;
  return {
    version: 1, command: `merge(${[...new Set(reports.map((r) => r.report.command))].join(',')})`, started, finished,
    summary: { ok, failed: machines.length - ok, durationMs: Date.parse(finished) - Date.parse(started) },
    machines,
  };
}
