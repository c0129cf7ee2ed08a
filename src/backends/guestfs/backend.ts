/**
 * GuestfsBackend: opens disk images and block devices through libguestfs.
 *
 * Targets are grouped into batches, one appliance (one GuestfsSession) per
 * batch, up to `jobs` appliances in parallel; inside an appliance the guests
 * are mounted and visited one at a time. Targets that could collide in one
 * appliance (same file, LVM clones sharing VG/PV names or UUIDs, see
 * lvm-probe.ts) are never batched together. A target that fails to open
 * fails alone: an appliance that does not launch is split in halves and
 * retried, an appliance that dies is relaunched for the targets not yet
 * visited.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import { errorMessage, GuestError } from '../../util/errors.js';
import type { Backend, GuestVisitor, OpenOptions, TargetSpec } from '../../core/backend.js';
import { imageFormat } from '../image-format.js';
import { GuestfsGuest } from './guest.js';
import { ApplianceLayout, mountGuest, mountLike, openDrive, type InspectedOs } from './os-inspect.js';
import { conflictKeys, conflictKeysRenewed, probeLvm } from './lvm-probe.js';
import { LUKS_KEY_ENV, luksKeysFor } from './luks.js';
import { driveDevice, GuestfsSession, type SessionOptions } from './session.js';
import { GuestfsBlockDevices } from './storage-identity.js';
import { lvmWork, renewLvmIdentities } from './lvm-identity.js';
import { luksDevicesOf, plannedReencrypt, renewLuksIdentity } from './luks-identity.js';
import type { DeviceIdentitySpec, DeviceRenames } from '../../core/device-identity.js';

import { DEFAULT_DRIVES_PER_APPLIANCE } from './defaults.js';

export { DEFAULT_DRIVES_PER_APPLIANCE };

export interface GuestfsBackendOptions {
  /** Upper bound of drives in one appliance (DEFAULT_DRIVES_PER_APPLIANCE). Batches are spread evenly over `jobs`. */
  readonly drivesPerAppliance?: number;
  readonly commandTimeoutMs?: number;
  readonly launchTimeoutMs?: number;
  readonly memsizeMb?: number;
  readonly verbose?: (msg: string) => void;
  readonly trace?: SessionOptions['trace'];
}

/** A guest opened by the guestfs backend; `os` is what inspection found. */
export class GuestfsImageGuest extends GuestfsGuest {
  /** The guest's disk for device changes (storage-identity.ts). */
  readonly blockDevices: GuestfsBlockDevices;
  deviceRenames?: DeviceRenames;
  constructor(session: GuestfsSession, description: string, readonly: boolean, readonly os: InspectedOs, layout?: ApplianceLayout) {
    super(session, description, readonly);
    this.blockDevices = new GuestfsBlockDevices(session, os, description, layout);
  }
}

/** What the device identity pass did to one drive of a batch. */
interface DriveIdentity {
  readonly renames: DeviceRenames;
  /** VG names on the drive now. */
  readonly vgNames: readonly string[];
  /** The clone's own LUKS passphrase, tried first when its volumes are opened. */
  readonly luksKey?: string;
}

export interface Prepared {
  readonly target: TargetSpec;
  readonly format: string;
  readonly keys: readonly string[];
  readonly vgNames: readonly string[];
  /** The UUIDs of the LUKS headers the probe saw (any: passphrases are needed to look inside). */
  readonly luksUuids: readonly string[];
  /** Partition numbers from the host-side table read (lvm-probe.ts), when exact. */
  readonly partitions?: readonly number[];
  /** The LVM/LUKS identity this clone is to get (OpenOptions.deviceIdentity). */
  readonly identity?: DeviceIdentitySpec;
}

/**
 * Layouts inspected in this process, by TargetSpec.layoutKey: the drive index
 * and what was found there. Deploy's clones of one base are all laid out alike.
 */
const layoutTemplates = new Map<string, { os: InspectedOs; index: number }>();

/** Memory one appliance needs with a full batch (qemu RSS 1.47 GB at 20 drives, measured), with headroom. */
const APPLIANCE_MEMORY = 2 * 2 ** 30;

