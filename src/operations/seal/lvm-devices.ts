import { removalOperation } from './remove.js';

/** remove /etc/lvm/devices/system.devices (pins the master's disk IDs). */
export const sealLvmDevices = removalOperation({
  name: 'lvm-devices', description: 'remove /etc/lvm/devices/system.devices (pins the master\'s disk IDs)', guests: ['linux'], reason: 'lists the master\'s disk IDs: clones would not find their volumes',
  patterns: ['/etc/lvm/devices/system.devices'],
});
