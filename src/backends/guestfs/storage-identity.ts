/**
 * Block devices of a guest opened by the guestfs backend (storage/types.ts
 * BlockDevices): the probe of its disk (partition table, GPT GUIDs, blkid of
 * every partition) and the device changes, all in the appliance: no guest
 * filesystem is ever mounted on the host.
 *
 * Changes are made with every filesystem of the guest unmounted (xfs_admin,
 * btrfstune and tune2fs on a metadata_csum ext4 refuse a mounted filesystem),
 * through libguestfs: `set-uuid` (ext2/3/4: tune2fs -U; xfs: xfs_admin -U;
 * btrfs: btrfstune -U; swap: swaplabel, which keeps the label),
 * `part-set-gpt-guid`, `part-set-disk-guid`; vfat's volume serial, which
 * `set-uuid` does not know, is written into the boot sector (and FAT32's
 * backup boot sector) with `upload-offset` from a host file. The guest is mounted again as it
 * was found afterwards.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GuestError, errorMessage } from '../../util/errors.js';
import { reverseDeviceChange, type BlockDevices, type BlockDisk, type BlockVolume, type DeviceChange, type FsUuidChange } from '../../storage/types.js';
import { ApplianceLayout, mountGuest, partitionsOfDrive, type InspectedOs } from './os-inspect.js';
import { GuestfsError, type GuestfsSession } from './session.js';

const DRIVE_OF = /^(\/dev\/(?:sd|vd|hd)[a-z]+)\d*$/;

/** The whole disks a guest's mounts live on, in order of first use (root first). */
export function drivesOf(os: InspectedOs): string[] {
  const out: string[] = [];
  for (const d of [os.root, ...os.mounts.map((m) => m.device)]) {
    const m = DRIVE_OF.exec(d);
    if (m && !out.includes(m[1]!)) out.push(m[1]!);
  }
  return out;
}

export class GuestfsBlockDevices implements BlockDevices {
  private probed: Promise<BlockDisk[]> | undefined;
  constructor(
    private readonly session: GuestfsSession,
    private readonly os: InspectedOs,
    private readonly image: string,
    /** The appliance's partitions and LVM layout, read once for every guest of the appliance. */
    private readonly layout = new ApplianceLayout(session),
  ) {}

  probe(): Promise<readonly BlockDisk[]> {
    this.probed ??= this.readDisks();
    return this.probed;
  }

  private async readDisks(): Promise<BlockDisk[]> {
    const onLvs = await this.logicalVolumes();
    const drives = drivesOf(this.os);
    for (const d of onLvs.keys()) if (!drives.includes(d)) drives.push(d);
    if (!drives.length) throw new GuestError(`${this.image}: the guest's root (${this.os.root}) is not on a plain partition or a logical volume (LUKS): its disk cannot be told, so its filesystem identities are left alone`, this.image);
    const all = await this.layout.allPartitions();
    const disks: BlockDisk[] = [];
    for (const drive of drives) {
      const table = await this.session.text('part-get-parttype', [drive]).then((t) => t.trim(), () => '');
      const volumes: BlockVolume[] = [];
      for (const device of partitionsOfDrive(all, drive)) volumes.push(await this.volume(device));
      for (const lv of onLvs.get(drive) ?? []) volumes.push({ ...await this.volume(lv.device), lv: lv.name });
      const diskGuid = table === 'gpt' ? (await this.session.text('part-get-disk-guid', [drive])).trim().toLowerCase() : undefined;
      disks.push({ device: drive, table, volumes, ...(diskGuid && { diskGuid }) });
    }
    return disks;
  }

  /**
   * The logical volumes the guest mounts (root and fstab), by the drive of
   * their VG's first PV: their file systems get new UUIDs like a partition's
   * (the PVs and VG themselves are storage.lvm's). Named by LV, which stays
   * the same on every clone and every apply (the VG may be renamed).
   */
  private async logicalVolumes(): Promise<Map<string, Array<{ device: string; name: string }>>> {
    const out = new Map<string, Array<{ device: string; name: string }>>();
    const devices = [this.os.root, ...this.os.mounts.map((m) => m.device)].filter((d) => !DRIVE_OF.test(d) && d.startsWith('/dev/'));
    if (!devices.length) return out;
    const lvs = new Set(await this.layout.logicalVolumeList().catch(() => [] as string[]));
    if (!lvs.size) return out;
    for (const d of devices) {
      // /dev/VG/LV as `lvs` lists it needs no lookup; /dev/mapper/VG-LV and the like do
      const lv = lvs.has(d) ? d : await this.session.text('lvm-canonical-lv-name', [d]).then((t) => t.trim(), () => '');
      const m = /^\/dev\/([^/]+)\/([^/]+)$/.exec(lv);
      if (!m || !lvs.has(lv)) continue;
      const drive = await this.driveOfVg(m[1]!);
      if (!drive) continue;
      const list = out.get(drive) ?? [];
      if (!list.some((x) => x.device === lv)) list.push({ device: lv, name: m[2]! });
      out.set(drive, list);
    }
    return out;
  }

  /** The whole disk of a volume group's first PV (in `pvs` order) that is on a disk. */
  private async driveOfVg(vg: string): Promise<string | undefined> {
    const inVg = new Set(await this.layout.vgPvUuids(vg));
    for (const [uuid, device] of await this.layout.pvDevicesByUuid()) {
      const drive = inVg.has(uuid) ? DRIVE_OF.exec(device)?.[1] : undefined;
      if (drive) return drive;
    }
    return undefined;
  }

