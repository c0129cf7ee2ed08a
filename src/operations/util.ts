/** Small helpers shared by operations. */
import type { GuestReader } from '../core/backend.js';
import type { WriteChange, DeleteChange } from '../core/file-change.js';
import { globMatcher, hasGlobMagic } from '../util/glob.js';

export const ROOT = { uid: 0, gid: 0 } as const;

export function write(source: string, path: string, content: string | Buffer, mode: number, extra: Partial<WriteChange> = {}): WriteChange {
  return { op: 'write', source, path, content: Buffer.isBuffer(content) ? content : Buffer.from(content), mode, uid: 0, gid: 0, ...extra };
}

export function del(source: string, path: string, reason?: string, recursive = false): DeleteChange {
  return { op: 'delete', source, path, reason, ...(recursive ? { recursive } : {}) };
}

/** Text of a file; undefined when absent or a directory (/etc/sysconfig/network is a file on rhel, a directory on suse). */
export async function readText(guest: GuestReader, path: string): Promise<string | undefined> {
  if ((await guest.stat(path))?.type === 'dir') return undefined;
  const b = await guest.readFile(path);
  return b === null ? undefined : b.toString('utf8');
}

/** Mode of an existing file, to keep it when rewriting one line of it. */
export async function modeOr(guest: GuestReader, path: string, fallback: number): Promise<number> {
  return (await guest.stat(path))?.mode ?? fallback;
}

export async function exists(guest: GuestReader, path: string): Promise<boolean> {
  return (await guest.lstat(path)) !== null;
}

/** systemd is the init when its binary is present (the guest never runs here). */
export async function hasSystemd(guest: GuestReader): Promise<boolean> {
  for (const p of ['/usr/lib/systemd/systemd', '/lib/systemd/systemd']) if (await guest.stat(p)) return true;
  return false;
}

/**
 * Expand a glob inside the guest, one path segment at a time (fnmatch dialect:
 * `*` takes dotfiles too, as `/tmp/*` must); sorted, existing paths only.
 */
export async function guestGlob(guest: GuestReader, pattern: string): Promise<string[]> {
  let paths = ['/'];
  for (const seg of pattern.split('/').filter(Boolean)) {
    if (!hasGlobMagic(seg)) {
      const next: string[] = [];
      for (const p of paths) {
        const candidate = p === '/' ? `/${seg}` : `${p}/${seg}`;
        if (await guest.lstat(candidate)) next.push(candidate);
      }
      paths = next;
      continue;
    }
    const match = globMatcher(seg, 'fnmatch');
    const next: string[] = [];
    for (const p of paths) {
      if ((await guest.stat(p))?.type !== 'dir') continue;
      for (const name of (await guest.readdir(p)) ?? []) if (name !== '.' && name !== '..' && match(name)) next.push(p === '/' ? `/${name}` : `${p}/${name}`);
    }
    paths = next;
  }
  return paths.sort();
}
