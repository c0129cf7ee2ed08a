import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { write } from '../util.js';

/**
 * /etc/machine-id and the D-Bus copy. The D-Bus file is left alone when it
 * is a symlink to /etc/machine-id (writing through it is the same file).
 */
export const machineIdOperation: Operation = {
  name: 'machine-id',
  kind: 'customize',
  description: 'give the clone its own /etc/machine-id (and /var/lib/dbus/machine-id)',
  defaultEnabled: true,
  order: 20,
  guests: ['linux'],
  async plan({ guest, identity }) {
    if (identity.machineId === undefined) return [];
    const content = identity.machineId + '\n';
    const extra = identity.pending ? { pending: true, reason: 'generated at apply (kept in the state dir)' } : {};
    const changes = [write('machine-id', '/etc/machine-id', content, 0o444, extra)];
    const dbus = await guest.lstat('/var/lib/dbus/machine-id');
    const link = dbus?.type === 'symlink' ? await guest.readlink('/var/lib/dbus/machine-id') : null;
    const pointsToEtc = link !== null && ['/etc/machine-id', '../../../etc/machine-id'].includes(link);
    if (dbus && !pointsToEtc) changes.push(write('machine-id', '/var/lib/dbus/machine-id', content, 0o444, extra));
    return changes;
  },
};
