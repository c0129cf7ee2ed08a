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
 *
 * The clone (machine boot02) is made, applied and read back together with
 * boot-new-uuids.test's (test/helpers/boot-storage.ts, storageBootClones: one
 * apply appliance and one read appliance for both); it boots on its own.
 */
import { expect } from 'chai';
import path from 'node:path';
import { bootAndReport, bootPrerequisites, SKIP_BOOT, SKIP_BOOT_REASON } from '../helpers/boot.js';
import {
  grubCfg, grubRootArgs, keepStorageBootClones, LVM_CLONE, LVM_MASTER_VG, LVM_ROOT_FS_UUID, LVM_ROOT_LV, lvmRootArgs, mapperName, storageBootClones,
} from '../helpers/boot-storage.js';

/** A boot alone takes 50-120 s under TCG; on a 2-core host under heavy load, 240 s ran out and 565 s was seen. */
const BOOT_TIMEOUT_MS = Number(process.env.GHOSTPREP_BOOT_TIMEOUT_S) * 1000 || 900_000;

describe('boot: a clone of an LVM master with its own VG name boots from the root= of its own GRUB config', function () {
  this.timeout(1_800_000);

  before(async function () {
    if (SKIP_BOOT) { console.log(`      ${SKIP_BOOT_REASON}`); this.skip(); }
    const missing = await bootPrerequisites();
    if (missing) throw new Error(`boot prerequisites: ${missing}`);
  });
  // the clones and console logs stay for a look when a boot fails (and with GHOSTPREP_BOOT_KEEP)
  afterEach(function () {
    if (this.currentTest?.state !== 'passed') keepStorageBootClones();
  });

  it(`applies storage.lvm {newUuids, vgName} and storage.newUuids to a clone, which then boots on vg-${LVM_CLONE}`, async () => {
    const { work, lvmMaster, lvm } = await storageBootClones();
    expect(lvm.before.vgNames).to.deep.equal([LVM_MASTER_VG]);

    const vg = `vg-${LVM_CLONE}`;
    expect(lvm.after.vgNames).to.deep.equal([vg]);
    expect(lvm.after.pvUuids[0]).to.not.equal(lvm.before.pvUuids[0]);
    expect(lvm.after.vgUuids[0]).to.not.equal(lvm.before.vgUuids[0]);
    const fsUuid = lvm.applied.deviceChanges.find((c) => c.op === 'fs-uuid')?.to;
    expect(fsUuid, JSON.stringify(lvm.applied.deviceChanges)).to.be.a('string').and.not.equal(LVM_ROOT_FS_UUID);

    // root= as the clone's own GRUB config says, and its fstab and other references
    const read = lvm.read;
    expect(read.rootDevice).to.equal(`/dev/${vg}/${LVM_ROOT_LV}`);
    expect(read.blkidUuid).to.equal(fsUuid);
    const grub = read.files['/boot/grub/grub.cfg']!;
    // the search line names the file system holding /boot (here the root LV) by its new UUID
    expect(grub).to.equal(grubCfg(fsUuid!, lvmRootArgs(vg)));
    expect(read.files['/etc/fstab']).to.equal(`${mapperName(vg, LVM_ROOT_LV)} / ext4 errors=remount-ro 0 1\n`);
    expect(read.files['/etc/default/grub']).to.contain(`GRUB_CMDLINE_LINUX="${lvmRootArgs(vg)}"`);
    expect(read.files['/etc/kernel/cmdline']).to.equal(`${lvmRootArgs(vg)} ro quiet\n`);
    const rootArgs = grubRootArgs(grub);
    expect(rootArgs).to.equal(`root=/dev/mapper/vg--${LVM_CLONE}-root rd.lvm.vg=${vg} rd.lvm.lv=${vg}/root`);

    // the later root= on the command line wins over the harness's root=/dev/vda1
    const boot = await bootAndReport(lvm.clone, { kernel: lvmMaster.kernel, initrd: lvmMaster.initrd, append: rootArgs, timeoutMs: BOOT_TIMEOUT_MS, consoleLog: path.join(work, `${LVM_CLONE}.console.log`) });
    expect(boot.hostname).to.equal(LVM_CLONE);
    expect(boot.failedUnits).to.deep.equal([]);
    expect(boot.console).to.contain(`root=/dev/mapper/vg--${LVM_CLONE}-root`);
    expect(boot.console).to.not.contain(LVM_MASTER_VG);
  });
});
