/**
 * Users and ids of a rendered profile (after extends and templates): what
 * would make passwd/shadow ambiguous or hand one account another's files.
 * The field syntax (no ":" or control characters in name, gecos, home,
 * shell, groups, hash) is the schema's; these are the rules across fields
 * and entries.
 */
import path from 'node:path';
import { locateProblem } from '../template/locate.js';
import { type RenderedMachine } from '../core/machine.js';
import type { LoadedConfig } from '../profile/config.js';
import { placeIn } from '../profile/source.js';
import type { Diagnostic } from '../core/diagnostic.js';

/** The largest id the kernel accepts; (uid_t)-1 = 4294967295 means "no change" to chown(2) and setuid(2). */
export const MAX_ID = 4294967294;

/** Why a numeric uid/gid cannot be used, or undefined. 65535 is (uint16_t)-1, the invalid id of 16-bit interfaces and the kernel's overflow id. */
export function idProblem(id: number, what: 'uid' | 'gid'): string | undefined {
  if (!Number.isInteger(id) || id < 0 || id > 4294967295) return `${what} ${id} is out of range (0..${MAX_ID})`;
  if (id === 4294967295) return `${what} 4294967295 is (uid_t)-1, which the kernel treats as "no id"; use 0..${MAX_ID}`;
  if (id === 65535) return `${what} 65535 is (uint16_t)-1, the kernel's overflow id and "no id" to 16-bit interfaces (NFSv2, old binaries); choose another`;
  return undefined;
}

interface UserLike { name?: unknown; uid?: unknown; gid?: unknown; home?: unknown }

/** A problem at a pointer of the profile, placed in its file. */
type Locate = (pointer: string, message: string) => Diagnostic;

/** Where a pointer is written ("profile.yaml:20"), for messages naming the first of two. */
function where(locate: Locate, pointer: string): string {
  const d = locate(pointer, '');
  return d.file ? `${path.relative(process.cwd(), d.file) || d.file}:${d.line}` : pointer;
}

/** On the rendered machine: after extends and templates. */
export const usersRule = (r: RenderedMachine): Diagnostic[] => checkUsers((r.profile as { users?: unknown }).users, (p, m) => locateProblem(r.prepared, p, m));

/** On each profile file as written, so that `validate -p` without an inventory finds them too. */
export function checkProfileUsers(config: LoadedConfig): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const p of config.profiles.values()) {
    const locate: Locate = (pointer, message) => placeIn(p.source, { severity: 'error', path: pointer, message });
    const data = p.data as { users?: unknown; files?: unknown };
    out.push(...checkUsers(data.users, locate), ...checkFileOwners(data.files, locate));
  }
  return out;
}

export function checkUsers(users: unknown, locate: Locate): Diagnostic[] {
  if (!Array.isArray(users)) return [];
  const out: Diagnostic[] = [];
  const names = new Map<string, number>();
  const uids = new Map<number, number>();
  const homes = new Map<string, number>();
  users.forEach((raw, i) => {
    if (!raw || typeof raw !== 'object') return;
    const u = raw as UserLike;
    const at = `/users/${i}`;
    const name = typeof u.name === 'string' ? u.name : undefined;
    if (name !== undefined) {
      const first = names.get(name);
      if (first !== undefined) out.push(locate(`${at}/name`, `user "${name}" is defined twice (first at ${where(locate, `/users/${first}/name`)}); one entry per user`));
      else names.set(name, i);
    }
    for (const key of ['uid', 'gid'] as const) {
      const id = u[key];
      if (typeof id !== 'number') continue;
      const problem = idProblem(id, key);
      if (problem) out.push(locate(`${at}/${key}`, problem));
    }
    if (typeof u.uid === 'number') {
      const first = uids.get(u.uid);
      if (first !== undefined && (users[first] as UserLike).name !== name) {
        out.push(locate(`${at}/uid`, `uid ${u.uid} is also the uid of user "${String((users[first] as UserLike).name)}" (${where(locate, `/users/${first}/uid`)}); two users with one uid share every file`));
      } else if (first === undefined) uids.set(u.uid, i);
    }
    if (name === undefined) return;
    const explicitHome = typeof u.home === 'string';
    const home = explicitHome ? normalizeHome(u.home as string) : name === 'root' ? '/root' : `/home/${name}`;
    const homeAt = explicitHome ? `${at}/home` : `${at}/name`;
    if (name !== 'root' && (home === '/root' || home.startsWith('/root/'))) out.push(locate(homeAt, `home "${home}" is root's home; a non-root user may not take it (its keys and files would be root's)`));
    else if (home === '/') out.push(locate(homeAt, 'home "/" is the root of the file system; the user would own its .ssh and dot files'));
    const first = homes.get(home);
    if (first !== undefined && (users[first] as UserLike).name !== name) {
      out.push(locate(homeAt, `home "${home}" is also the home of user "${String((users[first] as UserLike).name)}" (${where(locate, `/users/${first}`)}); each user needs a home of its own`));
    } else if (first === undefined) homes.set(home, i);
  });
  return out;
}

function normalizeHome(home: string): string {
  const n = path.posix.normalize(home);
  return n.length > 1 ? n.replace(/\/+$/, '') : n;
}

/** Numeric owners and groups of `files:` entries must be usable ids. */
export const fileOwnersRule = (r: RenderedMachine): Diagnostic[] => checkFileOwners((r.profile as { files?: unknown }).files, (p, m) => locateProblem(r.prepared, p, m));

/** Values still holding a template ({{…}}) are checked once rendered. */
export function checkFileOwners(files: unknown, locate: Locate): Diagnostic[] {
  if (!Array.isArray(files)) return [];
  const out: Diagnostic[] = [];
  files.forEach((f, i) => {
    if (!f || typeof f !== 'object') return;
    for (const [key, what] of [['owner', 'uid'], ['group', 'gid']] as const) {
      const v = (f as Record<string, unknown>)[key];
      if (typeof v !== 'string' || v.includes('{{')) continue;
      if (/^\d+$/.test(v)) {
        const problem = idProblem(v.length > 12 ? Infinity : Number(v), what);
        if (problem) out.push(locate(`/files/${i}/${key}`, `${key}: ${problem.replace(/^(uid|gid) \S+/, `$1 ${v.length > 12 ? v.slice(0, 12) + '…' : v}`)}`));
      } else if (!/^[a-z_][a-z0-9_-]{0,31}\$?$/.test(v)) {
        out.push(locate(`/files/${i}/${key}`, `${key} ${JSON.stringify(v)} is neither a ${key === 'owner' ? 'user' : 'group'} name (lowercase letters, digits, _ and -) nor a numeric ${what}`));
      }
    }
  });
  return out;
}
