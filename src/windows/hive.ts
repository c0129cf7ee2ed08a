/**
 * Registry hives of a Windows guest: read (our regf reader over the hive
 * file) and edit (hivex, through `hivexsh -w` on the host).
 *
 * Why not guestfish's own hivex-node-set-value: guestfish passes its
 * BufferIn arguments as C strings, so a value holding a NUL byte cannot be
 * expressed at all ("invalid escape sequence in string" for \x00), and
 * every REG_SZ is UTF-16LE, i.e. full of NULs. So edits copy the hive out of
 * the guest, run hivexsh on the copy and write it back atomically (temp file
 * and rename in the same directory, like every other write), which works the
 * same for every backend (images, rootfs trees). hivexsh's `setval`
 * replaces every value of a key, so the values we keep are written back
 * byte for byte (hex:TYPE:BYTES); values we set go the same way, which also
 * keeps newlines or odd characters out of the script.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Guest, GuestReader } from '../core/backend.js';
import type { RegistryChange, RegistryEdit, RegistryValue } from '../core/file-change.js';
import { GuestError } from '../util/errors.js';
import { requireTool } from '../util/tools.js';
import { decodeValue, encodeValue, HiveReader, type RawValue } from './regf.js';

export const HIVEXSH_INSTALL = 'install it: apt-get install libhivex-bin (Debian/Ubuntu) or dnf install hivex';
/** Real SOFTWARE hives reach ~100 MB. */
export const MAX_HIVE_BYTES = 512 * 1024 * 1024;

const readers = new WeakMap<GuestReader, Map<string, Promise<HiveReader | null>>>();
const dirtyHives = new WeakSet<HiveReader>();

/** A hive whose base-block sequence numbers differ: Windows did not finish writing it (its logs hold the rest). */
export function hiveBytesDirty(bytes: Buffer): boolean {
  return bytes.length >= 12 && bytes.readUInt32LE(4) !== bytes.readUInt32LE(8);
}

/** Why a dirty hive is refused, the same for plan and apply. */
export function dirtyHiveMessage(hivePath: string): string {
  return `${hivePath}: the registry hive is dirty (its sequence numbers differ: Windows was not shut down cleanly, or it hibernated / used fast startup); boot the master and shut it down fully (shutdown /s /t 0, not a fast-startup shutdown) first, or its transaction logs could undo these edits`;
}

/** Whether the hive read by readHive was dirty. */
export function isDirtyHive(hive: HiveReader): boolean {
  return dirtyHives.has(hive);
}

/** Refuse, in the plan already, to edit a dirty hive (readHive's parse of `hivePath`). */
export async function assertCleanHive(guest: GuestReader, hivePath: string): Promise<void> {
  const hive = await readHive(guest, hivePath);
  if (hive && isDirtyHive(hive)) throw new GuestError(dirtyHiveMessage(hivePath), hivePath);
}

/** The hive at `hivePath`, parsed once per guest object; null when the file is absent. */
export function readHive(guest: GuestReader, hivePath: string): Promise<HiveReader | null> {
  let byPath = readers.get(guest);
  if (!byPath) readers.set(guest, (byPath = new Map()));
  let p = byPath.get(hivePath);
  if (!p) {
    p = (async () => {
      const bytes = await guest.readFile(hivePath, { maxBytes: MAX_HIVE_BYTES });
      if (!bytes) return null;
      try {
        const hive = new HiveReader(bytes);
        if (hiveBytesDirty(bytes)) dirtyHives.add(hive);
        return hive;
      } catch (err) {
        throw new GuestError(`${hivePath}: cannot read the registry hive: ${(err as Error).message}`, hivePath, { cause: err });
      }
    })();
    byPath.set(hivePath, p);
  }
  return p;
}

/** Forget parsed hives of this guest (after writing them). */
export function forgetHives(guest: GuestReader): void {
  readers.delete(guest);
}

/** Current typed value (undefined: absent; a raw value of another type counts as different). */
export function currentValue(hive: HiveReader | null, key: string, name: string): RegistryValue | RawValue | undefined {
  const raw = hive?.value(key, name);
  if (!raw) return undefined;
  return decodeValue(raw) ?? raw;
}

export function sameValue(a: RegistryValue | RawValue | undefined, b: RegistryValue | null): boolean {
  if (a === undefined || b === null) return a === undefined && b === null;
  if ('data' in a) return false;
  return a.type === b.type && JSON.stringify(a.value) === JSON.stringify(b.value);
}

/** The edits that would change something in `hive`. */
export function pendingEdits(hive: HiveReader | null, edits: readonly RegistryEdit[]): RegistryEdit[] {
  return edits.filter((e) => !sameValue(currentValue(hive, e.key, e.name), e.value));
}

// ---- .reg text (the plan shows registry changes as a diff of these) ------

function regString(s: string): string {
  return '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r?\n/g, '\\n') + '"';
}

function hexBytes(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(',');
}

export function regValueText(v: RegistryValue | RawValue): string {
  if ('data' in v) return `hex(${v.type.toString(16)}):${hexBytes(v.data)}`;
  switch (v.type) {
    case 'sz': return regString(v.value);
    case 'dword': return `dword:${(v.value >>> 0).toString(16).padStart(8, '0')}`;
    case 'expand_sz': return `hex(2):${hexBytes(encodeValue(v).data)}  ; ${regString(v.value)}`;
    case 'multi_sz': return `hex(7):${hexBytes(encodeValue(v).data)}  ; ${v.value.map(regString).join(' ')}`;
  }
}

