/**
 * Which renderer a guest reads, from what it runs (cloud-init style: walk a
 * priority list, and when nothing matches, say what was searched):
 *   1. netplan installed            -> netplan (it drives networkd or NM itself)
 *   2. NetworkManager enabled       -> network-manager
 *   3. systemd-networkd enabled     -> networkd
 *   4. wicked enabled               -> ifcfg (SUSE flavour)
 *   5. ifupdown (interfaces + ifup) -> eni
 *   6. family default: rhel >= 8 network-manager, older rhel ifcfg; suse ifcfg;
 *      arch networkd; alpine eni; ubuntu netplan; other debian eni.
 * "Enabled" means a symlink in /etc/systemd/system/*.wants/ (or the OpenRC
 * runlevel link on Alpine): an installed but disabled service reads nothing.
 * /etc/netplan/ without the netplan binary is not enough: nothing would read it.
 */
import type { GuestReader } from '../backends/backend.js';
import type { Distro } from '../distro/detect.js';
import { GhostprepError } from '../util/errors.js';
import { RENDERERS } from './renderers/index.js';

export interface Selection {
  readonly name: string;
  readonly reason: string;
}

const NETPLAN_BINARIES = ['/usr/sbin/netplan', '/sbin/netplan', '/usr/bin/netplan', '/usr/lib/systemd/system-generators/netplan', '/lib/systemd/system-generators/netplan'];
const IFUP_BINARIES = ['/sbin/ifup', '/usr/sbin/ifup'];
const SYSTEMD_DIR = '/etc/systemd/system';

class Probe {
  readonly searched: string[] = [];
  constructor(private readonly reader: GuestReader) {}

  async firstExisting(paths: readonly string[]): Promise<string | undefined> {
    for (const p of paths) {
      this.searched.push(p);
      if (await this.reader.lstat(p)) return p;
    }
    return undefined;
  }

  /** Path of an enablement link for one of `units`, if any. */
  async enabled(units: readonly string[], openrc?: string): Promise<string | undefined> {
    this.searched.push(`${SYSTEMD_DIR}/*.wants/{${units.join(',')}}`);
    const dirs = ((await this.reader.readdir(SYSTEMD_DIR)) ?? []).filter((d) => d.endsWith('.wants'));
    for (const dir of dirs) {
      for (const unit of units) {
        const p = `${SYSTEMD_DIR}/${dir}/${unit}`;
        if (await this.reader.lstat(p)) return p;
      }
    }
    return openrc ? this.firstExisting([`/etc/runlevels/default/${openrc}`, `/etc/runlevels/boot/${openrc}`]) : undefined;
  }
}

function familyDefault(distro: Distro): Selection | undefined {
  const label = `${distro.id} ${distro.versionId}`.trim();
  switch (distro.family) {
    case 'rhel':
      if (distro.major !== undefined && distro.major < 8 && distro.id !== 'fedora') return { name: 'ifcfg', reason: `family default for ${label} (rhel < 8)` };
      return { name: 'network-manager', reason: `family default for ${label} (rhel >= 8 and Fedora)` };
    case 'suse': return { name: 'ifcfg', reason: `family default for ${label} (suse: wicked)` };
    case 'arch': return { name: 'networkd', reason: `family default for ${label} (arch)` };
    case 'alpine': return { name: 'eni', reason: `family default for ${label} (alpine: ifupdown-ng)` };
    case 'debian':
      if (distro.id === 'ubuntu') return { name: 'netplan', reason: `family default for ${label} (ubuntu)` };
      return { name: 'eni', reason: `family default for ${label} (debian)` };
    default: return undefined;
  }
}

async function detect(probe: Probe, reader: GuestReader): Promise<Selection | undefined> {
  const np = await probe.firstExisting(NETPLAN_BINARIES);
  if (np) return { name: 'netplan', reason: `${np} present` };
  const nm = await probe.enabled(['NetworkManager.service'], 'networkmanager');
  if (nm) return { name: 'network-manager', reason: `NetworkManager enabled (${nm})` };
  const nd = await probe.enabled(['systemd-networkd.service']);
  if (nd) return { name: 'networkd', reason: `systemd-networkd enabled (${nd})` };
  const wk = await probe.enabled(['wicked.service']);
  if (wk) return { name: 'ifcfg', reason: `wicked enabled (${wk})` };
  probe.searched.push('/etc/network/interfaces');
  if ((await reader.lstat('/etc/network/interfaces')) !== null) {
    const ifup = await probe.firstExisting(IFUP_BINARIES);
    if (ifup) return { name: 'eni', reason: `ifupdown present (/etc/network/interfaces and ${ifup})` };
  }
  return undefined;
}

/** The renderer for this guest, or the forced one; throws naming what was searched. */
export async function selectRenderer(reader: GuestReader, distro: Distro, forced?: string): Promise<Selection> {
  if (forced !== undefined) {
    if (!RENDERERS.get(forced)) throw new GhostprepError(`unknown network renderer "${forced}" (networkRenderer); known: ${RENDERERS.names().join(', ')}`);
    return { name: forced, reason: `forced by the profile (networkRenderer: ${forced})` };
  }
  const probe = new Probe(reader);
  const found = (await detect(probe, reader)) ?? familyDefault(distro);
  if (found) return found;
  throw new GhostprepError(
    `cannot tell which network configuration ${distro.name || distro.id} reads: searched ${probe.searched.join(', ')}; ` +
      `and distro family "${distro.family}" has no default. Set networkRenderer in the profile (${RENDERERS.names().join(', ')})`,
  );
}
