import { removalOperation } from './remove.js';

/** remove cloud-init instance state so it runs again on each clone. */
export const sealCloudInit = removalOperation({
  name: 'cloud-init', description: 'remove cloud-init instance state so it runs again on each clone', guests: ['linux'], reason: 'master\'s cloud-init instance state',
  patterns: ['/var/lib/cloud/instance', '/var/lib/cloud/instances', '/var/lib/cloud/data', '/var/lib/cloud/sem', '/var/log/cloud-init.log', '/var/log/cloud-init-output.log'],
});
