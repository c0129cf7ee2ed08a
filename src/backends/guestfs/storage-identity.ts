/**
 * Block devices of a guest opened by the guestfs backend (storage/types.ts
 * BlockDevices): the probe of its disk (partition table, GPT GUIDs, blkid of
 * every partition) and the device changes, all in the appliance: no guest
 * filesystem is ever mounted on the host.
 *
 * Changes are made with every filesystem of the guest unmounted (xfs_admin,
 * btrfstune and tune2fs on a metadata_csum ext4 refuse a mounted filesystem),
 * through libguestfs: `set-uuid` (ext2/3/4: tune2fs -U; xfs: xfs_admin -U;
 * btrfs: btrfstune -U; swap: swaplabel, which keeps the label). GPT GUIDs
 * are edited in the table's bytes (storage/gpt.ts: both copies, CRCs
 * recomputed), read with `pread-device` and written with `upload-offset`:
 * a handful of calls where `part-set-gpt-guid` and `part-set-disk-guid` run
 * sgdisk and wait for udev (1-2 s each in an appliance under TCG); a table
 * that is not well-formed (a damaged or missing backup) is left to those
 * calls, whose sgdisk repairs it. vfat's volume serial, which `set-uuid`
 * does not know, is written into the boot sector (and FAT32's backup boot
 * sector) with `upload-offset` from a host file. The guest is mounted again
 * as it was found afterwards.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GuestError, errorMessage } from '../../util/errors.js';
import { checkTable, editCopy, entriesLength, parseGptHeader, partitionGuids, type GptCopy, type GptHeader, type GuidEdit } from '../../storage/gpt.js';
import { reverseDeviceChange, type BlockDevices, type BlockDisk, type BlockVolume, type DeviceChange, type FsUuidChange } from '../../storage/types.js';
import { ApplianceLayout, mountGuest, partitionsOfDrive, type InspectedOs } from './os-inspect.js';
import { GuestfsError, type GuestfsSession } from './session.js';

/** Both copies of a well-formed GPT as read from a drive. */
interface GptTable {
  readonly sectorSize: number;
  readonly header: GptHeader;
  readonly primary: GptCopy;
  readonly backup: GptCopy;
  /** The MBR has the protective (0xEE) entry without which Linux and parted do not take the GPT. */
  readonly protectiveMbr: boolean;
}

const hasProtectiveEntry = (mbr: Buffer): boolean => mbr.readUInt16LE(510) === 0xaa55 && [0, 1, 2, 3].some((i) => mbr[446 + 16 * i + 4] === 0xee);

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

