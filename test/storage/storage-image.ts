/**
 * A test disk with one filesystem of every type storage.newUuids changes,
 * built in ONE appliance and cached under .cache/test-images by recipe and
 * fixture (its names, modes and contents):
 * GPT; p1 vfat (label EFI, /boot/efi), p2 ext4 root (the debian12 fixture),
 * p3 xfs (label srv, /srv), p4 btrfs (label data, /data), p5 swap (label
 * swap). The root's fstab, GRUB config, BLS entry, kernel command line,
 * initramfs resume and crypttab name them by UUID= and PARTUUID=; each
 * filesystem holds a marker file.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { GuestfsSession } from '../../src/backends/guestfs/session.js';
import { CACHE_DIR, stageTree, tempDir } from '../helpers/images.js';

const RECIPE = 'storage-multi-fs v1';
const MiB = 1024 * 1024;

export interface MultiFsIds {
  readonly fs: Record<'vfat' | 'ext4' | 'xfs' | 'btrfs' | 'swap', string>;
  readonly part: string[];
  readonly disk: string;
}

/** Sectors of p1..p5 (start, end inclusive); the disk is 800 MiB. */
const PARTS: Array<[number, number]> = [[2048, 104447], [104448, 628735], [628736, 1284095], [1284096, 1611775], [1611776, 1677311]];
const DEVICES = { vfat: '/dev/sda1', ext4: '/dev/sda2', xfs: '/dev/sda3', btrfs: '/dev/sda4', swap: '/dev/sda5' } as const;

export function referenceFiles(ids: MultiFsIds): Record<string, string> {
  const f = ids.fs;
  return {
    '/etc/fstab': [
      `UUID=${f.ext4} / ext4 errors=remount-ro 0 1`,
      `UUID=${f.vfat} /boot/efi vfat umask=0077 0 1`,
      `PARTUUID=${ids.part[2]} /srv xfs defaults 0 2`,
      `/dev/disk/by-uuid/${f.btrfs} /data btrfs defaults 0 0`,
      `UUID=${f.swap} none swap sw 0 0`, '',
    ].join('\n'),
    '/etc/crypttab': `# none encrypted; swap by UUID for the format\n#swapcrypt UUID=${f.swap} /dev/urandom swap\n`,
    '/boot/grub/grub.cfg': `search --no-floppy --fs-uuid --set=root ${f.ext4}\nmenuentry 'Debian' {\n\tlinux /boot/vmlinuz root=UUID=${f.ext4} ro resume=UUID=${f.swap}\n}\n`,
    '/etc/default/grub': `GRUB_CMDLINE_LINUX_DEFAULT="quiet resume=UUID=${f.swap}"\n`,
    '/boot/loader/entries/debian.conf': `title Debian\nlinux /vmlinuz\noptions root=PARTUUID=${ids.part[1]} ro\n`,
    '/etc/kernel/cmdline': `root=UUID=${f.ext4} ro quiet\n`,
    '/etc/initramfs-tools/conf.d/resume': `RESUME=UUID=${f.swap}\n`,
  };
}

let building: Promise<{ image: string; ids: MultiFsIds }> | undefined;

/** The cached image (read-only: use an overlay) and the identities it was built with. */
export function multiFsImage(): Promise<{ image: string; ids: MultiFsIds }> {
  return (building ??= build());
}

async function build(): Promise<{ image: string; ids: MultiFsIds }> {
  const tree = await stageTree('ext4-gpt');
  const work = await tempDir('ghostprep-storage-');
  try {
    const tarball = path.join(work, 'tree.tar');
    await execa('tar', ['--numeric-owner', '-C', tree, '-cf', tarball, '.']);
    // the key hashes the tree's names, modes, owners and contents, not the times of its staging
    // (stageTree writes files now): the same fixture finds the same cached image in every run
    const stable = await execa('tar', ['--sort=name', '--mtime=@0', '--numeric-owner', '--format=gnu', '-C', tree, '-cf', '-', '.'], { encoding: 'buffer', maxBuffer: 1 << 30 });
    const treeHash = createHash('sha256').update(stable.stdout).digest('hex');
    const key = createHash('sha256').update(`${RECIPE}\0${treeHash}`).digest('hex').slice(0, 16);
    const out = path.join(CACHE_DIR, `storage-multi-${key}.qcow2`);
    const idsFile = `${out}.ids.json`;
    if (await fs.stat(out).then(() => true, () => false)) return { image: out, ids: JSON.parse(await fs.readFile(idsFile, 'utf8')) as MultiFsIds };
    await fs.mkdir(CACHE_DIR, { recursive: true });
    const raw = path.join(work, 'disk.raw');
    await fs.writeFile(raw, '');
    await fs.truncate(raw, 820 * MiB);
    const s = await GuestfsSession.open({ drives: [{ path: raw, format: 'raw', readonly: false }] });
    let ids: MultiFsIds;
    try {
      await s.command('part-init', ['/dev/sda', 'gpt']);
      for (const [a, b] of PARTS) await s.command('part-add', ['/dev/sda', 'p', a, b]);
      await s.command('mkfs', ['vfat', DEVICES.vfat, { opt: 'label', value: 'EFI' }]);
      await s.command('mkfs', ['ext4', DEVICES.ext4, { opt: 'label', value: 'root' }]);
      await s.command('mkfs', ['xfs', DEVICES.xfs, { opt: 'label', value: 'srv' }]);
      await s.command('mkfs', ['btrfs', DEVICES.btrfs, { opt: 'label', value: 'data' }]);
      await s.command('mkswap', [DEVICES.swap, { opt: 'label', value: 'swap' }]);
      const fsIds = {} as Record<keyof typeof DEVICES, string>;
      for (const [t, d] of Object.entries(DEVICES)) fsIds[t as keyof typeof DEVICES] = (await s.fields('blkid', [d])).UUID!;
      const part: string[] = [];
      for (let n = 1; n <= PARTS.length; n++) part[n] = (await s.text('part-get-gpt-guid', ['/dev/sda', n])).toLowerCase();
      ids = { fs: fsIds, part, disk: (await s.text('part-get-disk-guid', ['/dev/sda'])).toLowerCase() };
      await s.command('mount', [DEVICES.ext4, '/']);
      await s.command('tar-in', [tarball, '/']);
      for (const [mp, dev] of [['/boot/efi', DEVICES.vfat], ['/srv', DEVICES.xfs], ['/data', DEVICES.btrfs]] as const) {
        await s.command('mkdir-p', [mp]);
        await s.command('mount', [dev, mp]);
        await s.command('write', [`${mp}/marker`, `on ${dev}\n`]);
      }
      for (const [p, text] of Object.entries(referenceFiles(ids))) {
        await s.command('mkdir-p', [path.posix.dirname(p)]);
        await s.command('write', [p, text]);
      }
      await s.command('umount-all');
    } finally {
      await s.close();
    }
    const tmp = `${out}.tmp-${process.pid}`;
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, tmp]);
    await fs.chmod(tmp, 0o444);
    await fs.writeFile(idsFile, JSON.stringify(ids));
    await fs.rename(tmp, out);
    return { image: out, ids };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
    await fs.rm(path.dirname(tree), { recursive: true, force: true });
  }
}
