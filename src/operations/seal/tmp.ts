import { removalOperation } from './remove.js';

/** empty /tmp and /var/tmp. */
export const sealTmp = removalOperation({
  name: 'tmp', description: 'empty /tmp and /var/tmp', guests: ['linux'], reason: 'temporary file of the master',
  patterns: ['/tmp/*', '/var/tmp/*'],
});