/**
 * Appliances in parallel when --jobs is not given: one per core (a TCG
 * appliance keeps one core busy), as many as memory allows at ~2 GiB each.
 * See docs/design/guestfs.md, "Drives per appliance", for the measurements.
 */
export function defaultJobs(cpus = os.availableParallelism(), memoryBytes = os.totalmem()): number {
  return Math.max(1, Math.min(cpus, Math.floor(memoryBytes / APPLIANCE_MEMORY)));
}

/**
 * Batch size for `n` targets over `jobs` appliances: the fewest rounds of
 * `jobs` appliances with at most `max` drives each, spread evenly, so that
 * no appliance is left running a last small batch alone (100 targets, 2 jobs,
 * max 20: 6 batches of 17, not 20+20+20+20+20).
 */
export function batchSize(n: number, maxPerBatch: number, jobs = 1): number {
  const j = Math.max(1, jobs);
  const max = Math.max(1, maxPerBatch);
  if (n <= 0) return 1;
  const batches = j * Math.ceil(n / (j * max));
  return Math.max(1, Math.min(max, Math.ceil(n / batches)));
}

/** Split `items` in order into batches of batchSize(…) (deploy: restore and customize batch by batch). */
export function splitBatches<T>(items: readonly T[], maxPerBatch: number, jobs = 1): T[][] {
  const size = batchSize(items.length, maxPerBatch, jobs);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Greedy batching: each item goes to the first batch with room and no shared
 * key. Batch size is batchSize(n, max, jobs) so that `jobs` appliances
 * share the work evenly instead of one getting everything.
 */
export function scheduleBatches<T extends { readonly keys: readonly string[] }>(items: readonly T[], maxPerBatch: number, jobs = 1): T[][] {
  const size = batchSize(items.length, maxPerBatch, jobs);
  const batches: { items: T[]; keys: Set<string> }[] = [];
  for (const item of items) {
    let b = batches.find((x) => x.items.length < size && !item.keys.some((k) => x.keys.has(k)));
    if (!b) batches.push((b = { items: [], keys: new Set() }));
    b.items.push(item);
    for (const k of item.keys) b.keys.add(k);
  }
  return batches.map((b) => b.items);
}

/** Run `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new GuestError(errorMessage(err));
}

export class GuestfsBackend implements Backend {
  readonly name = 'guestfs';
  constructor(private readonly options: GuestfsBackendOptions = {}) {}

  async forEachGuest(targets: readonly TargetSpec[], options: OpenOptions, visit: GuestVisitor): Promise<void> {
    const run = new BatchRun(this.options, options, visit);
    const prepared: Prepared[] = [];
    await pool(targets, 4, async (t) => {
      try {
        const p = await prepareTarget(t, { identity: options.deviceIdentity?.(t), readonly: options.readonly });
        await refuseLockedLuks(p, options.luksKeyFiles);
        prepared.push(p);
      } catch (err) {
        await run.visitSafely(t, asError(err));
      }
    });
    // Keep the caller's order inside batches (prepare ran in parallel).
    prepared.sort((a, b) => targets.indexOf(a.target) - targets.indexOf(b.target));
    const jobs = Math.max(1, options.jobs ?? defaultJobs());
    const batches = scheduleBatches(prepared, this.options.drivesPerAppliance ?? DEFAULT_DRIVES_PER_APPLIANCE, jobs);
    this.options.verbose?.(`guestfs: ${prepared.length} image(s) in ${batches.length} appliance(s), ${jobs} in parallel`);
    await pool(batches, jobs, (b) => run.batch(b));
    run.finish();
  }
}

/** The header probe saw a LUKS volume: passphrases are needed to look inside. */
const isLuks = (p: Prepared): boolean => p.luksUuids.length > 0;

/**
 * A LUKS volume seen in the image's headers with no passphrase to try (no
 * key file, no passphrase of the clone's own): its machine would fail in the
 * appliance, so it fails here, before an appliance is launched for it.
 */
async function refuseLockedLuks(p: Prepared, keyFiles: readonly string[] | undefined): Promise<void> {
  if (!isLuks(p) || p.identity?.luks?.newKey !== undefined || (await luksKeysFor(keyFiles)).length) return;
  const uuids = p.luksUuids.length ? ` (LUKS UUID ${p.luksUuids.join(', ')})` : '';
  throw new GuestError(`${p.target.path}: a volume on its disk is encrypted with LUKS${uuids}: give its passphrase with --luks-key-file FILE (or ${LUKS_KEY_ENV}=FILE); no appliance was started for it`, p.target.path);
}

/** Format and conflict keys of one target; throws for targets this backend cannot open. */
export async function prepareTarget(t: TargetSpec, opts: { identity?: DeviceIdentitySpec | undefined; readonly?: boolean } = {}): Promise<Prepared> {
  if (t.kind === 'rootfs') throw new GuestError(`${t.path}: a rootfs target cannot be opened by the guestfs backend`, t.path);
  const format = t.kind === 'device' ? (t.format ?? 'raw') : imageFormat(t.path, t.format);
  let real: string;
  try {
    real = await fs.realpath(t.path);
  } catch (err) {
    throw new GuestError(`${t.path}: cannot open image: ${errorMessage(err)}`, t.path, { cause: err });
  }
  // Also validates the image early (a truncated qcow2 fails here, alone).
  let lvm;
  try {
    lvm = await probeLvm(real, format);
  } catch (err) {
    throw inUseError(t.path, err) ?? err;
  }
  const spec = opts.identity?.lvm;
  // Renewed in the appliance before anything else (lvm-identity.ts): only the new name can collide.
  const renewed = !opts.readonly && spec?.newUuids && spec.vgName !== undefined && lvm.vgNames.length === 1 && lvm.vgNames[0] !== spec.vgName;
  const keys = renewed ? conflictKeysRenewed(real, lvm, spec.vgName!) : conflictKeys(real, lvm);
  return { target: t, format, keys, vgNames: lvm.vgNames, luksUuids: lvm.luksUuids, ...(lvm.partitions && { partitions: lvm.partitions }), ...(opts.identity && { identity: opts.identity }) };
}

/**
 * qemu's image locking refused the image: another process (a running VM,
 * qemu-nbd, qemu-io…) has it open for writing. Said plainly, naming the image.
 */
export function inUseError(image: string, err: unknown): GuestError | undefined {
  const text = `${errorMessage(err)} ${String((err as { stderr?: unknown }).stderr ?? '')}`;
  if (!/Failed to get (shared )?"write" lock|Is another process using the image/.test(text)) return undefined;
  return new GuestError(`${image} is in use: another process (a running VM? qemu-nbd?) has it open for writing and holds qemu's "write" lock; shut it down or work on a copy (ghostprep never opens an image in use)`, image, { cause: err });
}

/** State of one forEachGuest call: visitor errors are collected and rethrown at the end. */
class BatchRun {
  private readonly visitorErrors: Error[] = [];
  /** Per target path: what the device identity pass did (or, read-only, would do). */
  private readonly identities = new Map<string, DriveIdentity>();
  /** Targets whose identity pass failed: reported, not visited. */
  private readonly identityFailed = new Set<string>();
  constructor(
    private readonly backend: GuestfsBackendOptions,
    private readonly open: OpenOptions,
    private readonly visit: GuestVisitor,
  ) {}

  private sessionOptions(batch: readonly Prepared[]): SessionOptions {
    const o = this.backend;
    return {
      drives: batch.map((p) => ({ path: p.target.path, format: p.format, readonly: this.open.readonly })),
      ...(o.commandTimeoutMs !== undefined && { commandTimeoutMs: o.commandTimeoutMs }),
      ...(o.launchTimeoutMs !== undefined && { launchTimeoutMs: o.launchTimeoutMs }),
      ...(o.memsizeMb !== undefined && { memsizeMb: o.memsizeMb }),
      ...(o.verbose && { verbose: o.verbose }),
      ...(o.trace && { trace: o.trace }),
    };
  }

  /** Call the visitor; its own failures must not stop the other targets. */
  async visitSafely(target: TargetSpec, guest: GuestfsImageGuest | Error): Promise<void> {
    try {
      await this.visit(target, guest);
    } catch (err) {
      this.visitorErrors.push(asError(err));
    }
  }

  async batch(batch: readonly Prepared[]): Promise<void> {
    if (!batch.length) return;
    let session: GuestfsSession;
    try {
      session = await GuestfsSession.open(this.sessionOptions(batch));
    } catch (err) {
      return this.launchFailed(batch, asError(err));
    }
    let flushed = true;
    try {
      await this.renewIdentities(session, batch);
      const layout = new ApplianceLayout(session);
      if (this.open.prepare && !this.open.readonly) {
        flushed = await this.prepareThenVisit(session, layout, batch);
        return;
      }
      for (let i = 0; i < batch.length; i++) {
        // The appliance died (timeout, crash): a fresh one for the rest.
        if (!session.alive) return await this.batch(batch.slice(i));
        flushed = (await this.visitOne(session, layout, i, batch[i]!)) && flushed;
      }
    } finally {
      // Every guest was unmounted after its visit (its writes are in the image): no autosync needed.
      await session.close(undefined, { flushed });
    }
  }

  /**
   * Every guest of the batch opened and handed to `prepare` (apply's preflight), then
   * unmounted; only then are the guests `prepare` kept mounted again, as they were
   * found, and visited: no image of the batch is written before all are checked. The
   * same guest object is visited (its caches stay true: nothing was written between).
   */
  private async prepareThenVisit(session: GuestfsSession, layout: ApplianceLayout, batch: readonly Prepared[]): Promise<boolean> {
    const kept: Array<{ p: Prepared; guest: GuestfsImageGuest }> = [];
    for (let i = 0; i < batch.length; i++) {
      if (!session.alive) { await this.batch(batch.slice(i)); return true; }
      const p = batch[i]!;
      if (this.identityFailed.has(p.target.path)) continue;
      let guest: GuestfsImageGuest;
      try {
        const os = await this.openLike(session, i, p) ?? await this.inspect(session, layout, i, p);
        for (const n of os.notes) this.backend.verbose?.(`${p.target.path}: ${n}`);
        guest = this.guestOf(session, layout, p, false, os);
      } catch (err) {
        await this.visitSafely(p.target, asError(err));
        continue;
      }
      let wanted = false;
      try { wanted = await this.open.prepare!(p.target, guest); } catch (err) { this.visitorErrors.push(asError(err)); }
      if (wanted) kept.push({ p, guest });
      if (session.alive) await session.command('umount-all');
    }
    let flushed = true;
    for (const [n, { p, guest }] of kept.entries()) {
      // The appliance died: the rest start over in a fresh one (prepared again there).
      if (!session.alive) { await this.batch(kept.slice(n).map((k) => k.p)); return flushed; }
      try {
        await mountGuest(session, guest.os, false, p.target.path);
      } catch (err) {
        await this.visitSafely(p.target, asError(err));
        continue;
      }
      await this.visitSafely(p.target, guest);
      if (!session.alive || guest.flushed) continue;
      try {
        await session.command('umount-all');
      } catch (err) {
        flushed = false;
        this.visitorErrors.push(new GuestError(`${p.target.path}: unmounting after changes failed (changes may be lost): ${errorMessage(err)}`, p.target.path, { cause: err }));
      }
    }
    return flushed;
  }

  /** Bisect: the bad image ends up alone and fails alone. */
  private async launchFailed(batch: readonly Prepared[], err: Error): Promise<void> {
    if (batch.length === 1) {
      const t = batch[0]!.target;
      return this.visitSafely(t, inUseError(t.path, err) ?? new GuestError(`${t.path}: cannot launch libguestfs on this image: ${err.message}`, t.path, { cause: err }));
    }
    this.backend.verbose?.(`guestfs: appliance with ${batch.length} drives failed to launch (${err.message}); splitting`);
    const half = Math.ceil(batch.length / 2);
    await this.batch(batch.slice(0, half));
    await this.batch(batch.slice(half));
  }

  /** Visit one drive; false when its filesystems could not be unmounted afterwards (its writes may not be in the image yet). */
  private async visitOne(session: GuestfsSession, layout: ApplianceLayout, index: number, p: Prepared): Promise<boolean> {
    const image = p.target.path;
    if (this.identityFailed.has(image)) return true;
    let guest: GuestfsImageGuest;
    try {
      const os = await this.openLike(session, index, p) ?? await this.inspect(session, layout, index, p);
      for (const n of os.notes) this.backend.verbose?.(`${image}: ${n}`);
      guest = this.guestOf(session, layout, p, this.open.readonly, os);
    } catch (err) {
      await this.visitSafely(p.target, asError(err));
      return true; // inspection only read (or failed to mount); the next drive's umount-all covers it
    }
    await this.visitSafely(p.target, guest);
    if (!session.alive || guest.flushed) return true;
    try {
      // Unmounting flushes the guest's writes to the image.
      await session.command('umount-all');
      return true;
    } catch (err) {
      this.visitorErrors.push(new GuestError(`${image}: unmounting after changes failed (changes may be lost): ${errorMessage(err)}`, image, { cause: err }));
      return false;
    }
  }

  private guestOf(session: GuestfsSession, layout: ApplianceLayout, p: Prepared, readonly: boolean, os: InspectedOs): GuestfsImageGuest {
    const guest = new GuestfsImageGuest(session, p.target.path, readonly, os, layout);
    const id = this.identities.get(p.target.path);
    if (id && (id.renames.vgs.size || id.renames.luksUuids.size || id.renames.pvUuids.size || id.renames.notes?.length)) guest.deviceRenames = id.renames;
    return guest;
  }

  /**
   * The device identity pass, before any guest of the batch is opened: LVM
   * clones renewed one drive at a time behind an LVM filter (lvm-identity.ts),
   * then each LUKS volume (luks-identity.ts). Read-only, only what would be
   * renamed is noted. A drive that fails here fails alone.
   */
  private async renewIdentities(session: GuestfsSession, batch: readonly Prepared[]): Promise<void> {
    const lvmJobs = batch.flatMap((p, index) => (p.identity?.lvm && p.vgNames.length ? [{ index, image: p.target.path, spec: p.identity.lvm, vgNames: p.vgNames }] : []));
    const luksJobs = batch.flatMap((p, index) => (p.identity?.luks && isLuks(p) ? [{ index, p, spec: p.identity.luks }] : []));
    if (!lvmJobs.length && !luksJobs.length) return;
    const fail = async (p: Prepared, err: Error): Promise<void> => {
      this.identityFailed.add(p.target.path);
      await this.visitSafely(p.target, err);
    };
    const vgRenames = new Map<number, Map<string, string>>();
    const pvRenames = new Map<number, Map<string, string>>();
    if (this.open.readonly) {
      for (const j of lvmJobs) {
        try {
          const w = lvmWork(j.spec, j.vgNames, j.image);
          if (w?.renames.size) vgRenames.set(j.index, w.renames);
        } catch (err) { await fail(batch[j.index]!, asError(err)); }
      }
    } else if (lvmJobs.length) {
      for (const [index, r] of await renewLvmIdentities(session, lvmJobs)) {
        if (r instanceof Error) { await fail(batch[index]!, r); continue; }
        vgRenames.set(index, new Map(r.vgs.filter((v) => v.from !== v.to).map((v) => [v.from, v.to])));
        pvRenames.set(index, new Map(r.pvs.filter((v) => v.from !== v.to).map((v) => [v.from, v.to])));
        this.backend.verbose?.(`${batch[index]!.target.path}: LVM identity renewed: ${r.vgs.map((v) => `VG ${v.from} -> ${v.to}`).join(', ')}, ${r.pvs.length} PV UUID(s)`);
      }
    }
    const luksRenames = new Map<number, Map<string, string>>();
    const notes = new Map<number, string[]>();
    if (this.open.readonly) {
      // the plan's words for a re-encryption (its size and time under TCG): no file shows it
      for (const { index, p, spec } of luksJobs) {
        if (!spec.reencrypt || !session.alive) continue;
        try {
          const dev = driveDevice(index);
          const parts = p.partitions ? p.partitions.map((n) => `${dev}${n}`) : (await session.lines('list-partitions')).filter((d) => new RegExp(`^${dev}\\d+$`).test(d));
          const said: string[] = [];
          for (const d of await luksDevicesOf(session, dev, parts)) {
            const note = await plannedReencrypt(session, d, spec, p.target.path);
            if (note) said.push(note);
          }
          if (said.length) notes.set(index, said);
        } catch (err) {
          await fail(p, asError(err));
        }
      }
    } else {
      for (const { index, p, spec } of luksJobs) {
        if (this.identityFailed.has(p.target.path) || !session.alive) continue;
        try {
          const dev = driveDevice(index);
          const parts = p.partitions ? p.partitions.map((n) => `${dev}${n}`) : (await session.lines('list-partitions')).filter((d) => new RegExp(`^${dev}\\d+$`).test(d));
          const masterKeys = await luksKeysFor(this.open.luksKeyFiles);
          const uuids = new Map<string, string>();
          for (const d of await luksDevicesOf(session, dev, parts)) {
            const c = await renewLuksIdentity(session, d, spec, masterKeys, p.target.path);
            if (c.uuidFrom !== c.uuidTo) uuids.set(c.uuidFrom, c.uuidTo);
            this.backend.verbose?.(`${p.target.path}: LUKS identity of ${d}: ${c.uuidFrom === c.uuidTo ? 'UUID kept' : 'new UUID'}${c.keySlot !== undefined ? `, own passphrase in slot ${c.keySlot}` : ''}${c.removedSlots.length ? `, master slot(s) ${c.removedSlots.join(', ')} removed` : ''}${c.reencryptedBytes !== undefined ? `, re-encrypted with a volume key of its own (${Math.round(c.reencryptedBytes / 1048576)} MiB)` : ''}`);
          }
          luksRenames.set(index, uuids);
        } catch (err) {
          await fail(p, asError(err));
        }
      }
    }
    for (const [index, p] of batch.entries()) {
      const vgs = vgRenames.get(index) ?? new Map<string, string>();
      const luksUuids = luksRenames.get(index) ?? new Map<string, string>();
      const luksKey = p.identity?.luks?.newKey;
      if (!p.identity) continue;
      // A relaunched appliance (the first died) finds the renames already made: keep what they were.
      const prev = this.identities.get(p.target.path)?.renames;
      const merged = (a: ReadonlyMap<string, string> | undefined, b: Map<string, string>): Map<string, string> => new Map([...(a ?? []), ...b]);
      const allVgs = merged(prev?.vgs, vgs);
      this.identities.set(p.target.path, {
        renames: { vgs: allVgs, luksUuids: merged(prev?.luksUuids, luksUuids), pvUuids: merged(prev?.pvUuids, pvRenames.get(index) ?? new Map<string, string>()), ...(notes.has(index) && { notes: notes.get(index)! }) },
        vgNames: p.vgNames.map((n) => (this.open.readonly ? n : allVgs.get(n) ?? n)),
        ...(luksKey !== undefined && { luksKey }),
      });
    }
  }

  private async inspect(session: GuestfsSession, layout: ApplianceLayout, index: number, p: Prepared): Promise<InspectedOs> {
    const id = this.identities.get(p.target.path);
    const given = isLuks(p) ? await luksKeysFor(this.open.luksKeyFiles) : [];
    const luksKeys = id?.luksKey !== undefined && isLuks(p) ? [id.luksKey, ...given] : given;
    // read-only, nothing was renamed: the fstab's VG names are still right
    const vgRenames = !this.open.readonly && id?.renames.vgs.size ? id.renames.vgs : undefined;
    const os = await openDrive(session, layout, index, p.target.path, { readonly: this.open.readonly, vgNames: id?.vgNames ?? p.vgNames, luksKeys, ...(p.partitions && { partitions: p.partitions }), ...(vgRenames && { vgRenames }) });
    const key = p.target.layoutKey;
    if (key && !isLuks(p) && !p.vgNames.length && !layoutTemplates.has(key)) layoutTemplates.set(key, { os, index });
    return os;
  }

  /** A copy of an image already inspected in this process: mounted like it (os-inspect.ts mountLike). */
  private async openLike(session: GuestfsSession, index: number, p: Prepared): Promise<InspectedOs | undefined> {
    const template = p.target.layoutKey ? layoutTemplates.get(p.target.layoutKey) : undefined;
    if (!template || isLuks(p) || p.vgNames.length) return undefined;
    return mountLike(session, template, index, p.target.path, this.open.readonly);
  }

  finish(): void {
    if (this.visitorErrors.length === 1) throw this.visitorErrors[0];
    if (this.visitorErrors.length > 1) throw new AggregateError(this.visitorErrors, `${this.visitorErrors.length} guest visits failed: ${this.visitorErrors.map((e) => e.message).join('; ')}`);
  }
}
