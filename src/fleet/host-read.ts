/**
 * A disk image's guest read host-side, the way audit reads clones: the
 * partition table and ext filesystems are read in this process, with no
 * appliance. Only a guest that opens exactly this way (an ext root on a
 * partition, its /etc, /usr and /var mounts placed) is read here; for any
 * other (LVM, LUKS, xfs or btrfs root, Windows, a journal to recover) and on
 * any read error the caller opens the image in an appliance instead, which
 * gives the same answer.
 */
import type { GuestReader, TargetSpec } from '../core/backend.js';
import { imageReader, readDiskIdentity } from '../audit/headers.js';
import { HostGuest } from '../audit/host-guest.js';

/** `read(guest)` on the image's guest read host-side; undefined when that cannot be done exactly (then use an appliance). */
export async function readHostSideGuest<T>(t: TargetSpec, read: (guest: GuestReader) => Promise<T>): Promise<{ value: T } | undefined> {
  if (t.kind === 'rootfs') return undefined;
  const r = imageReader(t.path, t.format ?? 'raw');
  try {
    const guest = await HostGuest.open(r.read, await readDiskIdentity(r.read));
    return guest ? { value: await read(guest) } : undefined;
  } catch {
    return undefined;
  } finally {
    await r.close().catch(() => undefined);
  }
}
