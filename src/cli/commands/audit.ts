import type { Command } from 'commander';
import { auditTargets } from '../../fleet/audit.js';
import { parseTarget } from '../../fleet/targets.js';
import { expandTargetGlob } from '../../util/glob.js';
import { ExitCode, GhostprepError } from '../../util/errors.js';
import { collect, out, type GlobalOptions } from '../common.js';
import { positiveInt } from './fleet-options.js';
import { DEFAULT_DRIVES_PER_APPLIANCE } from '../../backends/guestfs/defaults.js';

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  program.command('audit')
    .description('find identities shared by two or more clones: machine-id, SSH host keys, host name, disk and filesystem UUIDs, LVM, LUKS, DHCP, NetworkManager, cloud-init, iSCSI')
    .requiredOption('-t, --target <TARGET>', "image, rootfs:DIR or a glob like 'clones/*.qcow2' (repeatable)", collect)
    .option('-j, --jobs <n>', 'appliances in parallel for images (default: one per core, ~2 GiB of RAM each)')
    .option('--drives-per-appliance <n>', `most images in one appliance (default ${DEFAULT_DRIVES_PER_APPLIANCE})`)
    .option('--no-host-read', 'read every image in an appliance, none host-side')
    .addHelpText('after', `
Exit 0 when every identity is unique, 5 when any is shared, 3 when some targets could not be read.
Disk headers (partition table, filesystem, LVM and LUKS identities) are read host-side, and so
are the files of guests on plain ext partitions and of Windows guests on NTFS partitions; the
other images are read many per appliance.

Examples:
  ghostprep audit --target 'rootfs:/srv/nodes/*'
  ghostprep audit --target 'clones/*.qcow2' --json`)
    .action((o: { target: string[]; jobs?: string; drivesPerAppliance?: string; hostRead: boolean }) => run(async (g) => {
      const visit = { jobs: positiveInt(o.jobs, '--jobs'), drivesPerAppliance: positiveInt(o.drivesPerAppliance, '--drives-per-appliance') };
      const targets = o.target.flatMap(expandTargetGlob).map((t) => parseTarget(t));
      if (!targets.length) throw new GhostprepError(`no target matched ${o.target.join(' ')}`);
      const { identities: found, errors, duplicates } = await auditTargets(targets, { ...visit, hostFiles: o.hostRead });
      if (g.json) {
        out(JSON.stringify({ targets: found.length, unique: duplicates.length === 0, duplicates, errors, identities: found }, null, 2));
      } else {
        for (const f of found) {
          const w = f.identity.windows;
          if (w) out(`${f.target}  ${w.computerName ?? '-'}  windows ${w.generalized ? 'generalized' : 'NOT generalized'}  host ${w.hostname ?? '-'}`);
          else out(`${f.target}  ${f.identity.hostname ?? '-'}  ${f.identity.machineId ?? '(no machine-id)'}  ${f.identity.sshHostKeys.map((k) => `${k.type}:${k.sha256.slice(7, 19)}`).join(' ')}`);
        }
        for (const e of errors) out(`${e.target}  ERROR: ${e.error}`);
        if (duplicates.length) {
          out(`\n${duplicates.length} shared identit${duplicates.length === 1 ? 'y' : 'ies'}:`);
          for (const d of duplicates) out(`  ${d.kind} ${d.value} shared by ${d.targets.length}: ${d.targets.join(', ')}`);
          const kinds = [...new Set(duplicates.map((d) => d.kind))];
          out(`audit: ${found.length} target(s); shared: ${kinds.join(', ')}`);
        } else out(`\naudit: ${found.length} target(s), every identity unique`);
      }
      if (duplicates.length) return ExitCode.duplicates;
      return errors.length ? ExitCode.partial : ExitCode.ok;
    }));
}
