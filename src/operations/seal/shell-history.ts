import { removalOperation } from './remove.js';

/** remove shell and tool histories of root and users. */
export const sealShellHistory = removalOperation({
  name: 'shell-history', description: 'remove shell and tool histories of root and users', guests: ['linux'], reason: 'history of the master\'s users',
  patterns: ['/root/.*_history', '/root/.lesshst', '/root/.viminfo', '/home/*/.*_history', '/home/*/.lesshst', '/home/*/.viminfo'],
});
