import { GuestError } from '../../util/errors.js';
import type { FileChange } from '../../core/file-change.js';
import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { exists, write } from '../util.js';

/** /etc/localtime -> zoneinfo (checked to exist in the guest); /etc/timezone where the family reads it. */
export const timezoneOperation: Operation = {
  name: 'timezone',
  kind: 'customize',
  description: 'set the time zone (/etc/localtime symlink, /etc/timezone)',
  defaultEnabled: true,
  order: 60,
  guests: ['linux'],
  async plan({ guest, distro, profile, renderOnly }) {
    const tz = profile.timezone;
    if (!tz) return [];
    const zoneFile = `/usr/share/zoneinfo/${tz}`;
    if (!renderOnly && !(await guest.stat(zoneFile))) throw new GuestError(`time zone "${tz}": the guest has no ${zoneFile} (tzdata not installed?)`, zoneFile);
    const changes: FileChange[] = [{ op: 'symlink', source: 'timezone', path: '/etc/localtime', target: `../usr/share/zoneinfo/${tz}` }];
    if (distro.family === 'debian' || distro.family === 'alpine' || (await exists(guest, '/etc/timezone'))) changes.push(write('timezone', '/etc/timezone', tz + '\n', 0o644));
    return changes;
  },
};
