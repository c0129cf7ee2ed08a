/**
 * Small masters for the LVM and LUKS identity tests, built in ONE guestfish
 * run (two drives): an LVM guest (GPT, PV, VG `vg-master` with LVs root and
 * var, ext4, a Debian-like /etc naming the VG in fstab and GRUB) and a LUKS2
 * volume (header made by the host's cryptsetup with a cheap PBKDF, ext4
 * inside with the same /etc). Cached by content of this file in .cache/.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { guestfsEnv } from '../../src/backends/guestfs/env.js';
import { REPO_ROOT, tempDir } from '../helpers/images.js';

export const MASTER_VG = 'vg-master';
export const MASTER_LUKS_KEY = 'lvmluks master passphrase 41d2';
export const MASTER_LUKS_UUID = '0d7c1e9a-5b4f-4c3e-8a21-6f0e9d8c7b6a';
const MiB = 1024 * 1024;

export const FSTAB = `/dev/mapper/vg--master-root / ext4 errors=remount-ro 0 1\n/dev/vg-master/var /var ext4 defaults 0 2\n`;
export const GRUB = `GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX="root=/dev/mapper/vg--master-root rd.lvm.vg=vg-master rd.lvm.lv=vg-master/root"\n`;
const OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n';

function etcSteps(fstab: string): string[] {
  const q = (s: string): string => JSON.stringify(s);
  return [
    'mkdir-p /etc/default', 'mkdir-p /var/lib/dbus', 'mkdir-p /root', 'mkdir-p /tmp',
    `write /etc/os-release ${q(OS_RELEASE)}`, `write /etc/hostname "master\\n"`,
    `write /etc/machine-id "0123456789abcdef0123456789abcdef\\n"`,
    `write /etc/fstab ${q(fstab)}`, `write /etc/default/grub ${q(GRUB)}`,
  ];
}

/** Paths of the two masters (raw), built once. */
export async function identityMasters(): Promise<{ lvm: string; luks: string }> {
  const hash = createHash('sha256').update(await fs.readFile(new URL(import.meta.url))).digest('hex').slice(0, 12);
  const dir = path.join(REPO_ROOT, '.cache', 'storage-lvm', hash);
  const lvm = path.join(dir, 'lvm-master.raw');
  const luks = path.join(dir, 'luks-master.raw');
  try {
    await fs.access(luks);
    return { lvm, luks };
  } catch { /* build below */ }
  const work = await tempDir('ghostprep-lvmluks-');
  try {
    const lvmTmp = path.join(work, 'lvm.raw');
    const luksTmp = path.join(work, 'luks.raw');
    for (const f of [lvmTmp, luksTmp]) { await fs.writeFile(f, ''); await fs.truncate(f, 128 * MiB); }
    // LUKS2 header from the host's cryptsetup (pbkdf2, 1000 iterations: opens in milliseconds under TCG)
    await execa('sfdisk', ['-q', luksTmp], { input: 'label: gpt\nstart=2048, type=L\n' });
    const header = path.join(work, 'header.img');
    const keyFile = path.join(work, 'key');
    await fs.writeFile(header, '');
    await fs.truncate(header, 32 * MiB);
    await fs.writeFile(keyFile, MASTER_LUKS_KEY, { mode: 0o600 });
    await execa('cryptsetup', ['luksFormat', '--batch-mode', '--type', 'luks2', '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000', '--uuid', MASTER_LUKS_UUID, '--key-file', keyFile, header]);
    await execa('dd', [`if=${header}`, `of=${luksTmp}`, 'bs=1M', 'count=16', 'seek=1', 'conv=notrunc', 'status=none']);
    const script = [
      `add-drive ${lvmTmp} format:raw`, `add-drive ${luksTmp} format:raw`, 'run',
      'part-disk /dev/sda gpt', 'pvcreate /dev/sda1', `vgcreate ${MASTER_VG} /dev/sda1`,
      `lvcreate root ${MASTER_VG} 64`, `lvcreate-free var ${MASTER_VG} 100`,
      `mkfs ext4 /dev/${MASTER_VG}/root`, `mkfs ext4 /dev/${MASTER_VG}/var`,
      `mount /dev/${MASTER_VG}/root /`, ...etcSteps(FSTAB), 'mkdir-p /var', `mount /dev/${MASTER_VG}/var /var`, 'umount-all',
      'cryptsetup-open /dev/sdb1 crmaster', MASTER_LUKS_KEY,
      'mkfs ext4 /dev/mapper/crmaster', 'mount /dev/mapper/crmaster /',
      ...etcSteps('/dev/mapper/crmaster / ext4 defaults 0 1\n'),
      `write /etc/crypttab "crmaster UUID=${MASTER_LUKS_UUID} none luks\\n"`,
      'umount-all', 'cryptsetup-close /dev/mapper/crmaster', 'exit',
    ].join('\n') + '\n';
    await execa('guestfish', ['--keys-from-stdin'], { input: script, env: guestfsEnv(), extendEnv: false });
    await fs.mkdir(dir, { recursive: true });
    await fs.rename(lvmTmp, lvm);
    await fs.rename(luksTmp, luks);
    return { lvm, luks };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** A qcow2 overlay of a raw master. */
export async function cloneOf(master: string, dir: string, name: string): Promise<string> {
  const out = path.join(dir, `${name}.qcow2`);
  await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', master, out]);
  return out;
}
