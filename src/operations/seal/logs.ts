import type { FileChange } from '../../core/file-change.js';
import type { SealContext, SealOperation } from '../../core/operation.js';
import { del, write } from '../util.js';

/**
 * Logs: the journal (its directory is named after the master's machine-id)
 * and rotated logs are removed; current log files are emptied in place,
 * keeping mode and owner, because daemons expect them to exist.
 */
export const sealLogs: SealOperation = {
  name: 'logs',
  kind: 'seal',
  description: 'remove the journal and rotated logs, empty the other log files',
  defaultEnabled: true,
  guests: ['linux'],
  async plan(ctx) {
    const changes: FileChange[] = [];
    await walk(ctx, '/var/log', changes);
    return changes;
  },
};

async function walk({ guest }: SealContext, dir: string, changes: FileChange[]): Promise<void> {
  for (const name of (await guest.readdir(dir)) ?? []) {
    const p = `${dir}/${name}`;
    const st = await guest.lstat(p);
    if (!st) continue;
    if (st.type === 'dir') {
      if (p === '/var/log/journal') {
        for (const sub of (await guest.readdir(p)) ?? []) changes.push(del('logs', `${p}/${sub}`, 'the master\'s journal', true));
      } else await walk({ guest } as SealContext, p, changes);
    } else if (st.type === 'file') {
      if (/\.(\d+|gz|xz|bz2|zst|old)$|-\d{8}$/.test(name)) changes.push(del('logs', p, 'rotated log of the master'));
      else if (st.size > 0) changes.push({ ...write('logs', p, '', st.mode, { reason: 'log of the master, emptied' }), uid: st.uid, gid: st.gid });
    }
  }
}
