/**
 * Checks of a machine's rendered `storage` section beyond the schema, with
 * the JSON pointer each problem is reported at (validate locates it in the
 * file that wrote the value).
 */
import { existsSync } from 'node:fs';
import type { StorageProfile } from '../core/device-identity.js';
import { vgNameProblem } from './lvm-refs.js';

export function storageProblems(storage: StorageProfile | undefined): Array<{ pointer: string; message: string }> {
  const out: Array<{ pointer: string; message: string }> = [];
  const vg = storage?.lvm?.vgName;
  if (typeof vg === 'string') {
    const p = vgNameProblem(vg);
    if (p) out.push({ pointer: '/storage/lvm/vgName', message: `volume group name "${vg}" ${p}` });
  }
  const l = storage?.luks;
  if (l?.reencrypt && !l.key) out.push({ pointer: '/storage/luks/reencrypt', message: 'reencrypt needs key: the re-encrypted volume opens with the clone\'s own passphrase only (the master\'s key slots wrap the old volume key and are dropped)' });
  if (l?.removeMasterKeys && !l.key) out.push({ pointer: '/storage/luks/removeMasterKeys', message: 'removeMasterKeys needs key: without a passphrase of its own the clone could not be opened at all' });
  if (l?.key && 'file' in l.key && typeof l.key.file === 'string' && !existsSync(l.key.file)) out.push({ pointer: '/storage/luks/key/file', message: `key file ${l.key.file} not found` });
  return out;
}
