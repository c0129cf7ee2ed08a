import type { CustomizeOperation as Operation } from '../../core/operation.js';
import type { FileChange } from '../../core/file-change.js';
import { detectWindows, NOT_GENERALIZED_RISK } from '../../windows/detect.js';
import { assertCleanHive } from '../../windows/hive.js';
import { computerNameOf } from '../../windows/settings.js';
import { computerNameProblem, netbiosName } from '../../windows/computer-name.js';

/**
 * The computer name in the SYSTEM hive of the current control set:
 * ComputerName\ComputerName and ActiveComputerName (NetBIOS, upper case),
 * Tcpip\Parameters Hostname and NV Hostname (DNS host name). On a
 * generalized image the specialize pass sets the same name from
 * unattend.xml; writing it here too lets `audit` see it before first boot.
 * Warns when the master is not generalized, and when the registry's setup
 * records disagree about it.
 */
export const windowsComputerNameOperation: Operation = {
  name: 'windows-computer-name',
  kind: 'customize',
  description: 'Windows: set the computer name in the SYSTEM hive (ComputerName, ActiveComputerName, Tcpip Hostname, NV Hostname)',
  defaultEnabled: true,
  order: 100,
  guests: ['windows'],
  async plan({ guest, machine, warn }) {
    const info = await detectWindows(guest);
    if (!info) return [];
    await assertCleanHive(guest, info.systemHive);
    if (!info.generalized) warn?.(NOT_GENERALIZED_RISK);
    for (const w of info.stateWarnings) warn?.(w);
    const name = computerNameOf(machine);
    const problem = computerNameProblem(name);
    if (problem) throw new Error(`${problem}; a profile for Windows guests sets windows.computerName`);
    const cs = info.controlSet;
    const sz = (value: string) => ({ type: 'sz' as const, value });
    const change: FileChange = {
      op: 'registry', source: 'windows-computer-name', path: info.systemHive, root: 'HKEY_LOCAL_MACHINE\\SYSTEM',
      reason: info.generalized ? undefined : 'master NOT generalized: clones share its SID and installation IDs',
      edits: [
        { key: `${cs}\\Control\\ComputerName\\ComputerName`, name: 'ComputerName', value: sz(netbiosName(name)) },
        { key: `${cs}\\Control\\ComputerName\\ActiveComputerName`, name: 'ComputerName', value: sz(netbiosName(name)) },
        { key: `${cs}\\Services\\Tcpip\\Parameters`, name: 'Hostname', value: sz(name) },
        { key: `${cs}\\Services\\Tcpip\\Parameters`, name: 'NV Hostname', value: sz(name) },
      ],
    };
    return [change];
  },
};
