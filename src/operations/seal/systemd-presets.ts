import type { GuestReader } from '../../core/backend.js';
import type { SealOperation } from '../../core/operation.js';
import { guestGlob, hasSystemd, write } from '../util.js';

export const PRESET_FILE = '/etc/systemd/system-preset/00-ghostprep-sealed.preset';
/** Installed by the ssh-host-keys seal operation, possibly in the same run. */
const KEYGEN_UNIT = 'ghostprep-ssh-keygen.service';

/**
 * Found by booting a sealed Debian master: with machine-id "uninitialized",
 * systemd's first boot applies presets (enable-only) to every unit, and
 * Debian ships no preset files, so every unit the master had disabled comes
 * back enabled whenever the root is writable at that point. A preset file
 * that enables exactly what the master enables, then `disable *`, keeps
 * the master's choice, also for a later full `systemctl preset-all`.
 */
export const sealSystemdPresets: SealOperation = {
  name: 'systemd-presets',
  kind: 'seal',
  description: "keep the master's enabled/disabled units at first boot (preset file: its enabled units, then disable *)",
  defaultEnabled: true,
  guests: ['linux'],
  async plan({ guest }) {
    if (!(await hasSystemd(guest))) return [];
    const lines = presetLines(await enabledUnits(guest));
    const content = `# Written by ghostprep seal. A machine whose /etc/machine-id is "uninitialized"
# applies systemd presets at first boot; these keep the units the master had
# enabled, and nothing else. Remove this file to return to the distribution's presets.
${lines.join('\n')}
disable *
`;
    return [write('systemd-presets', PRESET_FILE, content, 0o644, { reason: "first boot would otherwise enable every unit the master had disabled" })];
  },
};

/** Unit names the master enables: the symlinks in /etc/systemd/system/*.wants and *.requires. */
async function enabledUnits(guest: GuestReader): Promise<string[]> {
  const links = [
    ...(await guestGlob(guest, '/etc/systemd/system/*.wants/*')),
    ...(await guestGlob(guest, '/etc/systemd/system/*.requires/*')),
  ];
  return [...links.map((p) => p.slice(p.lastIndexOf('/') + 1)), KEYGEN_UNIT];
}

/** `enable NAME`, and for instances of a template `enable TEMPLATE@.TYPE INSTANCE…`; sorted, unique. */
export function presetLines(units: readonly string[]): string[] {
  const plain = new Set<string>();
  const instances = new Map<string, Set<string>>();
  for (const u of units) {
    if (!/^[A-Za-z0-9:_.@\\-]+\.[a-z]+$/.test(u)) continue; // not a unit name: ignore rather than write it into the preset
    const m = /^([^@]+)@([^@]+)\.([a-z]+)$/.exec(u);
    if (m) {
      const template = `${m[1]}@.${m[3]}`;
      instances.set(template, (instances.get(template) ?? new Set()).add(m[2]!));
    } else plain.add(u);
  }
  return [
    ...[...plain].map((u) => `enable ${u}`),
    ...[...instances].map(([t, i]) => `enable ${t} ${[...i].sort().join(' ')}`),
  ].sort();
}
