/**
 * Safe edits of passwd, shadow, group and gshadow: pure functions over the
 * file text that change only the lines of the users and groups named and
 * keep every other line byte for byte (comments, NIS "+" lines, order).
 */
import type { UserSpec } from '../core/profile.js';
import path from 'node:path';

export type Table = string[][];

export function parseTable(text: string | undefined): { rows: Table; trailingNewline: boolean } {
  const t = text ?? '';
  const lines = t.split('\n');
  const trailingNewline = t.endsWith('\n') || t === '';
  if (t.endsWith('\n')) lines.pop();
  return { rows: t === '' ? [] : lines.map((l) => l.split(':')), trailingNewline };
}

export function formatTable(rows: Table): string {
  return rows.map((r) => r.join(':')).join('\n') + (rows.length ? '\n' : '');
}

const find = (rows: Table, name: string) => rows.find((r) => r[0] === name);

export interface UserEditResult { passwd: string; shadow: string; group: string; gshadow: string; created: Array<{ name: string; uid: number; gid: number; home: string }>; problems: string[] }

/** First free id >= from in both tables' id column. */
function freeId(rows: Table, from: number, taken: Set<number>): number {
  const used = new Set(rows.map((r) => Number(r[2])));
  let id = from;
  while (used.has(id) || taken.has(id)) id++;
  return id;
}

export function applyUsers(files: { passwd?: string; shadow?: string; group?: string; gshadow?: string }, users: readonly UserSpec[], opts: { defaultShell: string; hasShadow: boolean; hasGshadow: boolean }): UserEditResult {
  const passwd = parseTable(files.passwd).rows;
  const shadow = parseTable(files.shadow).rows;
  const group = parseTable(files.group).rows;
  const gshadow = parseTable(files.gshadow).rows;
  const problems: string[] = [];
  const created: UserEditResult['created'] = [];
  const takenUid = new Set<number>();
  const takenGid = new Set<number>();
  for (const u of users) {
    let pw = find(passwd, u.name);
    if (!pw) {
      const uid = u.uid ?? freeId(passwd, 1000, takenUid);
      if (u.uid !== undefined && passwd.some((r) => Number(r[2]) === uid)) problems.push(`user ${u.name}: uid ${uid} is already used by ${passwd.find((r) => Number(r[2]) === uid)![0]}`);
      takenUid.add(uid);
      let gid = u.gid;
      if (gid === undefined) {
        const own = find(group, u.name);
        if (own) gid = Number(own[2]);
        else {
          gid = group.some((r) => Number(r[2]) === uid) || takenGid.has(uid) ? freeId(group, 1000, takenGid) : uid;
          takenGid.add(gid);
          group.push([u.name, 'x', String(gid), '']);
          if (opts.hasGshadow) gshadow.push([u.name, '!', '', '']);
        }
      }
      const home = u.home ?? `/home/${u.name}`;
      homeClash(passwd, u.name, home, problems);
      pw = [u.name, 'x', String(uid), String(gid), u.gecos ?? '', home, u.shell ?? opts.defaultShell];
      passwd.push(pw);
      created.push({ name: u.name, uid, gid, home });
      if (opts.hasShadow) shadow.push([u.name, u.passwordHash ?? '!', '', '0', '99999', '7', '', '', '']);
      else if (u.passwordHash !== undefined) setWithoutShadow(pw, u.name, u.passwordHash, problems);
    } else {
      if (u.uid !== undefined && Number(pw[2]) !== u.uid) problems.push(`user ${u.name} exists in the guest with uid ${pw[2]}, not ${u.uid}; changing a uid would orphan its files`);
      if (u.gid !== undefined) pw[3] = String(u.gid);
      if (u.gecos !== undefined) pw[4] = u.gecos;
      if (u.home !== undefined) { homeClash(passwd, u.name, u.home, problems); pw[5] = u.home; }
      if (u.shell !== undefined) pw[6] = u.shell;
      if (u.passwordHash !== undefined) {
        const sh = find(shadow, u.name);
        if (sh) sh[1] = u.passwordHash;
        else if (opts.hasShadow) shadow.push([u.name, u.passwordHash, '', '0', '99999', '7', '', '', '']);
        else setWithoutShadow(pw, u.name, u.passwordHash, problems);
      }
    }
    for (const wanted of u.groups ?? []) {
      // @admin: the administrators' group of this distribution.
      const g = wanted === '@admin' ? (find(group, 'sudo') ? 'sudo' : 'wheel') : wanted;
      const gr = find(group, g);
      if (!gr) { problems.push(`user ${u.name}: group "${g}" does not exist in the guest`); continue; }
      addMember(gr, 3, u.name);
      const gs = find(gshadow, g);
      if (gs) addMember(gs, 3, u.name);
    }
  }
  return { passwd: formatTable(passwd), shadow: formatTable(shadow), group: formatTable(group), gshadow: formatTable(gshadow), created, problems };
}

/** Values of the passwd password field that are no secret: "x" (see shadow), locks, empty. */
const PUBLIC_PASSWORD_FIELD = /^(x|\*|!+|\*LK\*|\*NP\*|)$/;

/**
 * A guest without /etc/shadow: a lock ("!", "*") may go into the passwd field, a hash may not:
 * /etc/passwd is readable by every user and process. The machine fails instead, with a message
 * that says what to do and not what the hash is.
 */
function setWithoutShadow(pw: string[], name: string, hash: string, problems: string[]): void {
  if (hash === '!' || hash === '*') { pw[1] = hash; return; }
  problems.push(`user ${name}: the guest has no /etc/shadow, and a password hash is never written to /etc/passwd (readable by every user); create /etc/shadow in the master (pwconv) or leave passwordHash out`);
}

/** Whether passwd text holds a password hash in some line's password field (a guest without shadow). */
export function passwdHoldsHashes(text: string | undefined): boolean {
  return parseTable(text).rows.some((r) => r.length > 1 && !r[0]!.startsWith('#') && !r[0]!.startsWith('+') && !r[0]!.startsWith('-') && !PUBLIC_PASSWORD_FIELD.test(r[1]!));
}

function addMember(row: string[], col: number, name: string): void {
  while (row.length <= col) row.push('');
  const members = row[col]!.split(',').filter(Boolean);
  if (!members.includes(name)) members.push(name);
  row[col] = members.join(',');
}

/** uid/gid of a user or group name in passwd/group text; numeric strings pass through. */
export function lookupId(table: string | undefined, name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  const row = find(parseTable(table).rows, name);
  return row ? Number(row[2]) : undefined;
}

const normalHome = (h: string): string => path.posix.normalize(h).replace(/(.)\/+$/, '$1');

/**
 * A user may not take the home of another user of the guest: root's, a regular user's
 * (uid 1000..65533) or any under /home. System accounts that share a placeholder home
 * (/nonexistent, /var/empty, /) are left alone.
 */
function homeClash(passwd: readonly string[][], name: string, home: string, problems: string[]): void {
  const wanted = normalHome(home);
  const other = passwd.find((r) => r[0] !== name && typeof r[5] === 'string' && normalHome(r[5]) === wanted && (Number(r[2]) === 0 || (Number(r[2]) >= 1000 && Number(r[2]) < 65534) || wanted.startsWith('/home/')));
  if (other) problems.push(`user ${name}: home ${home} is the home of ${other[0]} in the guest; each user needs a home of their own`);
}

