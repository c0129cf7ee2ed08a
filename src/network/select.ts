/**
 * Which renderer a guest reads, from what it runs (cloud-init style: walk
 * the renderer records' `detect` in priority order, and when nothing
 * matches, say what was searched):
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
import type { GuestReader } from '../core/backend.js';
import type { Distro } from '../core/distro.js';
import { GhostprepError } from '../util/errors.js';
import { RENDERERS } from './renderers/index.js';

export interface Selection {
  readonly name: string;
  readonly reason: string;
}

/** What a distro family reads when the guest shows nothing: the one place these defaults live. */
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

/** The renderer for this guest, or the forced one; throws naming what was searched. */
export async function selectRenderer(reader: GuestReader, distro: Distro, forced?: string): Promise<Selection> {
  if (forced !== undefined) {
    if (!RENDERERS.get(forced)) throw new GhostprepError(`unknown network renderer "${forced}" (networkRenderer); known: ${RENDERERS.names().join(', ')}`);
    return { name: forced, reason: `forced by the profile (networkRenderer: ${forced})` };
  }
  const searched: string[] = [];
  for (const renderer of RENDERERS.byPriority()) {
    const { reason, searched: looked } = await renderer.detect(reader);
    searched.push(...looked);
    if (reason !== undefined) return { name: renderer.name, reason };
  }
  const fallback = familyDefault(distro);
  if (fallback) return fallback;
  throw new GhostprepError(
    `cannot tell which network configuration ${distro.name || distro.id} reads: searched ${searched.join(', ')}; ` +
      `and distro family "${distro.family}" has no default. Set networkRenderer in the profile (${RENDERERS.names().join(', ')})`,
  );
}
