/**
 * The network boot matrix for the network-manager stack: clones of a Debian 12 master that runs
 * network-manager, customized by ghostprep (networkRenderer: auto) and booted under QEMU with several
 * NICs; every case is checked from inside the running guest (see test/helpers/boot-network.ts).
 */
import { describeStack } from '../../helpers/boot-network.js';

describeStack('network-manager');
