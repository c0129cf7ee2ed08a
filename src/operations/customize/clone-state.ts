import type { FileChange } from '../../core/file-change.js';
import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { del, readText, write } from '../util.js';

/**
 * Per-clone state that must not be shared: removed so that the clone makes
 * its own at boot (NetworkManager secret_key: stable-privacy addresses and
 * DUID; random-seed; credential.secret; DHCP leases; cloud-init instance
 * state), and the iSCSI initiator name rewritten from the machine-id (the
 * service does not regenerate an existing one).
 */
const REMOVE: ReadonlyArray<[string, string, boolean]> = [
  ['/var/lib/NetworkManager/secret_key', 'NetworkManager secret key of the master (stable-privacy IPv6, DUID)', false],
  ['/var/lib/systemd/random-seed', 'random seed of the master', false],
  ['/var/lib/systemd/credential.secret', 'systemd credential secret of the master', false],
  ['/var/lib/cloud/instance', 'cloud-init instance link of the master', false],
  ['/var/lib/cloud/instances', 'cloud-init instance state of the master', true],
  ['/var/lib/dhcp/dhclient.leases', 'DHCP lease of the master', false],
  ['/var/lib/dhclient/dhclient.leases', 'DHCP lease of the master', false],
  ['/var/lib/NetworkManager/internal-dhcp.lease', 'DHCP lease of the master', false],
  ['/var/lib/systemd/network/duid', 'DHCPv6 DUID of the master', false],
];

export const cloneStateOperation: Operation = {
  name: 'clone-state',
  kind: 'customize',
  description: 'remove per-machine secrets and leases of the master; new iSCSI initiator name',
  defaultEnabled: true,
  order: 80,
  guests: ['linux'],
  async plan({ guest, identity }) {
    const changes: FileChange[] = [];
    for (const [p, reason, recursive] of REMOVE) if (await guest.lstat(p)) changes.push(del('clone-state', p, reason, recursive));
    for (const dir of ['/var/lib/dhcp', '/var/lib/dhclient', '/var/lib/NetworkManager']) {
      for (const name of (await guest.readdir(dir).catch(() => null)) ?? []) {
        if (/\.lease[s]?$/.test(name) && !REMOVE.some(([p]) => p === `${dir}/${name}`)) changes.push(del('clone-state', `${dir}/${name}`, 'DHCP lease of the master'));
      }
    }
    const iscsi = await readText(guest, '/etc/iscsi/initiatorname.iscsi');
    if (iscsi !== undefined && identity.machineId) {
      const prefix = /^InitiatorName=(iqn\.[^:]+)/m.exec(iscsi)?.[1] ?? 'iqn.2004-10.org.ghostprep';
      changes.push(write('clone-state', '/etc/iscsi/initiatorname.iscsi', `InitiatorName=${prefix}:${identity.machineId.slice(0, 12)}\n`, 0o600, identity.pending ? { pending: true } : {}));
    }
    return changes;
  },
};
