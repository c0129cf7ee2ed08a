/**
 * What the storage boot proofs share: a clone applied through the CLI with a
 * `storage:` profile, root= read back from the CLONE's own GRUB config, and
 * the boot masters they start from.
 *
 * The LVM boot master is derived from the boot harness's Debian master
 * (boot.ts) the way the network masters are (boot-network.ts): a copy of its
 * tree gets lvm2 by a chroot `apt-get install` (lvm2's initramfs-tools hook
 * puts lvm and dm_mod in the initramfs), names its root by
 * `/dev/mapper/vg--master-root` in fstab, grub.cfg, /etc/default/grub and
 * /etc/kernel/cmdline, and becomes a disk whose one MBR partition is a PV of
 * VG `vg-master` with one LV, `root`. The PV, VG and LV are made by
 * guestfish on an empty raw disk; the ext4 file system is then written by the
 * host's `mkfs.ext4 -d` at the LV's offset on the disk (a linear LV made
 * first in an empty VG starts at the PV's first extent), as buildImageFromTree
 * does for a partition: no loop device, no mount. Cached under
 * GHOSTPREP_BOOT_CACHE as `lvm-debian12-HASH` (HASH: that of the recipe and
 * of the Debian master's).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, cpSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { execa } from 'execa';
import { guestfsEnv } from '../../src/backends/guestfs/env.js';
import { GuestfsSession } from '../../src/backends/guestfs/session.js';
import { probeLvm, type LvmInfo } from '../../src/backends/guestfs/lvm-probe.js';
import {
  BOOT_CACHE, CHROOT_ENV, RECIPE_HASH, ROOT_FS_UUID, bootScratch, buildDebianBase, buildImageFromTree, copyTree, defaultLog, fail, hash, removeOtherEntries,
  removeStaleBuilds, timed, withBuildLock, type DebianBase, type Log,
} from './boot.js';
import { ghostprep } from './cli.js';
import { overlayOf } from './images.js';

/** The LVM master's VG and root LV, and its root file system's UUID. */
export const LVM_MASTER_VG = 'vg-master';
export const LVM_ROOT_LV = 'root';
export const LVM_ROOT_FS_UUID = '3e9d2c7a-81f4-4b6e-a5d0-7c1b9e2f4a63';

/** `/dev/mapper/` name of an LV: every `-` of the VG and LV name doubled. */
export const mapperName = (vg: string, lv: string): string => `/dev/mapper/${vg.replaceAll('-', '--')}-${lv.replaceAll('-', '--')}`;

/** A GRUB config as update-grub writes it for a root named by `rootArg` (search by the /boot file system's UUID). */
export function grubCfg(searchUuid: string, rootArg: string): string {
  return `insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root ${searchUuid}
menuentry 'Debian GNU/Linux' --class debian 'gnulinux-simple-${searchUuid}' {
\tsearch --no-floppy --fs-uuid --set=root ${searchUuid}
\tlinux\t/vmlinuz ${rootArg} ro quiet
\tinitrd\t/initrd.img
}
`;
}

/** The LVM master's kernel arguments naming its root (initramfs-tools reads root=, dracut rd.lvm.*). */
export const lvmRootArgs = (vg: string): string => `root=${mapperName(vg, LVM_ROOT_LV)} rd.lvm.vg=${vg} rd.lvm.lv=${vg}/${LVM_ROOT_LV}`;

const POLICY_RC_D = '#!/bin/sh\nexit 101\n';
const LVM_CUSTOMIZE = `set -e
apt-get update -qq
apt-get install -y -qq --no-install-recommends lvm2
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/*.log /usr/sbin/policy-rc.d
printf '${mapperName(LVM_MASTER_VG, LVM_ROOT_LV)} / ext4 errors=remount-ro 0 1\\n' > /etc/fstab
mkdir -p /boot/grub /etc/kernel /etc/default
printf 'GRUB_DEFAULT=0\\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\\nGRUB_CMDLINE_LINUX="${lvmRootArgs(LVM_MASTER_VG)}"\\n' > /etc/default/grub
printf '${lvmRootArgs(LVM_MASTER_VG)} ro quiet\\n' > /etc/kernel/cmdline
update-initramfs -u -k all
`;
const SIZE_MIB = 2048;
const LVM_RECIPE = JSON.stringify({ v: 1, RECIPE_HASH, POLICY_RC_D, LVM_CUSTOMIZE, LVM_MASTER_VG, LVM_ROOT_LV, LVM_ROOT_FS_UUID, SIZE_MIB, grub: grubCfg(LVM_ROOT_FS_UUID, lvmRootArgs(LVM_MASTER_VG)) });

