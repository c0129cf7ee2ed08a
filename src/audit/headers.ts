/**
 * Disk identities read from on-disk headers, without an appliance.
 *
 * Why: the identities a clone inherits from its base below the file level
 * (partition table GUIDs, filesystem UUIDs, LVM names and UUIDs, LUKS UUIDs
 * and volume keys) sit in a few fixed places of the disk. Reading those
 * bytes host-side costs milliseconds per image; an appliance costs seconds.
 *
 * How: pure parsers over Buffers (unit-tested on images made by mkfs, mkswap,
 * and cryptsetup), and one reader per image: raw and qcow2 images (backing
 * chains included) are read in process (qcow2.ts), any other format through
 * `qemu-img dd`. Each volume start gets one 128 KiB read.
 */
import { createHash } from 'node:crypto';
import { lvStartsOnPv, parsePvLabel, readImageBytes, readPartitionTable } from '../backends/guestfs/lvm-probe.js';
import { openImageBytes, Qcow2Unsupported, type ImageBytes } from './qcow2.js';
import { formatGuid } from '../storage/gpt.js';

const SECTOR = 512;
/** One read per volume start: covers the btrfs superblock (64 KiB + 4 KiB) and a default LUKS2 header. */
const VOLUME_HEAD = 128 * 1024;
/** Largest LUKS2 header (binary + JSON area) this reader follows. */
const LUKS2_MAX_HEADER = 4 * 1024 * 1024;

export type Reader = (offset: number, length: number) => Promise<Buffer>;

export type VolumeKind = 'ext' | 'xfs' | 'btrfs' | 'swap' | 'vfat' | 'ntfs' | 'luks1' | 'luks2' | 'lvm2-pv';

export interface VolumeIdentity {
  /** "disk" for a whole-disk volume, "VG/LV" for one on a logical volume, else the partition number as the kernel numbers it ("1", "5"). */
  readonly partition: string;
  readonly kind: VolumeKind;
  /** Filesystem UUID / volume serial, LUKS UUID, or LVM PV UUID (dashed like `pvs` prints it). */
  readonly uuid: string;
  /** LVM: the volume group this PV belongs to. */
  readonly vgName?: string;
  readonly vgUuid?: string;
  /**
   * LUKS: a fingerprint of the volume key check (digest + salt of the header):
   * two headers with the same fingerprint unlock with the same volume key. Not the key.
   */
  readonly volumeKey?: string;
}

export interface DiskIdentity {
  /** MBR disk identifier (the PARTUUID prefix of MBR disks), hex; absent without an MBR. */
  readonly mbrDiskId?: string;
  readonly gptDiskGuid?: string;
  readonly gptPartitionGuids: ReadonlyArray<{ readonly partition: number; readonly guid: string }>;
  readonly volumes: readonly VolumeIdentity[];
}

export { formatGuid };

/** A UUID stored byte for byte (ext, xfs, btrfs, swap). */
export function formatUuid(b: Buffer): string {
  const x = b.toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

const zero = (b: Buffer) => b.every((x) => x === 0);

/** GPT disk GUID and the unique GUID of each used entry (`head`: the first 34 sectors). */
export function parseGpt(head: Buffer): { diskGuid: string; partitions: Array<{ partition: number; guid: string }> } | undefined {
  if (head.length < 2 * SECTOR || head.toString('latin1', SECTOR, SECTOR + 8) !== 'EFI PART') return undefined;
  const diskGuid = formatGuid(head.subarray(SECTOR + 56, SECTOR + 72));
  const entryLba = Number(head.readBigUInt64LE(SECTOR + 72));
  const count = head.readUInt32LE(SECTOR + 80);
  const size = head.readUInt32LE(SECTOR + 84);
  const partitions: Array<{ partition: number; guid: string }> = [];
  if (size >= 128) {
    for (let i = 0; i < count; i++) {
      const e = entryLba * SECTOR + i * size;
      if (e + 32 > head.length) break;
      if (zero(head.subarray(e, e + 16))) continue;
      partitions.push({ partition: i + 1, guid: formatGuid(head.subarray(e + 16, e + 32)) });
    }
  }
  return { diskGuid, partitions };
}

/** The 32-bit MBR disk identifier at byte 440, when the sector is an MBR and the id is set. */
export function parseMbrDiskId(head: Buffer): string | undefined {
  if (head.length < SECTOR || head.readUInt16LE(510) !== 0xaa55) return undefined;
  const id = head.readUInt32LE(440);
  return id ? id.toString(16).padStart(8, '0') : undefined;
}

/** PV UUID as LVM prints it: 6-4-4-4-4-4-6. */
export function formatPvUuid(raw: string): string {
  const cuts = [6, 4, 4, 4, 4, 4, 6];
  const parts: string[] = [];
  let at = 0;
  for (const c of cuts) { parts.push(raw.slice(at, at + c)); at += c; }
  return parts.join('-');
}

function fingerprint(...parts: Array<string | Buffer>): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return `sha256:${h.digest('hex').slice(0, 32)}`;
}

