import type { Command } from 'commander';
import { runFleet, type MachineResult } from '../../fleet/run.js';
import { updateKnownHosts, writeAtomic, type RunReport } from '../../report/report.js';
import { fleetExitCode, Logger, out, type GlobalOptions } from '../common.js';
import { addFleetOptions, runOptions, type FleetCliOptions } from './fleet-options.js';
import { fleetProgress } from '../progress.js';

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  addFleetOptions(program.command('apply'))
    .description('customize each machine offline, then verify by reading back')
    .option('--report <file>', 'write the JSON run report here')
    .option('--known-hosts <file>', 'write/update an ssh known_hosts file with the new host keys')
    .addHelpText('after', `
Identity (machine-id, SSH host keys) is generated once per machine and kept in
the state dir: applying again is idempotent, and plan afterwards shows nothing.
Exit 0 all ok, 3 some machines failed (see the report), 1 all failed or bad input.

Examples:
  ghostprep apply -p profiles/ -i inventory.yaml --target 'rootfs:/srv/nodes/{name}' --report report.json
  ghostprep apply -p profiles/ -i inventory.yaml --target 'clones/{name}.qcow2' --jobs 2 --known-hosts known_hosts`)
    .action((o: FleetCliOptions & { report?: string; knownHosts?: string }) => run(async (g) => {
      const log = new Logger(g);
      const started = new Date();
      const { stages, display } = fleetProgress(g, false);
      let results: MachineResult[];
      try {
        results = await runFleet({
          ...runOptions(o, 'apply'),
          onWarning: (m) => (display ? display.log(`warning: ${m}`) : log.warn(m)),
          onStart: (total) => stages.planned(total),
          onMachineApplied: (m) => stages.machineApplied(m),
          onMachineDone: (r, n, total) => {
            stages.machineDone(r.report.name, r.report.status === 'ok');
            const msg = `[${n}/${total}] ${r.report.name}: ${r.report.status === 'ok' ? `ok, ${r.changes.length} change(s)` : `FAILED: ${r.report.error}`} (${(r.report.durationMs / 1000).toFixed(1)} s)`;
            // with the live display, per-machine lines only for failures (all of them with -v)
            if (!display) log.progress(msg);
            else if (r.report.status !== 'ok' || g.verbose) display.log(msg);
          },
        });
      } finally {
        display?.stop();
      }
      const report = buildReport('apply', started, results);
      if (o.report) writeAtomic(o.report, JSON.stringify(report, null, 2) + '\n');
      if (o.knownHosts) await writeKnownHosts(o.knownHosts, results);
      if (g.json) out(JSON.stringify(report, null, 2));
      else printSummary(results);
      return exitFor(report);
    }));
}

/** Add or replace the machines that ended ok in an ssh known_hosts file (fqdn, hostname, addresses). */
export function writeKnownHosts(file: string, results: readonly MachineResult[]): Promise<void> {
  return updateKnownHosts(file, results.filter((r) => r.report.status === 'ok' && r.publicKeys.length).map((r) => ({
    names: [...new Set([r.report.identity!.fqdn, r.report.identity!.hostname, ...r.report.identity!.addresses])],
    publicKeys: [...r.publicKeys],
  })));
}

export function buildReport(command: string, started: Date, results: readonly MachineResult[]): RunReport {
  const finished = new Date();
  const ok = results.filter((r) => r.report.status === 'ok').length;
  return {
    version: 1, command, started: started.toISOString(), finished: finished.toISOString(),
    summary: { ok, failed: results.length - ok, durationMs: finished.getTime() - started.getTime() },
    machines: results.map((r) => r.report),
  };
}

export function exitFor(report: RunReport): number {
  return fleetExitCode(report.summary);
}

export function printSummary(results: readonly MachineResult[]): void {
  const rows = results.map((r) => {
    const id = r.report.identity;
    const key = id?.sshHostKeys[0]?.sha256 ?? '-';
    return [r.report.name, r.report.status, id?.fqdn ?? '-', id?.machineId ?? '-', key, r.report.status === 'ok' ? `${r.changes.length} changes` : r.report.error ?? ''];
  });
  const header = ['MACHINE', 'STATUS', 'FQDN', 'MACHINE-ID', 'SSH HOST KEY', 'RESULT'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  for (const row of [header, ...rows]) out(row.map((c, i) => (i === row.length - 1 ? c : String(c).padEnd(widths[i]!))).join('  '));
}
