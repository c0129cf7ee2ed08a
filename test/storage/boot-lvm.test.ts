/**
 * Boot proof of storage.lvm with a per-clone VG name: a Debian master whose
 * root is LV `root` of VG `vg-master` (lvm2 in its initramfs; root named
 * /dev/mapper/vg--master-root in fstab and on the kernel command line of its
 * grub.cfg) is cloned and applied through the CLI with
 * `storage: {newUuids, lvm: {newUuids, vgName: "vg-{{machine.name}}"}}`.
 * The test reads root= (and rd.lvm.*) from the CLONE's own grub.cfg and boots
 * the clone's kernel with exactly those arguments: initramfs-tools activates
 * only the VG named by root=, and systemd mounts / from fstab by its mapper
 * name, so a VG rename whose references were not rewritten (or new PV/VG
 * UUIDs that broke the metadata) fails the boot or leaves failed units.
 */
import { expect } from 'chai';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { probeLvm } from '../../src/backends/guestfs/lvm-probe.js';
import { bootAndReport, bootPrerequisites, bootScratch, SKIP_BOOT, SKIP_BOOT_REASON } from '../helpers/boot.js';
import {
  applyStorageProfile, buildLvmBootMaster, grubCfg, grubRootArgs, lvmRootArgs, LVM_MASTER_VG, LVM_ROOT_FS_UUID, LVM_ROOT_LV, mapperName, readCloneFiles,
} from '../helpers/boot-storage.js';
import { overlayOf } from '../helpers/images.js';

describe('boot: a clone of an LVM master with its own VG name boots from the root= of its own GRUB config', function () {
  this.timeout(1_800_000);

  before(async function () {
    if (SKIP_BOOT) { console.log(`      ${SKIP_BOOT_REASON}`); this.skip(); }
    const missing = await bootPrerequisites();
    if (missing) throw new Error(`boot prerequisites: ${missing}`);
  });
  // the clone and its console log stay for a look when the boot fails (and with GHOSTPREP_BOOT_KEEP)
  let scratch: string | undefined;
  afterEach(function () {
    if (scratch && this.currentTest?.state === 'passed' && !process.env.GHOSTPREP_BOOT_KEEP) rmSync(scratch, { recursive: true, force: true });
  });

  it('applies storage.lvm {newUuids, vgName} and storage.newUuids to a clone, which then boots on vg-boot01', async () => {
    const master = await buildLvmBootMaster();
    const work = bootScratch('lvm');
    scratch = work;
    const clone = await overlayOf(master.image, work, 'boot01');
    const before = await probeLvm(clone, 'qcow2');
    expect(before.vgNames).to.deep.equal([LVM_MASTER_VG]);

    const applied = applyStorageProfile(work, 'boot01', 'profile: p\nstorage:\n  newUuids: true\n  lvm: {newUuids: true, vgName: "vg-{{machine.name}}"}\n');
    const vg = 'vg-boot01';
    const after = await probeLvm(clone, 'qcow2');
    expect(after.vgNames).to.deep.equal([vg]);
    expect(after.pvUuids[0]).to.not.equal(before.pvUuids[0]);
    expect(after.vgUuids[0]).to.not.equal(before.vgUuids[0]);
    const fsUuid = applied.deviceChanges.find((c) => c.op === 'fs-uuid')?.to;
    expect(fsUuid, JSON.stringify(applied.deviceChanges)).to.be.a('string').and.not.equal(LVM_ROOT_FS_UUID);

    // root= as the clone's own GRUB config says, and its fstab and other references
    const read = await readCloneFiles(clone, `/dev/${vg}/${LVM_ROOT_LV}`, ['/boot/grub/grub.cfg', '/etc/fstab', '/etc/default/grub', '/etc/kernel/cmdline']);
    expect(read.blkidUuid).to.equal(fsUuid);
    const grub = read.files['/boot/grub/grub.cfg']!;
    // the search line names the file system holding /boot (here the root LV) by its new UUID
    expect(grub).to.equal(grubCfg(fsUuid!, lvmRootArgs(vg)));
    expect(read.files['/etc/fstab']).to.equal(`${mapperName(vg, LVM_ROOT_LV)} / ext4 errors=remount-ro 0 1\n`);
    expect(read.files['/etc/default/grub']).to.contain(`GRUB_CMDLINE_LINUX="${lvmRootArgs(vg)}"`);
    expect(read.files['/etc/kernel/cmdline']).to.equal(`${lvmRootArgs(vg)} ro quiet\n`);
    const rootArgs = grubRootArgs(grub);
    expect(rootArgs).to.equal('root=/dev/mapper/vg--boot01-root rd.lvm.vg=vg-boot01 rd.lvm.lv=vg-boot01/root');

    // the later root= on the command line wins over the harness's root=/dev/vda1
    const boot = await bootAndReport(clone, { kernel: master.kernel, initrd: master.initrd, append: rootArgs, consoleLog: path.join(work, 'console.log') });
    expect(boot.hostname).to.equal('boot01');
    expect(boot.failedUnits).to.deep.equal([]);
    expect(boot.console).to.contain('root=/dev/mapper/vg--boot01-root');
    expect(boot.console).to.not.contain(LVM_MASTER_VG);
  });
});
