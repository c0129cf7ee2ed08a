/**
 * Where a Windows guest keeps its system (C:\Windows and its registry hives), found
 * case-insensitively as NTFS names are: before the registry is read (src/windows/detect.ts)
 * and while inspecting a drive (src/backends/guestfs/os-inspect.ts).
 */
import path from 'node:path';
import type { GuestReader } from '../core/backend.js';

const posix = path.posix;

/** A directory entry of `dir` matching `name` case-insensitively (NTFS is case-insensitive, ntfs-3g is not). */
export async function findNoCase(guest: GuestReader, dir: string, name: string): Promise<string | undefined> {
  const entries = await guest.readdir(dir).catch(() => null);
  const hit = entries?.find((e) => e.toLowerCase() === name.toLowerCase());
  return hit === undefined ? undefined : posix.join(dir, hit);
}

export async function findPathNoCase(guest: GuestReader, parts: readonly string[], from = '/'): Promise<string | undefined> {
  let cur = from;
  for (const p of parts) {
    const next = await findNoCase(guest, cur, p);
    if (!next) return undefined;
    cur = next;
  }
  return cur;
}

const SYSTEM_ROOTS = ['Windows', 'WINNT', 'Win32', 'Win'];

/** The system root of a Windows guest mounted at /: a directory with System32/config/SYSTEM and SOFTWARE. */
export async function findSystemRoot(guest: GuestReader): Promise<{ root: string; system: string; software: string } | undefined> {
  for (const name of SYSTEM_ROOTS) {
    const root = await findNoCase(guest, '/', name);
    if (!root || (await guest.stat(root))?.type !== 'dir') continue;
    const config = await findPathNoCase(guest, ['System32', 'config'], root);
    if (!config) continue;
    const system = await findNoCase(guest, config, 'SYSTEM');
    const software = await findNoCase(guest, config, 'SOFTWARE');
    if (system && software && (await guest.stat(system))?.type === 'file' && (await guest.stat(software))?.type === 'file') return { root, system, software };
  }
  return undefined;
}

