import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { detectWindows } from '../../windows/detect.js';
import { assertCleanHive } from '../../windows/hive.js';
import { kmsEdits } from '../../windows/ids.js';
import { windowsProfile } from '../../windows/settings.js';

/**
 * windows.kms: the KMS host the clone activates against, in the SOFTWARE
 * hive where `slmgr /skms host:port` puts it (SoftwareProtectionPlatform
 * KeyManagementServiceName, KeyManagementServicePort). The product key
 * itself goes to unattend.xml (windows-unattend), never to the registry.
 */
export const windowsActivationOperation: Operation = {
  name: 'windows-activation',
  kind: 'customize',
  description: 'Windows: set the KMS host for volume activation (windows.kms) in the SOFTWARE hive',
  defaultEnabled: true,
  order: 126,
  guests: ['windows'],
  async plan({ guest, machine, warn }) {
    const w = windowsProfile(machine.profile);
    const info = await detectWindows(guest);
    if (!info) return [];
    if ((w.productKey || w.productKeyFile) && !info.generalized && w.unattend !== 'always') {
      warn?.('windows.productKey reaches Windows only through unattend.xml, which a specialized image never reads: the clone keeps the master\'s key (change it inside Windows: slmgr /ipk)');
    }
    if (!w.kms) return [];
    await assertCleanHive(guest, info.softwareHive);
    return [{ op: 'registry', source: 'windows-activation', path: info.softwareHive, root: 'HKEY_LOCAL_MACHINE\\SOFTWARE', edits: kmsEdits(w.kms.host, w.kms.port) }];
  },
};
