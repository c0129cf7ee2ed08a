import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { write } from '../util.js';
import { detectWindows, underSystemRoot } from '../../windows/detect.js';
import { timeZoneUnmapped, windowsProfile, windowsTimeZone } from '../../windows/settings.js';
import { renderUnattend } from '../../windows/unattend.js';

/**
 * C:\Windows\Panther\unattend.xml, rendered per machine: Windows Setup reads
 * it in the specialize and oobeSystem passes of a generalized image.
 * windows.unattend: auto (default) writes it only when the image is
 * generalized (a specialized system never reads it again), always, never.
 * Mode 0777: what ntfs-3g reports for every file (NTFS has ACLs, not modes).
 */
export const windowsUnattendOperation: Operation = {
  name: 'windows-unattend',
  kind: 'customize',
  description: 'Windows: write C:\\Windows\\Panther\\unattend.xml (computer name, time zone, owner, network, first-logon commands)',
  defaultEnabled: true,
  order: 110,
  guests: ['windows'],
  async plan({ guest, machine, warn }) {
    const info = await detectWindows(guest);
    if (!info) return [];
    const w = windowsProfile(machine.profile);
    const when = w.unattend ?? 'auto';
    if (when === 'never' || (when === 'auto' && !info.generalized)) {
      if (w.network || machine.profile.network) warn?.(`the network settings reach Windows only through unattend.xml, which is not written (${when === 'never' ? 'windows.unattend: never' : 'the image is not generalized'}): the clone keeps the master's network configuration`);
      return [];
    }
    const iana = machine.profile.timezone ?? machine.profile.site?.timezone;
    if (!w.timezone && iana && !windowsTimeZone(iana)) warn?.(timeZoneUnmapped(iana));
    const file = await underSystemRoot(guest, info, 'Panther/unattend.xml');
    return [write('windows-unattend', file, renderUnattend(machine, info.architecture), 0o777)];
  },
};