export interface LvmBootMaster {
  /** qcow2 image of the master (MBR, one PV, VG vg-master, LV root); never written by the tests. */
  readonly image: string;
  readonly kernel: string;
  /** The master's initramfs (with lvm2). */
  readonly initrd: string;
  readonly dir: string;
  readonly timings: Record<string, number>;
  readonly cached: boolean;
}

let lvmPromise: Promise<LvmBootMaster> | undefined;

/** The LVM boot master, built once (minutes: apt-get, an appliance, mkfs) and cached. */
export function buildLvmBootMaster(log: Log = defaultLog): Promise<LvmBootMaster> {
  lvmPromise ??= buildLvmUncached(log).catch((e: unknown) => { lvmPromise = undefined; throw e; });
  return lvmPromise;
}

async function buildLvmUncached(log: Log): Promise<LvmBootMaster> {
  const base = await buildDebianBase(log);
  const dir = path.join(BOOT_CACHE, `lvm-debian12-${hash(LVM_RECIPE)}`);
  const result = (cached: boolean): LvmBootMaster => ({
    image: path.join(dir, 'lvm.qcow2'), kernel: base.kernel, initrd: path.join(dir, 'initrd.img'), dir, cached,
    timings: JSON.parse(readFileSync(path.join(dir, 'timings.json'), 'utf8')) as Record<string, number>,
  });
  if (existsSync(path.join(dir, 'timings.json'))) { log(`LVM master cached: ${dir}`); return result(true); }
  return withBuildLock(log, async () => {
    if (existsSync(path.join(dir, 'timings.json'))) return result(true);
    if (process.getuid?.() !== 0) throw new Error('building the LVM boot master needs root (chroot, apt-get, file owners)');
    removeStaleBuilds();
    const work = `${dir}.tmp-${process.pid}`;
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const root = path.join(work, 'rootfs');
    const timings: Record<string, number> = {};
    try {
      log('LVM master: copy of the Debian master + apt-get install lvm2');
      await timed(timings, 'copy', () => copyTree(base.rootfs, root));
      await timed(timings, 'apt', async () => {
        writeFileSync(path.join(root, 'etc/resolv.conf'), readFileSync('/etc/resolv.conf'));
        writeFileSync(path.join(root, 'usr/sbin/policy-rc.d'), POLICY_RC_D, { mode: 0o755 });
        await execa('chroot', [root, '/bin/sh', '-c', LVM_CUSTOMIZE], { all: true, env: CHROOT_ENV }).catch(fail('lvm2 in the LVM master'));
        writeFileSync(path.join(root, 'etc/resolv.conf'), 'nameserver 10.0.2.3\n');
      });
      writeFileSync(path.join(root, 'boot/grub/grub.cfg'), grubCfg(LVM_ROOT_FS_UUID, lvmRootArgs(LVM_MASTER_VG)));
      const initrdName = readdirSync(path.join(root, 'boot')).filter((n) => n.startsWith('initrd.img-')).sort().at(-1)!;
      const { stdout } = await execa('chroot', [root, 'lsinitramfs', `/boot/${initrdName}`], { env: CHROOT_ENV });
      const files = stdout.split('\n');
      for (const want of [/\/lvm$/, /\/dm-mod\.ko(\.xz|\.zst)?$/, /\/virtio_blk\.ko(\.xz|\.zst)?$/, /\/ext4\.ko(\.xz|\.zst)?$/]) {
        if (!files.some((l) => want.test(l))) throw new Error(`the LVM master's initramfs has no ${String(want)}`);
      }
      cpSync(path.join(root, 'boot', initrdName), path.join(work, 'initrd.img'));
      await timed(timings, 'image', () => lvmImageFromTree(root, path.join(work, 'lvm.qcow2')));
      rmSync(root, { recursive: true, force: true }); // the image holds it; the tests never need the tree
      writeFileSync(path.join(work, 'timings.json'), JSON.stringify(timings, null, 2) + '\n');
      writeFileSync(path.join(work, 'recipe.json'), LVM_RECIPE + '\n');
      removeOtherEntries('lvm-debian12-');
      rmSync(dir, { recursive: true, force: true });
      renameSync(work, dir);
    } catch (e) {
      rmSync(work, { recursive: true, force: true });
      throw e;
    }
    log(`LVM master built: ${Object.entries(timings).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ')}`);
    return result(false);
  }, '.build-lock-lvm');
}

