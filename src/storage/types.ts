/**
 * Device changes: changes a plan makes to block devices rather than to files
 * (a filesystem's UUID, a GPT partition's GUID, and for other modules a
 * volume group's or a LUKS header's identity). Like FileChange they are pure
 * data: planning reads the devices and writes nothing; applying them is done
 * by the backend that owns the devices (src/backends/guestfs/storage-identity.ts),
 * in the appliance, with every filesystem of the guest unmounted, before the
 * machine's file changes are committed.
 *
 * A new kind of device change adds a member to DeviceChange (its `op` is its
 * name in the plan text and in `--json`) and a case to the backend's
 * `applyDeviceChange`/`readDeviceValue`; describeDeviceChange below prints
 * any of them. Every change has a `from` and a `to`: rolling a machine back
 * is applying the changes made so far again with the two swapped.
 */

/** Fields every device change has. */
export interface DeviceChangeBase {
  /** Kind of change: its name in the plan ("fs-uuid", "part-guid"…). */
  readonly op: string;
  /** Appliance device the change applies to (/dev/sda2; /dev/sda for a disk GUID; /dev/VG/LV). */
  readonly device: string;
  /** Value before (as read when planning). */
  readonly from: string;
  /** Value after. */
  readonly to: string;
  /** Feature that asked for it ("storage.newUuids"). */
  readonly source: string;
}

/** Filesystem types whose UUID (vfat: volume serial) ghostprep can change. */
export type UuidFsType = 'ext2' | 'ext3' | 'ext4' | 'xfs' | 'btrfs' | 'swap' | 'vfat';

export const UUID_FS_TYPES: readonly UuidFsType[] = ['ext2', 'ext3', 'ext4', 'xfs', 'btrfs', 'swap', 'vfat'];

/** A filesystem's (or swap area's) UUID; vfat's volume serial is written XXXX-XXXX. */
export interface FsUuidChange extends DeviceChangeBase {
  readonly op: 'fs-uuid';
  readonly fstype: UuidFsType;
  /** The filesystem's label, kept as it is (swap, vfat). */
  readonly label?: string;
}

/** The unique GUID of one GPT partition (what PARTUUID= names). */
export interface PartGuidChange extends DeviceChangeBase {
  readonly op: 'part-guid';
  /** The whole disk holding the partition (/dev/sda). */
  readonly disk: string;
  readonly partnum: number;
}

/** The GUID of a GPT disk (its header's disk identifier). */
export interface DiskGuidChange extends DeviceChangeBase {
  readonly op: 'disk-guid';
}

/**
 * Every kind of device change. Other storage features (LVM, LUKS) add their
 * members here, each extending DeviceChangeBase.
 */
export type DeviceChange = FsUuidChange | PartGuidChange | DiskGuidChange;

/**
 * One filesystem, swap area or partition of a guest's disk as a device probe
 * sees it (blkid and the partition table), read once per machine when planning.
 */
export interface BlockVolume {
  /** Appliance device (/dev/sda2). */
  readonly device: string;
  /** blkid TYPE (ext4, xfs, swap, vfat, crypto_LUKS, LVM2_member…); '' when none. */
  readonly fstype: string;
  /** Filesystem UUID as blkid prints it; '' when none. */
  readonly uuid: string;
  readonly label: string;
  /** Partition number on its disk, when the device is a partition. */
  readonly partnum?: number;
  /** GPT partition GUID (PARTUUID), when the disk is GPT. */
  readonly partGuid?: string;
  /** The LV's name, when the device is a logical volume (listed on the disk of its VG's first PV). */
  readonly lv?: string;
}

/** One disk of a guest: its partition table and the volumes on it. */
export interface BlockDisk {
  readonly device: string;
  /** 'gpt', 'msdos' or '' (no partition table: a filesystem on the whole disk). */
  readonly table: string;
  /** GPT disk GUID, when `table` is gpt. */
  readonly diskGuid?: string;
  /** MBR disk signature (8 hex digits), when `table` is msdos: what PARTUUID=SSSSSSSS-NN names. */
  readonly mbrSignature?: string;
  readonly volumes: readonly BlockVolume[];
}

/**
 * What a backend offers for device changes on one opened guest. Only the
 * guestfs backend has block devices; a rootfs tree has none, so a profile
 * that asks for device changes is refused there.
 */
export interface BlockDevices {
  /** The guest's disk(s) as found when the machine was opened (cached: read once). */
  probe(): Promise<readonly BlockDisk[]>;
  /**
   * Apply `changes` in order with every filesystem of the guest unmounted, then
   * mount the guest again as it was. On a failure the changes already made are
   * undone (in reverse order, best effort) before the error is thrown.
   */
  apply(changes: readonly DeviceChange[]): Promise<void>;
  /** The current value of what `change` changes, read from the device (verify). */
  read(change: DeviceChange): Promise<string>;
}

/** A guest that has block devices (the guestfs backend's guests). */
export function blockDevicesOf(guest: unknown): BlockDevices | undefined {
  const b = (guest as { blockDevices?: unknown } | null)?.blockDevices;
  return b && typeof (b as BlockDevices).probe === 'function' ? (b as BlockDevices) : undefined;
}

/** One line of the plan text for a device change. */
export function describeDeviceChange(c: DeviceChange): string {
  const what = c.op === 'fs-uuid' ? `${c.fstype} UUID` : c.op === 'part-guid' ? `GPT partition ${c.partnum} GUID` : c.op === 'disk-guid' ? 'GPT disk GUID' : (c as DeviceChangeBase).op;
  return `device ${c.device}: ${what} ${c.from} -> ${c.to}`;
}

/** The same change undone (rollback). */
export function reverseDeviceChange<T extends DeviceChange>(c: T): T {
  return { ...c, from: c.to, to: c.from };
}
