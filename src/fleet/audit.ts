/**
 * audit: every identity of many clones, then the values two or more share.
 *
 * Every image is first read host-side: its disk headers (partition table
 * GUIDs, filesystem UUIDs, LVM, LUKS), then, when its root and the mounts
 * under /etc, /usr and /var are ext filesystems on partitions, its files too
 * (host-guest.ts), and so are those of a Windows guest whose system volume is
 * NTFS on a partition (ntfs.ts). Only the images that cannot be read that way
 * (LVM, LUKS, xfs, btrfs roots, other formats) go to appliances, many per
 * appliance; rootfs targets are read in place.
 */
import type { TargetSpec } from '../core/backend.js';
import { imageReader, readDiskIdentity, type DiskIdentity } from '../audit/headers.js';
import { findDuplicates, type Duplicate } from '../audit/duplicates.js';
import { errorMessage } from '../util/errors.js';
import { inspectGuest, type GuestIdentity } from './guest-identity.js';
import { onHostSideGuest } from './host-read.js';
import { visitTargets, type VisitOptions } from './open.js';

export interface AuditResult {
  readonly identities: Array<{ target: string; identity: GuestIdentity }>;
  readonly errors: Array<{ target: string; error: string }>;
  readonly duplicates: Duplicate[];
}

export const targetName = (t: TargetSpec): string => (t.kind === 'rootfs' ? `rootfs:${t.path}` : t.path);

interface HostRead { disk?: DiskIdentity; identity?: GuestIdentity; error?: Error }

/**
 * Header identities of the image and device targets, and the files of those
 * whose guest opens host-side, a few images at a time. A failure is kept per target.
 */
export async function readHostSide(targets: readonly TargetSpec[], files: boolean, parallel = 4): Promise<Map<string, HostRead>> {
  const out = new Map<string, HostRead>();
  const queue = targets.filter((t) => t.kind !== 'rootfs');
  const worker = async () => {
    for (let t = queue.shift(); t; t = queue.shift()) {
      const r = imageReader(t.path, t.format ?? 'raw');
      const res: HostRead = {};
      try {
        res.disk = await readDiskIdentity(r.read);
        if (files) res.identity = (await onHostSideGuest(r.read, res.disk, inspectGuest, { windows: true }))?.value;
      } catch (err) {
        res.error = err instanceof Error ? err : new Error(errorMessage(err));
      } finally {
        await r.close().catch(() => undefined);
      }
      out.set(targetName(t), res);
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return out;
}

export interface AuditOptions extends VisitOptions {
  /** Read guest files host-side where possible (default true); false sends every image to an appliance. */
  readonly hostFiles?: boolean;
}

export async function auditTargets(targets: readonly TargetSpec[], options: AuditOptions): Promise<AuditResult> {
  const identities: AuditResult['identities'] = [];
  const errors: AuditResult['errors'] = [];
  const host = await readHostSide(targets, options.hostFiles ?? true);
  const rest = targets.filter((t) => !host.get(targetName(t))?.identity);
  for (const t of targets) {
    const h = host.get(targetName(t));
    if (h?.identity) identities.push({ target: targetName(t), identity: h.identity });
  }
  await visitTargets(rest, options, async (t, guest) => {
    const name = targetName(t);
    if (guest instanceof Error) { errors.push({ target: name, error: guest.message }); return; }
    try { identities.push({ target: name, identity: await inspectGuest(guest) }); } catch (err) { errors.push({ target: name, error: errorMessage(err) }); }
  });
  for (const f of identities) {
    const h = host.get(f.target);
    if (h?.error) errors.push({ target: f.target, error: `disk headers: ${h.error.message}` });
    else if (h?.disk) f.identity.disk = h.disk;
  }
  identities.sort((a, b) => a.target.localeCompare(b.target));
  errors.sort((a, b) => a.target.localeCompare(b.target));
  return { identities, errors, duplicates: findDuplicates(identities) };
}
