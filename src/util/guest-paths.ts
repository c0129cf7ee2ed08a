/**
 * Guest paths ghostprep never writes or deletes, whatever the guest holds:
 * its root, and the kernel's and the running system's virtual filesystems
 * (empty mount points in an image; anything written there is hidden at
 * boot, or lands on the host when a root tree is live). validate refuses
 * them where the profile names them; preflight refuses them in every plan,
 * also after links are resolved.
 */
import path from 'node:path/posix';

export const VIRTUAL_ROOTS = ['/proc', '/sys', '/dev', '/run'] as const;

/** The virtual root `p` lies in (itself or below), if any. */
export function virtualRootOf(p: string): string | undefined {
  return VIRTUAL_ROOTS.find((r) => p === r || p.startsWith(r + '/'));
}

/** Why a path named by a profile can never be written (`what`: "write" or "delete"); undefined when it may be. */
export function reservedGuestPath(p: string, what: 'write' | 'delete'): string | undefined {
  const n = path.normalize(p);
  if (n === '/' || /^\/+$/.test(n)) return `refusing to ${what} / (the guest's root)`;
  const root = virtualRootOf(n);
  if (root) return `refusing to ${what} under ${root} (a virtual filesystem of the running system)`;
  return undefined;
}
