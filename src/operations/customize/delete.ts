import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { del } from '../util.js';

/** Paths the profile lists under `delete` (directories recursively). */
export const deleteOperation: Operation = {
  name: 'delete',
  kind: 'customize',
  description: 'delete the paths listed in the profile',
  defaultEnabled: true,
  order: 140,
  guests: ['linux', 'windows'],
  async plan({ guest, profile }) {
    const out = [];
    for (const p of profile.delete ?? []) {
      const st = await guest.lstat(p);
      out.push(del('delete', p, 'listed under delete', st?.type === 'dir'));
    }
    return out;
  },
};
