/**
 * Cheap, appliance-free detection of LVM in an image, for scheduling.
 *
 * Why: clones of one LVM guest share VG names, VG UUIDs and PV UUIDs; two of
 * them in one appliance collide (LVM shows one VG, inspection finds no OS).
 * Unrelated images that use the same default VG name (ubuntu-vg, rhel, cs…)
 * collide on /dev/VG/LV paths too. So every target gets conflict keys
 * (file:, vg-name:, vg-uuid:, pv-uuid:, luks) and the backend never puts two
 * targets sharing a key into one appliance.
 *
 * How: read a few sectors through `qemu-img dd` (which follows qcow2 backing
 * chains): the partition table (MBR, EBR chain, GPT), then at each partition
 * start the LVM2 label ("LABELONE"/"LVM2 001", PV UUID), the metadata area
 * header and the first lines of the metadata text (`vgname {`, `id = "…"`).
 * No root, no appliance; a handful of ~10-20 ms qemu-img runs per target.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { GuestError } from '../../util/errors.js';
import { QEMU_IMG_INSTALL, requireTool } from '../../util/tools.js';

const SECTOR = 512;

export interface LvmInfo {
  readonly pvUuids: readonly string[];
  readonly vgNames: readonly string[];
  readonly vgUuids: readonly string[];
  /** UUIDs of LUKS (1 or 2) headers at partition starts. */
  readonly luksUuids: readonly string[];
  /**
   * Partition numbers the appliance will show for this disk ([] for a whole-disk
   * filesystem); undefined when the table could not be read exactly. Spares
   * `list-partitions`, which settles udev for every drive of the appliance
   * (~0.36 s per drive under TCG).
   */
  readonly partitions?: readonly number[];
}

/** LUKS1 and LUKS2 both start with this magic and keep the UUID at byte 168 (40 bytes). */
export function parseLuksUuid(buf: Buffer): string | undefined {
  if (buf.length < 208 || buf.toString('latin1', 0, 6) !== 'LUKS\xba\xbe') return undefined;
  return buf.toString('latin1', 168, 208).replace(/\0.*$/s, '') || 'unknown';
}

