import type { FileChange } from '../../core/file-change.js';
import type { SealOperation } from '../../core/operation.js';
import { del, guestGlob, readText } from '../util.js';

/**
 * NetworkManager's secret_key seeds stable-privacy IPv6 addresses and the
 * DUID: shared, every clone gets the same. Connections pinned to the
 * master's MAC would leave clones unconfigured.
 */
export const sealNetworkManager: SealOperation = {
  name: 'network-manager',
  kind: 'seal',
  description: 'remove NetworkManager secret_key, seen-bssids, and connections bound to the master\'s MAC',
  defaultEnabled: true,
  guests: ['linux'],
  async plan({ guest }) {
    const changes: FileChange[] = [];
    for (const p of ['/var/lib/NetworkManager/secret_key', '/var/lib/NetworkManager/seen-bssids', '/var/lib/NetworkManager/timestamps']) {
      if (await guest.lstat(p)) changes.push(del('network-manager', p, 'per-machine NetworkManager state of the master'));
    }
    for (const p of await guestGlob(guest, '/etc/NetworkManager/system-connections/*')) {
      const mac = /^mac-address=(\S+)/m.exec((await readText(guest, p)) ?? '')?.[1];
      if (mac) changes.push(del('network-manager', p, `connection bound to the master's MAC ${mac}`));
    }
    return changes;
  },
};
