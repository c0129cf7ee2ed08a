/** Every operation, registered once. Adding one is adding a file and a line here. */
import { OperationRegistry } from './registry.js';
import { authorizedKeysOperation } from './customize/authorized-keys.js';
import { cloneStateOperation } from './customize/clone-state.js';
import { cloudInitSeedOperation } from './customize/cloud-init-seed.js';
import { deleteOperation } from './customize/delete.js';
import { filesOperation } from './customize/files.js';
import { firstbootOperation } from './customize/firstboot.js';
import { hostnameOperation } from './customize/hostname.js';
import { machineIdOperation } from './customize/machine-id.js';
import { networkOperation } from './customize/network.js';
import { sshHostKeysOperation } from './customize/ssh-host-keys.js';
import { storageReferencesOperation } from './customize/storage-references.js';
import { timezoneOperation } from './customize/timezone.js';
import { usersOperation } from './customize/users.js';
import { windowsActivationOperation } from './customize/windows-activation.js';
import { windowsComputerNameOperation } from './customize/windows-computer-name.js';
import { windowsIdsOperation } from './customize/windows-ids.js';
import { windowsRunOnceOperation } from './customize/windows-run-once.js';
import { windowsUnattendOperation } from './customize/windows-unattend.js';

import { sealCloudInit } from './seal/cloud-init.js';
import { sealCredentialSecret } from './seal/credential-secret.js';
import { sealDbusMachineId } from './seal/dbus-machine-id.js';
import { sealDhcp } from './seal/dhcp.js';
import { sealIscsiInitiator } from './seal/iscsi-initiator.js';
import { sealLogs } from './seal/logs.js';
import { sealLvmDevices } from './seal/lvm-devices.js';
import { sealMachineId } from './seal/machine-id.js';
import { sealNetworkManager } from './seal/network-manager.js';
import { sealPackageCache } from './seal/package-cache.js';
import { sealRandomSeed } from './seal/random-seed.js';
import { sealShellHistory } from './seal/shell-history.js';
import { sealSshHostKeys } from './seal/ssh-host-keys.js';
import { sealTmp } from './seal/tmp.js';
import { sealUdevNet } from './seal/udev-persistent-net.js';
import { sealUserAccounts } from './seal/user-accounts.js';
import { sealSystemdPresets } from './seal/systemd-presets.js';

/**
 * Each record sets its own place in the run (`order`) and the guests it
 * applies to (`guests`); the registry refuses two operations at one place.
 * Order matters where operations touch the same files: users before the
 * keys that need their uids; the profile's `files` and `delete` last, so a
 * site can override anything.
 */
export const operations = new OperationRegistry();
for (const op of [
  hostnameOperation, machineIdOperation, sshHostKeysOperation, usersOperation, authorizedKeysOperation, timezoneOperation, networkOperation, cloudInitSeedOperation, cloneStateOperation, firstbootOperation,
  windowsComputerNameOperation, windowsUnattendOperation, windowsRunOnceOperation, windowsIdsOperation, storageReferencesOperation, windowsActivationOperation, filesOperation, deleteOperation,
  sealMachineId, sealDbusMachineId, sealSshHostKeys, sealRandomSeed, sealCredentialSecret, sealDhcp, sealNetworkManager, sealUdevNet, sealCloudInit, sealIscsiInitiator, sealLvmDevices, sealLogs, sealShellHistory, sealTmp, sealPackageCache, sealUserAccounts, sealSystemdPresets,
]) operations.register(op);

export { appliesTo, summarize } from './registry.js';
export { guestKindOf, GUEST_KINDS } from '../core/operation.js';
export type { CustomizeOperation, GuestKind, Operation, OperationContext, OperationSummary, ResolvedIdentity, SealContext, SealOperation } from '../core/operation.js';