/** LUKS1: the master key digest and its salt identify the volume key. */
export function parseLuks1Key(head: Buffer): string | undefined {
  if (head.length < 208 || head.toString('latin1', 0, 6) !== 'LUKS\xba\xbe' || head.readUInt16BE(6) !== 1) return undefined;
  return fingerprint('luks1', head.toString('latin1', 72, 104).replace(/\0.*$/s, ''), head.subarray(108, 128), head.subarray(128, 160));
}

/** LUKS2: every entry of the JSON area's `digests` (type, hash, salt, digest) identifies a volume key. */
export function parseLuks2Key(header: Buffer): string | undefined {
  if (header.length < 4096 || header.toString('latin1', 0, 6) !== 'LUKS\xba\xbe' || header.readUInt16BE(6) !== 2) return undefined;
  const size = Number(header.readBigUInt64BE(8));
  const end = Math.min(size, header.length);
  const text = header.toString('utf8', 4096, end).replace(/\0.*$/s, '');
  let json: { digests?: Record<string, { type?: string; hash?: string; salt?: string; digest?: string }> };
  try { json = JSON.parse(text) as typeof json; } catch { return undefined; }
  const digests = Object.values(json.digests ?? {}).filter((d) => d && d.salt && d.digest);
  if (!digests.length) return undefined;
  return fingerprint('luks2', ...digests.map((d) => `${d.type ?? ''}:${d.hash ?? ''}:${d.salt}:${d.digest}`).sort());
}

/** The LUKS2 header size (binary header + JSON area) from its binary header. */
export function luks2HeaderSize(head: Buffer): number | undefined {
  if (head.length < 16 || head.toString('latin1', 0, 6) !== 'LUKS\xba\xbe' || head.readUInt16BE(6) !== 2) return undefined;
  return Number(head.readBigUInt64BE(8));
}

/** VG name and id from LVM metadata text (the newest copy the mda header points at). */
export function parseLvmMetadata(text: string): { name: string; uuid: string } | undefined {
  const m = /^([A-Za-z0-9+_.-]+) \{\s*\n\s*id = "([^"]+)"/m.exec(text);
  return m ? { name: m[1]!, uuid: m[2]! } : undefined;
}

/**
 * What kind of volume starts at the beginning of `head` (at least 68 KiB for
 * btrfs, 4 KiB for the rest) and its UUID. LVM metadata and the LUKS2 JSON
 * area may lie beyond `head`: readVolume follows them.
 */
