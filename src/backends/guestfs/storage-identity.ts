/**
 * Block devices of a guest opened by the guestfs backend (storage/types.ts
 * BlockDevices): the probe of its disk (partition table, GPT GUIDs, blkid of
 * every partition) and the device changes, all in the appliance: no guest
 * filesystem is ever mounted on the host.
 *
 * Changes are made with every filesystem of the guest unmounted (xfs_admin,
 * btrfstune and tune2fs on a metadata_csum ext4 refuse a mounted filesystem),
 * through libguestfs: `set-uuid` (ext2/3/4: tune2fs -U; xfs: xfs_admin -U;
 * btrfs: btrfstune -U; swap: swaplabel, which keeps the label). A disk's
 * GPT GUIDs are changed together in the table's bytes (gpt-table.ts); a table
 * that is not whole is left to `part-set-gpt-guid` and `part-set-disk-guid`
 * (sgdisk, which repairs it). vfat's volume serial, which `set-uuid`
 * does not know, is written into the boot sector (and FAT32's backup boot
 * sector) with `upload-offset` from a host file. The guest is mounted again
 * as it was found afterwards.
 */
import { GuestError, errorMessage } from '../../util/errors.js';
import type { GuidEdit } from '../../storage/gpt.js';
import { reverseDeviceChange, type BlockDevices, type BlockDisk, type BlockVolume, type DeviceChange, type FsUuidChange } from '../../storage/types.js';
import { ApplianceLayout, mountGuest, partitionsOfDrive, type InspectedOs } from './os-inspect.js';
import { GuestfsError, type GuestfsSession } from './session.js';
import { ApplianceGpt, GptWriteError } from './gpt-table.js';
import { uploadBytes } from './device-bytes.js';

const isGptChange = (c: DeviceChange): boolean => c.op === 'part-guid' || c.op === 'disk-guid';

/** The change of a step that failed, why, and the changes of the step that may have been written before it failed. */
class StepError extends Error {
  constructor(readonly change: DeviceChange, override readonly cause: unknown, readonly written: readonly DeviceChange[]) {
    super(errorMessage(cause));
  }
}

/**
 * The changes as steps, in order: each filesystem UUID alone; every GPT GUID
 * of one disk together, at the place of the first (a table is read and
 * written once for all of them; they touch no byte the others do).
 */
export function deviceSteps(changes: readonly DeviceChange[]): DeviceChange[][] {
  const steps: DeviceChange[][] = [];
  const gptOf = new Map<string, DeviceChange[]>();
  for (const c of changes) {
    if (!isGptChange(c)) { steps.push([c]); continue; }
    const disk = c.op === 'part-guid' ? c.disk : c.device;
    const step = gptOf.get(disk);
    if (step) { step.push(c); continue; }
    const fresh = [c];
    gptOf.set(disk, fresh);
    steps.push(fresh);
  }
  return steps;
}

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
  ) {
    this.gpt = new ApplianceGpt(session);
  }

  private readonly gpt: ApplianceGpt;

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
      const gpt = await this.gpt.read(drive).catch(() => undefined);
      // a whole GPT behind a protective MBR is what parted calls gpt; anything else is parted's to name
      const table = gpt?.protectiveMbr ? 'gpt' : await this.session.text('part-get-parttype', [drive]).then((t) => t.trim(), () => '');
      const volumes: BlockVolume[] = [];
      for (const device of partitionsOfDrive(all, drive)) volumes.push(await this.volume(device));
      for (const lv of onLvs.get(drive) ?? []) volumes.push({ ...await this.volume(lv.device), lv: lv.name });
      const diskGuid = table === 'gpt' ? gpt?.header.diskGuid ?? await this.gpt.diskGuid(drive) : undefined;
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
      for (const step of deviceSteps(changes)) {
        try {
          await this.runStep(step);
        } catch (err) {
          // a GPT step may have written part of the table before failing: undo those changes too
          // (setting a GUID back to the value it still has changes nothing)
          if (err instanceof StepError) done.push(...err.written);
          const c = err instanceof StepError ? err.change : step[0]!;
          throw new GuestError(`${this.image}: ${c.op} of ${c.device} (${c.from} -> ${c.to}) failed: ${errorMessage(err instanceof StepError ? err.cause : err)}`, c.device, { cause: err });
        }
        done.push(...step);
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
    for (const step of deviceSteps([...done].reverse().map(reverseDeviceChange))) {
      try {
        await this.runStep(step);
      } catch (err) {
        for (const c of step) left.push(`${c.op} ${c.device}: ${errorMessage(err instanceof StepError ? err.cause : err)}`);
      }
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

  /** One step: a filesystem's UUID, or every GPT GUID of one disk at once. */
  private async runStep(step: readonly DeviceChange[]): Promise<void> {
    const first = step[0]!;
    if (!isGptChange(first)) return this.changeFsUuid(first as FsUuidChange);
    const disk = first.op === 'part-guid' ? first.disk : first.device;
    const edits = step.map((c): GuidEdit => (c.op === 'part-guid' ? { partition: c.partnum, guid: c.to } : { disk: c.to }));
    try {
      if (await this.gpt.edit(disk, edits)) return;
    } catch (err) {
      throw err instanceof GptWriteError ? new StepError(first, err, step) : err;
    }
    // not a well-formed table: sgdisk (through libguestfs) edits it and writes both copies again
    for (const [i, c] of step.entries()) {
      try {
        if (c.op === 'part-guid') await this.session.command('part-set-gpt-guid', [c.disk, c.partnum, c.to]);
        else await this.session.command('part-set-disk-guid', [c.device, c.to]);
      } catch (err) {
        throw new StepError(c, err, step.slice(0, i));
      }
    }
  }

  private async changeFsUuid(c: FsUuidChange): Promise<void> {
    if (c.fstype === 'vfat') return this.setVfatSerial(c);
    try {
      await this.session.command('set-uuid', [c.device, c.to]);
    } catch (err) {
      // tune2fs -U on a metadata_csum ext4 mounted since its last check wants a freshly checked filesystem
      if (!c.fstype.startsWith('ext') || !(err instanceof GuestfsError) || !this.session.alive) throw err;
      await this.session.command('e2fsck', [c.device, { opt: 'correct', value: true }]);
      await this.session.command('set-uuid', [c.device, c.to]);
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
    await uploadBytes(this.session, c.device, offsets.map((offset) => ({ offset, bytes })));
  }

  async read(c: DeviceChange): Promise<string> {
    switch (c.op) {
      case 'fs-uuid': return (await this.session.text('vfs-uuid', [c.device])).trim();
      case 'part-guid': return this.gpt.partitionGuid(c.disk, c.partnum);
      case 'disk-guid': return this.gpt.diskGuid(c.device);
    }
  }
}
