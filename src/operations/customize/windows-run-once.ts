import type { CustomizeOperation as Operation } from '../../core/operation.js';
import type { FileChange } from '../../core/file-change.js';
import { detectWindows } from '../../windows/detect.js';
import { assertCleanHive } from '../../windows/hive.js';
import { windowsProfile } from '../../windows/settings.js';

export const RUN_ONCE_KEY = 'Microsoft\\Windows\\CurrentVersion\\RunOnce';

/**
 * windows.firstLogonCommands on an image that is NOT generalized (no setup
 * pass will read unattend.xml): HKLM\SOFTWARE\...\RunOnce values
 * ghostprep-NN, which Windows runs once at the next logon (as that user,
 * elevated for administrators) and then deletes. Generalized images get the
 * same commands as unattend FirstLogonCommands instead.
 */
export const windowsRunOnceOperation: Operation = {
  name: 'windows-run-once',
  kind: 'customize',
  description: 'Windows: install first-logon commands as HKLM RunOnce values when the image is not generalized',
  defaultEnabled: true,
  order: 120,
  guests: ['windows'],
  async plan({ guest, machine }) {
    const commands = windowsProfile(machine.profile).firstLogonCommands ?? [];
    const info = await detectWindows(guest);
    if (!info || info.generalized || !commands.length) return [];
    await assertCleanHive(guest, info.softwareHive);
    const change: FileChange = {
      op: 'registry', source: 'windows-run-once', path: info.softwareHive, root: 'HKEY_LOCAL_MACHINE\\SOFTWARE',
      edits: commands.map((c, i) => ({ key: RUN_ONCE_KEY, name: `ghostprep-${String(i + 1).padStart(2, '0')}`, value: { type: 'sz' as const, value: c.run } })),
    };
    return [change];
  },
};
