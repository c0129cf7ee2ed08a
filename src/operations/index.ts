/** Every operation, registered once. Adding one is adding a file and a line here. */
import { OperationRegistry } from './registry.js';
import { authorizedKeysOperation } from './customize/authorized-keys.js';
import { cloneStateOperation } from './customize/clone-state.js';
import { deleteOperation } from './customize/delete.js';
import { filesOperation } from './customize/files.js';
import { firstbootOperation } from './customize/firstboot.js';
import { hostnameOperation } from './customize/hostname.js';
import { machineIdOperation } from './customize/machine-id.js';
import { networkOperation } from './customize/network.js';
import { sshHostKeysOperation } from './customize/ssh-host-keys.js';
import { timezoneOperation } from './customize/timezone.js';
import { usersOperation } from './customize/users.js';

export const operations = new OperationRegistry();
for (const op of [hostnameOperation, machineIdOperation, sshHostKeysOperation, usersOperation, authorizedKeysOperation, timezoneOperation, networkOperation, cloneStateOperation, firstbootOperation, filesOperation, deleteOperation]) operations.register(op);

/**
 * Order matters where operations touch the same files: users before the
 * keys that need their uids; profile `files` and `delete` last, so a site
 * can override anything.
 */
export const CUSTOMIZE_ORDER = ['hostname', 'machine-id', 'ssh-host-keys', 'users', 'authorized-keys', 'timezone', 'network', 'clone-state', 'firstboot', 'files', 'delete'];

export type { Operation, OperationContext, ResolvedIdentity } from './registry.js';
