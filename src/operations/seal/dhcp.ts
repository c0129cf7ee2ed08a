import { removalOperation } from './remove.js';

/** remove DHCP leases and DUIDs. */
export const sealDhcp = removalOperation({
  name: 'dhcp', description: 'remove DHCP leases and DUIDs', guests: ['linux'], reason: 'master\'s DHCP lease or DUID',
  patterns: ['/var/lib/dhcp/*.lease*', '/var/lib/dhclient/*', '/var/lib/NetworkManager/*.lease', '/var/lib/systemd/network/duid', '/var/lib/wicked/*.xml', '/var/lib/dhcpcd/*.lease*', '/var/lib/udhcpc/*'],
});
