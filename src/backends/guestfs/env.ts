/**
 * Environment for libguestfs: which backend and accelerator to use, and
 * whether the tools exist at all. Kept apart from the session so that restore
 * and the CLI can check tools without launching anything.
 */
import fs from 'node:fs';
import { applianceCacheBase, uncompressedKernel, USER_APPLIANCE_VARS, type UncompressedKernel } from './appliance-kernel.js';
import type { NotUsable } from './kernel-image.js';
import { GhostprepError } from '../../util/errors.js';

export const GUESTFISH_INSTALL = 'install it: apt-get install libguestfs-tools (Debian/Ubuntu) or dnf install guestfs-tools';

/** Is /dev/kvm there and usable by us? Nested KVM counts as unusable (see kvmUsable). */
function kvmDeviceUsable(): boolean {
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** True when this Linux runs under a hypervisor (cpuinfo flag), i.e. KVM would be nested. */
function runsUnderHypervisor(): boolean {
  try {
    return /^flags\s*:.*\bhypervisor\b/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

let tcgAnnounced = false;
/** The appliance kernel decision, made once per process and cache (it reads /boot and may write the cache). */
const kernelChoice = new Map<string, UncompressedKernel | NotUsable>();

/**
 * Environment for guestfish. LIBGUESTFS_BACKEND defaults to `direct` (the
 * libvirt backend needs a libvirtd we do not want to depend on).
 * LIBGUESTFS_BACKEND_SETTINGS defaults to `force_tcg` when KVM is unusable or
 * nested: nested KVM hangs the appliance on the machines we measured on, and
 * TCG only costs launch time. A user who knows better sets the variable
 * (even to an empty string) and we leave it alone. Says so once through
 * `verbose`. Under TCG the appliance boots an uncompressed kernel
 * (appliance-kernel.ts) unless GHOSTPREP_APPLIANCE_KERNEL=host or the user
 * chose the kernel or cache through libguestfs's and supermin's own variables.
 */
export function guestfsEnv(base: NodeJS.ProcessEnv = process.env, verbose?: (msg: string) => void): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  if (env.LIBGUESTFS_BACKEND === undefined) env.LIBGUESTFS_BACKEND = 'direct';
  if (env.LIBGUESTFS_BACKEND_SETTINGS === undefined && (!kvmDeviceUsable() || runsUnderHypervisor())) {
    env.LIBGUESTFS_BACKEND_SETTINGS = 'force_tcg';
    // Export it for every later child (virt-* tools, other sessions) too.
    process.env.LIBGUESTFS_BACKEND_SETTINGS = 'force_tcg';
    if (!tcgAnnounced && verbose) {
      tcgAnnounced = true;
      verbose('libguestfs: KVM is unusable or nested here; exported LIBGUESTFS_BACKEND_SETTINGS=force_tcg (set it yourself to override)');
    }
  }
  return { ...env, ...applianceKernelEnv(env, verbose) };
}

/** SUPERMIN_* and LIBGUESTFS_CACHEDIR for an uncompressed appliance kernel, or nothing. */
function applianceKernelEnv(env: NodeJS.ProcessEnv, verbose?: (msg: string) => void): NodeJS.ProcessEnv {
  if (!/\bforce_tcg\b/.test(env.LIBGUESTFS_BACKEND_SETTINGS ?? '')) return {};
  const mode = env.GHOSTPREP_APPLIANCE_KERNEL ?? 'uncompressed';
  if (mode !== 'host' && mode !== 'uncompressed') {
    throw new GhostprepError(`GHOSTPREP_APPLIANCE_KERNEL=${mode}: say 'uncompressed' (the default under TCG) or 'host' (the kernel as libguestfs finds it)`);
  }
  if (mode === 'host' || USER_APPLIANCE_VARS.some((v) => env[v] !== undefined)) return {};
  const cacheBase = applianceCacheBase(env);
  let choice = kernelChoice.get(cacheBase);
  if (!choice) {
    choice = uncompressedKernel({ boot: '/boot', modules: '/lib/modules', cacheBase });
    kernelChoice.set(cacheBase, choice);
    verbose?.('reason' in choice ? `libguestfs: the appliance boots the host kernel as it is: ${choice.reason}` : choice.note);
  }
  return 'reason' in choice ? {} : choice.env;
}
