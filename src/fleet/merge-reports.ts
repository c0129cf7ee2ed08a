/**
 * report merge: join per-shard reports into one. A machine in two reports
 * (overlap) is an error; with the inventory, a machine in none (gap) is too.
 */
import { readFileSync } from 'node:fs';
import type { RunReport } from '../report/report.js';
import type { ResumeSummary } from './deploy.js';

/** A report as deploy writes it: the base image and what a resumed run redid. */
export interface DeployReport extends RunReport {
  base?: { path: string; sha256: string; sha256After?: string };
  resume?: ResumeSummary;
}
import { validateAgainst } from '../schema/validate-schema.js';
import { GhostprepError } from '../util/errors.js';

export function readReport(file: string): DeployReport {
  let data: unknown;
  try { data = JSON.parse(readFileSync(file, 'utf8')); } catch (err) {
    throw new GhostprepError(`${file}: not a JSON report (${(err as Error).message})`);
  }
  const problems = validateAgainst('report', data);
  if (problems.length) throw new GhostprepError(`${file}: not a ghostprep report: ${problems.slice(0, 3).map((p) => `${p.path || '/'}: ${p.message}`).join('; ')}`);
  return data as DeployReport;
}

export function mergeReports(reports: ReadonlyArray<{ file: string; report: DeployReport }>, expected?: readonly string[]): DeployReport {
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
    const known = new Set(expected);
    const extra = [...owner.keys()].filter((n) => !known.has(n));
    if (extra.length) problems.push(`machine(s) not in the inventory: ${extra.slice(0, 10).join(', ')}`);
  }
  const base = mergeBase(reports, problems);
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
    ...(base && { base }),
    ...(reports.some((r) => r.report.resume) && { resume: mergeResume(reports.map((r) => r.report.resume)) }),
    machines,
  };
}

/** Deploy shards of one fleet share their base: kept when every report names the same one, a problem when two differ. */
function mergeBase(reports: ReadonlyArray<{ file: string; report: DeployReport }>, problems: string[]): DeployReport['base'] {
  const withBase = reports.filter((r) => r.report.base);
  if (!withBase.length) return undefined;
  const first = withBase[0]!;
  const other = withBase.find((r) => r.report.base!.sha256 !== first.report.base!.sha256);
  if (other) {
    problems.push(`${first.file} and ${other.file} were deployed from different base images (sha256 ${first.report.base!.sha256.slice(0, 12)}… and ${other.report.base!.sha256.slice(0, 12)}…): not shards of one deploy`);
    return undefined;
  }
  const after = new Set(withBase.map((r) => r.report.base!.sha256After));
  const b = first.report.base!;
  return { path: b.path, sha256: b.sha256, ...(after.size === 1 && b.sha256After && { sha256After: b.sha256After }) };
}

function mergeResume(parts: ReadonlyArray<ResumeSummary | undefined>): ResumeSummary {
  const all = parts.filter((p): p is ResumeSummary => !!p);
  return {
    reused: all.reduce((n, p) => n + p.reused, 0),
    restored: all.reduce((n, p) => n + p.restored, 0),
    failed: all.reduce((n, p) => n + p.failed, 0),
    redone: all.flatMap((p) => p.redone),
    alreadyDone: all.flatMap((p) => p.alreadyDone),
  };
}
