/**
 * Preflight: a machine's complete plan checked against its real guest
 * before the first byte is written. Every problem that can be seen by
 * reading is found here, so that a machine that cannot be applied is not
 * touched at all; what only a write can reveal (an immutable file, a full
 * filesystem) is left to the transaction (plan/transaction.ts), which rolls
 * the machine back.
 *
 * The rules, for every change:
 * - the path is absolute, not `/`, and not under /proc, /sys, /dev or /run
 *   (virtual filesystems of a running system: never meaningful offline);
 * - each parent component, once resolved, is a directory or missing
 *   (creatable): never a regular file or a special file (FIFO, socket,
 *   device). Links are resolved inside the guest as chroot (and the booted
 *   guest) resolves them: an absolute target restarts at the guest's `/`
 *   and `..` stops there, so no link leads out of the guest; none may lead
 *   into those virtual filesystems or to `/` itself, and a directory made
 *   through a final link needs the link to lead to a directory;
 * - the path itself has the right kind: a file is written over a file, a
 *   symlink or nothing; a directory is made over a directory (or a link to
 *   one) or nothing; a symlink never replaces a directory;
 * - owners and groups are integer ids in 0..4294967294;
 * - modes are at most 07777, and a setuid, setgid or world-writable file (a
 *   world-writable directory without the sticky bit) needs the profile's
 *   `allowSpecialModes: true`.
 */
import path from 'node:path/posix';
import type { FileStat, GuestReader } from '../core/backend.js';
import type { FileChange } from '../core/file-change.js';
import { specialModeProblem } from '../util/modes.js';
import { virtualRootOf } from '../util/guest-paths.js';

export interface PreflightOptions {
  /** The profile's allowSpecialModes: setuid, setgid and world-writable modes are wanted. */
  readonly allowSpecialModes?: boolean;
}

/** The largest valid uid/gid: (uid_t)-1 means "no change" to chown and is never an owner. */
export const MAX_ID = 4294967294;

const MAX_LINKS = 40;

/** What one path component turned out to be, as the walk found it. */
interface Walked {
  /** The symlink-free guest path. */
  readonly real: string;
  /** Metadata of `real` (not following a final link), null when missing. */
  readonly st: FileStat | null;
}

class PathProblem extends Error {}

/**
 * Resolve `p` inside the guest as the backends do, but stop at anything a
 * write must not go through: a parent that is a file or a special file, a loop. `follow` applies to the last component.
 */
async function walk(guest: GuestReader, p: string, follow: boolean): Promise<Walked> {
  const pending = p.split('/').filter(Boolean).reverse();
  let at = '';
  let hops = 0;
  let missing = false;
  let st: FileStat | null = null;
  while (pending.length) {
    const name = pending.pop()!;
    if (name === '.') continue;
    // as chroot: `..` at the guest's / stays there (the booted guest resolves it so too)
    if (name === '..') { at = at.slice(0, at.lastIndexOf('/')); continue; }
    const here = `${at}/${name}`;
    const last = pending.length === 0;
    st = missing ? null : await guest.lstat(here);
    if (st?.type === 'symlink' && (!last || follow)) {
      if (++hops > MAX_LINKS) throw new PathProblem(`too many levels of symbolic links at ${here}`);
      const target = (await guest.readlink(here)) ?? '';
      if (target.startsWith('/')) at = '';
      pending.push(...target.split('/').filter(Boolean).reverse());
      continue;
    }
    if (!last && st) {
      if (st.type === 'file') throw new PathProblem(`${here} is a regular file, not a directory`);
      if (st.type === 'other') throw new PathProblem(`${here} is a special file (FIFO, socket or device), not a directory`);
    }
    if (!st) missing = true;
    at = here;
  }
  return { real: at || '/', st };
}

/**
 * The symlink-free guest path `p` designates, resolved as the backends resolve it
 * (for the transaction: where a write really lands, to undo the parents it creates).
 */
export async function realGuestPath(guest: GuestReader, p: string, follow: boolean): Promise<string> {
  return (await walk(guest, path.resolve('/', p), follow)).real;
}

function idProblem(what: string, id: number): string | undefined {
  if (!Number.isInteger(id) || id < 0 || id > MAX_ID) return `${what} ${id} is out of range (0..${MAX_ID})`;
  return undefined;
}

function modeProblem(c: FileChange & { mode: number }, dir: boolean, opts: PreflightOptions): string | undefined {
  return specialModeProblem(c.mode, dir, opts.allowSpecialModes);
}

/** The problems of one change ("" prefix-free messages naming the path); empty: fine. */
export async function preflightChange(guest: GuestReader, c: FileChange, opts: PreflightOptions = {}): Promise<string[]> {
  return checkChange(guest, c, opts);
}

