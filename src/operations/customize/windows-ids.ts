import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { detectWindows, underSystemRoot } from '../../windows/detect.js';
import { assertCleanHive } from '../../windows/hive.js';
import { cloneIdEdits, machineGuidFor, SCCM_IDENTITY_FILE } from '../../windows/ids.js';

/**
 * Per-installation IDs of the SOFTWARE hive (src/windows/ids.ts): a new
 * MachineGuid per clone, derived from its machine identity (none with
 * `machineId: keep`, warned), the WSUS client IDs deleted, the
 * Configuration Manager client's SMSCFG.INI deleted. On generalized and
 * specialized images alike: sysprep /generalize resets none of them.
 */
export const windowsIdsOperation: Operation = {
  name: 'windows-ids',
  kind: 'customize',
  description: 'Windows: a new MachineGuid per clone; WSUS client IDs (SusClientId...) and the SCCM SMSCFG.INI removed so their services make new ones',
  defaultEnabled: true,
  order: 124,
  guests: ['windows'],
  async plan({ guest, identity, warn, renderOnly }) {
    const info = await detectWindows(guest);
    if (!info) return [];
    await assertCleanHive(guest, info.softwareHive);
    if (identity.machineId === undefined) warn?.('machineId: keep: the clone keeps the master\'s MachineGuid (HKLM\\SOFTWARE\\Microsoft\\Cryptography), which software uses to tell computers apart');
    const guid = identity.machineId ? machineGuidFor(identity.machineId) : undefined;
    const changes: Awaited<ReturnType<Operation['plan']>> = [{
      op: 'registry', source: 'windows-ids', path: info.softwareHive, root: 'HKEY_LOCAL_MACHINE\\SOFTWARE',
      reason: identity.pending ? 'MachineGuid derived from the machine-id generated at apply (kept in the state dir)' : undefined,
      edits: cloneIdEdits(guid),
    }];
    if (!renderOnly) {
      const sccm = await underSystemRoot(guest, info, SCCM_IDENTITY_FILE);
      if (await guest.lstat(sccm)) changes.push({ op: 'delete', source: 'windows-ids', path: sccm, reason: 'Configuration Manager client identity: the client registers anew' });
    }
    return changes;
  },
};