/** Read `length` bytes at `offset` of the guest-visible disk (raw view of any format). */
export async function readImageBytes(image: string, format: string, offset: number, length: number): Promise<Buffer> {
  requireTool('qemu-img', QEMU_IMG_INSTALL);
  const first = Math.floor(offset / SECTOR);
  const count = Math.ceil((offset + length) / SECTOR) - first;
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ghostprep-probe-'));
  try {
    const out = path.join(dir, 'bytes');
    // qemu-img dd (7.x) counts `count` from the start of the input, skipped blocks included.
    const r = await execa('qemu-img', ['dd', '-f', format, '-O', 'raw', `bs=${SECTOR}`, `skip=${first}`, `count=${first + count}`, `if=${image}`, `of=${out}`], { reject: false });
    if (r.exitCode !== 0) throw new GuestError(`${image}: qemu-img dd failed: ${String(r.stderr).trim()}`, image);
    const buf = await fs.readFile(out);
    const start = offset - first * SECTOR;
    return buf.subarray(start, start + length);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

export type Reader = (offset: number, length: number) => Promise<Buffer>;

/** A partition as the Linux kernel numbers it (sdX1, sdX5…) and where it starts. */
export interface PartitionEntry {
  readonly number: number;
  readonly offset: number;
}

/**
 * The partition table as the appliance's kernel will see it. `exact` is false
 * when the kernel may find partitions this reader did not (GPT entries beyond
 * the sectors read, a GPT without a protective MBR entry, a very long EBR
 * chain): callers then list partitions in the appliance instead.
 */
export interface PartitionTable {
  readonly entries: readonly PartitionEntry[];
  readonly exact: boolean;
}

export async function readPartitionTable(read: Reader): Promise<PartitionTable> {
  const head = await read(0, 34 * SECTOR);
  if (head.length < 2 * SECTOR) return { entries: [], exact: false };
  const mbr = head.readUInt16LE(510) === 0xaa55;
  const slots = mbr ? [0, 1, 2, 3].map((i) => mbrSlot(head, 446 + 16 * i)) : [];
  if (head.toString('latin1', SECTOR, SECTOR + 8) === 'EFI PART') {
    // Linux takes a GPT only behind a protective (0xEE) MBR entry; otherwise it reads the MBR.
    const gpt = gptEntries(head);
    return { entries: gpt.entries, exact: gpt.exact && slots.some((s) => s.type === 0xee) };
  }
  if (!mbr) return { entries: [], exact: true };
  // A boot sector of a whole-disk FAT/NTFS filesystem also ends in 55 AA; the kernel
  // rejects it as a table when a boot flag is neither 0 nor 0x80: leave it to the appliance.
  if (slots.some((s) => (s.boot & 0x7f) !== 0)) return { entries: [], exact: false };
  const entries: PartitionEntry[] = [];
  let exact = true;
  for (const [i, s] of slots.entries()) {
    if (!s.start || !(s.size || s.type)) continue; // the kernel needs a size; a typed entry is kept as a harmless extra candidate
    if (s.type === 0x05 || s.type === 0x0f || s.type === 0x85) {
      const logical = await logicalEntries(read, s.start);
      entries.push(...logical.entries);
      exact &&= logical.exact;
    } else entries.push({ number: i + 1, offset: s.start * SECTOR });
  }
  return { entries, exact };
}

function mbrSlot(b: Buffer, at: number): { boot: number; type: number; start: number; size: number } {
  return { boot: b[at]!, type: b[at + 4]!, start: b.readUInt32LE(at + 8), size: b.readUInt32LE(at + 12) };
}

function gptEntries(head: Buffer): PartitionTable {
  const entryLba = Number(head.readBigUInt64LE(SECTOR + 72));
  const count = head.readUInt32LE(SECTOR + 80);
  const size = head.readUInt32LE(SECTOR + 84);
  const entries: PartitionEntry[] = [];
  if (size < 128) return { entries, exact: false };
  for (let i = 0; i < count; i++) {
    const e = entryLba * SECTOR + i * size;
    // entries beyond the first 34 sectors: rare, not read (so not exact)
    if (e + 40 > head.length) return { entries, exact: false };
    if (head.subarray(e, e + 16).every((b) => b === 0)) continue;
    entries.push({ number: i + 1, offset: Number(head.readBigUInt64LE(e + 32)) * SECTOR });
  }
  return { entries, exact: true };
}

/** Logical partitions: numbered from 5 in the order of the EBR chain, like the kernel does. */
async function logicalEntries(read: Reader, extStart: number): Promise<PartitionTable> {
  const entries: PartitionEntry[] = [];
  let ebr = extStart;
  for (let n = 0; n < 128 && ebr; n++) {
    const b = await read(ebr * SECTOR, SECTOR);
    if (b.length < SECTOR || b.readUInt16LE(510) !== 0xaa55) return { entries, exact: true };
    const data = mbrSlot(b, 446);
    if (data.start && (data.size || data.type)) entries.push({ number: 5 + entries.length, offset: (ebr + data.start) * SECTOR });
    const next = mbrSlot(b, 462);
    ebr = next.type && next.start ? extStart + next.start : 0;
  }
  return { entries, exact: !ebr };
}

interface PvLabel {
  readonly pvUuid: string;
  readonly mdaOffset: number | undefined;
}

/** The LVM2 label in one of the first four sectors of a PV. */
export function parsePvLabel(buf: Buffer): PvLabel | undefined {
  for (let s = 0; s < 4; s++) {
    const base = s * SECTOR;
    if (buf.length < base + 32 || buf.toString('latin1', base, base + 8) !== 'LABELONE') continue;
    if (buf.toString('latin1', base + 24, base + 32) !== 'LVM2 001') continue;
    const pv = base + buf.readUInt32LE(base + 20);
    const pvUuid = buf.toString('latin1', pv, pv + 32);
    let at = pv + 40;
    while (at + 16 <= buf.length && buf.readBigUInt64LE(at) !== 0n) at += 16; // data areas
    at += 16;
    const mda = at + 16 <= buf.length ? Number(buf.readBigUInt64LE(at)) : 0;
    return { pvUuid, mdaOffset: mda || undefined };
  }
  return undefined;
}

/** VG name and id from the newest metadata text of the PV at `pvOffset`. */
async function readVg(read: Reader, pvOffset: number, mdaOffset: number): Promise<{ name: string; uuid: string } | undefined> {
  const header = await read(pvOffset + mdaOffset, SECTOR);
  if (header.toString('latin1', 4, 20) !== ' LVM2 x[5A%r0N*>') return undefined;
  const rawOffset = Number(header.readBigUInt64LE(40));
  const rawSize = Number(header.readBigUInt64LE(48));
  if (!rawOffset || !rawSize) return undefined;
  const text = (await read(pvOffset + mdaOffset + rawOffset, Math.min(rawSize, 64 * 1024))).toString('latin1');
  const m = /^([A-Za-z0-9+_.-]+) \{\s*\n\s*id = "([^"]+)"/m.exec(text);
  return m ? { name: m[1]!, uuid: m[2]! } : undefined;
}

/**
 * What the first read takes: the partition table and the head of a partition at
 * 1 MiB (where partitioning tools put the first one), with an LVM metadata area
 * behind its label. One qemu-img process instead of one per read (a process
 * costs far more than the bytes), for every image a run opens.
 */
export const PREFETCH_BYTES = 1024 * 1024 + 64 * 1024;

/** Reads of `image`: the first one fetches PREFETCH_BYTES from offset 0, and reads inside them are served from memory. */
export function prefetchingReader(image: string, format: string, readBytes = readImageBytes): Reader {
  let head: Promise<Buffer> | undefined;
  return async (offset, length) => {
    head ??= readBytes(image, format, 0, PREFETCH_BYTES);
    const buf = await head;
    // past the prefetched bytes (or past the end of a short image): read as asked, which gives what is there
    return offset + length <= buf.length ? buf.subarray(offset, offset + length) : readBytes(image, format, offset, length);
  };
}

/** LVM physical volumes and volume groups found in an image (empty lists when none). */
export async function probeLvm(image: string, format: string): Promise<LvmInfo> {
  const read = prefetchingReader(image, format);
  const pvUuids: string[] = [];
  const vgNames: string[] = [];
  const vgUuids: string[] = [];
  const luksUuids: string[] = [];
  const table = await readPartitionTable(read);
  for (const off of [0, ...table.entries.map((e) => e.offset)]) {
    const head = await read(off, 4 * SECTOR);
    const luks = parseLuksUuid(head);
    if (luks) { luksUuids.push(luks); continue; }
    const label = parsePvLabel(head);
    if (!label) continue;
    pvUuids.push(label.pvUuid);
    const vg = label.mdaOffset ? await readVg(read, off, label.mdaOffset) : undefined;
    if (vg) { vgNames.push(vg.name); vgUuids.push(vg.uuid); }
  }
  return { pvUuids, vgNames, vgUuids, luksUuids, ...(table.exact && { partitions: table.entries.map((e) => e.number) }) };
}

/** Keys that must never meet in one appliance. */
export function conflictKeys(realPath: string, lvm: LvmInfo): string[] {
  return [
    `file:${realPath}`,
    ...lvm.pvUuids.map((u) => `pv-uuid:${u}`),
    ...lvm.vgNames.map((n) => `vg-name:${n}`),
    ...lvm.vgUuids.map((u) => `vg-uuid:${u}`),
    // What a LUKS volume holds (LVM names and UUIDs above all) is unknown until
    // it is opened, so a LUKS guest gets an appliance of its own.
    ...(lvm.luksUuids.length ? ['luks'] : []),
  ];
}

/**
 * Keys of a target whose LVM identity is renewed in the appliance before any
 * guest is opened (lvm-identity.ts: new PV and VG UUIDs, VG renamed to
 * `newVgName`): its old UUIDs and VG name are gone by then, so clones of one
 * master share an appliance again.
 */
export function conflictKeysRenewed(realPath: string, lvm: LvmInfo, newVgName: string): string[] {
  return [`file:${realPath}`, `vg-name:${newVgName}`, ...(lvm.luksUuids.length ? ['luks'] : [])];
}

/** A logical volume whose first extent lies on one PV: where its data starts on that PV. */
export interface LvStart {
  readonly name: string;
  /** Bytes from the start of the PV to the LV's first byte. */
  readonly offset: number;
}

type LvmNode = { [key: string]: LvmNode | string };

/** LVM's metadata text (`key = value`, `name { … }`, `[…]` lists) as nested records; values kept as their raw text. */
export function parseLvmText(text: string): LvmNode {
  const root: LvmNode = {};
  const stack: LvmNode[] = [root];
  const body = text.replace(/\0.*$/s, '');
  const re = /([A-Za-z0-9+_.-]+)\s*\{|\}|([A-Za-z0-9_]+)\s*=\s*(\[[^\]]*\]|"(?:[^"\\]|\\.)*"|[^\s#]+)|#[^\n]*/g;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    const top = stack.at(-1)!;
    if (m[1] !== undefined) { const n: LvmNode = {}; top[m[1]] = n; stack.push(n); } else if (m[0] === '}') { if (stack.length > 1) stack.pop(); } else if (m[2] !== undefined) top[m[2]] = m[3]!;
  }
  return root;
}

