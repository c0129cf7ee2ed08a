import type { Command } from 'commander';
import { parseTarget } from '../../fleet/targets.js';
import { sealTargets, selectSealOperations } from '../../fleet/seal.js';
import { checkSealTargets } from '../../fleet/seal-check.js';
import { operations, summarize } from '../../operations/index.js';
import { expandTargetGlob } from '../../util/glob.js';
import { ExitCode, GhostprepError } from '../../util/errors.js';
import { collect, fleetExitCode, Logger, out, type GlobalOptions } from '../common.js';

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  program.command('seal')
    .description('generalize a master: remove or reset everything that identifies it, so clones make their own')
    .option('-t, --target <TARGET>', 'image or rootfs:DIR of the master (repeatable, globs allowed)', collect)
    .option('--ops <list>', 'operations: names, "default", +name to add, -name to remove (e.g. "+package-cache,-logs")')
    .option('--dry-run', 'list what would be removed or changed, change nothing')
    .option('--list', 'list the seal operations and exit')
    .option('--check', 'change nothing; list the identity clones would inherit and the operation that removes each (exit 5 when any)')
    .option('--no-host-read', 'open every image in an appliance, none host-side')
    .addHelpText('after', `
machine-id becomes "uninitialized" (systemd's first-boot marker); SSH host keys are removed and a
run-once unit regenerates them at first boot. Sealing twice changes nothing the second time.

An image whose root is ext on a partition is planned host-side first: --check, --dry-run and a
seal with nothing left to change then need no appliance; only images with changes to write are
opened in one.

--check exits 0 when the master carries no identity a clone would inherit, 5 when it does.

Examples:
  ghostprep seal --list
  ghostprep seal --target master.qcow2 --check
  ghostprep seal --target master.qcow2 --dry-run
  ghostprep seal --target rootfs:/srv/golden --ops default,+package-cache,-logs`)
    .action((o: { target?: string[]; ops?: string; dryRun?: boolean; list?: boolean; check?: boolean; hostRead: boolean }) => run(async (g) => {
      if (o.list) {
        const list = operations.list('seal');
        // the same record as `ghostprep operations --json`, without the kind every entry shares
        if (g.json) out(JSON.stringify(list.map((op) => { const { kind: _kind, ...rest } = summarize(op); return rest; }), null, 2));
        else for (const op of list) out(`${op.name.padEnd(20)} ${op.defaultEnabled ? '*' : ' '} ${op.description}`);
        return ExitCode.ok;
      }
      if (!o.target?.length) throw new GhostprepError('seal needs --target (or --list)');
      const targets = o.target.flatMap(expandTargetGlob).map((t) => parseTarget(t));
      if (o.check) {
        if (o.ops || o.dryRun) throw new GhostprepError('--check takes neither --ops nor --dry-run: it checks every identity seal operation and changes nothing');
        const checked = await checkSealTargets(targets, { hostRead: o.hostRead });
        if (g.json) out(JSON.stringify(checked, null, 2));
        else {
          for (const r of checked) {
            if (r.error) { out(`${r.target}: ERROR: ${r.error}`); continue; }
            out(`${r.target}: ${r.findings.length ? `NOT sealed, ${r.findings.length} identit${r.findings.length === 1 ? 'y' : 'ies'} a clone would inherit` : 'sealed (no identity a clone would inherit)'}`);
            for (const f of r.findings) out(`  ${f.item}: ${f.path}  (${f.operation ? `seal op ${f.operation}` : 'no seal op'}: ${f.reason})`);
          }
        }
        if (checked.some((r) => r.findings.length)) return ExitCode.duplicates;
        const failed = checked.filter((r) => r.error).length;
        return fleetExitCode({ ok: checked.length - failed, failed });
      }
      const ops = selectSealOperations(o.ops);
      const log = new Logger(g);
      const results = await sealTargets(targets, { ops, dryRun: !!o.dryRun, hostRead: o.hostRead });
      if (g.json) {
        out(JSON.stringify(results.map((r) => ({ ...r, changes: r.changes.map((c) => ({ op: c.change.op, action: c.action, path: c.change.path, operation: c.change.source, reason: c.change.reason ?? null })) })), null, 2));
      } else {
        for (const r of results) {
          out(`${r.target}: ${r.status === 'ok' ? `${r.changes.length} change(s)${o.dryRun ? ' would be made' : ''}` : `FAILED: ${r.error}`}`);
          for (const c of r.changes) out(`  ${c.action.padEnd(7)} ${c.change.path}  (${c.change.source}${c.change.reason ? ': ' + c.change.reason : ''})`);
        }
        log.info(`seal: ${ops.map((op) => op.name).join(', ')}`);
      }
      const failed = results.filter((r) => r.status !== 'ok').length;
      return fleetExitCode({ ok: results.length - failed, failed });
    }));
}
