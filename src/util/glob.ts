/** Shell-style globs (* ? [..]) for --target, expanded per path segment (Node 20 has no fs.glob). */
import { readdirSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';

const MAGIC = /[*?[]/;

function segmentRegex(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = seg.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else { re += '[' + seg.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']'; i = end; }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export function expandGlob(pattern: string): string[] {
  if (!MAGIC.test(pattern)) return [pattern];
  const abs = path.isAbsolute(pattern);
  const segs = pattern.split('/').filter((s, i) => s !== '' || i === 0);
  let bases = [abs ? '/' : '.'];
  for (const seg of segs) {
    if (seg === '') continue;
    if (!MAGIC.test(seg)) { bases = bases.map((b) => path.join(b, seg)).filter((p) => existsSync(p)); continue; }
    const re = segmentRegex(seg);
    bases = bases.flatMap((b) => {
      try { return readdirSync(b).filter((n) => re.test(n) && (!n.startsWith('.') || seg.startsWith('.'))).sort().map((n) => path.join(b, n)); } catch { return []; }
    });
  }
  return abs ? bases : bases.map((b) => (pattern.startsWith('./') ? './' + b : b));
}

/** Expand a TARGET that may be a glob: keeps the rootfs: prefix. */
export function expandTargetGlob(target: string): string[] {
  if (target.startsWith('rootfs:')) {
    const dirs = expandGlob(target.slice(7));
    // a glob over root trees matches directories only (reports and known_hosts may sit beside them)
    return (MAGIC.test(target) ? dirs.filter((p) => statSync(p, { throwIfNoEntry: false })?.isDirectory()) : dirs).map((p) => 'rootfs:' + p);
  }
  return expandGlob(target);
}
