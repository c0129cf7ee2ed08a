import path from 'node:path';
import { originOf } from '../../profile/profile-merge.js';
import { KEY_FILE_MAX_BYTES, keysOfFile, parseAuthorizedKey } from '../../identity/authorized-keys.js';
import { applyUsers, lookupId, parseTable } from '../../identity/users.js';
import { HostFileError, readHostText } from '../../util/host-file.js';
import { GuestError } from '../../util/errors.js';
import type { FileChange } from '../../core/file-change.js';
import type { CustomizeOperation as Operation, OperationContext } from '../../core/operation.js';
import { readText, write } from '../util.js';

/**
 * ~user/.ssh/authorized_keys for root and profile users. The list in the
 * profile is the whole file: the master's keys do not survive.
 * `file:PATH` entries are read from the host, relative to the profile.
 */
export const authorizedKeysOperation: Operation = {
  name: 'authorized-keys',
  kind: 'customize',
  description: 'install SSH authorized_keys for root and users (replacing the master\'s)',
  defaultEnabled: true,
  order: 50,
  guests: ['linux'],
  async plan(ctx) {
    const wanted = new Map<string, string[]>();
    for (const [user, keys] of Object.entries(ctx.profile.ssh?.authorizedKeys ?? {})) wanted.set(user, expandKeys(ctx, keys, `/ssh/authorizedKeys/${user}`));
    ctx.profile.users?.forEach((u, i) => {
      if (u.authorizedKeys) wanted.set(u.name, [...(wanted.get(u.name) ?? []), ...expandKeys(ctx, u.authorizedKeys, `/users/${i}/authorizedKeys`)]);
    });
    if (!wanted.size) return [];
    // Users created by this same plan are not in the guest's passwd yet.
    const passwdText = await readText(ctx.guest, '/etc/passwd');
    const groupText = await readText(ctx.guest, '/etc/group');
    const planned = applyUsers({ passwd: passwdText, group: groupText }, ctx.profile.users ?? [], { defaultShell: '/bin/sh', hasShadow: false, hasGshadow: false });
    const rows = parseTable(planned.passwd).rows;
    const changes: FileChange[] = [];
    for (const [user, keys] of wanted) {
      const row = rows.find((r) => r[0] === user);
      if (!row) throw new GuestError(`authorized keys for "${user}": no such user in the guest or the profile`);
      const uid = Number(row[2]);
      const gid = lookupId(planned.group, row[3]!) ?? Number(row[3]);
      const home = row[5] || (user === 'root' ? '/root' : `/home/${user}`);
      changes.push({ op: 'mkdir', source: 'authorized-keys', path: path.posix.join(home, '.ssh'), mode: 0o700, uid, gid });
      changes.push({ ...write('authorized-keys', path.posix.join(home, '.ssh/authorized_keys'), keys.map((k) => k.trim() + '\n').join(''), 0o600), uid, gid });
    }
    return changes;
  },
};

/**
 * The keys of a list, `file:` entries read from the host; every key is parsed
 * again here (validate may not have run) and a bad one fails the machine with
 * a message that names where it is, never what it holds.
 */
function expandKeys(ctx: OperationContext, keys: readonly string[], pointer: string): string[] {
  return keys.flatMap((k, i) => {
    if (!k.startsWith('file:')) {
      const parsed = parseAuthorizedKey(k);
      if (!parsed.ok) throw new GuestError(`authorized key ${pointer}/${i} ${parsed.reason}`);
      return [k];
    }
    const origin = originOf(ctx.machine.prepared.traced.origins, `${pointer}/${i}`);
    const file = path.resolve(path.dirname(origin?.source.file ?? '.'), k.slice(5));
    let text: string;
    try {
      text = readHostText(file, { what: 'key file', maxBytes: KEY_FILE_MAX_BYTES });
    } catch (err) {
      if (err instanceof HostFileError) throw new GuestError(`authorized key ${pointer}/${i}: ${err.message}`);
      throw err;
    }
    try {
      return keysOfFile(text, `key file ${file} (${pointer}/${i})`);
    } catch (err) {
      throw new GuestError((err as Error).message);
    }
  });
}
