/**
 * audit: every identity of many clones, then the values two or more share.
 *
 * Disk headers (partition table GUIDs, filesystem UUIDs, LVM, LUKS) are read
 * host-side, a few reads per image, while the appliances start; the file-level
 * identities (machine-id, host keys, DHCP, NetworkManager, cloud-init, iSCSI…)
 * come from the guest filesystems, many images per appliance.
 */
import type { TargetSpec } from '../backends/backend.js';
import { probeDiskIdentity, type DiskIdentity } from '../audit/headers.js';
import { findDuplicates, type Duplicate } from '../audit/duplicates.js';
import { errorMessage } from '../util/errors.js';
import { inspectGuest, type GuestIdentity } from './inspect.js';
import { visitTargets, type VisitOptions } from './open.js';

export interface AuditResult {
  readonly identities: Array<{ target: string; identity: GuestIdentity }>;
  readonly errors: Array<{ target: string; error: string }>;
  readonly duplicates: Duplicate[];
}

export const targetName = (t: TargetSpec): string => (t.kind === 'rootfs' ? `rootfs:${t.path}` : t.path);

/** Header identities of the image and device targets, a few at a time; a failure is kept per target. */
export async function probeHeaders(targets: readonly TargetSpec[], parallel = 4): Promise<Map<string, DiskIdentity | Error>> {
  const out = new Map<string, DiskIdentity | Error>();
  const queue = targets.filter((t) => t.kind !== 'rootfs');
  const worker = async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      try { out.set(targetName(t), await probeDiskIdentity(t.path, t.format ?? 'raw')); } catch (err) { out.set(targetName(t), err instanceof Error ? err : new Error(errorMessage(err))); }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return out;
}

export async function auditTargets(targets: readonly TargetSpec[], visit: VisitOptions): Promise<AuditResult> {
  const identities: AuditResult['identities'] = [];
  const errors: AuditResult['errors'] = [];
  const headers = probeHeaders(targets);
  await visitTargets(targets, visit, async (t, guest) => {
    const name = targetName(t);
    if (guest instanceof Error) { errors.push({ target: name, error: guest.message }); return; }
    try { identities.push({ target: name, identity: await inspectGuest(guest) }); } catch (err) { errors.push({ target: name, error: errorMessage(err) }); }
  });
  const disks = await headers;
  for (const f of identities) {
    const d = disks.get(f.target);
    if (d instanceof Error) errors.push({ target: f.target, error: `disk headers: ${d.message}` });
    else if (d) f.identity.disk = d;
  }
  identities.sort((a, b) => a.target.localeCompare(b.target));
  errors.sort((a, b) => a.target.localeCompare(b.target));
  return { identities, errors, duplicates: findDuplicates(identities) };
}
