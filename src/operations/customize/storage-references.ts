/**
 * storage.newUuids, file side: every reference to a filesystem UUID or GPT
 * partition GUID that the machine's device changes replace is rewritten in
 * the files the guest boots from (storage/references.ts REFERENCE_FILES).
 * The device changes themselves are planned from the same probe
 * (storagePlanOf) and applied by the run before these files are written.
 */
import type { Guest, GuestReader } from '../../core/backend.js';
import type { DeviceRenames } from '../../core/device-identity.js';
import { LVM_DEVICES_FILE, rewriteLuksUuids, rewritePvids } from '../../storage/luks-refs.js';
import { rewriteVgReferences, VG_REFERENCE_DIRS, VG_REFERENCE_FILES } from '../../storage/lvm-refs.js';
import { planNewUuids, NEW_UUIDS_SOURCE, type StoragePlan } from '../../storage/plan.js';
import { matchComponent, REFERENCE_FILES, rewriteReferences, type IdMap } from '../../storage/references.js';
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

/** The regular files that may name a volume group, a LUKS UUID or a PV (storage/lvm-refs.ts, luks-refs.ts). */
async function vgReferenceFiles(guest: GuestReader): Promise<string[]> {
  const files = [...VG_REFERENCE_FILES, LVM_DEVICES_FILE];
  for (const { dir, suffixes } of VG_REFERENCE_DIRS) {
    for (const name of (await guest.readdir(dir).catch(() => null)) ?? []) if (suffixes.some((x) => name.endsWith(x))) files.push(`${dir}/${name}`);
  }
  const out: string[] = [];
  for (const p of files) if ((await guest.lstat(p))?.type === 'file') out.push(p);
  return out;
}

/** `text` with the clone's renamed volume groups, new LUKS UUIDs and PV UUIDs (the backend's identity pass). */
function rewriteRenames(path: string, text: string, renames: DeviceRenames | undefined): string {
  if (!renames) return text;
  const next = rewriteLuksUuids(rewriteVgReferences(text, renames.vgs), renames.luksUuids);
  return path === LVM_DEVICES_FILE ? rewritePvids(next, renames.pvUuids) : next;
}

/**
 * One operation for every storage reference, so that each file is written
 * once with all of its rewrites: the volume groups, LUKS UUIDs and PV UUIDs
 * the backend renamed before inspection (storage.lvm, storage.luks), then
 * the filesystem UUIDs and partition GUIDs of storage.newUuids.
 */
export const storageReferencesOperation: Operation = {
  name: 'storage-references',
  kind: 'customize',
  description: 'point fstab, crypttab, GRUB, BLS entries, the kernel command line and initramfs configuration at the clone\'s new filesystem UUIDs, partition GUIDs, volume group names and LUKS UUIDs',
  defaultEnabled: true,
  order: 125,
  guests: ['linux'],
  async plan({ guest, profile, machine, renderOnly, warn }) {
    const renames = (guest as Partial<Guest>).deviceRenames;
    let ids: IdMap = new Map();
    if (profile.storage?.newUuids === true) {
      if (renderOnly) warn?.('storage.newUuids: without a target there are no devices to read; nothing planned for them');
      else {
        const plan = storagePlanOf(guest, machine.prepared.name);
        if (!plan) throw new GhostprepError(ROOTFS_REFUSAL);
        const { ids: found, skipped } = await plan;
        // a PV or LUKS header the profile renews through storage.lvm / storage.luks is not worth a warning
        const renewed = { 'storage.lvm': profile.storage.lvm?.newUuids === true, 'storage.luks': profile.storage.luks?.newUuid === true };
        for (const s of skipped) if (!(s.by && renewed[s.by])) warn?.(s.message);
        ids = found;
      }
    }
    for (const note of renames?.notes ?? []) warn?.(note);
    if (!ids.size && !renames) return [];
    const paths = new Set(ids.size ? (await Promise.all(REFERENCE_FILES.map((p) => expand(guest, p)))).flat() : []);
    if (renames) for (const p of await vgReferenceFiles(guest)) paths.add(p);
    const changes: Array<ReturnType<typeof write>> = [];
    for (const path of paths) {
      const st = await guest.lstat(path);
      const bytes = await guest.readFile(path);
      if (!st || bytes === null) continue;
      // latin1: every byte maps to one character and back, so bytes outside the references stay as they were
      const text = bytes.toString('latin1');
      const renamed = rewriteRenames(path, text, renames);
      const { text: out, count } = ids.size ? rewriteReferences(renamed, ids) : { text: renamed, count: 0 };
      if (out === text) continue;
      const reason = count ? `${count} reference(s) to a changed filesystem UUID or partition GUID` : 'references to a renamed volume group, LUKS UUID or PV';
      changes.push(write(NEW_UUIDS_SOURCE, path, Buffer.from(out, 'latin1'), st.mode & 0o7777, { uid: st.uid, gid: st.gid, reason }));
    }
    return changes;
  },
};
