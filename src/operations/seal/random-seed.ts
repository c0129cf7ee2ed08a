import { removalOperation } from './remove.js';

/** remove the kernel random seed files. */
export const sealRandomSeed = removalOperation({
  name: 'random-seed', description: 'remove the kernel random seed files', guests: ['linux'], reason: 'master\'s random seed',
  patterns: ['/var/lib/systemd/random-seed', '/var/lib/seedrng/*', '/var/lib/urandom/random-seed'],
});
