import type { SealOperation } from '../../core/operation.js';
import { del, hasSystemd, write } from '../util.js';

/**
 * systemd treats "uninitialized" as "first boot: generate a new id and run
 * the first-boot units". An empty file would mean "use a transient id"
 * (and never commit one), a random value would be shared by every clone.
 * Guests without systemd get no file; dbus-uuidgen --ensure makes one.
 */
export const sealMachineId: SealOperation = {
  name: 'machine-id',
  kind: 'seal',
  description: 'set /etc/machine-id to "uninitialized" (systemd first boot)',
  defaultEnabled: true,
  guests: ['linux'],
  async plan({ guest }) {
    if (await hasSystemd(guest)) return [write('machine-id', '/etc/machine-id', 'uninitialized\n', 0o444, { reason: 'systemd generates a new id at first boot' })];
    return (await guest.lstat('/etc/machine-id')) ? [del('machine-id', '/etc/machine-id', 'no systemd: dbus-uuidgen --ensure makes a new id at boot')] : [];
  },
};