/** preflightChange, also noting in `landing` where the change lands when its path can be walked. */
async function checkChange(guest: GuestReader, c: FileChange, opts: PreflightOptions, landing?: Map<FileChange, string>): Promise<string[]> {
  const p = c.path;
  if (!p.startsWith('/')) return [`${p}: not an absolute path`];
  const norm = path.resolve('/', p);
  const doing = c.op === 'delete' ? 'delete' : c.op === 'mkdir' ? 'create the directory' : 'write';
  if (norm === '/') return [`${p}: refusing to ${doing} / (the guest's root)`];
  const v = virtualRootOf(norm);
  if (v) return [`${p}: refusing to ${doing} under ${v} (a virtual filesystem of the running system)`];
  const problems: string[] = [];
  if (c.op === 'write' || c.op === 'mkdir') {
    for (const [what, id] of [['owner uid', c.uid], ['group gid', c.gid]] as const) {
      const bad = idProblem(what, id);
      if (bad) problems.push(`${p}: ${bad}`);
    }
    const bad = modeProblem(c, c.op === 'mkdir', opts);
    if (bad) problems.push(`${p}: ${bad}`);
  }
  if (c.op === 'registry') return problems;
  let w: Walked;
  try {
    w = await walk(guest, norm, false);
    landing?.set(c, w.real);
    // a directory is made through a final link (chmod and chown follow it): it must lead to one
    if (c.op === 'mkdir' && w.st?.type === 'symlink') {
      const to = await walk(guest, norm, true);
      if (to.st?.type !== 'dir') return [...problems, `${p} is a symlink to ${(await guest.readlink(norm)) ?? '?'}, which is not a directory in the guest`];
      w = to;
    }
  } catch (err) {
    if (!(err instanceof PathProblem)) throw err;
    return [...problems, `${p}: ${err.message}`];
  }
  if (w.real === '/') return [...problems, `${p}: resolves to / (the guest's root)`];
  const rv = virtualRootOf(w.real);
  if (rv) return [...problems, `${p}: resolves to ${w.real}, under ${rv} (a virtual filesystem of the running system)`];
  const t = w.st?.type;
  switch (c.op) {
    case 'write':
      if (t === 'dir') problems.push(`${p} is a directory; refusing to replace it with a file`);
      else if (t === 'other') problems.push(`${p} is not a regular file but a special file (FIFO, socket or device); refusing to replace it`);
      break;
    case 'mkdir':
      if (t === 'file') problems.push(`${p} is a regular file, not a directory`);
      else if (t === 'other') problems.push(`${p} is a special file (FIFO, socket or device), not a directory`);
      break;
    case 'symlink':
      if (t === 'dir') problems.push(`${p} is a directory; refusing to replace it with a symlink`);
      else if (t === 'other') problems.push(`${p} is a special file (FIFO, socket or device); refusing to replace it`);
      break;
    case 'delete':
      if (t === 'dir' && !c.recursive && ((await guest.readdir(norm)) ?? []).length) problems.push(`${p} is a non-empty directory`);
      break;
  }
  return problems;
}

/** Every problem of a machine's plan; empty: the plan can be committed. */
export async function preflightPlan(guest: GuestReader, changes: readonly FileChange[], opts: PreflightOptions = {}): Promise<string[]> {
  const problems: string[] = [];
  // where each change lands in the guest before the plan (links resolved, the last component not
  // followed); a change whose path cannot be walked has a problem of its own and no landing
  const landing = new Map<FileChange, string>();
  for (const c of changes) problems.push(...(await checkChange(guest, c, opts, landing)));
  return [...problems, ...planConflicts(changes, landing)];
}

/**
 * Changes of one plan that contradict each other: a path planned below another
 * that the plan writes as a file, makes a symlink or deletes (the later change
 * would fail, undo the earlier one, or go through a link the plan itself makes,
 * which no check before the commit saw). Compared as written and, when given,
 * where each lands: `/etc/ssh/a` lands below `/b/ssh` when /etc is a link to
 * /b. Only a directory may have planned children.
 */
export function planConflicts(changes: readonly FileChange[], landing?: ReadonlyMap<FileChange, string>): string[] {
  const written = conflictsBy(changes, (c) => (c.path.startsWith('/') ? path.resolve('/', c.path) : undefined), '');
  // one problem per change: where it lands is said only when its path as written conflicts with none
  const landed = landing ? conflictsBy(changes, (c) => landing.get(c), ' (where it lands)') : new Map<FileChange, string>();
  return [...written.values(), ...[...landed].filter(([c]) => !written.has(c)).map(([, problem]) => problem)];
}

/** The first conflict of each change whose key (a path) lies below another change's. */
function conflictsBy(changes: readonly FileChange[], keyOf: (c: FileChange) => string | undefined, how: string): Map<FileChange, string> {
  const byPath = new Map<string, FileChange>();
  for (const c of changes) {
    const key = keyOf(c);
    if (key !== undefined) byPath.set(key, c);
  }
  const problems = new Map<FileChange, string>();
  for (const [p, c] of byPath) {
    for (let d = path.dirname(p); d !== '/'; d = path.dirname(d)) {
      const a = byPath.get(d);
      if (!a || a.op === 'mkdir') continue;
      const what = a.op === 'delete' ? 'deletes' : a.op === 'symlink' ? 'makes a symlink of' : 'writes as a file';
      problems.set(c, `${c.path} is planned below ${a.path}${how}, which the plan ${what} (${a.source}, ${c.source})`);
      break;
    }
  }
  return problems;
}
