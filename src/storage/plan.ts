/**
 * Which device changes `storage.newUuids` makes on one guest, from what the
 * device probe found: a new UUID for every filesystem and swap area ghostprep
 * can change (UUID_FS_TYPES), a new GUID for every GPT partition and GPT
 * disk. The map old -> new of every value that changes is what the
 * reference rewrite (references.ts) replaces in the guest's files.
 */
import { deriveUuid, deriveVfatSerial, sameId } from './uuids.js';
import { UUID_FS_TYPES, type BlockDisk, type DeviceChange, type UuidFsType } from './types.js';

export const NEW_UUIDS_SOURCE = 'storage.newUuids';

export interface StoragePlan {
  readonly changes: readonly DeviceChange[];
  /** old value (as found) -> new value, for every filesystem UUID and partition GUID that changes. */
  readonly ids: ReadonlyMap<string, string>;
  /** Volumes left as they are, and why (LVM, LUKS, a filesystem type without a settable UUID). */
  readonly skipped: readonly SkippedVolume[];
}

/** A volume storage.newUuids leaves alone; `by` names the setting that renews it instead, if any. */
export interface SkippedVolume {
  readonly device: string;
  readonly fstype: string;
  readonly message: string;
  readonly by?: 'storage.lvm' | 'storage.luks';
}

/** Volumes whose identity another storage setting renews: PVs (storage.lvm.newUuids), LUKS headers (storage.luks.newUuid). */
const RENEWED_BY: Readonly<Record<string, SkippedVolume['by']>> = { LVM2_member: 'storage.lvm', crypto_LUKS: 'storage.luks' };

/** A device's place on its disk, the same on every clone: "p2" for partition 2, "disk" for the whole disk. */
export function roleOf(disk: string, device: string): string {
  if (device === disk) return 'disk';
  const m = /(\d+)$/.exec(device.slice(disk.length));
  return m ? `p${m[1]}` : device;
}

export function planNewUuids(machine: string, disks: readonly BlockDisk[]): StoragePlan {
  const changes: DeviceChange[] = [];
  const ids = new Map<string, string>();
  const skipped: SkippedVolume[] = [];
  const multi = disks.length > 1;
  for (const [i, disk] of disks.entries()) {
    const prefix = multi ? `d${i}:` : '';
    if (disk.table === 'gpt' && disk.diskGuid) {
      const to = deriveUuid(machine, `${prefix}disk-guid`);
      if (!sameId(disk.diskGuid, to)) changes.push({ op: 'disk-guid', device: disk.device, from: disk.diskGuid, to, source: NEW_UUIDS_SOURCE });
    }
    for (const v of disk.volumes) {
      // an LV by its name: the VG's name may differ per clone (storage.lvm.vgName)
      const role = prefix + (v.lv !== undefined ? `lv:${v.lv}` : roleOf(disk.device, v.device));
      if (disk.table === 'gpt' && v.partGuid && v.partnum !== undefined) {
        const to = deriveUuid(machine, `part-guid ${role}`);
        if (!sameId(v.partGuid, to)) {
          changes.push({ op: 'part-guid', device: v.device, disk: disk.device, partnum: v.partnum, from: v.partGuid, to, source: NEW_UUIDS_SOURCE });
          ids.set(v.partGuid, to);
        }
      }
      if (!v.fstype) continue;
      if (!(UUID_FS_TYPES as readonly string[]).includes(v.fstype)) {
        const by = RENEWED_BY[v.fstype];
        const message = `${v.device} (${v.fstype}): its identity is not changed by storage.newUuids${by ? ` (${by} renews it)` : ''}`;
        skipped.push({ device: v.device, fstype: v.fstype, message, ...(by && { by }) });
        continue;
      }
      if (!v.uuid) { skipped.push({ device: v.device, fstype: v.fstype, message: `${v.device} (${v.fstype}): has no UUID` }); continue; }
      const fstype = v.fstype as UuidFsType;
      const to = fstype === 'vfat' ? deriveVfatSerial(machine, `fs ${role}`) : deriveUuid(machine, `fs ${role}`);
      if (sameId(v.uuid, to)) continue;
      changes.push({ op: 'fs-uuid', device: v.device, fstype, from: v.uuid, to, source: NEW_UUIDS_SOURCE, ...(v.label && { label: v.label }) });
      ids.set(v.uuid, to);
    }
  }
  return { changes, ids, skipped };
}
