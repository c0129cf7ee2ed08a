import { readFileSync } from 'node:fs';
import path from 'node:path';
import { originOf } from '../../profile/merge.js';
import { lookupId } from '../../identity/users.js';
import { templateDirs } from '../../schema/rules.js';
import { loadTemplateFile, renderTemplate } from '../../template/render.js';
import { GuestError } from '../../util/errors.js';
import type { FileChange } from '../../plan/types.js';
import type { Operation } from '../registry.js';
import { readText, write } from '../util.js';

/** Arbitrary files: a template under templates/, inline content (a template too) or a host file copied as is. */
export const filesOperation: Operation = {
  name: 'files',
  kind: 'customize',
  description: 'write files from templates, inline content or host files',
  defaultEnabled: true,
  async plan({ guest, machine, profile }) {
    const specs = profile.files ?? [];
    if (!specs.length) return [];
    const passwd = await readText(guest, '/etc/passwd');
    const group = await readText(guest, '/etc/group');
    const changes: FileChange[] = [];
    for (const [i, f] of specs.entries()) {
      const origin = originOf(machine.prepared.traced.origins, `/files/${i}`);
      const profileFile = origin?.source.file ?? '.';
      let content: Buffer;
      if (f.template !== undefined) {
        const t = loadTemplateFile(f.template, templateDirs(profileFile));
        content = Buffer.from(renderTemplate(t.text, machine.context, path.relative(process.cwd(), t.file) || t.file));
      } else if (f.content !== undefined) {
        content = Buffer.from(renderTemplate(f.content, machine.context, `${profileFile}:${origin?.pointer ?? `/files/${i}`}/content`));
      } else {
        content = readFileSync(path.resolve(path.dirname(profileFile), f.source!));
      }
      const uid = f.owner ? lookupId(passwd, f.owner) : 0;
      const gid = f.group ? lookupId(group, f.group) : 0;
      if (uid === undefined) throw new GuestError(`files: owner "${f.owner}" of ${f.path} does not exist in the guest`);
      if (gid === undefined) throw new GuestError(`files: group "${f.group}" of ${f.path} does not exist in the guest`);
      changes.push({ ...write('files', f.path, content, f.mode ? parseInt(f.mode, 8) : 0o644), uid, gid });
    }
    return changes;
  },
};
