/**
 * A LUKS identity of the clone's own, inside the appliance: a new LUKS UUID
 * (what `cryptsetup luksUUID --uuid` does), a passphrase of its own in a
 * free key slot (`luks-add-key`), and the master's key slots removed
 * (`luks-kill-slot`, with the clone's passphrase).
 *
 * libguestfs reads a LUKS UUID (`luks-uuid`) but cannot set one, so the
 * header is edited in place as cryptsetup does: read with `pread-device`,
 * the UUID field (40 bytes at offset 168) replaced, and for LUKS2 the header
 * checksum recomputed over the binary header and its JSON area, in both the
 * primary and the secondary header; written back with `pwrite-device` (only
 * the changed bytes), then read back with `luks-uuid`.
 *
 * The volume key stays the master's: every clone's data is encrypted with
 * the same key, and the key slots only wrap it. Giving each clone its own
 * volume key is `cryptsetup reencrypt`, which libguestfs has no call for
 * (docs/storage-lvm-luks.md).
 *
 * Passphrases reach guestfish on its stdin (session.commandWithKey), never
 * in an argument, an error or a trace.
 */
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { errorMessage, GuestError } from '../../util/errors.js';
import type { LuksIdentitySpec } from '../../core/device-identity.js';
import { GuestfsError, type GuestfsSession } from './session.js';

const MAGIC = Buffer.from('LUKS\xba\xbe', 'latin1');
const MAGIC2 = Buffer.from('SKUL\xba\xbe', 'latin1');
const UUID_AT = 168;
const UUID_LEN = 40;
const CSUM_AT = 448;
const CSUM_LEN = 64;
const BINARY_HEADER = 4096;
const LUKS1_SLOTS = 8;
const LUKS1_SLOT_ACTIVE = 0x00ac71f3;
/** cryptsetup's limit for a LUKS2 metadata area (binary header + JSON). */
const LUKS2_MAX_HDR = 4 * 1024 * 1024;

export interface LuksHeader {
  readonly version: 1 | 2;
  readonly uuid: string;
  /** LUKS2: size of one header copy (binary header + JSON area); LUKS1: 4096 (what is read). */
  readonly hdrSize: number;
  readonly checksumAlg: string;
  /** Key slots in use. */
  readonly activeSlots: readonly number[];
  /** Slots the format has room for (LUKS1: 8; LUKS2: 32). */
  readonly slotCount: number;
}

function cString(buf: Buffer, at: number, len: number): string {
  return buf.toString('latin1', at, at + len).replace(/\0.*$/s, '');
}

/** The fields of a LUKS header ghostprep needs; `buf` starts at the header (the whole copy for LUKS2's slots). */
export function parseLuksHeader(buf: Buffer): LuksHeader | undefined {
  if (buf.length < 592 || !buf.subarray(0, 6).equals(MAGIC)) return undefined;
  const version = buf.readUInt16BE(6);
  const uuid = cString(buf, UUID_AT, UUID_LEN);
  if (version === 1) {
    const activeSlots: number[] = [];
    for (let i = 0; i < LUKS1_SLOTS; i++) if (buf.readUInt32BE(208 + 48 * i) === LUKS1_SLOT_ACTIVE) activeSlots.push(i);
    return { version: 1, uuid, hdrSize: BINARY_HEADER, checksumAlg: '', activeSlots, slotCount: LUKS1_SLOTS };
  }
  if (version !== 2) return undefined;
  const hdrSize = Number(buf.readBigUInt64BE(8));
  const checksumAlg = cString(buf, 72, 32);
  let activeSlots: number[] = [];
  if (buf.length >= hdrSize) {
    const json = JSON.parse(cString(buf, BINARY_HEADER, hdrSize - BINARY_HEADER)) as { keyslots?: Record<string, unknown> };
    activeSlots = Object.keys(json.keyslots ?? {}).map(Number).sort((a, b) => a - b);
  }
  return { version: 2, uuid, hdrSize, checksumAlg, activeSlots, slotCount: 32 };
}

/** LUKS2 header checksum: hash of the copy (binary header with its checksum field zeroed, then the JSON area). */
export function luks2Checksum(copy: Buffer, alg: string): Buffer {
  const zeroed = Buffer.from(copy);
  zeroed.fill(0, CSUM_AT, CSUM_AT + CSUM_LEN);
  const digest = createHash(alg).update(zeroed).digest();
  const out = Buffer.alloc(CSUM_LEN);
  digest.copy(out);
  return out;
}

