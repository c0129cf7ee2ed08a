import { formatTable, parseTable } from '../../identity/users.js';
import type { FileChange } from '../../core/file-change.js';
import type { SealOperation } from '../../core/operation.js';
import { del, readText, write } from '../util.js';

/** Off by default: remove regular users (uid 1000..60000) and their homes; root and system users stay. */
export const sealUserAccounts: SealOperation = {
  name: 'user-accounts',
  kind: 'seal',
  description: 'remove regular user accounts (uid 1000-60000) and their home directories',
  defaultEnabled: false,
  guests: ['linux'],
  async plan({ guest }) {
    const passwd = parseTable(await readText(guest, '/etc/passwd')).rows;
    const doomed = passwd.filter((r) => Number(r[2]) >= 1000 && Number(r[2]) <= 60000);
    if (!doomed.length) return [];
    const names = new Set(doomed.map((r) => r[0]));
    const changes: FileChange[] = [];
    const rewrite = async (p: string, filter: (row: string[]) => string[] | null, secret: boolean) => {
      const text = await readText(guest, p);
      if (text === undefined) return;
      const rows = parseTable(text).rows.map(filter).filter((r): r is string[] => r !== null);
      const st = await guest.stat(p);
      changes.push({ ...write('user-accounts', p, formatTable(rows), st?.mode ?? 0o644, { secret, reason: `remove users ${[...names].join(', ')}` }), uid: st?.uid ?? 0, gid: st?.gid ?? 0 });
    };
    const dropUser = (r: string[]) => (names.has(r[0]) ? null : r);
    // user private groups go; other groups lose these members
    const dropGroup = (col: number) => (r: string[]) => (names.has(r[0]) ? null : r.map((v, i) => (i === col ? v.split(',').filter((m) => !names.has(m)).join(',') : v)));
    await rewrite('/etc/passwd', dropUser, false);
    await rewrite('/etc/shadow', dropUser, true);
    await rewrite('/etc/group', dropGroup(3), false);
    await rewrite('/etc/gshadow', dropGroup(3), true);
    for (const r of doomed) if (r[5] && r[5].startsWith('/home/') && (await guest.lstat(r[5]))) changes.push(del('user-accounts', r[5], `home of removed user ${r[0]}`, true));
    return changes;
  },
};
