import type { SealOperation } from '../../core/operation.js';
import { del } from '../util.js';

/** The D-Bus copy goes (virt-sysprep empties it, which breaks D-Bus); a symlink to /etc/machine-id stays. */
export const sealDbusMachineId: SealOperation = {
  name: 'dbus-machine-id',
  kind: 'seal',
  description: 'remove /var/lib/dbus/machine-id unless it links to /etc/machine-id',
  defaultEnabled: true,
  guests: ['linux'],
  async plan({ guest }) {
    const p = '/var/lib/dbus/machine-id';
    const st = await guest.lstat(p);
    if (!st) return [];
    if (st.type === 'symlink' && ['/etc/machine-id', '../../../etc/machine-id'].includes((await guest.readlink(p)) ?? '')) return [];
    return [del('dbus-machine-id', p, 'master\'s D-Bus machine id; recreated from /etc/machine-id at boot')];
  },
};
