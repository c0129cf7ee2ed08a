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
 * Without `reencrypt` the volume key stays the master's: every clone's data
 * is encrypted with the same key, and the key slots only wrap it. With
 * `reencrypt`, `cryptsetup reencrypt` runs in the appliance (libguestfs has
 * no call for it: guestfish's `debug sh` runs it there), keeping only the
 * clone's key slot (docs/storage-lvm-luks.md, "Volume key").
 *
 * Passphrases reach guestfish on its stdin (session.commandWithKey), never
 * in an argument, an error or a trace. For `cryptsetup reencrypt` the
 * clone's passphrase goes to a file of the appliance's tmpfs (/run) through
 * `debug-upload` of a host file that only this process can read (in
 * /dev/shm when there is one) and that is removed as soon as it is copied;
 * the command line names the file, never its content.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { errorMessage, GuestError } from '../../util/errors.js';
import type { LuksIdentitySpec } from '../../core/device-identity.js';
import { GuestfsError, type GuestfsSession } from './session.js';
import { uploadBytes } from './device-bytes.js';

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
  /** LUKS2: a `cryptsetup reencrypt` was started and not finished (the header requires `online-reencrypt`). */
  readonly reencrypting: boolean;
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
    return { version: 1, uuid, hdrSize: BINARY_HEADER, checksumAlg: '', activeSlots, slotCount: LUKS1_SLOTS, reencrypting: false };
  }
  if (version !== 2) return undefined;
  const hdrSize = Number(buf.readBigUInt64BE(8));
  const checksumAlg = cString(buf, 72, 32);
  let activeSlots: number[] = [];
  let reencrypting = false;
  if (buf.length >= hdrSize) {
    const json = JSON.parse(cString(buf, BINARY_HEADER, hdrSize - BINARY_HEADER)) as { keyslots?: Record<string, { type?: string }>; config?: { requirements?: { mandatory?: unknown } } };
    // cryptsetup's reencryption keeps its state in a keyslot of type "reencrypt": not a passphrase slot
    activeSlots = Object.entries(json.keyslots ?? {}).filter(([, k]) => k?.type !== 'reencrypt').map(([n]) => Number(n)).sort((a, b) => a - b);
    const required = json.config?.requirements?.mandatory;
    reencrypting = Array.isArray(required) && required.some((r) => typeof r === 'string' && r.startsWith('online-reencrypt'));
  }
  return { version: 2, uuid, hdrSize, checksumAlg, activeSlots, slotCount: 32, reencrypting };
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
  /** Bytes of the volume re-encrypted with a volume key of the clone's own (storage.luks.reencrypt). */
  readonly reencryptedBytes?: number;
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
 * Write the binary header (4096 bytes) of one copy from a host file (a checksum
 * may hold NUL bytes). The binary header holds no secret (UUID, salt, checksum).
 */
