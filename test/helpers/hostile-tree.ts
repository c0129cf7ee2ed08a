/**
 * Hostile trees from a description (git cannot hold FIFOs, devices or
 * immutable files): each entry is made on top of a copied fixture. And
 * snapshots of trees, byte for byte (type, mode, owner, content, link
 * target, device number), to prove a failed machine was left as it was.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, lchownSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MemoryGuest } from '../../src/backends/memory.js';

export interface TreeEntry {
  /** Guest path, absolute. */
  readonly path: string;
  /** `keep`: the fixture's own entry, only given `attr`. */
  readonly type: 'file' | 'dir' | 'symlink' | 'fifo' | 'chardev' | 'blockdev' | 'absent' | 'keep';
  readonly content?: string;
  readonly target?: string;
  /** Octal text ("0644"). */
  readonly mode?: string;
  readonly uid?: number;
  readonly gid?: number;
  /** chattr flags to set after making it: "i" (immutable), "a" (append-only). */
  readonly attr?: string;
}

/** Files given chattr flags, to clear before the tree is removed. */
export const flagged: string[] = [];

/**
 * The host path of guest path `p` under `root`, its missing parents made as real
 * directories. Never through a link: the host would follow it out of the root (a
 * tree whose /a -> / must not turn "make /a/etc" into the host's /etc). Throws
 * when a parent is anything but a real directory.
 */
export function hostPathInside(root: string, p: string): string {
  const parts = p.split('/').filter(Boolean);
  if (parts.some((x) => x === '..' || x === '.')) throw new Error(`${p}: no . or .. in tree paths`);
  let at = root;
  for (const name of parts.slice(0, -1)) {
    at = path.join(at, name);
    const st = lstatOrNull(at);
    if (!st) mkdirSync(at);
    else if (!st.isDirectory()) throw new Error(`${p}: parent ${at.slice(root.length)} is not a directory`);
  }
  return path.join(at, parts.at(-1) ?? '');
}

function lstatOrNull(p: string): ReturnType<typeof lstatSync> | null {
  try { return lstatSync(p); } catch { return null; }
}

/** Remove what is at `host` itself (a link is removed, never followed; rm -r does not follow links below). */
export function removeEntry(host: string): void {
  const st = lstatOrNull(host);
  if (!st) return;
  if (st.isDirectory()) rmSync(host, { recursive: true, force: true });
  else unlinkSync(host);
}

/** Make `entries` inside `root` (replacing what is there). Throws when the host cannot (mknod, chattr). */
export function buildTree(root: string, entries: readonly TreeEntry[]): void {
  for (const e of entries) {
    if (e.type === 'keep') continue;
    const host = hostPathInside(root, e.path);
    removeEntry(host);
    if (e.type === 'absent') continue;
    switch (e.type) {
      case 'file': writeFileSync(host, e.content ?? ''); break;
      case 'dir': mkdirSync(host); break;
      case 'symlink': symlinkSync(e.target ?? '', host); break;
      case 'fifo': execFileSync('mkfifo', [host]); break;
      case 'chardev': execFileSync('mknod', [host, 'c', '1', '3']); break;
      case 'blockdev': execFileSync('mknod', [host, 'b', '7', '250']); break;
    }
    if (e.type !== 'symlink') {
      if (e.mode) chmodSync(host, parseInt(e.mode, 8));
      if (e.uid !== undefined || e.gid !== undefined) chownSync(host, e.uid ?? 0, e.gid ?? 0);
    } else if (e.uid !== undefined) lchownSync(host, e.uid, e.gid ?? 0);
  }
  for (const e of entries) {
    if (!e.attr) continue;
    const host = hostPathInside(root, e.path);
    execFileSync('chattr', [`+${e.attr}`, host]);
    flagged.push(host);
  }
}

/** Clear the chattr flags set by buildTree (so the trees can be removed). */
export function clearFlags(): void {
  for (const f of flagged.splice(0)) try { execFileSync('chattr', ['-i', '-a', f], { stdio: 'ignore' }); } catch { /* gone */ }
}

/** Every entry under `dir` (itself included, as "."), lstat-based: what "byte-identical" compares. */
export function snapshotTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (rel: string) => {
    const host = path.join(dir, rel);
    const st = lstatSync(host);
    const head = `${(st.mode & 0o177777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out.set(rel, `${head} -> ${readlinkSync(host)}`);
    else if (st.isFile()) out.set(rel, `${head} ${st.size} ${st.nlink} ${createHash('sha256').update(readFileSync(host)).digest('hex')}`);
    else if (st.isDirectory()) {
      out.set(rel, head);
      for (const name of readdirSync(host).sort()) visit(rel === '.' ? name : `${rel}/${name}`);
    } else out.set(rel, `${head} rdev ${st.rdev}`);
  };
  visit('.');
  return out;
}

/** The differences between two snapshots, one line each (empty: identical). */
export function snapshotDiff(before: Map<string, string>, after: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [k, v] of before) if (after.get(k) !== v) out.push(`${k}: ${v} => ${after.get(k) ?? '(gone)'}`);
  for (const [k, v] of after) if (!before.has(k)) out.push(`${k}: (new) ${v}`);
  return out;
}

/** A MemoryGuest's entries, comparable as snapshotTree's. */
export function snapshotMemory(g: MemoryGuest): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, e] of g.entries) {
    if (e.type === 'symlink') out.set(k, `link -> ${e.target}`);
    else if (e.type === 'dir') out.set(k, `dir ${e.mode.toString(8)} ${e.uid}:${e.gid}`);
    else out.set(k, `file ${e.mode.toString(8)} ${e.uid}:${e.gid} ${e.content.toString('base64')}`);
  }
  return out;
}
