import type { CustomizeOperation as Operation } from '../registry.js';
import type { Guest } from '../../backends/backend.js';
import { rewriteVgReferences, VG_REFERENCE_DIRS, VG_REFERENCE_FILES } from '../../storage/lvm-refs.js';
import { LVM_DEVICES_FILE, rewriteLuksUuids, rewritePvids } from '../../storage/luks-refs.js';
import { write, modeOr } from '../util.js';

/**
 * After the backend gave the clone its own LVM and LUKS identity
 * (storage.lvm, storage.luks; docs/storage-lvm-luks.md): the files that
 * named the master's volume group, LUKS UUID or PV UUIDs point at the
 * clone's: fstab, crypttab, GRUB's defaults and grub.cfg, the kernel command
 * line, boot loader entries, the initramfs configuration (resume, dracut)
 * and LVM's devices file.
 */
export const storageRefsOperation: Operation = {
  name: 'storage-refs',
  kind: 'customize',
  description: 'point fstab, crypttab, GRUB and initramfs configuration at the clone\'s renamed volume group and new LUKS UUID',
  defaultEnabled: true,
  order: 5,
  guests: ['linux'],
  async plan({ guest }) {
    const renames = (guest as Partial<Guest>).deviceRenames;
    if (!renames) return [];
    const files = [...VG_REFERENCE_FILES, LVM_DEVICES_FILE];
    for (const { dir, suffixes } of VG_REFERENCE_DIRS) {
      for (const name of (await guest.readdir(dir).catch(() => null)) ?? []) {
        if (suffixes.some((s) => name.endsWith(s))) files.push(`${dir}/${name}`);
      }
    }
    const changes: Array<ReturnType<typeof write>> = [];
    for (const path of [...new Set(files)]) {
      const st = await guest.lstat(path);
      if (st?.type !== 'file') continue; // a symlink is rewritten where it points, if listed
      const bytes = await guest.readFile(path);
      if (bytes === null) continue;
      // latin1: every byte maps to one character and back, so bytes outside the references stay as they were
      const text = bytes.toString('latin1');
      let next = rewriteLuksUuids(rewriteVgReferences(text, renames.vgs), renames.luksUuids);
      if (path === LVM_DEVICES_FILE) next = rewritePvids(next, renames.pvUuids);
      if (next !== text) changes.push(write('storage-refs', path, Buffer.from(next, 'latin1'), await modeOr(guest, path, 0o644), { uid: st.uid, gid: st.gid }));
    }
    return changes;
  },
};
