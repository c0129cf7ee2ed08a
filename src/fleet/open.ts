/** Open any list of targets read-only with the right backend, for inspect and audit. */
import type { Backend, Guest, TargetSpec } from '../backends/backend.js';
import { RootfsBackend } from '../backends/rootfs.js';

export async function backendFor(kind: TargetSpec['kind']): Promise<Backend> {
  if (kind === 'rootfs') return new RootfsBackend();
  const mod = await import('../backends/guestfs/backend.js');
  return new mod.GuestfsBackend();
}

export async function visitTargets(targets: readonly TargetSpec[], options: { jobs?: number }, visit: (t: TargetSpec, g: Guest | Error) => Promise<void>): Promise<void> {
  const rootfs = targets.filter((t) => t.kind === 'rootfs');
  const images = targets.filter((t) => t.kind !== 'rootfs');
  if (rootfs.length) await (await backendFor('rootfs')).forEachGuest(rootfs, { readonly: true, jobs: options.jobs }, visit);
  if (images.length) await (await backendFor('image')).forEachGuest(images, { readonly: true, jobs: options.jobs }, visit);
}
