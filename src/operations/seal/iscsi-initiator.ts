import type { SealOperation } from '../../core/operation.js';
import { del, write } from '../util.js';

/** Debian's open-iscsi generates a name at boot from "GenerateName=yes"; rhel's iscsi-init when the file is missing. */
export const sealIscsiInitiator: SealOperation = {
  name: 'iscsi-initiator',
  kind: 'seal',
  description: 'reset the iSCSI initiator name so each clone generates its own',
  defaultEnabled: true,
  guests: ['linux'],
  async plan({ guest, distro }) {
    const p = '/etc/iscsi/initiatorname.iscsi';
    if (!(await guest.lstat(p))) return [];
    if (distro.family === 'debian') return [write('iscsi-initiator', p, '## DO NOT EDIT OR REMOVE THIS FILE!\n## If you remove this file, the iSCSI daemon will not start.\nGenerateName=yes\n', 0o600, { reason: 'open-iscsi generates a new name at boot' })];
    return [del('iscsi-initiator', p, 'iscsi-init generates a new name at boot')];
  },
};