/**
 * .reg-style text of the keys `edits` touch: with `hive`, their current
 * values there ("before"); without, the values the edits set ("after").
 * Keys in edit order, values sorted by name; a missing value is left out.
 */
export function regText(root: string, edits: readonly RegistryEdit[], hive: HiveReader | null, after: boolean): string {
  const keys = new Map<string, Map<string, string>>();
  for (const e of edits) {
    if (!keys.has(e.key)) keys.set(e.key, new Map());
    const v = after ? e.value : currentValue(hive, e.key, e.name);
    if (v !== undefined && v !== null) keys.get(e.key)!.set(e.name, regValueText(v));
    else keys.get(e.key)!.delete(e.name);
  }
  let out = '';
  for (const [key, values] of keys) {
    const exists = after || hive?.key(key) !== undefined;
    if (!exists) continue;
    out += `[${root}\\${key}]\n`;
    for (const name of [...values.keys()].sort()) out += `${name === '' ? '@' : regString(name)}=${values.get(name)}\n`;
    out += '\n';
  }
  return out;
}

// ---- editing -------------------------------------------------------------

function hexArg(raw: RawValue): string {
  return `hex:${raw.type}:${hexBytes(raw.data)}`;
}

function safeLine(s: string, what: string): string {
  if (/[\r\n\0]/.test(s) || s === '@') throw new GuestError(`registry ${what} ${JSON.stringify(s)} cannot be edited through hivexsh`);
  return s;
}

/**
 * The hivexsh script for `edits` on `hive`: keys created where missing,
 * then every touched key's values rewritten in full (setval replaces all).
 */
export function hivexshScript(hive: HiveReader, edits: readonly RegistryEdit[]): string {
  const lines: string[] = [];
  const byKey = new Map<string, RegistryEdit[]>();
  for (const e of edits) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e]);
  for (const [key, keyEdits] of byKey) {
    const parts = key.split('\\').filter(Boolean).map((p) => safeLine(p, 'key'));
    lines.push('cd \\ ');
    let node = hive.root as ReturnType<HiveReader['child']>;
    for (const part of parts) {
      node = node ? hive.child(node, part) : undefined;
      if (!node) lines.push(`add ${part}`);
      lines.push(`cd ${part}`);
    }
    const values = new Map<string, RawValue>();
    if (node) for (const [n, v] of hive.values(node)) values.set(n, v);
    for (const e of keyEdits) {
      for (const n of [...values.keys()]) if (n.toUpperCase() === e.name.toUpperCase()) values.delete(n);
      if (e.value) values.set(e.name, encodeValue(e.value));
    }
    lines.push(`setval ${values.size}`);
    for (const [n, v] of values) lines.push(n === '' ? '@' : safeLine(n, 'value name'), hexArg(v));
  }
  lines.push('commit');
  return lines.join('\n') + '\n';
}

/** Apply a registry change to the guest: copy the hive out, edit it with hivexsh, write it back atomically. */
export async function applyRegistryChange(guest: Guest, c: RegistryChange): Promise<void> {
  const hivexsh = requireTool('hivexsh', HIVEXSH_INSTALL);
  const bytes = await guest.readFile(c.path, { maxBytes: MAX_HIVE_BYTES });
  if (!bytes) throw new GuestError(`${c.path}: registry hive not found`, c.path);
  const hive = new HiveReader(bytes);
  if (hiveBytesDirty(bytes)) throw new GuestError(dirtyHiveMessage(c.path), c.path);
  const edits = pendingEdits(hive, c.edits);
  if (!edits.length) return;
  const st = await guest.stat(c.path);
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ghostprep-hive-'));
  try {
    const file = path.join(dir, 'hive');
    const script = path.join(dir, 'edit.hivexsh');
    await fs.writeFile(file, bytes, { mode: 0o600 });
    await fs.writeFile(script, hivexshScript(hive, edits), { mode: 0o600 });
    // execa is loaded here, not at the top: validate and plan reach this module but never run hivexsh
    const { execa } = await import('execa');
    const r = await execa(hivexsh, ['-w', '-f', script, file], { reject: false, stdin: 'ignore' });
    if (r.exitCode !== 0 || /error|fail/i.test(r.stderr)) throw new GuestError(`${c.path}: hivexsh failed: ${r.stderr.trim() || `exit code ${r.exitCode}`}`, c.path);
    const edited = await fs.readFile(file);
    const check = pendingEdits(new HiveReader(edited), edits);
    if (check.length) throw new GuestError(`${c.path}: hivexsh did not set ${check.map((e) => `${e.key}\\${e.name}`).join(', ')}`, c.path);
    await guest.writeFile(c.path, edited, { mode: st?.mode ?? 0o777, uid: st?.uid ?? 0, gid: st?.gid ?? 0 });
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
    forgetHives(guest);
  }
}

/** Read a registry change back: the problems (empty when every value is there). */
export async function verifyRegistryChange(guest: GuestReader, c: RegistryChange): Promise<string[]> {
  forgetHives(guest);
  const hive = await readHive(guest, c.path);
  if (!hive) return [`${c.path} is missing`];
  return pendingEdits(hive, c.edits).map((e) => `${c.root}\\${e.key}\\${e.name} is not ${e.value ? regValueText(e.value) : 'deleted'}`);
}
