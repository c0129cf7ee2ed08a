/**
 * A new LVM identity for clones inside ONE appliance, as `vgimportclone`
 * gives one on a host: new PV UUIDs, a new VG UUID, optionally a new VG name.
 *
 * Clones of one LVM master carry the same PV and VG UUIDs, so LVM sees one
 * PV on N devices and refuses to activate it. Each clone is therefore
 * changed while LVM sees its drive only (`lvm-set-filter`): its VGs are
 * deactivated, `pvchange-uuid` each PV, `vgchange-uuid` and `vgrename` each
 * VG. Once every clone is done the filter is cleared (LVM rescans and
 * activates everything, now unique) and the guests are inspected as usual.
 * Each filter switch makes LVM rescan and activate (cost per clone: see
 * bench/results.md, "LVM fleet").
 */
import { errorMessage, GuestError } from '../../util/errors.js';
import type { LvmIdentitySpec } from '../../core/device-identity.js';
import { driveDevice, GuestfsError, type GuestfsSession } from './session.js';

export interface LvmIdentityJob {
  /** Drive index in the appliance. */
  readonly index: number;
  /** Names the drive in errors. */
  readonly image: string;
  readonly spec: LvmIdentitySpec;
}

export interface LvmIdentityChange {
  readonly pvs: ReadonlyArray<{ readonly device: string; readonly from: string; readonly to: string }>;
  readonly vgs: ReadonlyArray<{ readonly from: string; readonly to: string; readonly uuidFrom: string; readonly uuidTo: string }>;
}

/** What to do with one drive whose probe found `vgNames`: undefined when nothing (already done, or nothing asked). */
export function lvmWork(spec: LvmIdentitySpec, vgNames: readonly string[], image: string): { renames: Map<string, string>; newUuids: boolean } | undefined {
  if (!vgNames.length) return undefined;
  const renames = new Map<string, string>();
  if (spec.vgName !== undefined) {
    if (vgNames.length > 1) throw new GuestError(`${image}: storage.lvm.vgName renames the guest's volume group, but the image holds ${vgNames.length} (${vgNames.join(', ')})`, image);
    // Already renamed (a second apply): the clone's identity was made unique by the first.
    if (vgNames[0] === spec.vgName) return undefined;
    renames.set(vgNames[0]!, spec.vgName);
  }
  if (!renames.size && !spec.newUuids) return undefined;
  return { renames, newUuids: spec.newUuids };
}

/**
 * Give each job's drive its new LVM identity. Returns per drive index the
 * change made or the Error that stopped it (the other drives go on; a drive
 * that failed half way may hold new PV UUIDs and the old VG identity).
 * Leaves the LVM filter cleared and every VG of the appliance active.
 */
export async function renewLvmIdentities(session: GuestfsSession, jobs: ReadonlyArray<LvmIdentityJob & { readonly vgNames: readonly string[] }>): Promise<Map<number, LvmIdentityChange | Error>> {
  const out = new Map<number, LvmIdentityChange | Error>();
  const todo = jobs.flatMap((j) => {
    try {
      const w = lvmWork(j.spec, j.vgNames, j.image);
      return w ? [{ ...j, ...w }] : [];
    } catch (err) {
      out.set(j.index, err as Error);
      return [];
    }
  });
  if (!todo.length) return out;
  try {
    for (const j of todo) {
      if (!session.alive) break;
      try {
        out.set(j.index, await renewOne(session, j.index, j.renames, j.newUuids));
      } catch (err) {
        if (!(err instanceof GuestfsError) || !session.alive) throw err;
        out.set(j.index, new GuestError(`${j.image}: giving the clone its own LVM identity failed: ${err.stderr || errorMessage(err)}`, j.image, { cause: err }));
      }
    }
  } finally {
    if (session.alive) await showDrivesExcept(session, todo.filter((j) => !out.has(j.index) || out.get(j.index) instanceof Error).map((j) => j.index));
  }
  return out;
}

/**
 * Let LVM see every drive of the appliance again, except those whose identity
 * could not be renewed: such a clone still carries the master's PV UUIDs, and
 * with it in view LVM would refuse to activate every VG it duplicates (the
 * other clones' too). It fails alone; the others go on. (The filter names
 * whole drives only: a LUKS guest, whose PVs would sit on /dev/mapper, always
 * has an appliance of its own.)
 */
async function showDrivesExcept(session: GuestfsSession, failed: readonly number[]): Promise<void> {
  if (!failed.length) {
    await session.command('lvm-clear-filter');
    return;
  }
  const shown = session.drives.map((_, i) => i).filter((i) => !failed.includes(i)).map(driveDevice);
  // a guestfish string list: one argument, the devices separated by spaces
  if (shown.length) await session.command('lvm-set-filter', [shown.join(' ')]);
}

async function renewOne(session: GuestfsSession, index: number, renames: ReadonlyMap<string, string>, newUuids: boolean): Promise<LvmIdentityChange> {
  // LVM now sees this drive only (its partitions included); the filter rescans and activates it.
  await session.command('lvm-set-filter', [driveDevice(index)]);
  const pvNames = await session.lines('pvs');
  const vgNames = await session.lines('vgs');
  for (const vg of vgNames) await session.command('vg-activate', [false, vg]);
  const pvs: Array<{ device: string; from: string; to: string }> = [];
  const vgs: Array<{ from: string; to: string; uuidFrom: string; uuidTo: string }> = [];
  for (const device of pvNames) {
    const from = await session.text('pvuuid', [device]);
    if (newUuids) await session.command('pvchange-uuid', [device]);
    pvs.push({ device, from, to: newUuids ? await session.text('pvuuid', [device]) : from });
  }
  for (const vg of vgNames) {
    const uuidFrom = await session.text('vguuid', [vg]);
    if (newUuids) await session.command('vgchange-uuid', [vg]);
    const to = renames.get(vg) ?? vg;
    if (to !== vg) await session.command('vgrename', [vg, to]);
    vgs.push({ from: vg, to, uuidFrom, uuidTo: newUuids ? await session.text('vguuid', [to]) : uuidFrom });
  }
  return { pvs, vgs };
}