/** Disk: MBR, partition 1 (from 1 MiB) a PV of VG vg-master, LV root over all of it holding ext4 made from `tree`. */
async function lvmImageFromTree(tree: string, out: string): Promise<void> {
  const raw = `${out}.raw`;
  rmSync(raw, { force: true });
  try {
    await execa('truncate', ['-s', `${SIZE_MIB}M`, raw]);
    await execa('sfdisk', ['-q', raw], { input: 'label: dos\nstart=2048, type=8e\n' });
    const script = [
      `add-drive ${raw} format:raw`, 'run',
      'pvcreate /dev/sda1', `vgcreate ${LVM_MASTER_VG} /dev/sda1`, `lvcreate-free ${LVM_ROOT_LV} ${LVM_MASTER_VG} 100`,
      'pvs-full', `blockdev-getsize64 /dev/${LVM_MASTER_VG}/${LVM_ROOT_LV}`, 'exit',
    ].join('\n') + '\n';
    const { stdout } = await execa('guestfish', [], { input: script, env: guestfsEnv(), extendEnv: false });
    const peStart = Number(/pe_start: (\d+)/.exec(stdout)?.[1]);
    const lvBytes = Number(stdout.trim().split('\n').at(-1));
    if (!peStart || !lvBytes) throw new Error(`guestfish gave no pe_start or LV size:\n${stdout}`);
    await execa('mkfs.ext4', ['-q', '-F', '-L', 'root', '-U', LVM_ROOT_FS_UUID, '-E', `offset=${1024 * 1024 + peStart}`, '-d', tree, raw, `${lvBytes / 1024}k`], { all: true });
    await execa('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, out]);
  } finally {
    rmSync(raw, { force: true });
  }
}

/** Report entries of one applied machine. */
export interface AppliedClone {
  readonly deviceChanges: Array<{ op: string; from?: string; to: string; device?: string }>;
}

/** One clone read back: its root device, what blkid says of it, and some of its files. */
export interface CloneFiles { readonly rootDevice: string; readonly blkidUuid: string; readonly files: Record<string, string> }

/** The GRUB config of the Debian boot master's clone: its root named by file system UUID. */
export const uuidGrubCfg = (uuid: string): string => grubCfg(uuid, `root=UUID=${uuid}`);

/** Machine names and profiles of the two storage boot clones. */
export const UUIDS_CLONE = 'boot01';
export const LVM_CLONE = 'boot02';
const UUIDS_PROFILE = 'profile: uuids\nstorage: {newUuids: true}\n';
const LVM_PROFILE = 'profile: lvm\nstorage:\n  newUuids: true\n  lvm: {newUuids: true, vgName: "vg-{{machine.name}}"}\n';

/**
 * The clones of the storage boot proofs (boot-new-uuids.test, boot-lvm.test), made once per
 * process and shared by both files:
 *  - `boot01`, the Debian boot master (root by UUID= in /etc/fstab) with a GRUB config that
 *    names its root by UUID (search --fs-uuid, root=UUID=) and /etc/kernel/cmdline: a disk
 *    made from a copy of the master's tree plus those two files (buildImageFromTree, no
 *    appliance); profile `storage: {newUuids: true}`;
 *  - `boot02`, an overlay of the LVM boot master; profile `storage: {newUuids, lvm:
 *    {newUuids, vgName: "vg-{{machine.name}}"}}`.
 * Both are applied by one `ghostprep apply --jobs 1` (one appliance: the two clones share
 * nothing that could conflict in it) and read back through one read-only appliance. Each
 * apply and each read is what a run for one clone alone does; the two boots stay two (two
 * masters, two kernels' initramfs).
 */
export interface StorageBootClones {
  readonly work: string;
  readonly base: DebianBase;
  readonly lvmMaster: LvmBootMaster;
  readonly uuids: { readonly clone: string; readonly applied: AppliedClone; readonly read: CloneFiles };
  readonly lvm: { readonly clone: string; readonly before: LvmInfo; readonly after: LvmInfo; readonly applied: AppliedClone; readonly read: CloneFiles };
}

let clonesPromise: Promise<StorageBootClones> | undefined;
let keepWork = false;

/** The storage boot clones (made on the first call of the process). */
export function storageBootClones(): Promise<StorageBootClones> {
  clonesPromise ??= makeStorageBootClones();
  return clonesPromise;
}

/** A test that failed keeps the clones and console logs for a look (so does GHOSTPREP_BOOT_KEEP). */
export function keepStorageBootClones(): void {
  keepWork = true;
}

// root-level hook (mocha loads this helper with the spec files that use it): the clones go once both files are done
after(async () => {
  if (!clonesPromise) return;
  const c = await clonesPromise.catch(() => undefined);
  if (c && !keepWork && !process.env.GHOSTPREP_BOOT_KEEP) rmSync(c.work, { recursive: true, force: true });
});

async function makeStorageBootClones(): Promise<StorageBootClones> {
  const base = await buildDebianBase();
  const lvmMaster = await buildLvmBootMaster();
  const work = bootScratch('storage');
  // boot01: the master's tree with its GRUB config by UUID (the boot master is booted directly, without GRUB)
  const tree = await copyTree(base.rootfs, path.join(work, 'tree'));
  mkdirSync(path.join(tree, 'boot/grub'), { recursive: true });
  writeFileSync(path.join(tree, 'boot/grub/grub.cfg'), uuidGrubCfg(ROOT_FS_UUID));
  mkdirSync(path.join(tree, 'etc/kernel'), { recursive: true });
  writeFileSync(path.join(tree, 'etc/kernel/cmdline'), `root=UUID=${ROOT_FS_UUID} ro quiet\n`);
  const uuidsClone = await buildImageFromTree(tree, path.join(work, `${UUIDS_CLONE}.qcow2`));
  rmSync(tree, { recursive: true, force: true });
  // boot02: an overlay of the LVM master
  const lvmClone = await overlayOf(lvmMaster.image, work, LVM_CLONE);
  const before = await probeLvm(lvmClone, 'qcow2');

  const applied = applyStorageProfiles(work, [{ name: UUIDS_CLONE, profile: 'uuids', yaml: UUIDS_PROFILE }, { name: LVM_CLONE, profile: 'lvm', yaml: LVM_PROFILE }]);
  const after = await probeLvm(lvmClone, 'qcow2');
  const [uuidsRead, lvmRead] = await readClonesFiles([
    { clone: uuidsClone, rootDevice: '/dev/sda1', files: ['/boot/grub/grub.cfg', '/etc/fstab'] },
    // the VG the clone has now (the LVM test checks it is vg-boot02)
    { clone: lvmClone, rootDevice: `/dev/${after.vgNames[0] ?? LVM_MASTER_VG}/${LVM_ROOT_LV}`, files: ['/boot/grub/grub.cfg', '/etc/fstab', '/etc/default/grub', '/etc/kernel/cmdline'] },
  ]);
  return {
    work, base, lvmMaster,
    uuids: { clone: uuidsClone, applied: applied.get(UUIDS_CLONE)!, read: uuidsRead! },
    lvm: { clone: lvmClone, before, after, applied: applied.get(LVM_CLONE)!, read: lvmRead! },
  };
}

/** One `ghostprep apply --jobs 1` of `machines` (each with its own profile) onto WORK/{name}.qcow2; each machine's report entry. */
export function applyStorageProfiles(work: string, machines: ReadonlyArray<{ name: string; profile: string; yaml: string }>): Map<string, AppliedClone> {
  const profiles = path.join(work, 'profiles');
  mkdirSync(profiles, { recursive: true });
  for (const m of machines) writeFileSync(path.join(profiles, `${m.profile}.yaml`), m.yaml);
  writeFileSync(path.join(work, 'i.yaml'), `machines:\n${machines.map((m) => `  - {name: ${m.name}, profile: ${m.profile}}`).join('\n')}\n`);
  const report = path.join(work, 'report.json');
  const r = ghostprep(['apply', '-p', profiles, '-i', path.join(work, 'i.yaml'), '--state', path.join(work, 'state'), '--target', path.join(work, '{name}.qcow2'), '--jobs', '1', '--report', report]);
  expect(r.status, r.stderr + r.stdout).to.equal(0);
  const entries = (JSON.parse(readFileSync(report, 'utf8')) as { machines: Array<{ name: string; status: string; deviceChanges?: AppliedClone['deviceChanges'] }> }).machines;
  return new Map(entries.map((m) => [m.name, { deviceChanges: m.deviceChanges ?? [] }]));
}

/** Files of clones read through one read-only appliance (all clones its drives), with the root device each mounts. */
export async function readClonesFiles(clones: ReadonlyArray<{ clone: string; rootDevice: string; files: readonly string[] }>): Promise<CloneFiles[]> {
  const ro = await GuestfsSession.open({ drives: clones.map((c) => ({ path: c.clone, format: 'qcow2', readonly: true })) });
  try {
    const out: CloneFiles[] = [];
    for (const c of clones) {
      const blkidUuid = (await ro.fields('blkid', [c.rootDevice])).UUID!;
      await ro.command('mount-ro', [c.rootDevice, '/']);
      const files: Record<string, string> = {};
      for (const f of c.files) files[f] = (await ro.command('read-file', [f])).toString('utf8');
      await ro.command('umount-all');
      out.push({ rootDevice: c.rootDevice, blkidUuid, files });
    }
    return out;
  } finally {
    await ro.close();
  }
}

/** The root-naming kernel arguments of the first `linux` line of a grub.cfg (root=, rd.lvm.*). */
export function grubRootArgs(grub: string): string {
  const line = /^\s*linux\s+\S+\s+(.*)$/m.exec(grub)?.[1] ?? '';
  return line.split(/\s+/).filter((a) => /^(root|rd\.lvm\.vg|rd\.lvm\.lv)=/.test(a)).join(' ');
}