/** A header copy with `uuid` (and, LUKS2, its checksum) replaced; everything else byte for byte. */
export function withUuid(copy: Buffer, uuid: string): Buffer {
  const h = parseLuksHeader(copy);
  if (!h) throw new RangeError('not a LUKS header');
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uuid)) throw new RangeError(`not a UUID: ${uuid}`);
  const out = Buffer.from(copy);
  out.fill(0, UUID_AT, UUID_AT + UUID_LEN);
  out.write(uuid, UUID_AT, 'latin1');
  if (h.version === 2) luks2Checksum(out.subarray(0, h.hdrSize), h.checksumAlg).copy(out, CSUM_AT);
  return out;
}

export interface LuksIdentityChange {
  readonly device: string;
  readonly uuidFrom: string;
  readonly uuidTo: string;
  /** Slot of the clone's own passphrase, when one was added. */
  readonly keySlot?: number;
  /** The master's slots removed. */
  readonly removedSlots: readonly number[];
}

async function readDevice(session: GuestfsSession, device: string, size: number, offset: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let at = 0; at < size;) {
    const n = Math.min(1024 * 1024, size - at);
    const chunk = await session.command('pread-device', [device, n, offset + at]);
    if (!chunk.length) break;
    parts.push(chunk);
    at += chunk.length;
  }
  return Buffer.concat(parts);
}

async function readHeader(session: GuestfsSession, device: string, offset: number, image: string): Promise<{ header: LuksHeader; copy: Buffer }> {
  const head = await readDevice(session, device, BINARY_HEADER, offset);
  const first = parseLuksHeader(head);
  const secondMagic = offset > 0 && head.subarray(0, 6).equals(MAGIC2);
  if (!first && !secondMagic) throw new GuestError(`${image}: ${device}: no LUKS header at offset ${offset}`, image);
  const hdrSize = first?.version === 2 || secondMagic ? Number(head.readBigUInt64BE(8)) : BINARY_HEADER;
  if (hdrSize < BINARY_HEADER || hdrSize > LUKS2_MAX_HDR) throw new GuestError(`${image}: ${device}: LUKS2 header size ${hdrSize} is out of range`, image);
  const copy = hdrSize > BINARY_HEADER ? await readDevice(session, device, hdrSize, offset) : head;
  // The secondary LUKS2 header has its own magic; parse it as a primary one.
  const parsed = parseLuksHeader(secondMagic ? Buffer.concat([MAGIC, copy.subarray(6)]) : copy);
  if (!parsed) throw new GuestError(`${image}: ${device}: unreadable LUKS header at offset ${offset}`, image);
  return { header: parsed, copy };
}

/**
 * Write the binary header (4096 bytes) of one copy: through a host file and
 * `upload-offset`, because a checksum may hold NUL bytes, which no guestfish
 * argument can carry. The binary header holds no secret (UUID, salt, checksum).
 */
