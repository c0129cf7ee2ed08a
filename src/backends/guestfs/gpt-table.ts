/**
 * A drive's GPT read and edited through the appliance: both copies of the
 * table read with `pread-device` (two reads in the usual layout), edited as
 * bytes (storage/gpt.ts: CRCs recomputed) and written back with
 * `upload-offset`, one write per copy, the primary first so that one copy is
 * whole at any time. `part-set-gpt-guid` and `part-set-disk-guid` run sgdisk
 * and wait for udev, 1-2 s per GUID in an appliance under TCG; this is a
 * handful of calls per disk. A table that is not whole (a damaged or missing
 * backup, copies that disagree) is reported as unusable: the caller leaves
 * it to those calls, whose sgdisk repairs it.
 */
import { GuestError, errorMessage } from '../../util/errors.js';
import { checkTable, editCopy, entriesLength, parseGptHeader, partitionGuids, type GptCopy, type GptHeader, type GuidEdit } from '../../storage/gpt.js';
import { GuestfsError, type GuestfsSession } from './session.js';
import { uploadBytes, type ByteWrite } from './device-bytes.js';

/** Both copies of a well-formed GPT as read from a drive. */
export interface GptTable {
  readonly sectorSize: number;
  readonly header: GptHeader;
  readonly primary: GptCopy;
  readonly backup: GptCopy;
  /** The MBR has the protective (0xEE) entry without which Linux and parted do not take the GPT. */
  readonly protectiveMbr: boolean;
}

/** Writing the table (or waiting for its partitions after) failed: part of it may have been written. */
export class GptWriteError extends GuestError {}

const hasProtectiveEntry = (mbr: Buffer): boolean => mbr.length >= 512 && mbr.readUInt16LE(510) === 0xaa55 && [0, 1, 2, 3].some((i) => mbr[446 + 16 * i + 4] === 0xee);

/** 128 entries of 128 bytes: the array read with the header in one go. */
const USUAL_ENTRIES = 16384;

export class ApplianceGpt {
  private readonly sectorSizes = new Map<string, Promise<number>>();

  constructor(private readonly session: GuestfsSession) {}

  /** Both copies of `drive`'s table, or undefined when it is not a whole GPT. */
  async read(drive: string): Promise<GptTable | undefined> {
    const sectorSize = await this.sectorSize(drive);
    const read = (sector: bigint, length: number): Promise<Buffer> => this.session.command('pread-device', [drive, length, Number(sector) * sectorSize]);
    /** The copy whose header is at `headerAt` in `bytes` (read from sector `from`); its entries from there when they are in it. */
    const copyOf = async (headerLba: bigint, bytes: Buffer, headerAt: number, from: bigint): Promise<GptCopy | undefined> => {
      const header = bytes.subarray(headerAt, headerAt + sectorSize);
      const h = parseGptHeader(header);
      if (!h.ok || h.value.currentLba !== headerLba) return undefined;
      const length = entriesLength(h.value);
      const at = Number(h.value.entriesLba - from) * sectorSize;
      const inside = h.value.entriesLba >= from && at + length <= bytes.length && !(at < headerAt + sectorSize && at + length > headerAt);
      return { header, entries: inside ? bytes.subarray(at, at + length) : await read(h.value.entriesLba, length) };
    };
    // the MBR, the primary header (LBA 1) and the sectors after it
    const head = await read(0n, 2 * sectorSize + USUAL_ENTRIES);
    const primary = await copyOf(1n, head.subarray(sectorSize), 0, 1n);
    const p = primary && parseGptHeader(primary.header);
    if (!primary || !p?.ok) return undefined;
    // the backup header (at the primary's backup LBA) and the sectors before it
    const before = BigInt(Math.ceil(entriesLength(p.value) / sectorSize));
    const from = p.value.backupLba > before ? p.value.backupLba - before : p.value.backupLba;
    const tail = await read(from, Number(p.value.backupLba - from + 1n) * sectorSize);
    const backup = await copyOf(p.value.backupLba, tail, Number(p.value.backupLba - from) * sectorSize, from);
    const table = backup ? checkTable(primary, backup) : undefined;
    return table?.ok ? { sectorSize, header: table.value, primary, backup: backup!, protectiveMbr: hasProtectiveEntry(head) } : undefined;
  }

  /** The disk GUID, from the table or (not a whole GPT) from sgdisk. */
  async diskGuid(drive: string): Promise<string> {
    const gpt = await this.read(drive);
    if (gpt) return gpt.header.diskGuid;
    return (await this.session.text('part-get-disk-guid', [drive])).trim().toLowerCase();
  }

  /** The unique GUID of partition `partnum`, from the table or (not a whole GPT) from sgdisk. */
  async partitionGuid(drive: string, partnum: number): Promise<string> {
    const gpt = await this.read(drive);
    if (gpt) return partitionGuids(gpt.header, gpt.primary.entries).find((p) => p.partition === partnum)?.guid ?? '';
    return (await this.session.text('part-get-gpt-guid', [drive, partnum])).trim();
  }

  /**
   * The edits written into both copies of the table; false (nothing written)
   * when it is not a whole GPT. A GptWriteError when a write failed.
   */
  async edit(drive: string, edits: readonly GuidEdit[]): Promise<boolean> {
    const gpt = await this.read(drive);
    if (!gpt) return false;
    const writes: ByteWrite[] = [];
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
      await uploadBytes(this.session, drive, writes);
      await this.settlePartitions(drive);
    } catch (err) {
      throw new GptWriteError(`${drive}: writing the GPT: ${errorMessage(err)}`, drive, { cause: err });
    }
    return true;
  }

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
}

/** Writes that follow each other on the device, merged into one. */
function contiguous(writes: readonly ByteWrite[]): ByteWrite[] {
  const out: ByteWrite[] = [];
  for (const w of [...writes].sort((a, b) => a.offset - b.offset)) {
    const last = out.at(-1);
    if (last && last.offset + last.bytes.length === w.offset) out[out.length - 1] = { offset: last.offset, bytes: Buffer.concat([last.bytes, w.bytes]) };
    else out.push(w);
  }
  return out;
}
