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
import { QEMU_IMG_INSTALL, requireTool } from './env.js';

const SECTOR = 512;

export interface LvmInfo {
  readonly pvUuids: readonly string[];
  readonly vgNames: readonly string[];
  readonly vgUuids: readonly string[];
  /** UUIDs of LUKS (1 or 2) headers at partition starts. */
  readonly luksUuids: readonly string[];
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

type Reader = (offset: number, length: number) => Promise<Buffer>;

/** Byte offsets of every partition (primary, logical, GPT); [0] is the whole disk. */
export async function partitionOffsets(read: Reader): Promise<number[]> {
  const head = await read(0, 34 * SECTOR);
  const offsets = [0];
  if (head.length < 2 * SECTOR) return offsets;
  if (head.toString('latin1', SECTOR, SECTOR + 8) === 'EFI PART') return offsets.concat(gptOffsets(head));
  if (head.readUInt16LE(510) !== 0xaa55) return offsets;
  for (let i = 0; i < 4; i++) {
    const e = 446 + 16 * i;
    const type = head[e + 4]!;
    const start = head.readUInt32LE(e + 8);
    if (!type || !start) continue;
    if (type === 0x05 || type === 0x0f || type === 0x85) offsets.push(...(await logicalOffsets(read, start)));
    else offsets.push(start * SECTOR);
  }
  return offsets;
}

function gptOffsets(head: Buffer): number[] {
  const entryLba = Number(head.readBigUInt64LE(SECTOR + 72));
  const count = head.readUInt32LE(SECTOR + 80);
  const size = head.readUInt32LE(SECTOR + 84);
  const out: number[] = [];
  for (let i = 0; i < count && size >= 128; i++) {
    const e = entryLba * SECTOR + i * size;
    if (e + 40 > head.length) break; // entries beyond the first 34 sectors: rare, ignored
    if (head.subarray(e, e + 16).every((b) => b === 0)) continue;
    out.push(Number(head.readBigUInt64LE(e + 32)) * SECTOR);
  }
  return out;
}

async function logicalOffsets(read: Reader, extStart: number): Promise<number[]> {
  const out: number[] = [];
  let ebr = extStart;
  for (let n = 0; n < 128 && ebr; n++) {
    const b = await read(ebr * SECTOR, SECTOR);
    if (b.length < SECTOR || b.readUInt16LE(510) !== 0xaa55) break;
    const rel = b.readUInt32LE(446 + 8);
    if (b[446 + 4] && rel) out.push((ebr + rel) * SECTOR);
    const next = b.readUInt32LE(462 + 8);
    ebr = b[462 + 4] && next ? extStart + next : 0;
  }
  return out;
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

/** LVM physical volumes and volume groups found in an image (empty lists when none). */
export async function probeLvm(image: string, format: string): Promise<LvmInfo> {
  const read: Reader = (offset, length) => readImageBytes(image, format, offset, length);
  const pvUuids: string[] = [];
  const vgNames: string[] = [];
  const vgUuids: string[] = [];
  const luksUuids: string[] = [];
  for (const off of await partitionOffsets(read)) {
    const head = await read(off, 4 * SECTOR);
    const luks = parseLuksUuid(head);
    if (luks) { luksUuids.push(luks); continue; }
    const label = parsePvLabel(head);
    if (!label) continue;
    pvUuids.push(label.pvUuid);
    const vg = label.mdaOffset ? await readVg(read, off, label.mdaOffset) : undefined;
    if (vg) { vgNames.push(vg.name); vgUuids.push(vg.uuid); }
  }
  return { pvUuids, vgNames, vgUuids, luksUuids };
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
