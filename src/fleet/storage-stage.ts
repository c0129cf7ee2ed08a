/**
 * The device stage of a machine's run (storage.newUuids): plan the device
 * changes beside the file changes, apply them in the appliance before the
 * file changes are committed, read them back, and undo them when the
 * machine is rolled back. Device changes come from the backend's
 * BlockDevices (storage/types.ts); a rootfs tree has none and is refused
 * before anything is written.
 */
import type { Guest, TargetSpec } from '../core/backend.js';
import { ROOTFS_REFUSAL, storagePlanOf } from '../operations/customize/storage-references.js';
import type { Profile } from '../core/profile.js';
import type { MachineReport } from '../report/report.js';
import { blockDevicesOf, describeDeviceChange, type DeviceChange } from '../storage/types.js';
import { sameId } from '../storage/uuids.js';
import { GhostprepError } from '../util/errors.js';

/** The device changes of one machine (empty unless its profile asks for them). */
export async function planDeviceStage(guest: Guest | undefined, t: TargetSpec, profile: Profile, machine: string): Promise<DeviceChange[]> {
  if (profile.storage?.newUuids !== true || !guest) return [];
  if (t.kind === 'rootfs') throw new GhostprepError(ROOTFS_REFUSAL);
  const plan = storagePlanOf(guest, machine);
  if (!plan) throw new GhostprepError(ROOTFS_REFUSAL);
  return [...(await plan).changes];
}

/**
 * Apply the device changes (the guest is unmounted for them and mounted
 * again); a failure part-way undoes the ones made and throws.
 * Returns the function that undoes them all (rollback of the machine).
 */
export async function applyDeviceStage(guest: Guest, changes: readonly DeviceChange[]): Promise<() => Promise<string[]>> {
  if (!changes.length) return async () => [];
  const devices = blockDevicesOf(guest);
  if (!devices) throw new GhostprepError(ROOTFS_REFUSAL);
  await devices.apply(changes);
  const undo = (devices as { rollback?: (done: readonly DeviceChange[]) => Promise<string[]> }).rollback;
  return async () => (undo ? undo.call(devices, changes) : changes.map((c) => `${c.op} ${c.device}: cannot be undone`));
}

/** Read every device change back; one message per mismatch. */
export async function verifyDeviceStage(guest: Guest, changes: readonly DeviceChange[]): Promise<string[]> {
  const devices = blockDevicesOf(guest);
  if (!changes.length || !devices) return [];
  const problems: string[] = [];
  for (const c of changes) {
    const now = await devices.read(c);
    if (!sameId(now, c.to)) problems.push(`${c.device}: ${c.op} reads back ${now || '(none)'}, wanted ${c.to}`);
  }
  return problems;
}

/** The report's entries for device changes. */
export function reportDeviceChanges(changes: readonly DeviceChange[]): Pick<MachineReport, 'deviceChanges'> {
  if (!changes.length) return {};
  return {
    deviceChanges: changes.map((c) => ({
      op: c.op, device: c.device, from: c.from, to: c.to,
      ...(c.op === 'fs-uuid' && { fstype: c.fstype }),
      ...(c.op === 'part-guid' && { partnum: c.partnum, disk: c.disk }),
    })),
  };
}

/** The plan text's lines for device changes. */
export function deviceChangesText(changes: readonly DeviceChange[]): string {
  return changes.map((c) => describeDeviceChange(c) + '\n').join('');
}
