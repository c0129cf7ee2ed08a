/**
 * The one place a backend is chosen for a kind of target: plan, apply, deploy,
 * seal, inspect, audit and images all open their targets through it.
 */
import type { Backend, Guest, TargetSpec } from '../core/backend.js';
import { RootfsBackend } from '../backends/rootfs.js';

export interface VisitOptions {
  /** Appliances (images) or workers (rootfs) in parallel. */
  readonly jobs?: number | undefined;
  /** Most drives in one appliance (guestfs backend default otherwise). */
  readonly drivesPerAppliance?: number | undefined;
}

export interface BackendOptions {
  /** Most drives in one appliance (guestfs backend default otherwise). */
  readonly drivesPerAppliance?: number | undefined;
  /** The backend for disk images and devices instead of guestfs (injected by tests and callers that hold one). */
  readonly imageBackend?: (() => Promise<Backend>) | undefined;
  /** Where the rootfs backend reports a risk that does not stop it. */
  readonly onWarning?: ((msg: string) => void) | undefined;
}

/** The backend for a kind of target; guestfs is loaded only when an image or device is opened. */
export async function backendFor(kind: TargetSpec['kind'], options: BackendOptions = {}): Promise<Backend> {
  if (kind === 'rootfs') return new RootfsBackend(options.onWarning);
  if (options.imageBackend) return options.imageBackend();
  const mod = await import('../backends/guestfs/backend.js');
  return new mod.GuestfsBackend(options.drivesPerAppliance !== undefined ? { drivesPerAppliance: options.drivesPerAppliance } : {});
}

/** Open any list of targets read-only with the right backend, for inspect and audit. */
export async function visitTargets(targets: readonly TargetSpec[], options: VisitOptions, visit: (t: TargetSpec, g: Guest | Error) => Promise<void>): Promise<void> {
  const rootfs = targets.filter((t) => t.kind === 'rootfs');
  const images = targets.filter((t) => t.kind !== 'rootfs');
  if (rootfs.length) await (await backendFor('rootfs')).forEachGuest(rootfs, { readonly: true, jobs: options.jobs }, visit);
  if (images.length) await (await backendFor('image', options)).forEachGuest(images, { readonly: true, jobs: options.jobs }, visit);
}
