import { GuestError } from '../../util/errors.js';
import { applyUsers, passwdHoldsHashes } from '../../identity/users.js';
import type { FileChange } from '../../core/file-change.js';
import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { readText, write, modeOr } from '../util.js';

/** Users and groups with password hashes; other lines of the four files are kept as they are. */
export const usersOperation: Operation = {
  name: 'users',
  kind: 'customize',
  description: 'create or update users and group memberships (passwd, shadow, group, gshadow)',
  defaultEnabled: true,
  order: 40,
  guests: ['linux'],
  async plan({ guest, profile, renderOnly }) {
    const users = profile.users ?? [];
    if (!users.length) return [];
    const [passwd, shadow, group, gshadow] = await Promise.all(['/etc/passwd', '/etc/shadow', '/etc/group', '/etc/gshadow'].map((p) => readText(guest, p)));
    if (passwd === undefined && !renderOnly) throw new GuestError('the guest has no /etc/passwd', '/etc/passwd');
    const defaultShell = (await guest.stat('/bin/bash')) ? '/bin/bash' : '/bin/sh';
    // with no guest (plan without --target), assume the shadow file nearly every guest has: a hash is
    // then planned for shadow, not refused for lack of one
    const r = applyUsers({ passwd, shadow, group, gshadow }, users, { defaultShell, hasShadow: renderOnly || shadow !== undefined, hasGshadow: gshadow !== undefined });
    // with no guest to look at (plan without --target), its groups are unknown: do not guess
    const problems = renderOnly ? r.problems.filter((p) => !p.includes('does not exist in the guest')) : r.problems;
    if (problems.length) throw new GuestError(problems.join('; '));
    const changes: FileChange[] = [
      // a guest that keeps hashes in passwd (no shadow) has them in the diff's context lines too
      write('users', '/etc/passwd', r.passwd, await modeOr(guest, '/etc/passwd', 0o644), passwdHoldsHashes(passwd) || passwdHoldsHashes(r.passwd) ? { secret: true } : {}),
      write('users', '/etc/group', r.group, await modeOr(guest, '/etc/group', 0o644)),
    ];
    // shadow files keep the guest's own mode and group (0640 root:shadow on Debian, 0000 on rhel).
    for (const [p, text] of [['/etc/shadow', r.shadow], ['/etc/gshadow', r.gshadow]] as const) {
      if ((p === '/etc/shadow' ? shadow : gshadow) === undefined) continue;
      const st = await guest.stat(p);
      changes.push({ ...write('users', p, text, st?.mode ?? 0o640, { secret: true }), uid: st?.uid ?? 0, gid: st?.gid ?? 0 });
    }
    for (const c of r.created) {
      if (!(await guest.lstat(c.home))) changes.push({ op: 'mkdir', source: 'users', path: c.home, mode: 0o700, uid: c.uid, gid: c.gid, reason: `home of new user ${c.name}` });
    }
    return changes;
  },
};
