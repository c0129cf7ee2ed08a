/**
 * What the invariants look at on disk: a byte-exact snapshot of a tree
 * (type, mode, owner, content or link target; never following a link, never
 * opening a FIFO or a socket), and a file read back the way the guest sees
 * it (links resolved inside the root, as after a chroot).
 */
import { createHash } from 'node:crypto';
import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import path from 'node:path';

export type Snapshot = Map<string, string>;

function typeOf(st: Stats): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'link';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  return 'other';
}

/** Every entry under `root` (and root itself): path -> "type mode uid:gid content". */
export function snapshot(root: string, skip: (rel: string) => boolean = () => false): Snapshot {
  const out: Snapshot = new Map();
  const walk = (rel: string): void => {
    const abs = path.join(root, rel);
    let st: Stats;
    try { st = lstatSync(abs); } catch { return; }
    const type = typeOf(st);
    let what = '';
    if (type === 'file') what = st.size > 4 * 1024 * 1024 ? `size ${st.size} mtime ${st.mtimeMs}` : createHash('sha256').update(readFileSync(abs)).digest('hex');
    else if (type === 'link') what = `-> ${readlinkSync(abs)}`;
    out.set(rel || '.', `${type} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${what}`);
    if (type === 'dir') for (const name of readdirSync(abs).sort()) { const r = rel ? `${rel}/${name}` : name; if (!skip(r)) walk(r); }
  };
  walk('');
  return out;
}

/** The differences between two snapshots, readable, at most `max`. */
export function snapshotDiff(before: Snapshot, after: Snapshot, max = 6): string[] {
  const out: string[] = [];
  for (const [p, v] of before) {
    const w = after.get(p);
    if (w === undefined) out.push(`${p}: removed (was ${v})`);
    else if (w !== v) out.push(`${p}: ${v} -> ${w}`);
  }
  for (const [p, v] of after) if (!before.has(p)) out.push(`${p}: added (${v})`);
  return out.length > max ? [...out.slice(0, max), `… ${out.length - max} more`] : out;
}

/** The host path of guest path `p` in `root`, following links inside the root; null if a link loops or a component is missing. */
export function resolveInRoot(root: string, p: string): string | null {
  const todo = p.split('/').filter(Boolean);
  const done: string[] = [];
  let hops = 0;
  while (todo.length) {
    const name = todo.shift()!;
    if (name === '.') continue;
    if (name === '..') { done.pop(); continue; }
    const host = path.join(root, ...done, name);
    let st: Stats;
    try { st = lstatSync(host); } catch { return todo.length ? null : host; }
    if (st.isSymbolicLink()) {
      if (++hops > 40) return null;
      const target = readlinkSync(host);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter(Boolean));
      continue;
    }
    done.push(name);
  }
  return path.join(root, ...done);
}

/** sha256 of the guest file `p`, or why it cannot be read back. */
export function readBack(root: string, p: string): { sha256: string; content: Buffer } | { problem: string } {
  const host = resolveInRoot(root, p);
  if (!host) return { problem: 'does not resolve inside the root' };
  let st: Stats;
  try { st = lstatSync(host); } catch { return { problem: 'missing' }; }
  if (!st.isFile()) return { problem: `is a ${typeOf(st)}, not a file` };
  const content = readFileSync(host);
  return { sha256: createHash('sha256').update(content).digest('hex'), content };
}

/** Every FIFO under `dir` (a stuck open() on one of them is unblocked by opening its other end). */
export function fifosUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try { names = readdirSync(d); } catch { return; }
    for (const n of names) {
      const p = path.join(d, n);
      let st: Stats;
      try { st = lstatSync(p); } catch { continue; }
      if (st.isFIFO()) out.push(p);
      else if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}
