/**
 * Environment for libguestfs: which backend and accelerator to use, and
 * whether the tools exist at all. Kept apart from the session so that restore
 * and the CLI can check tools without launching anything.
 */
import fs from 'node:fs';

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

/**
 * Environment for guestfish. LIBGUESTFS_BACKEND defaults to `direct` (the
 * libvirt backend needs a libvirtd we do not want to depend on).
 * LIBGUESTFS_BACKEND_SETTINGS defaults to `force_tcg` when KVM is unusable or
 * nested: nested KVM hangs the appliance on the machines we measured on, and
 * TCG only costs launch time. A user who knows better sets the variable
 * (even to an empty string) and we leave it alone. Says so once through
 * `verbose`.
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
  return env;
}
