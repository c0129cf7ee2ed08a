/**
 * Processes of this host found through /proc: tests that kill an appliance's
 * qemu, or check that nothing outlives a killed run, look them up by a path
 * on their command line (a drive image, a test's work dir).
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Processes other than this one whose command line mentions `needle`: [pid, command line with spaces]. */
export function processesWith(needle: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0').join(' ');
      if (cmd.includes(needle) && Number(p) !== process.pid) out.push([Number(p), cmd]);
    } catch { /* gone */ }
  }
  return out;
}

/** The qemu processes (appliances, VMs) whose command line mentions `needle`. */
export function qemuProcessesWith(needle: string): number[] {
  return processesWith(needle).filter(([, cmd]) => /qemu-system|qemu-kvm/.test(cmd)).map(([pid]) => pid);
}