export function parseVolume(head: Buffer): { kind: VolumeKind; uuid: string } | undefined {
  const str = (from: number, to: number) => (head.length >= to ? head.toString('latin1', from, to) : '');
  if (str(0, 6) === 'LUKS\xba\xbe') {
    const v = head.readUInt16BE(6);
    return { kind: v === 2 ? 'luks2' : 'luks1', uuid: str(168, 208).replace(/\0.*$/s, '') };
  }
  const pv = parsePvLabel(head);
  if (pv) return { kind: 'lvm2-pv', uuid: formatPvUuid(pv.pvUuid) };
  if (str(0, 4) === 'XFSB') return { kind: 'xfs', uuid: formatUuid(head.subarray(32, 48)) };
  if (str(0x10040, 0x10048) === '_BHRfS_M') return { kind: 'btrfs', uuid: formatUuid(head.subarray(0x10020, 0x10030)) };
  if (head.length >= 1024 + 0x78 && head.readUInt16LE(1024 + 0x38) === 0xef53) return { kind: 'ext', uuid: formatUuid(head.subarray(1024 + 0x68, 1024 + 0x78)) };
  if (str(4096 - 10, 4096) === 'SWAPSPACE2') return { kind: 'swap', uuid: formatUuid(head.subarray(1024 + 0x0c, 1024 + 0x1c)) };
  if (head.length >= SECTOR && head.readUInt16LE(510) === 0xaa55) {
    if (str(3, 11) === 'NTFS    ') return { kind: 'ntfs', uuid: head.readBigUInt64LE(0x48).toString(16).toUpperCase().padStart(16, '0') };
    const fatId = (at: number) => { const id = head.readUInt32LE(at); return `${(id >>> 16).toString(16).toUpperCase().padStart(4, '0')}-${(id & 0xffff).toString(16).toUpperCase().padStart(4, '0')}`; };
    if (str(0x52, 0x57) === 'FAT32' && head[0x42] === 0x29) return { kind: 'vfat', uuid: fatId(0x43) };
    if (str(0x36, 0x39) === 'FAT' && head[0x26] === 0x29) return { kind: 'vfat', uuid: fatId(0x27) };
  }
  return undefined;
}

/** Identity of the volume starting at `offset`, following LVM metadata and the LUKS2 JSON area. */
export async function readVolume(read: Reader, offset: number, partition: string): Promise<VolumeIdentity | undefined> {
  const head = await read(offset, VOLUME_HEAD);
  const v = parseVolume(head);
  if (!v) return undefined;
  if (v.kind === 'luks1') {
    const key = parseLuks1Key(head);
    return { partition, ...v, ...(key && { volumeKey: key }) };
  }
  if (v.kind === 'luks2') {
    const size = Math.min(luks2HeaderSize(head) ?? 0, LUKS2_MAX_HEADER);
    const header = size > head.length ? await read(offset, size) : head;
    const key = parseLuks2Key(header);
    return { partition, ...v, ...(key && { volumeKey: key }) };
  }
  if (v.kind === 'lvm2-pv') {
    const label = parsePvLabel(head);
    const vg = label?.mdaOffset ? await readVgFrom(read, offset + label.mdaOffset, head, offset) : undefined;
    return { partition, ...v, ...(vg && { vgName: vg.name, vgUuid: vg.uuid }) };
  }
  return { partition, ...v };
}

async function readVgFrom(read: Reader, mda: number, head: Buffer, headOffset: number): Promise<{ name: string; uuid: string } | undefined> {
  const text = await readMetadataText(read, mda, head, headOffset);
  return text === undefined ? undefined : parseLvmMetadata(text);
}

/** The newest metadata text of the metadata area at `mda` (its first 64 KiB). */
async function readMetadataText(read: Reader, mda: number, head: Buffer, headOffset: number): Promise<string | undefined> {
  const slice = async (at: number, len: number) =>
    at >= headOffset && at + len <= headOffset + head.length ? head.subarray(at - headOffset, at - headOffset + len) : read(at, len);
  const header = await slice(mda, SECTOR);
  if (header.toString('latin1', 4, 20) !== ' LVM2 x[5A%r0N*>') return undefined;
  const rawOffset = Number(header.readBigUInt64LE(40));
  const rawSize = Number(header.readBigUInt64LE(48));
  if (!rawOffset || !rawSize) return undefined;
  return (await slice(mda + rawOffset, Math.min(rawSize, 64 * 1024))).toString('latin1');
}

/**
 * The volumes on the logical volumes of the PV at `offset` (file systems and
 * LUKS headers at each LV's start, `partition` "VG/LV"): clones of an LVM
 * master share their file system UUIDs as much as their PV and VG UUIDs.
 * Only LVs whose first extent is on this PV, linearly mapped, are read.
 */
