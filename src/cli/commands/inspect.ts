import type { Command } from 'commander';
import { inspectGuest, type GuestIdentity } from '../../fleet/guest-identity.js';
import { planSeal, selectSealOperations } from '../../fleet/seal.js';
import { visitTargets } from '../../fleet/open.js';
import { readHostSideGuest } from '../../fleet/host-read.js';
import { parseTarget } from '../../fleet/targets.js';
import { expandTargetGlob } from '../../util/glob.js';
import { GhostprepError, errorMessage } from '../../util/errors.js';
import { collect, fleetExitCode, out, type GlobalOptions } from '../common.js';
import { positiveInt } from './fleet-options.js';
import { DEFAULT_DRIVES_PER_APPLIANCE } from '../../backends/guestfs/defaults.js';

export function register(program: Command, run: (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>): void {
  program.command('inspect')
    .description('read a target\'s identity: distro, hostname, machine-id, SSH host key fingerprints, network files')
    .requiredOption('-t, --target <TARGET>', 'image, rootfs:DIR or glob (repeatable)', collect)
    .option('-j, --jobs <n>', 'appliances in parallel for images (default: one per core, ~2 GiB of RAM each)')
    .option('--drives-per-appliance <n>', `most images in one appliance (default ${DEFAULT_DRIVES_PER_APPLIANCE})`)
    .option('--no-host-read', 'read every image in an appliance, none host-side')
    .addHelpText('after', `
Windows guests on NTFS partitions are read host-side, as audit reads them; the other images are
read many per appliance.

Examples:
  ghostprep inspect --target rootfs:/srv/nodes/node01
  ghostprep inspect --target clones/node01.qcow2 --json`)
    .action((o: { target: string[]; jobs?: string; drivesPerAppliance?: string; hostRead: boolean }) => run(async (g) => {
      const visit = { jobs: positiveInt(o.jobs, '--jobs'), drivesPerAppliance: positiveInt(o.drivesPerAppliance, '--drives-per-appliance') };
      const targets = o.target.flatMap(expandTargetGlob).map((t) => parseTarget(t));
      if (!targets.length) throw new GhostprepError('no target matched');
      const found: Array<{ target: string; identity?: GuestIdentity; seal?: SealState; error?: string }> = [];
      // Windows images host-side (no appliance); the rest, and any this cannot read exactly, in appliances
      const rest: typeof targets = [];
      for (const t of targets) {
        const identity = o.hostRead ? (await readHostSideGuest(t, inspectGuest, { linux: false, windows: true }))?.value : undefined;
        if (identity) found.push({ target: t.path, identity });
        else rest.push(t);
      }
      await visitTargets(rest, visit, async (t, guest) => {
        const name = t.kind === 'rootfs' ? `rootfs:${t.path}` : t.path;
        if (guest instanceof Error) { found.push({ target: name, error: guest.message }); return; }
        try {
          const identity = await inspectGuest(guest);
          if (identity.windows) { found.push({ target: name, identity }); return; } // seal operations are Linux's; Windows says "generalized"
          const left = await planSeal(guest, selectSealOperations(undefined));
          found.push({ target: name, identity, seal: { sealed: left.length === 0, identifying: left.map((c) => ({ path: c.change.path, operation: c.change.source, reason: c.change.reason ?? null })) } });
        } catch (err) { found.push({ target: name, error: errorMessage(err) }); }
      });
      if (g.json) out(JSON.stringify(found.length === 1 ? found[0] : found, null, 2));
      else for (const f of found) out(formatIdentity(f.target, f.identity, f.error) + formatSeal(f.seal));
      const failed = found.filter((f) => f.error).length;
      return fleetExitCode({ ok: found.length - failed, failed });
    }));
}

export function formatIdentity(target: string, id: GuestIdentity | undefined, error?: string): string {
  if (!id) return `${target}\n  error: ${error}\n`;
  const lines = [
    target,
    `  distro:      ${id.distro.name} (id ${id.distro.id}, version ${id.distro.versionId || '-'}, family ${id.distro.family})`,
    `  hostname:    ${id.hostname ?? '(none)'}`,
    `  machine-id:  ${id.machineId ?? `(${id.machineIdRaw === null ? 'missing' : id.machineIdRaw || 'empty'})`}`,
    `  dbus id:     ${id.dbusMachineId ?? '(none)'}`,
    ...id.sshHostKeys.map((k) => `  ssh ${k.type.padEnd(8)} ${k.sha256} ${k.comment}`),
    ...(id.sshHostKeys.length ? [] : ['  ssh:         (no host keys)']),
    `  network:     ${id.networkFiles.join(', ') || '(none)'}`,
    ...formatFileIdentities(id),
  ];
  if (id.windows) {
    const w = id.windows;
    lines.splice(2, lines.length - 2,
      `  system root: ${w.systemRoot}`,
      `  computer:    ${w.computerName ?? '(none)'} (DNS host name ${w.hostname ?? '(none)'})`,
      `  generalized: ${w.generalized ? 'yes' : 'NO: cloning it as is is unsupported by Microsoft (duplicate SIDs)'} (image state ${w.imageState ?? 'unknown'})`);
  }
  return lines.join('\n') + '\n';
}

/** DHCP identity as the guest will send it, and the other file-level identities audit compares. */
function formatFileIdentities(id: GuestIdentity): string[] {
  const f = id.files;
  if (!f) return [];
  const d = f.dhcp;
  const lines = [
    `  dhcp duid:   ${d.systemd ? `${d.systemd.duid ?? '(per interface, from its MAC)'} (systemd-networkd, ${d.systemd.source})` : '(none: no machine-id to derive it from)'}`,
    `  dhcp v4 id:  ${d.systemd?.duid ? `ff:<IAID of the interface>:${d.systemd.duid}` : '-'}`,
    ...d.clientIds.map((c) => `    ${c.interface}: ${c.clientId}`),
    ...d.leaseDuids.map((l) => `  dhcp duid:   ${l.duid} (${l.path})`),
  ];
  if (d.nmSecretKey) lines.push(`  nm secret:   ${d.nmSecretKey} (/var/lib/NetworkManager/secret_key: seeds NetworkManager's DUIDs; a clone should have its own)`);
  if (d.leaseFiles.length) lines.push(`  dhcp files:  ${d.leaseFiles.join(', ')} (a clone should have none)`);
  for (const c of f.nmConnections) lines.push(`  connection:  ${c.uuid} (${c.path})`);
  if (f.iscsiInitiatorName) lines.push(`  iscsi:       ${f.iscsiInitiatorName}`);
  for (const c of f.cloudInitInstanceIds) lines.push(`  cloud-init:  instance-id ${c.id} (${c.path})`);
  return lines;
}

export interface SealState { sealed: boolean; identifying: Array<{ path: string; operation: string; reason: string | null }> }

function formatSeal(s: SealState | undefined): string {
  if (!s) return '';
  if (s.sealed) return '  sealed:      yes (nothing identifies the master)\n';
  const shown = s.identifying.slice(0, 12).map((i) => `    ${i.path} (${i.operation})`);
  const more = s.identifying.length > 12 ? [`    … and ${s.identifying.length - 12} more (--json lists all)`] : [];
  return ['  sealed:      no; still identifying:', ...shown, ...more].join('\n') + '\n';
}
