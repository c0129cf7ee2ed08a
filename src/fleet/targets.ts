/**
 * TARGET strings (docs/images.md): a disk image path, rootfs:DIR, a /dev
 * block device, or a pattern with {name} mapping each machine to its own.
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import type { TargetSpec } from '../core/backend.js';
import { GhostprepError } from '../util/errors.js';

const IMAGE_FORMATS: Record<string, string> = { qcow2: 'qcow2', raw: 'raw', img: 'raw', vmdk: 'vmdk', vdi: 'vdi', vhdx: 'vhdx', vpc: 'vpc', vhd: 'vpc' };

export function parseTarget(text: string, machine?: string): TargetSpec {
  const t = machine !== undefined ? text.replaceAll('{name}', machine) : text;
  if (t.startsWith('rootfs:')) {
    const dir = t.slice('rootfs:'.length);
    if (!dir) throw new GhostprepError(`target "${text}": rootfs: needs a directory`);
    return { kind: 'rootfs', path: dir, machine };
  }
  if (t.startsWith('/dev/')) return { kind: 'device', path: t, format: 'raw', machine };
  const ext = path.extname(t).slice(1).toLowerCase();
  const format = IMAGE_FORMATS[ext];
  if (!format) throw new GhostprepError(`target "${text}": unknown kind (use rootfs:DIR, a /dev/ device, or an image ending in ${Object.keys(IMAGE_FORMATS).map((e) => '.' + e).join(' ')})`);
  return { kind: 'image', path: t, format, machine };
}

export function isPerMachine(text: string): boolean {
  return text.includes('{name}');
}

/** A target's real path: symlinks resolved as far as the path exists (a clone not yet written has none). */
export function realTargetPath(p: string): string {
  const abs = path.resolve(p);
  let head = abs;
  const tail: string[] = [];
  for (;;) {
    try { return path.join(realpathSync(head), ...tail.reverse()); } catch { /* not there (yet) */ }
    const up = path.dirname(head);
    if (up === head) return abs;
    tail.push(path.basename(head));
    head = up;
  }
}

/**
 * The fleet's targets checked together, before anything is written: each
 * machine's own (unique by real path: two machines on one tree would write it
 * twice and the other never), none inside another rootfs target (its writes
 * would land in the other machine), and never the host's own `/` unless
 * `allowHostRoot`. Returns the refusal of each machine that may not go on.
 */
export function checkTargets(list: ReadonlyArray<{ readonly name: string; readonly target: TargetSpec }>, options: { readonly allowHostRoot?: boolean } = {}): Map<string, string> {
  const refused = new Map<string, string>();
  const real = list.map((x) => ({ ...x, real: realTargetPath(x.target.path) }));
  for (const a of real) {
    if (a.target.kind === 'rootfs' && a.real === '/' && !options.allowHostRoot) {
      refused.set(a.name, `target ${a.target.path} is the host's own root filesystem; refusing to customize it (--allow-host-root to mean it)`);
    }
  }
  // one map and a walk up each path: 10,000 machines are checked in milliseconds, not pairwise
  const byReal = new Map<string, typeof real>();
  for (const a of real) byReal.set(a.real, [...(byReal.get(a.real) ?? []), a]);
  for (const [where, same] of byReal) {
    if (same.length < 2) continue;
    for (const a of same) refused.set(a.name, `target ${a.target.path} is also the target of ${same.filter((b) => b !== a).map((b) => `machine ${b.name}`).join(', ')} (${where}); each machine needs its own`);
  }
  for (const a of real) {
    for (let d = path.dirname(a.real); d !== a.real; d = path.dirname(d)) {
      const b = byReal.get(d)?.find((x) => x.target.kind === 'rootfs');
      if (b) {
        if (!refused.has(a.name)) refused.set(a.name, `target ${a.target.path} is inside the rootfs target of machine ${b.name} (${b.real})`);
        if (!refused.has(b.name)) refused.set(b.name, `rootfs target ${b.target.path} contains the target of machine ${a.name} (${a.real})`);
        break;
      }
      if (d === path.dirname(d)) break;
    }
  }
  return refused;
}
