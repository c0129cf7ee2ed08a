import { lookupId } from '../../identity/users.js';
import { fileContent } from '../../template/files.js';
import { GuestError } from '../../util/errors.js';
import type { FileChange } from '../../core/file-change.js';
import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { readText, write } from '../util.js';

/** Arbitrary files: a template under templates/, inline content (a template too) or a host file copied as is. */
export const filesOperation: Operation = {
  name: 'files',
  kind: 'customize',
  description: 'write files from templates, inline content or host files',
  defaultEnabled: true,
  order: 130,
  guests: ['linux', 'windows'],
  async plan({ guest, machine, profile }) {
    const specs = profile.files ?? [];
    if (!specs.length) return [];
    const passwd = await readText(guest, '/etc/passwd');
    const group = await readText(guest, '/etc/group');
    const changes: FileChange[] = [];
    for (const [i, f] of specs.entries()) {
      const content = fileContent(machine, f, i);
      const uid = f.owner ? lookupId(passwd, f.owner) : 0;
      const gid = f.group ? lookupId(group, f.group) : 0;
      if (uid === undefined) throw new GuestError(`files: owner "${f.owner}" of ${f.path} does not exist in the guest`);
      if (gid === undefined) throw new GuestError(`files: group "${f.group}" of ${f.path} does not exist in the guest`);
      changes.push({ ...write('files', f.path, content, f.mode ? parseInt(f.mode, 8) : 0o644), uid, gid });
    }
    return changes;
  },
};