async function writeBinaryHeader(session: GuestfsSession, device: string, offset: number, header: Buffer): Promise<void> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ghostprep-luks-'));
  try {
    const file = path.join(dir, 'header');
    await fs.writeFile(file, header.subarray(0, BINARY_HEADER), { mode: 0o600 });
    await session.command('upload-offset', [file, device, offset]);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Set a new UUID in every header copy of `device`; returns the old and new UUID. */
export async function setLuksUuid(session: GuestfsSession, device: string, uuid: string, image: string): Promise<{ from: string; to: string }> {
  const primary = await readHeader(session, device, 0, image);
  const copies = [{ offset: 0, copy: primary.copy }];
  if (primary.header.version === 2) {
    const second = await readHeader(session, device, primary.header.hdrSize, image);
    copies.push({ offset: primary.header.hdrSize, copy: second.copy });
  }
  for (const { offset, copy } of copies) {
    const secondary = offset > 0;
    // withUuid parses a primary header: give the secondary one the primary magic, then put its own back.
    const asPrimary = secondary ? Buffer.concat([MAGIC, copy.subarray(6)]) : copy;
    const changed = withUuid(asPrimary, uuid);
    if (secondary) {
      MAGIC2.copy(changed, 0);
      const h = parseLuksHeader(asPrimary)!;
      // The checksum covers the copy as it is on disk, with its own magic.
      luks2Checksum(changed.subarray(0, h.hdrSize), h.checksumAlg).copy(changed, CSUM_AT);
    }
    if (!changed.subarray(0, BINARY_HEADER).equals(copy.subarray(0, BINARY_HEADER))) await writeBinaryHeader(session, device, offset, changed);
  }
  // cryptsetup reads the header with O_DIRECT: the page cache must be on the disk first.
  await session.command('sync');
  await session.command('blockdev-flushbufs', [device]);
  const to = await session.text('luks-uuid', [device]);
  if (to !== uuid) throw new GuestError(`${image}: ${device}: the LUKS UUID reads back as ${to}, not ${uuid}`, image);
  return { from: primary.header.uuid, to };
}

/** Whether `key` opens `device` (opened read-only under a scratch name, then closed). */
async function opensWith(session: GuestfsSession, device: string, key: string): Promise<boolean> {
  const name = `gpcheck_${randomUUID().slice(0, 8)}`;
  try {
    await session.commandWithKey('cryptsetup-open', [device, name, { opt: 'readonly', value: true }], key, { timeoutMs: 10 * 60_000 });
  } catch (err) {
    if (!(err instanceof GuestfsError) || !session.alive) throw err;
    return false;
  }
  await session.command('cryptsetup-close', [`/dev/mapper/${name}`]);
  return true;
}

/** LUKS volumes of drive `index`: its partitions (or the whole drive) whose type is crypto_LUKS. */
export async function luksDevicesOf(session: GuestfsSession, device: string, partitions: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const d of partitions.length ? partitions : [device]) {
    let type = '';
    try { type = await session.text('vfs-type', [d]); } catch (err) { if (!(err instanceof GuestfsError) || !session.alive) throw err; }
    if (type === 'crypto_LUKS') out.push(d);
  }
  return out;
}

/**
 * The clone's LUKS identity on `device`: new UUID, its own passphrase in
 * the lowest free slot, the master's slots removed. `masterKeys` are tried
 * to add the new passphrase. Idempotent for keys: when `newKey` already
 * opens the volume and it has no other slot left to remove, nothing is
 * added or removed.
 */
export async function renewLuksIdentity(session: GuestfsSession, device: string, spec: LuksIdentitySpec, masterKeys: readonly string[], image: string): Promise<LuksIdentityChange> {
  const before = (await readHeader(session, device, 0, image)).header;
  // A clone its own passphrase opens already has its identity (a second apply): leave it.
  if (spec.newKey !== undefined && await opensWith(session, device, spec.newKey)) return { device, uuidFrom: before.uuid, uuidTo: before.uuid, removedSlots: [] };
  let keySlot: number | undefined;
  const removedSlots: number[] = [];
  if (spec.newKey !== undefined) {
    const free = Array.from({ length: before.slotCount }, (_, i) => i).find((i) => !before.activeSlots.includes(i));
    let added = false;
    let last = '';
    if (free === undefined) throw new GuestError(`${image}: ${device}: every LUKS key slot is in use; no room for the clone's passphrase`, image);
    for (const key of masterKeys) {
      try {
        // The slow part: the new slot's KDF runs under TCG.
        await session.commandWithKeys('luks-add-key', [device, free], [key, spec.newKey], { timeoutMs: 15 * 60_000 });
        added = true;
        break;
      } catch (err) {
        if (!(err instanceof GuestfsError) || !session.alive) throw err;
        last = err.stderr;
      }
    }
    if (!added) {
      throw new GuestError(`${image}: ${device}: cannot add the clone's LUKS passphrase: ${masterKeys.length ? 'no key file given opens the volume' : 'no key file given (--luks-key-file)'}${last && !/No key available/i.test(last) ? ` (${last.replace(/^luks_add_key: /, '')})` : ''}`, image);
    }
    keySlot = free;
    if (spec.removeMasterKeys) {
      for (const slot of before.activeSlots) {
        try {
          await session.commandWithKeys('luks-kill-slot', [device, slot], [spec.newKey], { timeoutMs: 15 * 60_000 });
          removedSlots.push(slot);
        } catch (err) {
          if (!(err instanceof GuestfsError) || !session.alive) throw err;
          throw new GuestError(`${image}: ${device}: removing the master's LUKS key slot ${slot} failed: ${errorMessage(err.stderr)}`, image, { cause: err });
        }
      }
    }
  }
  let uuidTo = before.uuid;
  if (spec.newUuid) uuidTo = (await setLuksUuid(session, device, randomUUID(), image)).to;
  return { device, uuidFrom: before.uuid, uuidTo, ...(keySlot !== undefined && { keySlot }), removedSlots };
}
