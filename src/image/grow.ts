/**
 * Grow the last partition of a drive and the filesystem in it to fill a
 * disk that was made bigger (qemu-img resize), inside a running appliance:
 * ext2/3/4 (e2fsck -f, resize2fs), xfs (mounted, xfs_growfs) and LVM
 * (pvresize, the root LV takes the free space, then its filesystem).
 * growDrives grows many images in one appliance (deploy --size: one launch
 * per batch instead of one per clone).
 */
import fs from 'node:fs/promises';
import { errorMessage, GuestError } from '../util/errors.js';
import { ApplianceLayout, openDrive } from '../backends/guestfs/os-inspect.js';
import { scheduleBatches } from '../backends/guestfs/backend.js';
import { conflictKeys, probeLvm } from '../backends/guestfs/lvm-probe.js';
import { activateLvm } from '../backends/guestfs/luks.js';
import { driveDevice, GuestfsSession, type SessionOptions } from '../backends/guestfs/session.js';

export interface GrowResult {
  readonly partition: string;
  readonly filesystem: string;
  /** The device whose filesystem was grown (the partition, or the root LV). */
  readonly grown: string;
}

interface PartEntry {
  readonly num: number;
  readonly start: number;
}

async function partitions(session: GuestfsSession, dev: string): Promise<PartEntry[]> {
  const out: PartEntry[] = [];
  let cur: Partial<{ num: number; start: number }> = {};
  for (const line of await session.lines('part-list', [dev])) {
    const m = /^\s*(part_num|part_start): (\d+)/.exec(line);
    if (m) cur = { ...cur, [m[1] === 'part_num' ? 'num' : 'start']: Number(m[2]) };
    if (/^\}/.test(line.trim()) && cur.num !== undefined && cur.start !== undefined) {
      out.push({ num: cur.num, start: cur.start });
      cur = {};
    }
  }
  return out;
}

/**
 * GPT: the header's "last usable LBA" (sgdisk -e aligns it, so it is not
 * simply size - 34); msdos: the last sector of the disk.
 */
async function lastUsableSector(session: GuestfsSession, dev: string, table: string): Promise<number> {
  if (table !== 'gpt') return Number(await session.text('blockdev-getsz', [dev])) - 1;
  const header = await session.command('pread-device', [dev, 512, 512]);
  if (header.toString('latin1', 0, 8) !== 'EFI PART') throw new GuestError(`${dev}: GPT header not found after expanding it`);
  return Number(header.readBigUInt64LE(48));
}

/** Grow the filesystem on `device` to the size of the device. */
export async function growFilesystem(session: GuestfsSession, device: string, fsType: string): Promise<void> {
  if (/^ext[234]$/.test(fsType)) {
    await session.command('e2fsck-f', [device]); // resize2fs refuses an unchecked filesystem
    await session.command('resize2fs', [device]);
  } else if (fsType === 'xfs') {
    await session.command('mount', [device, '/']);
    try {
      await session.command('xfs-growfs', ['/']);
    } finally {
      await session.command('umount-all');
    }
  } else {
    throw new GuestError(`${device}: cannot grow a ${fsType || 'unknown'} filesystem (ext2/3/4 and xfs only)`);
  }
}

/** Drive `index` of `session` (opened writable) after its disk was enlarged. */
export async function growDrive(session: GuestfsSession, index: number, image: string, vgNames?: readonly string[]): Promise<GrowResult> {
  const dev = driveDevice(index);
  await session.command('umount-all');
  const parts = await partitions(session, dev);
  if (!parts.length) throw new GuestError(`${image}: no partition table; cannot grow a partition`, image);
  const last = parts.reduce((a, b) => (b.start > a.start ? b : a));
  const partition = `${dev}${last.num}`;
  const table = await session.text('part-get-parttype', [dev]);
  if (table === 'gpt') await session.command('part-expand-gpt', [dev]); // backup GPT to the new end
  await session.command('part-resize', [dev, last.num, await lastUsableSector(session, dev, table)]);
  const fsType = (await session.fields('blkid', [partition])).TYPE ?? '';
  if (fsType !== 'LVM2_member') {
    await growFilesystem(session, partition, fsType);
    return { partition, filesystem: fsType, grown: partition };
  }
  await session.command('pvresize', [partition]);
  // part-resize made the kernel re-read the table (the partition went and came back): rescan and
  // activate, so that inspection sees the PV's VG and LVs rather than a device LVM has not caught up with
  await activateLvm(session);
  const os = await openDrive(session, new ApplianceLayout(session), index, image, { readonly: false, ...(vgNames && { vgNames }) });
  await session.command('umount-all');
  await session.command('lvresize-free', [os.root, 100]);
  const rootType = (await session.fields('blkid', [os.root])).TYPE ?? '';
  await growFilesystem(session, os.root, rootType);
  return { partition, filesystem: rootType, grown: os.root };
}

export interface GrowTarget {
  readonly path: string;
  readonly format: string;
  /** Names the image in errors (the clone's final path while `path` is its temporary name). */
  readonly name: string;
}

interface GrowItem { readonly index: number; readonly target: GrowTarget; readonly keys: readonly string[]; readonly vgNames: readonly string[] }

const asError = (err: unknown): Error => (err instanceof Error ? err : new GuestError(errorMessage(err)));

/**
 * Grow every image (already enlarged with qemu-img) in as few appliances as
 * possible: one, unless some would collide in one appliance (overlays of an
 * LVM base share PV/VG UUIDs, see lvm-probe.ts). Returns each image's result
 * or its own error, in order: a launch failure is split in halves until the
 * bad image fails alone; an appliance that dies is replaced for the rest.
 */
export async function growDrives(targets: readonly GrowTarget[], session: SessionOptions = {}): Promise<Array<GrowResult | Error>> {
  const results: Array<GrowResult | Error> = targets.map(() => new GuestError('not grown'));
  const items: GrowItem[] = [];
  for (const [index, target] of targets.entries()) {
    try {
      const lvm = await probeLvm(target.path, target.format);
      items.push({ index, target, keys: conflictKeys(await fs.realpath(target.path), lvm), vgNames: lvm.vgNames });
    } catch (err) {
      results[index] = asError(err);
    }
  }
  for (const batch of scheduleBatches(items, Math.max(1, items.length), 1)) await growBatch(batch, session, results);
  return results;
}

async function growBatch(batch: readonly GrowItem[], options: SessionOptions, results: Array<GrowResult | Error>): Promise<void> {
  if (!batch.length) return;
  let session: GuestfsSession;
  try {
    session = await GuestfsSession.open({ ...options, drives: batch.map((x) => ({ path: x.target.path, format: x.target.format, readonly: false })) });
  } catch (err) {
    if (batch.length === 1) {
      results[batch[0]!.index] = new GuestError(`${batch[0]!.target.name}: cannot launch libguestfs to grow it: ${errorMessage(err)}`, batch[0]!.target.name, { cause: err });
      return;
    }
    const half = Math.ceil(batch.length / 2);
    await growBatch(batch.slice(0, half), options, results);
    await growBatch(batch.slice(half), options, results);
    return;
  }
  try {
    for (const [i, x] of batch.entries()) {
      if (!session.alive) return await growBatch(batch.slice(i), options, results);
      try {
        results[x.index] = await growDrive(session, i, x.target.name, x.vgNames.length ? x.vgNames : undefined);
      } catch (err) {
        results[x.index] = asError(err);
      }
    }
    // flush the last image's writes before the drives are renamed
    if (session.alive) await session.command('umount-all').catch(() => undefined);
  } finally {
    await session.close();
  }
}