async function writeBinaryHeader(session: GuestfsSession, device: string, offset: number, header: Buffer): Promise<void> {
  await uploadBytes(session, device, [{ offset, bytes: header.subarray(0, BINARY_HEADER) }]);
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

/**
 * Seconds of `cryptsetup reencrypt` per GiB of volume in a TCG appliance,
 * as measured on a loaded 2-core host (docs/storage-lvm-luks.md); used for
 * the plan's estimate and, with a wide margin, for the command's timeout.
 */
export const REENCRYPT_SECONDS_PER_GIB_TCG = 420;
const GiB = 1024 * 1024 * 1024;

/** The plan's words for a re-encryption of `bytes` under TCG. */
export function reencryptEstimate(bytes: number): string {
  const s = Math.max(1, Math.round((bytes / GiB) * REENCRYPT_SECONDS_PER_GIB_TCG));
  return `${(bytes / GiB).toFixed(2)} GiB, about ${s < 120 ? `${s} s` : `${Math.round(s / 60)} min`} under TCG`;
}

/** Index of the drive behind a guestfs device name (/dev/sdb3 -> 1) and its partition number. */
export function driveOf(device: string): { index: number; partition?: number } {
  const m = /^\/dev\/sd([a-z]+)(\d*)$/.exec(device);
  if (!m) throw new RangeError(`not a drive or partition name: ${device}`);
  let index = 0;
  for (const c of m[1]!) index = index * 26 + (c.charCodeAt(0) - 96);
  return { index: index - 1, ...(m[2] && { partition: Number(m[2]) }) };
}

/**
 * A `debug sh` script that finds `device` in the appliance and runs cryptsetup
 * on it. The kernel may name the appliance's disks in another order than
 * guestfs's API does (the daemon translates /dev/sdX), so the script finds the
 * drive by the serial libguestfs gives it (`hdN`) and checks the LUKS UUID
 * before touching it. Only plain words: guestfish would read `|` as a pipe to a
 * host command and splits its string lists on spaces.
 */
export function applianceScript(device: string, uuid: string, commands: readonly string[]): string {
  const { index, partition } = driveOf(device);
  const script = [
    `d=$(readlink -f /dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_hd${index})`,
    // braces: $d1 would be a variable of its own
    `dev=\${d}${partition ?? ''}`,
    `if ! test -b $dev; then echo drive ${index} not found in the appliance; exit 90; fi`,
    `if ! test $(cryptsetup luksUUID $dev) = ${uuid}; then echo $dev is not the LUKS volume ${uuid}; exit 91; fi`,
    ...commands,
  ].join('; ');
  if (/[|"'\\\n]/.test(script)) throw new RangeError(`unsafe appliance script: ${script}`);
  return script;
}

const cryptsetupChecked = new WeakMap<GuestfsSession, Promise<string>>();

/**
 * cryptsetup's version in the appliance, through `debug sh`; a GuestError
 * when this libguestfs has no debug commands (checked before anything is written).
 */
export function applianceCryptsetup(session: GuestfsSession, image: string): Promise<string> {
  let p = cryptsetupChecked.get(session);
  if (!p) {
    p = session.text('debug', ['sh', 'cryptsetup --version']).then((v) => v.trim(), (err: unknown) => {
      cryptsetupChecked.delete(session);
      if (!(err instanceof GuestfsError) || !session.alive) throw err;
      throw new GuestError(`${image}: storage.luks.reencrypt runs cryptsetup in the appliance through guestfish's debug commands (debug sh), which this libguestfs does not offer (${err.stderr.split('\n')[0]}); nothing was changed`, image, { cause: err });
    });
    cryptsetupChecked.set(session, p);
  }
  return p;
}

/**
 * Run `fn` with `key` in a file of the appliance's tmpfs (/run), removed
 * afterwards. The host copy lives in a directory only this process can read
 * (under /dev/shm when there is one: never on a disk) and is removed as soon
 * as guestfish has copied it.
 */
async function withKeyInAppliance<T>(session: GuestfsSession, key: string, fn: (file: string) => Promise<T>): Promise<T> {
  const inside = `/run/gpkey-${randomBytes(8).toString('hex')}`;
  const dir = await fs.mkdtemp(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'ghostprep-key-'));
  try {
    const file = path.join(dir, 'key');
    await fs.writeFile(file, key, { mode: 0o600 });
    await session.command('debug-upload', [file, inside, 0o600]);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  try {
    return await fn(inside);
  } finally {
    if (session.alive) await session.command('debug', ['sh', `rm -f ${inside}`]).catch(() => undefined);
  }
}

/**
 * `cryptsetup reencrypt` of `device` with the passphrase `key`: a new volume
 * key, every byte of the volume re-encrypted, only `key`'s slot kept (its
 * other slots wrapped the old volume key). `resume`: finish one that was
 * interrupted (LUKS2 keeps its progress in the header).
 */
async function reencrypt(session: GuestfsSession, device: string, header: LuksHeader, key: string, resume: boolean, image: string): Promise<number> {
  const bytes = Number(await session.text('blockdev-getsize64', [device]));
  // a wide margin over the measured rate: a loaded host is slower, never a reason to kill the appliance mid-way
  const timeoutMs = Math.max(20 * 60_000, Math.ceil((bytes / GiB) * REENCRYPT_SECONDS_PER_GIB_TCG * 4) * 1000);
  await withKeyInAppliance(session, key, async (file) => {
    // which slot the clone's passphrase opens: the one kept
    let slot: number | undefined;
    if (!resume) {
      const test = await session.text('debug', ['sh', applianceScript(device, header.uuid, [`cryptsetup open --test-passphrase -v --key-file ${file} $dev 2>&1`])]);
      const m = /Key slot (\d+) unlocked/.exec(test);
      if (!m) throw new GuestError(`${image}: ${device}: cannot tell which key slot the clone's passphrase opens`, image);
      slot = Number(m[1]);
    }
    const args = ['--batch-mode', resume ? '--resume-only' : `--key-slot ${slot}`, `--key-file ${file}`];
    try {
      await session.command('debug', ['sh', applianceScript(device, header.uuid, [`cryptsetup reencrypt ${args.join(' ')} $dev 2>&1`])], { timeoutMs });
      // cryptsetup writes the header with O_DIRECT: drop the page cache before it is read again
      await session.command('blockdev-flushbufs', [device]);
    } catch (err) {
      if (!(err instanceof GuestfsError)) throw err;
      let state = 'the appliance died';
      if (session.alive) {
        await session.command('blockdev-flushbufs', [device]).catch(() => undefined);
        const after = (await readHeader(session, device, 0, image)).header;
        state = after.reencrypting ? 'the volume is left marked as being re-encrypted: the clone\'s passphrase opens it and the next apply finishes it' : 'nothing was re-encrypted';
      } else {
        state = 'the appliance is gone: the volume is left marked as being re-encrypted (the clone\'s passphrase opens it) and the next apply finishes it';
      }
      throw new GuestError(`${image}: ${device}: cryptsetup reencrypt failed (${state}): ${errorMessage(err.stderr || err.message)}`, image, { cause: err });
    }
  });
  return bytes;
}

/**
 * What a plan says of storage.luks.reencrypt on `device`: the volume's size and
 * the time it takes under TCG, or why apply will refuse it; nothing when an
 * earlier apply did it already (only the clone's passphrase opens it, one
 * slot, no re-encryption pending).
 */
export async function plannedReencrypt(session: GuestfsSession, device: string, spec: LuksIdentitySpec, image: string): Promise<string | undefined> {
  if (!spec.reencrypt || spec.newKey === undefined) return undefined;
  const h = (await readHeader(session, device, 0, image)).header;
  if (h.version === 1) return `storage.luks.reencrypt: ${device} is LUKS1: apply will refuse it (convert the master to LUKS2 first)`;
  if (!h.reencrypting && h.activeSlots.length === 1 && await opensWith(session, device, spec.newKey)) return undefined;
  const bytes = Number(await session.text('blockdev-getsize64', [device]));
  return `storage.luks.reencrypt: ${device} ${h.reencrypting ? 'has an unfinished re-encryption, which apply finishes' : 'will be re-encrypted with a volume key of its own'} (${reencryptEstimate(bytes)})`;
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
  if (spec.reencrypt) return renewWithVolumeKey(session, device, spec, masterKeys, image, before);
  // A clone its own passphrase opens already has its identity (a second apply): leave it.
  if (spec.newKey !== undefined && await opensWith(session, device, spec.newKey)) return { device, uuidFrom: before.uuid, uuidTo: before.uuid, removedSlots: [] };
  const keySlot = spec.newKey !== undefined ? await addKey(session, device, spec.newKey, masterKeys, image, before) : undefined;
  const removedSlots: number[] = [];
  if (spec.newKey !== undefined) {
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

/** Add `newKey` in the lowest free slot with the first master key that opens the volume; returns the slot. */
async function addKey(session: GuestfsSession, device: string, newKey: string, masterKeys: readonly string[], image: string, before: LuksHeader): Promise<number> {
  const free = Array.from({ length: before.slotCount }, (_, i) => i).find((i) => !before.activeSlots.includes(i));
  let last = '';
  if (free === undefined) throw new GuestError(`${image}: ${device}: every LUKS key slot is in use; no room for the clone's passphrase`, image);
  for (const key of masterKeys) {
    try {
      // The slow part: the new slot's KDF runs under TCG.
      await session.commandWithKeys('luks-add-key', [device, free], [key, newKey], { timeoutMs: 15 * 60_000 });
      return free;
    } catch (err) {
      if (!(err instanceof GuestfsError) || !session.alive) throw err;
      last = err.stderr;
    }
  }
  throw new GuestError(`${image}: ${device}: cannot add the clone's LUKS passphrase: ${masterKeys.length ? 'no key file given opens the volume' : 'no key file given (--luks-key-file)'}${last && !/No key available/i.test(last) ? ` (${last.replace(/^luks_add_key: /, '')})` : ''}`, image);
}

/**
 * storage.luks.reencrypt: the clone's passphrase added (unless it opens the
 * volume already), then `cryptsetup reencrypt` keeping only its slot, then
 * the new UUID. Each step leaves a volume that opens: before the re-encryption
 * with the master's and the clone's passphrase, during and after it with the
 * clone's (an interrupted one is finished by the next apply). Refused before
 * anything is written: LUKS1, no passphrase of the clone's own, no `debug sh`.
 * A clone its own passphrase opens, with no other slot left and no
 * re-encryption pending, was done by an earlier apply and is left alone.
 */
async function renewWithVolumeKey(session: GuestfsSession, device: string, spec: LuksIdentitySpec, masterKeys: readonly string[], image: string, before: LuksHeader): Promise<LuksIdentityChange> {
  const newKey = spec.newKey;
  if (newKey === undefined) throw new GuestError(`${image}: ${device}: storage.luks.reencrypt needs storage.luks.key: the re-encrypted volume opens with the clone's passphrase only`, image);
  if (before.version === 1) {
    throw new GuestError(`${image}: ${device}: storage.luks.reencrypt: this volume is LUKS1, which cryptsetup re-encrypts offline with a progress log kept outside the volume (lost with the appliance, so an interruption would lose data); convert the master to LUKS2 first (cryptsetup convert --type luks2)`, image);
  }
  await applianceCryptsetup(session, image);
  const unchanged = { device, uuidFrom: before.uuid, uuidTo: before.uuid, removedSlots: [] };
  let reencryptedBytes: number;
  if (before.reencrypting) {
    reencryptedBytes = await reencrypt(session, device, before, newKey, true, image);
  } else {
    const opens = await opensWith(session, device, newKey);
    if (opens && before.activeSlots.length === 1) return unchanged;
    if (!opens) await addKey(session, device, newKey, masterKeys, image, before);
    reencryptedBytes = await reencrypt(session, device, before, newKey, false, image);
  }
  const after = (await readHeader(session, device, 0, image)).header;
  if (after.reencrypting) throw new GuestError(`${image}: ${device}: cryptsetup reencrypt returned with the re-encryption unfinished; the next apply finishes it`, image);
  if (after.activeSlots.length !== 1) throw new GuestError(`${image}: ${device}: after cryptsetup reencrypt the volume has key slots ${after.activeSlots.join(', ')}, not only the clone's`, image);
  const removedSlots = before.activeSlots.filter((n) => !after.activeSlots.includes(n));
  let uuidTo = before.uuid;
  if (spec.newUuid) uuidTo = (await setLuksUuid(session, device, randomUUID(), image)).to;
  // the slot the passphrase ends in: cryptsetup wraps the new volume key in a slot of its choosing
  return { device, uuidFrom: before.uuid, uuidTo, keySlot: after.activeSlots[0]!, removedSlots, reencryptedBytes };
}
