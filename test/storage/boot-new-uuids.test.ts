/**
 * Boot proof of storage.newUuids: the Debian boot master (root by UUID= in
 * /etc/fstab) with a GRUB config that names its root by UUID (search
 * --fs-uuid, root=UUID=) and /etc/kernel/cmdline; a clone is applied with
 * new UUIDs; the test reads root= from the CLONE's own grub.cfg and boots
 * the clone's kernel with exactly that root=. The initramfs finds the root
 * only by that UUID and systemd mounts / from fstab by UUID, so a wrong or
 * missing rewrite fails the boot (or leaves failed units).
 *
 * The clone is made, applied and read back together with boot-lvm.test's
 * (test/helpers/boot-storage.ts, storageBootClones: one apply appliance and
 * one read appliance for both); it boots on its own.
 */
import { expect } from 'chai';
import path from 'node:path';
import { bootAndReport, bootPrerequisites, ROOT_FS_UUID, SKIP_BOOT, SKIP_BOOT_REASON } from '../helpers/boot.js';
import { keepStorageBootClones, storageBootClones, uuidGrubCfg, UUIDS_CLONE } from '../helpers/boot-storage.js';

/** A boot alone takes 50-120 s under TCG; on a 2-core host under heavy load, 240 s ran out and 565 s was seen. */
const BOOT_TIMEOUT_MS = Number(process.env.GHOSTPREP_BOOT_TIMEOUT_S) * 1000 || 900_000;

describe('boot: a clone with new filesystem UUIDs boots from the root= of its own GRUB config', function () {
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

  it(`applies storage.newUuids to a clone of the boot master, which then boots with root=UUID=<new>`, async () => {
    const { work, base, uuids } = await storageBootClones();
    const newUuid = uuids.applied.deviceChanges.find((c) => c.op === 'fs-uuid')!.to;
    expect(newUuid).to.not.equal(ROOT_FS_UUID);

    // root= as the clone's own GRUB config says, and its fstab
    const grub = uuids.read.files['/boot/grub/grub.cfg']!;
    const fstab = uuids.read.files['/etc/fstab']!;
    expect(uuids.read.blkidUuid).to.equal(newUuid);
    expect(grub).to.equal(uuidGrubCfg(newUuid));
    expect(fstab).to.contain(`UUID=${newUuid} / ext4`);
    const root = /\slinux\s+\S+\s+(root=\S+)/.exec(grub)![1]!;
    expect(root).to.equal(`root=UUID=${newUuid}`);

    // the later root= on the command line wins over the harness's root=/dev/vda1
    const boot = await bootAndReport(uuids.clone, { kernel: base.kernel, initrd: base.initrd, append: root, timeoutMs: BOOT_TIMEOUT_MS, consoleLog: path.join(work, `${UUIDS_CLONE}.console.log`) });
    expect(boot.hostname).to.equal(UUIDS_CLONE);
    expect(boot.failedUnits).to.deep.equal([]);
    expect(boot.console).to.contain(`root=UUID=${newUuid}`);
  });
});
