/**
 * The one glob matcher (minimatch), in the two dialects ghostprep meets:
 *
 * - `shell`: --target globs, as the shell expands them: `*` and `?` do not
 *   match a leading dot unless the pattern segment starts with one.
 * - `fnmatch`: patterns matched with fnmatch(3) and no FNM_PERIOD — systemd's
 *   `Name=`, the guest paths of seal operations (`/tmp/*` takes dotfiles too).
 *
 * Both match one name (a path segment, an interface name) at a time:
 * `*`, `?`, `[abc]`, `[a-z]`, `[!x]` / `[^x]`, POSIX classes (`[[:digit:]]`)
 * and backslash escapes. Braces, extglobs (`+(a)`, `!(a)`), `**`, a leading
 * `!` (negating the whole pattern) and a leading `#` (a comment) are not glob
 * syntax in either dialect: they match themselves.
 */
import { readdirSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { Minimatch, type MinimatchOptions } from 'minimatch';

export type GlobDialect = 'shell' | 'fnmatch';

const MAGIC = /[*?[]/;

/** Whether `pattern` holds glob syntax at all (a plain path is taken as it is). */
export function hasGlobMagic(pattern: string): boolean {
  return MAGIC.test(pattern);
}

const OPTIONS: MinimatchOptions = { nobrace: true, noext: true, nonegate: true, nocomment: true, noglobstar: true, platform: 'linux' };

/**
 * minimatch takes a shortcut for `*EXT` and `?EXT` (EXT without `[`, `?`, `*`)
 * that compares EXT as written, escapes included: `*\]` would never match
 * `a]`. In that shape an escaped character is itself, and a backslash is
 * written as a bracket (which also leaves the shortcut).
 */
const SHORTCUT = /^(?:\*+|\?+)[^+@!?*[(]*$/;
const withoutShortcutEscapes = (pattern: string): string =>
  pattern.includes('\\') && SHORTCUT.test(pattern) ? pattern.replace(/\\([^])/g, (_, c: string) => (c === '\\' ? '[\\\\]' : c)) : pattern;

/** A matcher for one name (no `/` in it) against `pattern`. */
export function globMatcher(pattern: string, dialect: GlobDialect): (name: string) => boolean {
  const mm = new Minimatch(withoutShortcutEscapes(pattern), { ...OPTIONS, dot: dialect === 'fnmatch' });
  return (name) => mm.match(name);
}

/** Whether `name` (no `/` in it) matches `pattern`. */
export function globMatch(pattern: string, name: string, dialect: GlobDialect): boolean {
  return globMatcher(pattern, dialect)(name);
}

/** Expand a shell glob over this host's filesystem, one path segment at a time (Node 20 has no fs.glob); sorted per segment. */
export function expandGlob(pattern: string): string[] {
  if (!hasGlobMagic(pattern)) return [pattern];
  const abs = path.isAbsolute(pattern);
  const segs = pattern.split('/').filter((s, i) => s !== '' || i === 0);
  let bases = [abs ? '/' : '.'];
  for (const seg of segs) {
    if (seg === '') continue;
    if (!hasGlobMagic(seg)) { bases = bases.map((b) => path.join(b, seg)).filter((p) => existsSync(p)); continue; }
    const match = globMatcher(seg, 'shell');
    bases = bases.flatMap((b) => {
      try { return readdirSync(b).filter((n) => match(n)).sort().map((n) => path.join(b, n)); } catch { return []; }
    });
  }
  return abs ? bases : bases.map((b) => (pattern.startsWith('./') ? './' + b : b));
}

/** Expand a TARGET that may be a glob: keeps the rootfs: prefix. */
export function expandTargetGlob(target: string): string[] {
  if (target.startsWith('rootfs:')) {
    const dirs = expandGlob(target.slice(7));
    // a glob over root trees matches directories only (reports and known_hosts may sit beside them)
    return (hasGlobMagic(target) ? dirs.filter((p) => statSync(p, { throwIfNoEntry: false })?.isDirectory()) : dirs).map((p) => 'rootfs:' + p);
  }
  return expandGlob(target);
}
