/**
 * A disk image's guest read host-side, the way audit reads clones: the
 * partition table and the guest's filesystem are read in this process, with
 * no appliance. Two kinds of guest open this way: a Linux root on ext
 * (audit/host-guest.ts: its /etc, /usr and /var mounts placed) and a Windows
 * system volume on NTFS (audit/ntfs.ts). For any other guest (LVM, LUKS, xfs
 * or btrfs root, a journal to recover, a dirty or compressed NTFS) and on any
 * read error the caller opens the image in an appliance instead, which gives
 * the same answer.
 */
import type { GuestReader, TargetSpec } from '../core/backend.js';
import { imageReader, readDiskIdentity, type DiskIdentity, type Reader } from '../audit/headers.js';
import { HostGuest } from '../audit/host-guest.js';
import { NtfsGuest } from '../audit/ntfs.js';
import { detectWindows } from '../windows/detect.js';

/** Which guests to read host-side: Linux on ext (default yes), Windows on NTFS (default no). */
export interface HostSideKinds {
  readonly linux?: boolean;
  readonly windows?: boolean;
}

/**
 * `fn` on the disk's guest read host-side, or undefined when it cannot be read exactly
 * that way (then use an appliance). An error reading a Linux guest is thrown (audit
 * keeps it per target); anything the NTFS reader cannot read exactly gives undefined.
 */
export async function onHostSideGuest<T>(read: Reader, disk: DiskIdentity, fn: (g: GuestReader) => Promise<T>, kinds: HostSideKinds = {}): Promise<{ value: T } | undefined> {
  if (kinds.linux ?? true) {
    const linux = await HostGuest.open(read, disk);
    if (linux) return { value: await fn(linux) };
  }
  if (!kinds.windows) return undefined;
  try {
    const windows = await NtfsGuest.open(read, disk);
    if (!windows || !(await detectWindows(windows))) return undefined;
    const value = await fn(windows);
    return windows.unsupported ? undefined : { value };
  } catch {
    return undefined;
  }
}

/** `read(guest)` on the image's guest read host-side; undefined when that cannot be done exactly (then use an appliance). */
export async function readHostSideGuest<T>(t: TargetSpec, read: (guest: GuestReader) => Promise<T>, kinds: HostSideKinds = {}): Promise<{ value: T } | undefined> {
  if (t.kind === 'rootfs') return undefined;
  const r = imageReader(t.path, t.format ?? 'raw');
  try {
    return await onHostSideGuest(r.read, await readDiskIdentity(r.read), read, kinds);
  } catch {
    return undefined;
  } finally {
    await r.close().catch(() => undefined);
  }
}
