/** Open any list of targets read-only with the right backend, for inspect and audit. */
import type { Backend, Guest, TargetSpec } from '../core/backend.js';
import { RootfsBackend } from '../backends/rootfs.js';

export interface VisitOptions {
  /** Appliances (images) or workers (rootfs) in parallel. */
  readonly jobs?: number | undefined;
  /** Most drives in one appliance (guestfs backend default otherwise). */
  readonly drivesPerAppliance?: number | undefined;
}

export async function backendFor(kind: TargetSpec['kind'], options: VisitOptions = {}): Promise<Backend> {
  if (kind === 'rootfs') return new RootfsBackend();
  const mod = await import('../backends/guestfs/backend.js');
  return new mod.GuestfsBackend(options.drivesPerAppliance !== undefined ? { drivesPerAppliance: options.drivesPerAppliance } : {});
}

export async function visitTargets(targets: readonly TargetSpec[], options: VisitOptions, visit: (t: TargetSpec, g: Guest | Error) => Promise<void>): Promise<void> {
  const rootfs = targets.filter((t) => t.kind === 'rootfs');
  const images = targets.filter((t) => t.kind !== 'rootfs');
  if (rootfs.length) await (await backendFor('rootfs')).forEachGuest(rootfs, { readonly: true, jobs: options.jobs }, visit);
  if (images.length) await (await backendFor('image', options)).forEachGuest(images, { readonly: true, jobs: options.jobs }, visit);
}
