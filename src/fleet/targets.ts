/**
 * TARGET strings (docs/images.md): a disk image path, rootfs:DIR, a /dev
 * block device, or a pattern with {name} mapping each machine to its own.
 */
import path from 'node:path';
import type { TargetSpec } from '../backends/backend.js';
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
