import { removalOperation } from './remove.js';

/** remove udev persistent network rules bound to the master's MACs. */
export const sealUdevNet = removalOperation({
  name: 'udev-persistent-net', description: 'remove udev persistent network rules bound to the master\'s MACs', guests: ['linux'], reason: 'binds interface names to the master\'s MACs',
  patterns: ['/etc/udev/rules.d/70-persistent-net.rules', '/etc/udev/rules.d/75-persistent-net-generator.rules'],
});
