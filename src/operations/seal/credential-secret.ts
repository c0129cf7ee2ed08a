import { removalOperation } from './remove.js';

/** remove systemd's credential.secret. */
export const sealCredentialSecret = removalOperation({
  name: 'credential-secret', description: 'remove systemd\'s credential.secret', guests: ['linux'], reason: 'master\'s credential secret',
  patterns: ['/var/lib/systemd/credential.secret'],
});
