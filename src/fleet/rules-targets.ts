/**
 * Inventory `target`s: one machine per target. Two entries naming one tree
 * or image (written alike or not: `./a` and `a`, a trailing slash, `{name}`
 * expanded) would customize it twice and the other machine never; a rootfs
 * target inside another machine's rootfs would be written by both. The
 * comparison here is on the text, resolved against the working directory;
 * links and the host's own `/` are resolved when the targets are opened.
 */
import path from 'node:path';
import { parseTarget } from './targets.js';
import type { PreparedMachine } from '../core/machine.js';
import { placeIn } from '../profile/source.js';
import type { Diagnostic } from '../core/diagnostic.js';

/** The absolute path a target text stands for, and whether it is a directory tree (rootfs). */
export function targetPath(text: string, machine: string, cwd = process.cwd()): { path: string; tree: boolean } {
  const t = parseTarget(text, machine);
  return { path: path.resolve(cwd, t.path), tree: t.kind === 'rootfs' };
}

/** Proper ancestors of an absolute path, nearest first ("/a/b/c" -> "/a/b", "/a", "/"). */
function ancestors(p: string): string[] {
  const out: string[] = [];
  for (let d = path.dirname(p); ; d = path.dirname(d)) {
    out.push(d);
    if (d === path.dirname(d)) return out;
  }
}

export function checkTargets(machines: readonly PreparedMachine[], cwd = process.cwd()): Diagnostic[] {
  const out: Diagnostic[] = [];
  const exact = new Map<string, PreparedMachine>();
  const trees = new Map<string, PreparedMachine>();
  /** Every ancestor directory of a target seen so far -> the first machine below it. */
  const below = new Map<string, PreparedMachine>();
  const at = (m: PreparedMachine) => placeIn(m.inventory, { severity: 'error', path: `/machines/${m.index}/target`, message: '' });
  const named = (m: PreparedMachine) => {
    const d = placeIn(m.inventory, { severity: 'error', path: `/machines/${m.index}`, message: '' });
    return `machine "${m.name}" (${path.relative(cwd, d.file!) || d.file}:${d.line})`;
  };
  for (const m of machines) {
    const text = m.entry.target;
    if (typeof text !== 'string') continue;
    let t: { path: string; tree: boolean };
    try {
      t = targetPath(text, m.name, cwd);
    } catch (err) {
      out.push({ ...at(m), message: (err as Error).message });
      continue;
    }
    const same = exact.get(t.path);
    const outer = ancestors(t.path).map((d) => trees.get(d)).find(Boolean);
    const inner = t.tree ? below.get(t.path) : undefined;
    if (same) out.push({ ...at(m), message: `target "${text}" is ${t.path}, also the target of ${named(same)}: each machine needs a target of its own` });
    else if (outer) out.push({ ...at(m), message: `target "${text}" lies inside the rootfs target of ${named(outer)}: one machine's tree would hold another's` });
    else if (inner) out.push({ ...at(m), message: `target "${text}" contains the target of ${named(inner)}: one machine's tree would hold another's` });
    if (same || outer || inner) continue;
    exact.set(t.path, m);
    if (t.tree) trees.set(t.path, m);
    for (const d of ancestors(t.path)) if (!below.has(d)) below.set(d, m);
  }
  return out;
}