/**
 * Where each LV of the VG in `text` starts on the PV `pvUuid` (dashed form):
 * the LVs whose first segment (start_extent 0) is linear (one stripe) on that
 * PV; pe_start and extents are in 512-byte sectors. Others (striped, RAID,
 * thin, or starting on another PV) are left out.
 */
export function lvStartsOnPv(text: string, pvUuid: string): LvStart[] {
  const root = parseLvmText(text);
  const vg = Object.values(root).find((v): v is LvmNode => typeof v === 'object' && typeof v.extent_size === 'string');
  if (!vg) return [];
  const num = (v: unknown): number => (typeof v === 'string' ? Number(v) : NaN);
  const str = (v: unknown): string => (typeof v === 'string' ? v.replace(/^"|"$/g, '') : '');
  const extent = num(vg.extent_size) * SECTOR;
  const pvs = typeof vg.physical_volumes === 'object' ? vg.physical_volumes : {};
  const pv = Object.entries(pvs).find(([, p]) => typeof p === 'object' && str(p.id) === pvUuid);
  if (!pv || typeof pv[1] !== 'object' || !extent) return [];
  const peStart = num(pv[1].pe_start) * SECTOR;
  const out: LvStart[] = [];
  const lvs = typeof vg.logical_volumes === 'object' ? vg.logical_volumes : {};
  for (const [name, lv] of Object.entries(lvs)) {
    if (typeof lv !== 'object') continue;
    const seg = Object.values(lv).find((s): s is LvmNode => typeof s === 'object' && num(s.start_extent) === 0);
    if (!seg || str(seg.type) !== 'striped' || num(seg.stripe_count) !== 1 || typeof seg.stripes !== 'string') continue;
    const stripe = /^\[\s*"([^"]+)"\s*,\s*(\d+)\s*\]$/.exec(seg.stripes.trim());
    if (!stripe || stripe[1] !== pv[0]) continue;
    const at = peStart + Number(stripe[2]) * extent;
    if (Number.isFinite(at)) out.push({ name, offset: at });
  }
  return out;
}
