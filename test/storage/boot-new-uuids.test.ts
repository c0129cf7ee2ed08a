/**
 * Boot proof of storage.newUuids: the Debian boot master (root by UUID= in
 * /etc/fstab) gets a GRUB config that names its root by UUID (search
 * --fs-uuid, root=UUID=) and /etc/kernel/cmdline; a clone is applied with
 * new UUIDs; the test reads root= from the CLONE's own grub.cfg and boots
 * the clone's kernel with exactly that root=. The initramfs finds the root
 * only by that UUID and systemd mounts / from fstab by UUID, so a wrong or
 * missing rewrite fails the boot (or leaves failed units).
 */
import { expect } from 'chai';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { GuestfsSession } from '../../src/backends/guestfs/session.js';
import { bootAndReport, bootPrerequisites, bootScratch, buildDebianBase, ROOT_FS_UUID, SKIP_BOOT, SKIP_BOOT_REASON } from '../helpers/boot.js';
import { overlayOf } from '../helpers/images.js';
import { applyStorageProfile, grubCfg, readCloneFiles } from '../helpers/boot-storage.js';

const GRUB_CFG = (uuid: string): string => grubCfg(uuid, `root=UUID=${uuid}`);

describe('boot: a clone with new filesystem UUIDs boots from the root= of its own GRUB config', function () {
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

  it('applies storage.newUuids to a clone of the boot master, which then boots with root=UUID=<new>', async () => {
    const base = await buildDebianBase();
    const work = bootScratch('newuuids');
    scratch = work;
    const clone = await overlayOf(base.image, work, 'boot01');
    // the master's boot configuration, by UUID (the boot master is booted directly, without GRUB)
    const s = await GuestfsSession.open({ drives: [{ path: clone, format: 'qcow2', readonly: false }] });
    try {
      await s.command('mount', ['/dev/sda1', '/']);
      await s.command('mkdir-p', ['/boot/grub']);
      await s.command('write', ['/boot/grub/grub.cfg', GRUB_CFG(ROOT_FS_UUID)]);
      await s.command('mkdir-p', ['/etc/kernel']);
      await s.command('write', ['/etc/kernel/cmdline', `root=UUID=${ROOT_FS_UUID} ro quiet\n`]);
      await s.command('umount-all');
    } finally {
      await s.close();
    }
    const m = applyStorageProfile(work, 'boot01', 'profile: p\nstorage: {newUuids: true}\n');
    const newUuid = m.deviceChanges.find((c) => c.op === 'fs-uuid')!.to;
    expect(newUuid).to.not.equal(ROOT_FS_UUID);

    // root= as the clone's own GRUB config says, and its fstab
    const read = await readCloneFiles(clone, '/dev/sda1', ['/boot/grub/grub.cfg', '/etc/fstab']);
    const blkidUuid = read.blkidUuid;
    const grub = read.files['/boot/grub/grub.cfg']!;
    const fstab = read.files['/etc/fstab']!;
    expect(blkidUuid).to.equal(newUuid);
    expect(grub).to.equal(GRUB_CFG(newUuid));
    expect(fstab).to.contain(`UUID=${newUuid} / ext4`);
    const root = /\slinux\s+\S+\s+(root=\S+)/.exec(grub)![1]!;
    expect(root).to.equal(`root=UUID=${newUuid}`);

    // the later root= on the command line wins over the harness's root=/dev/vda1
    const boot = await bootAndReport(clone, { kernel: base.kernel, initrd: base.initrd, append: root, consoleLog: path.join(work, 'console.log') });
    expect(boot.hostname).to.equal('boot01');
    expect(boot.failedUnits).to.deep.equal([]);
    expect(boot.console).to.contain(`root=UUID=${newUuid}`);
  });
});