  private async volume(device: string): Promise<BlockVolume> {
    let f: Record<string, string> = {};
    try {
      f = await this.session.fields('blkid', [device]);
    } catch (err) {
      if (!(err instanceof GuestfsError)) throw err; // an empty partition: no filesystem
    }
    const partnum = f.PART_ENTRY_NUMBER ? Number(f.PART_ENTRY_NUMBER) : undefined;
    return {
      device, fstype: f.TYPE ?? '', uuid: f.UUID ?? '', label: f.LABEL ?? '',
      ...(partnum !== undefined && { partnum }),
      ...(f.PART_ENTRY_SCHEME === 'gpt' && f.PART_ENTRY_UUID && { partGuid: f.PART_ENTRY_UUID }),
    };
  }

  async apply(changes: readonly DeviceChange[]): Promise<void> {
    if (!changes.length) return;
    await this.session.command('umount-all');
    const done: DeviceChange[] = [];
    try {
      for (const c of changes) {
        try {
          await this.change(c);
        } catch (err) {
          throw new GuestError(`${this.image}: ${c.op} of ${c.device} (${c.from} -> ${c.to}) failed: ${errorMessage(err)}`, c.device, { cause: err });
        }
        done.push(c);
      }
    } catch (err) {
      const left = await this.undo(done);
      await this.remount().catch(() => undefined);
      if (left.length) throw new GuestError(`${(err as Error).message}; undoing the changes already made failed too: ${left.join('; ')}`, this.image, { cause: err });
      throw err;
    }
    await this.remount();
  }

  /** Undo changes already made (reverse order); returns what could not be undone. */
  async undo(done: readonly DeviceChange[]): Promise<string[]> {
    const left: string[] = [];
    if (!done.length || !this.session.alive) return done.map((c) => `${c.op} ${c.device}`);
    await this.session.command('umount-all').catch(() => undefined);
    for (const c of [...done].reverse()) {
      try { await this.change(reverseDeviceChange(c)); } catch (err) { left.push(`${c.op} ${c.device}: ${errorMessage(err)}`); }
    }
    return left;
  }

  /** Undo changes already applied and mount the guest again (a machine rolled back after its device changes). */
  async rollback(done: readonly DeviceChange[]): Promise<string[]> {
    const left = await this.undo(done);
    await this.remount();
    return left;
  }

  private remount(): Promise<void> {
    return mountGuest(this.session, this.os, false, this.image);
  }

  private async change(c: DeviceChange): Promise<void> {
    switch (c.op) {
      case 'fs-uuid':
        if (c.fstype === 'vfat') return this.setVfatSerial(c);
        try {
          await this.session.command('set-uuid', [c.device, c.to]);
        } catch (err) {
          // tune2fs -U on a metadata_csum ext4 mounted since its last check wants a freshly checked filesystem
          if (!c.fstype.startsWith('ext') || !(err instanceof GuestfsError) || !this.session.alive) throw err;
          await this.session.command('e2fsck', [c.device, { opt: 'correct', value: true }]);
          await this.session.command('set-uuid', [c.device, c.to]);
        }
        return;
      case 'part-guid':
        await this.session.command('part-set-gpt-guid', [c.disk, c.partnum, c.to]);
        return;
      case 'disk-guid':
        await this.session.command('part-set-disk-guid', [c.device, c.to]);
        return;
    }
  }

  /** vfat's volume serial: 4 bytes, little-endian, at 0x27 (FAT12/16) or 0x43 (FAT32, also in the backup boot sector). */
  private async setVfatSerial(c: FsUuidChange): Promise<void> {
    const serial = /^([0-9a-f]{4})-([0-9a-f]{4})$/i.exec(c.to);
    if (!serial) throw new GuestError(`not a vfat volume serial: ${c.to}`, c.device);
    const boot = await this.session.command('pread-device', [c.device, 512, 0]);
    if (boot.length < 512 || boot[510] !== 0x55 || boot[511] !== 0xaa) throw new GuestError(`${c.device}: no FAT boot sector`, c.device);
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32LE(parseInt(serial[1]! + serial[2]!, 16));
    const fat32 = boot.readUInt16LE(22) === 0;
    const offsets = [fat32 ? 0x43 : 0x27];
    if (fat32) {
      const backup = boot.readUInt16LE(0x32);
      const sector = boot.readUInt16LE(0x0b);
      if (backup > 0 && backup !== 0xffff) offsets.push(backup * sector + 0x43);
    }
    // from a host file: the serial's bytes may be NUL, which no guestfish argument can carry
    const dir = await mkdtemp(path.join(tmpdir(), 'ghostprep-vfat-'));
    try {
      const file = path.join(dir, 'serial');
      await writeFile(file, bytes, { mode: 0o600 });
      for (const off of offsets) await this.session.command('upload-offset', [file, c.device, off]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async read(c: DeviceChange): Promise<string> {
    switch (c.op) {
      case 'fs-uuid': return (await this.session.text('vfs-uuid', [c.device])).trim();
      case 'part-guid': return (await this.session.text('part-get-gpt-guid', [c.disk, c.partnum])).trim();
      case 'disk-guid': return (await this.session.text('part-get-disk-guid', [c.device])).trim();
    }
  }
}
