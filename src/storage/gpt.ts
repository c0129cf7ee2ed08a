/**
 * GPT headers as bytes: read the disk GUID and the partitions' unique GUIDs,
 * and give one of them a new value in a copy of the table, with both CRC32s
 * of its header recomputed, as sgdisk's `--disk-guid` and `--partition-guid`
 * do; the caller edits both copies (primary and backup) alike. Pure: the
 * caller reads the sectors and writes the results back (in an appliance, on
 * a host file).
 *
 * Only a well-formed table is edited: both headers present, pointing at each
 * other, with good CRCs and equal contents apart from their positions.
 * Anything else (a damaged or missing backup, a header larger than a sector)
 * is a `Parsed` failure with its reason, and the caller leaves the table to
 * a tool that can repair it.
 */
import { crc32 } from 'node:zlib';

export const GPT_SIGNATURE = 'EFI PART';
/** The header fields this module reads and writes; UEFI's header is 92 bytes. */
const MIN_HEADER_SIZE = 92;
const MIN_ENTRY_SIZE = 128;
/** UEFI allows more; no tool writes more than a few hundred entries of 128 bytes. */
const MAX_ENTRIES_BYTES = 1 << 20;

/** A GUID as GPT stores it: the first three fields little-endian, the last two as written. */
export function formatGuid(b: Buffer): string {
  const h = (from: number, to: number, rev: boolean) => {
    const part = [...b.subarray(from, to)];
    return (rev ? part.reverse() : part).map((x) => x.toString(16).padStart(2, '0')).join('');
  };
  return `${h(0, 4, true)}-${h(4, 6, true)}-${h(6, 8, true)}-${h(8, 10, false)}-${h(10, 16, false)}`;
}

const GUID_TEXT = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i;

/** The 16 bytes GPT stores for `guid` (formatGuid's inverse). */
export function encodeGuid(guid: string): Buffer {
  const m = GUID_TEXT.exec(guid);
  if (!m) throw new Error(`not a GUID: ${guid}`);
  const le = (hex: string) => Buffer.from(hex, 'hex').reverse();
  return Buffer.concat([le(m[1]!), le(m[2]!), le(m[3]!), Buffer.from(m[4]! + m[5]!, 'hex')]);
}

export interface GptHeader {
  readonly headerSize: number;
  readonly currentLba: bigint;
  readonly backupLba: bigint;
  readonly entriesLba: bigint;
  readonly entryCount: number;
  readonly entrySize: number;
  readonly diskGuid: string;
}

/** One copy of the table: its header sector and its partition entry array. */
export interface GptCopy {
  readonly header: Buffer;
  readonly entries: Buffer;
}

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly reason: string };
const bad = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

/** The header in `sector` (one logical sector), checked: signature, size, header CRC. */
export function parseGptHeader(sector: Buffer): Parsed<GptHeader> {
  if (sector.length < MIN_HEADER_SIZE || sector.toString('latin1', 0, 8) !== GPT_SIGNATURE) return bad('no GPT header signature');
  const headerSize = sector.readUInt32LE(12);
  if (headerSize < MIN_HEADER_SIZE || headerSize > sector.length) return bad(`header size ${headerSize} is not between ${MIN_HEADER_SIZE} and the sector size`);
  if (headerCrc(sector, headerSize) !== sector.readUInt32LE(16)) return bad('header CRC32 does not match');
  const entryCount = sector.readUInt32LE(80);
  const entrySize = sector.readUInt32LE(84);
  if (entrySize < MIN_ENTRY_SIZE || entrySize % 8 !== 0) return bad(`partition entry size ${entrySize}`);
  if (entryCount * entrySize > MAX_ENTRIES_BYTES) return bad(`partition entry array of ${entryCount} x ${entrySize} bytes`);
  return {
    ok: true,
    value: {
      headerSize, currentLba: sector.readBigUInt64LE(24), backupLba: sector.readBigUInt64LE(32), entriesLba: sector.readBigUInt64LE(72),
      entryCount, entrySize, diskGuid: formatGuid(sector.subarray(56, 72)),
    },
  };
}

/** Bytes of the partition entry array that `h` describes. */
export const entriesLength = (h: GptHeader): number => h.entryCount * h.entrySize;

function headerCrc(sector: Buffer, headerSize: number): number {
  const copy = Buffer.from(sector.subarray(0, headerSize));
  copy.writeUInt32LE(0, 16);
  return crc32(copy);
}

/** Checks a copy's entry array against its header (length, CRC). */
export function checkCopy(copy: GptCopy): Parsed<GptHeader> {
  const h = parseGptHeader(copy.header);
  if (!h.ok) return h;
  if (copy.entries.length !== entriesLength(h.value)) return bad('partition entry array not read whole');
  if (crc32(copy.entries) !== copy.header.readUInt32LE(88)) return bad('partition entry array CRC32 does not match');
  return h;
}

/**
 * Primary and backup, checked as one table: each valid, each pointing at the
 * other, the same disk GUID and the same entries.
 */
export function checkTable(primary: GptCopy, backup: GptCopy): Parsed<GptHeader> {
  const p = checkCopy(primary);
  if (!p.ok) return bad(`primary: ${p.reason}`);
  const b = checkCopy(backup);
  if (!b.ok) return bad(`backup: ${b.reason}`);
  if (p.value.currentLba !== 1n || b.value.currentLba !== p.value.backupLba || b.value.backupLba !== 1n) return bad('the primary and backup headers do not point at each other');
  if (p.value.diskGuid !== b.value.diskGuid) return bad('the primary and backup headers have different disk GUIDs');
  if (!primary.entries.equals(backup.entries)) return bad('the primary and backup partition entries differ');
  return p;
}

export interface GptPartition {
  /** 1-based, as the kernel numbers GPT partitions (sdX1 is entry 0). */
  readonly partition: number;
  readonly guid: string;
}

/** The used entries (non-zero type GUID) and their unique GUIDs. */
export function partitionGuids(h: GptHeader, entries: Buffer): GptPartition[] {
  const out: GptPartition[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const e = i * h.entrySize;
    if (e + 32 > entries.length) break;
    if (entries.subarray(e, e + 16).every((x) => x === 0)) continue;
    out.push({ partition: i + 1, guid: formatGuid(entries.subarray(e + 16, e + 32)) });
  }
  return out;
}

export type GuidEdit = { readonly disk: string } | { readonly partition: number; readonly guid: string };

/** A copy of the table with one GUID changed and both CRCs recomputed; `copy` is not modified. */
export function editCopy(copy: GptCopy, edit: GuidEdit): GptCopy {
  const h = checkCopy(copy);
  if (!h.ok) throw new Error(`GPT: ${h.reason}`);
  const header = Buffer.from(copy.header);
  const entries = Buffer.from(copy.entries);
  if ('disk' in edit) encodeGuid(edit.disk).copy(header, 56);
  else {
    const at = (edit.partition - 1) * h.value.entrySize;
    if (!Number.isInteger(edit.partition) || edit.partition < 1 || edit.partition > h.value.entryCount || entries.subarray(at, at + 16).every((x) => x === 0)) {
      throw new Error(`GPT: no partition ${edit.partition}`);
    }
    encodeGuid(edit.guid).copy(entries, at + 16);
    header.writeUInt32LE(crc32(entries), 88);
  }
  header.writeUInt32LE(0, 16);
  header.writeUInt32LE(headerCrc(header, h.value.headerSize), 16);
  return { header, entries };
}