async function readLvVolumes(read: Reader, offset: number, pv: VolumeIdentity): Promise<VolumeIdentity[]> {
  const head = await read(offset, 4 * SECTOR);
  const label = parsePvLabel(head);
  if (!label?.mdaOffset || !pv.vgName) return [];
  const text = await readMetadataText(read, offset + label.mdaOffset, head, offset);
  if (text === undefined) return [];
  const out: VolumeIdentity[] = [];
  for (const lv of lvStartsOnPv(text, pv.uuid)) {
    const v = await readVolume(read, offset + lv.offset, `${pv.vgName}/${lv.name}`);
    if (v && v.kind !== 'lvm2-pv') out.push(v);
  }
  return out;
}

/** Every header identity of one disk: partition table GUIDs, then each volume (whole disk first). */
export async function readDiskIdentity(read: Reader): Promise<DiskIdentity> {
  const head = await read(0, 34 * SECTOR);
  const gpt = parseGpt(head);
  const mbrDiskId = gpt ? undefined : parseMbrDiskId(head);
  const table = await readPartitionTable(read);
  const volumes: VolumeIdentity[] = [];
  const whole = await readVolume(read, 0, 'disk');
  if (whole && whole.kind !== 'vfat' && whole.kind !== 'ntfs') volumes.push(whole);
  else if (whole && !table.entries.length) volumes.push(whole);
  if (whole?.kind === 'lvm2-pv') volumes.push(...await readLvVolumes(read, 0, whole));
  for (const e of table.entries) {
    const v = await readVolume(read, e.offset, String(e.number));
    if (v) volumes.push(v);
    if (v?.kind === 'lvm2-pv') volumes.push(...await readLvVolumes(read, e.offset, v));
  }
  return {
    ...(mbrDiskId && { mbrDiskId }),
    ...(gpt && { gptDiskGuid: gpt.diskGuid }),
    gptPartitionGuids: gpt?.partitions ?? [],
    volumes,
  };
}

/**
 * A byte reader over the guest-visible disk of an image. Raw and qcow2 images
 * are read in process; other formats (and qcow2 features the in-process
 * reader does not follow) through qemu-img dd. Reads are cached in 128 KiB
 * aligned chunks so that the partition table, superblocks and LVM metadata
 * near one another cost one read.
 */
export function imageReader(image: string, format: string): { read: Reader; close: () => Promise<void> } {
  let bytes: Promise<ImageBytes | null> | undefined;
  const chunks = new Map<number, Promise<Buffer>>();
  const CHUNK = VOLUME_HEAD;
  const fetch = async (offset: number, length: number): Promise<Buffer> => {
    bytes ??= openImageBytes(image, format).catch((err: unknown) => { if (err instanceof Qcow2Unsupported) return null; throw err; });
    const b = await bytes;
    if (!b) return readImageBytes(image, format, offset, length);
    return b.read(offset, Math.max(0, Math.min(length, b.size - offset)));
  };
  const read: Reader = async (offset, length) => {
    const first = Math.floor(offset / CHUNK);
    const last = Math.floor((offset + length - 1) / CHUNK);
    if (last - first > 4) return fetch(offset, length);
    const parts: Buffer[] = [];
    // neighbouring missing chunks are fetched in one read
    for (let c = first; c <= last; c++) {
      if (!chunks.has(c)) {
        let end = c;
        while (end + 1 <= last && !chunks.has(end + 1)) end++;
        const all = fetch(c * CHUNK, (end - c + 1) * CHUNK);
        for (let k = c; k <= end; k++) chunks.set(k, all.then((b) => b.subarray((k - c) * CHUNK, (k - c + 1) * CHUNK)));
      }
      parts.push(await chunks.get(c)!);
    }
    const all = Buffer.concat(parts);
    const start = offset - first * CHUNK;
    return all.subarray(start, start + length);
  };
  return { read, close: async () => { await (await bytes?.catch(() => null))?.close(); } };
}

/** Header identities of an image file. */
export async function probeDiskIdentity(image: string, format: string): Promise<DiskIdentity> {
  const r = imageReader(image, format);
  try { return await readDiskIdentity(r.read); } finally { await r.close(); }
}
