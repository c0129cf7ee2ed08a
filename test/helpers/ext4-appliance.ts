/**
 * One appliance for the spec files that need nothing but overlays of the
 * ext4-gpt test image and a running guestfish: GuestfsGuest
 * (guest.test), openDrive with host-read partition numbers
 * (partition-table.test) and GuestfsSession's protocol (session.test). A
 * launch costs ~22 s of CPU under TCG, a command milliseconds.
 *
 * libguestfs takes no drive after launch, so the drives are fixed here, one
 * per use (`DRIVES`), each a fresh overlay. Mocha runs spec files one after
 * another: a spec mounts what it needs when it starts (`use`) and leaves
 * nothing mounted when it ends. session.test's timeout case kills the
 * appliance on purpose, as the last user of the group; whoever asks for it
 * after that (or finds it dead) gets a fresh one with fresh overlays. The
 * appliance still running when the process's tests end is closed by a
 * root-level `after` hook.
 */
import fs from 'node:fs/promises';
import { probeLvm } from '../../src/backends/guestfs/lvm-probe.js';
import { GuestfsSession, driveDevice, type DriveSpec } from '../../src/backends/guestfs/session.js';
import { overlayOf, tempDir, testImage } from './images.js';

/** The drives, in order: who uses each, and whether it is added read-only. */
export const DRIVES = {
  guest: { readonly: false },
  session: { readonly: false },
  'hint-a': { readonly: true },
  'hint-b': { readonly: true },
} as const;
export type DriveUse = keyof typeof DRIVES;

export interface SharedAppliance {
  readonly session: GuestfsSession;
  /** Every command line the session sent, in order (a spec looks at the part after its own start). */
  readonly commands: string[];
  /** Index of the drive of this use (driveDevice(index) names it in the appliance). */
  index(use: DriveUse): number;
  /** Host path of the drive of this use. */
  path(use: DriveUse): string;
  /** Its device in the appliance: /dev/sdX. */
  device(use: DriveUse): string;
  /**
   * Its partition numbers read on the host (probeLvm) before the launch, as
   * GuestfsBackend reads them: a writable drive of a running appliance is
   * locked against qemu-img.
   */
  partitions(use: DriveUse): readonly number[] | undefined;
}

let current: Promise<{ shared: SharedAppliance; dir: string }> | undefined;

async function launch(): Promise<{ shared: SharedAppliance; dir: string }> {
  const dir = await tempDir('ghostprep-shared-appliance-');
  try {
    const base = await testImage('ext4-gpt');
    const uses = Object.keys(DRIVES) as DriveUse[];
    const drives: DriveSpec[] = [];
    for (const use of uses) drives.push({ path: await overlayOf(base, dir, use), format: 'qcow2', readonly: DRIVES[use].readonly });
    const partitions = await Promise.all(drives.map(async (d) => (await probeLvm(d.path, d.format)).partitions));
    const commands: string[] = [];
    const session = await GuestfsSession.open({ drives, trace: (line) => commands.push(line) });
    const index = (use: DriveUse): number => uses.indexOf(use);
    return {
      dir,
      shared: {
        session, commands, index, path: (use) => drives[index(use)]!.path, device: (use) => driveDevice(index(use)),
        partitions: (use) => partitions[index(use)],
      },
    };
  } catch (err) {
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function dispose(p: Promise<{ shared: SharedAppliance; dir: string }>): Promise<void> {
  const s = await p.catch(() => undefined);
  if (!s) return;
  await s.shared.session.close();
  await fs.rm(s.dir, { recursive: true, force: true });
}

/** The shared appliance, nothing mounted; launched on first use, or again when the last one died. */
export async function sharedExt4Appliance(): Promise<SharedAppliance> {
  if (current) {
    const s = await current.catch(() => undefined);
    if (s?.shared.session.alive) {
      await s.shared.session.command('umount-all');
      return s.shared;
    }
    await dispose(current);
  }
  current = launch();
  return (await current).shared;
}

// Root-level hook (outside any describe): runs once, after every spec file of the process.
if (typeof after === 'function') {
  after(async function () {
    this.timeout(120_000);
    if (current) await dispose(current);
    current = undefined;
  });
}
