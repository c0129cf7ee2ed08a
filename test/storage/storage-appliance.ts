/**
 * One appliance for the storage specs that work inside one (new-uuids' read
 * back, rollback's device changes): launched on first use with every drive
 * they need, and closed by a root-level hook after the last spec of the
 * process. Drive 0 (/dev/sda) is an overlay of the multi-filesystem image
 * for rollback, writable; drive 1 (/dev/sdb), when asked for, is the applied
 * clone of new-uuids, read-only. The two disks never share an identity
 * (the clone has new ones everywhere), so findfs and mounts stay
 * unambiguous. Each case mounts what it reads and unmounts everything after.
 */
import { GuestfsSession } from '../../src/backends/guestfs/session.js';
import { overlayOf, tempDir } from '../helpers/images.js';
import { multiFsImage } from './storage-image.js';

export interface StorageAppliance {
  readonly session: GuestfsSession;
  /** The writable overlay at /dev/sda. */
  readonly scratch: string;
  /** The read-only clone at /dev/sdb, when one was given at launch. */
  readonly clone?: string;
}

const opened: Array<Promise<StorageAppliance>> = [];

async function launch(clone?: string): Promise<StorageAppliance> {
  const scratch = await overlayOf((await multiFsImage()).image, await tempDir('ghostprep-storage-rb-'), 'rb');
  const drives = [{ path: scratch, format: 'qcow2', readonly: false }, ...(clone ? [{ path: clone, format: 'qcow2', readonly: true }] : [])];
  return { session: await GuestfsSession.open({ drives }), scratch, ...(clone && { clone }) };
}

/**
 * The shared appliance, launched with `clone` (read-only at /dev/sdb) when
 * the first caller gives one. A drive cannot be added to a running
 * appliance: a caller whose clone the shared one lacks (the specs ran in
 * another order) gets one of its own, laid out the same way.
 */
export async function storageAppliance(clone?: string): Promise<StorageAppliance> {
  if (!opened.length) opened.push(launch(clone));
  const shared = await opened[0]!;
  if (!clone || shared.clone === clone) return shared;
  const own = launch(clone);
  opened.push(own);
  return own;
}

after(async () => {
  const all = await Promise.all(opened.splice(0).map((p) => p.catch(() => undefined)));
  for (const a of all) await a?.session.close();
});
