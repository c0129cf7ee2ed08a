/**
 * storage.newUuids, file side: every reference to a filesystem UUID or GPT
 * partition GUID that the machine's device changes replace is rewritten in
 * the files the guest boots from (storage/references.ts REFERENCE_FILES).
 * The device changes themselves are planned from the same probe
 * (storagePlanOf) and applied by the run before these files are written.
 */
import type { GuestReader } from '../../core/backend.js';
import { planNewUuids, NEW_UUIDS_SOURCE, type StoragePlan } from '../../storage/plan.js';
import { matchComponent, REFERENCE_FILES, rewriteReferences } from '../../storage/references.js';
import { blockDevicesOf, type BlockDevices } from '../../storage/types.js';
import { GhostprepError } from '../../util/errors.js';
import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { write } from '../util.js';

const plans = new WeakMap<BlockDevices, Promise<StoragePlan>>();

/**
 * The device changes storage.newUuids makes on `guest` for `machine`, probed
 * once per opened guest (the operation and the run's device stage share it).
 * Undefined when the guest has no block devices (a rootfs tree, render only).
 */
export function storagePlanOf(guest: unknown, machine: string): Promise<StoragePlan> | undefined {
  const devices = blockDevicesOf(guest);
  if (!devices) return undefined;
  let p = plans.get(devices);
  if (!p) plans.set(devices, (p = devices.probe().then((disks) => planNewUuids(machine, disks))));
  return p;
}

export const ROOTFS_REFUSAL = 'storage.newUuids needs a disk image or device target: a rootfs tree has no block devices whose identity ghostprep could change (set storage.newUuids: false for rootfs targets)';

/** Existing regular files matching one REFERENCE_FILES pattern (a `*` in the last component only). */
async function expand(guest: GuestReader, pattern: string): Promise<string[]> {
  const parts = pattern.split('/');
  let dirs = [''];
  for (const part of parts.slice(1)) {
    const next: string[] = [];
    for (const d of dirs) {
      if (!part.includes('*')) { next.push(`${d}/${part}`); continue; }
      for (const name of (await guest.readdir(d || '/')) ?? []) if (matchComponent(part, name)) next.push(`${d}/${name}`);
    }
    dirs = next;
  }
  const out: string[] = [];
  for (const p of dirs) if ((await guest.lstat(p))?.type === 'file') out.push(p);
  return out;
}

export const storageReferencesOperation: Operation = {
  name: 'storage-references',
  kind: 'customize',
  description: 'storage.newUuids: rewrite references to the new filesystem UUIDs and partition GUIDs (fstab, crypttab, GRUB, BLS, kernel command line, resume)',
  defaultEnabled: true,
  order: 125,
  guests: ['linux'],
  async plan({ guest, profile, machine, renderOnly, warn }) {
    if (profile.storage?.newUuids !== true) return [];
    if (renderOnly) { warn?.('storage.newUuids: without a target there are no devices to read; nothing planned for them'); return []; }
    const plan = storagePlanOf(guest, machine.prepared.name);
    if (!plan) throw new GhostprepError(ROOTFS_REFUSAL);
    const { ids, skipped } = await plan;
    for (const s of skipped) warn?.(s);
    if (!ids.size) return [];
    const changes: Array<ReturnType<typeof write>> = [];
    for (const pattern of REFERENCE_FILES) {
      for (const path of await expand(guest, pattern)) {
        const st = await guest.lstat(path);
        const text = (await guest.readFile(path))?.toString('utf8');
        if (!st || text === undefined) continue;
        const { text: out, count } = rewriteReferences(text, ids);
        if (count) changes.push(write(NEW_UUIDS_SOURCE, path, out, st.mode & 0o7777, { uid: st.uid, gid: st.gid, reason: `${count} reference(s) to a changed filesystem UUID or partition GUID` }));
      }
    }
    return changes;
  },
};