/** Writes that follow each other on the device, merged into one. */
function contiguous(writes: ReadonlyArray<{ offset: number; bytes: Buffer }>): Array<{ offset: number; bytes: Buffer }> {
  const sorted = [...writes].sort((a, b) => a.offset - b.offset);
  const out: Array<{ offset: number; bytes: Buffer }> = [];
  for (const w of sorted) {
    const last = out.at(-1);
    if (last && last.offset + last.bytes.length === w.offset) out[out.length - 1] = { offset: last.offset, bytes: Buffer.concat([last.bytes, w.bytes]) };
    else out.push(w);
  }
  return out;
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
      const gpt = await this.readGpt(drive).catch(() => undefined);
      // a whole GPT behind a protective MBR is what parted calls gpt; anything else is parted's to name
      const table = gpt?.protectiveMbr ? 'gpt' : await this.session.text('part-get-parttype', [drive]).then((t) => t.trim(), () => '');
      const volumes: BlockVolume[] = [];
      for (const device of partitionsOfDrive(all, drive)) volumes.push(await this.volume(device));
      for (const lv of onLvs.get(drive) ?? []) volumes.push({ ...await this.volume(lv.device), lv: lv.name });
      const diskGuid = table === 'gpt' ? gpt?.header.diskGuid ?? await this.diskGuid(drive) : undefined;
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
    if (await this.editGpt(disk, edits, step)) return;
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

  /**
   * Both copies of `drive`'s GPT with their sector size, or undefined when
   * the table is not well-formed (then sgdisk, through libguestfs, handles it).
   * Two reads where the layout is the usual one (each copy's entries next to
   * its header), one more per copy otherwise.
   */
  private async readGpt(drive: string): Promise<GptTable | undefined> {
    const sectorSize = await this.sectorSize(drive);
    const read = async (sector: bigint, length: number): Promise<Buffer> => this.session.command('pread-device', [drive, length, Number(sector) * sectorSize]);
    const usual = 16384; // 128 entries of 128 bytes
    const copyOf = async (headerLba: bigint, bytes: Buffer, headerAt: number, entriesFrom: bigint): Promise<GptCopy | undefined> => {
      const header = bytes.subarray(headerAt, headerAt + sectorSize);
      const h = parseGptHeader(header);
      if (!h.ok || h.value.currentLba !== headerLba) return undefined;
      const length = entriesLength(h.value);
      const at = Number(h.value.entriesLba - entriesFrom) * sectorSize;
      const entries = h.value.entriesLba >= entriesFrom && at >= 0 && at + length <= bytes.length && !(at < headerAt + sectorSize && at + length > headerAt)
        ? bytes.subarray(at, at + length)
        : await read(h.value.entriesLba, length);
      return { header, entries };
    };
    // the MBR, the primary header (LBA 1) and the sectors after it
    const head = await read(0n, 2 * sectorSize + usual);
    const primary = await copyOf(1n, head.subarray(sectorSize), 0, 1n);
    const p = primary && parseGptHeader(primary.header);
    if (!primary || !p?.ok) return undefined;
    // backup: its header (at the primary's backup LBA) and the sectors before it
    const before = BigInt(Math.ceil(entriesLength(p.value) / sectorSize));
    const from = p.value.backupLba > before ? p.value.backupLba - before : p.value.backupLba;
    const tail = await read(from, Number(p.value.backupLba - from + 1n) * sectorSize);
    const backup = await copyOf(p.value.backupLba, tail, Number(p.value.backupLba - from) * sectorSize, from);
    const table = backup ? checkTable(primary, backup) : undefined;
    return table?.ok ? { sectorSize, header: table.value, primary, backup: backup!, protectiveMbr: hasProtectiveEntry(head) } : undefined;
  }

  private readonly sectorSizes = new Map<string, Promise<number>>();

  /** The drive's logical sector size (blockdev-getss runs a program: asked once per drive). */
  private sectorSize(drive: string): Promise<number> {
    let p = this.sectorSizes.get(drive);
    if (!p) {
      p = this.session.text('blockdev-getss', [drive]).then((t) => Number(t.trim()));
      p.catch(() => this.sectorSizes.delete(drive));
      this.sectorSizes.set(drive, p);
    }
    return p;
  }

  /**
   * The new GUIDs written into both copies of the table, one write per copy
   * (primary first, entries and header together: one copy is whole at any
   * time); false if the table is left to sgdisk.
   */
  private async editGpt(drive: string, edits: readonly GuidEdit[], step: readonly DeviceChange[]): Promise<boolean> {
    const gpt = await this.readGpt(drive);
    if (!gpt) return false;
    const writes: Array<{ offset: number; bytes: Buffer }> = [];
    for (const copy of [gpt.primary, gpt.backup]) {
      const next = edits.reduce(editCopy, copy);
      const h = parseGptHeader(next.header);
      if (!h.ok) throw new GuestError(`${drive}: GPT: ${h.reason}`, drive);
      writes.push(...contiguous([
        { offset: Number(h.value.entriesLba) * gpt.sectorSize, bytes: next.entries },
        { offset: Number(h.value.currentLba) * gpt.sectorSize, bytes: next.header },
      ]));
    }
    try {
      await this.upload(drive, writes);
    } catch (err) {
      throw new StepError(step[0]!, err, step);
    }
    await this.settlePartitions(drive);
    return true;
  }

  /**
   * After a write to a whole disk, the partitions vanish and come back: udev
   * watches block devices and has the kernel re-read the table when one is
   * closed after a write. Re-read it here (every blockdev call first waits
   * for udev's queue to empty) and wait for the events of that re-read, so
   * that the next command finds every partition. A disk with a partition in
   * use (an active PV) is not re-read by anyone: its partitions stay.
   */
  private async settlePartitions(drive: string): Promise<void> {
    await this.session.command('blockdev-rereadpt', [drive]).catch((err: unknown) => {
      if (!(err instanceof GuestfsError) || !this.session.alive) throw err;
    });
    await this.session.command('blockdev-getss', [drive]);
  }

  private async diskGuid(drive: string): Promise<string> {
    const gpt = await this.readGpt(drive);
    if (gpt) return gpt.header.diskGuid;
    return (await this.session.text('part-get-disk-guid', [drive])).trim().toLowerCase();
  }

  /**
   * Bytes written to `device` at each offset, in order, through `upload-offset` of a host
   * file that only this process can read (bytes may be NUL, which no guestfish argument carries).
   */
  private async upload(device: string, writes: ReadonlyArray<{ offset: number; bytes: Buffer }>): Promise<void> {
    const dir = await mkdtemp(path.join(tmpdir(), 'ghostprep-bytes-'));
    try {
      for (const [i, w] of writes.entries()) {
        const file = path.join(dir, String(i));
        await writeFile(file, w.bytes, { mode: 0o600 });
        await this.session.command('upload-offset', [file, device, w.offset]);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
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
    await this.upload(c.device, offsets.map((offset) => ({ offset, bytes })));
  }

  async read(c: DeviceChange): Promise<string> {
    switch (c.op) {
      case 'fs-uuid': return (await this.session.text('vfs-uuid', [c.device])).trim();
      case 'part-guid': {
        const gpt = await this.readGpt(c.disk);
        if (gpt) return partitionGuids(gpt.header, gpt.primary.entries).find((p) => p.partition === c.partnum)?.guid ?? '';
        return (await this.session.text('part-get-gpt-guid', [c.disk, c.partnum])).trim();
      }
      case 'disk-guid': return this.diskGuid(c.device);
    }
  }
}
