/**
 * restore on real images: overlay and copy, the base never written (its
 * sha256 unchanged after writes to clones), no overwrite without force,
 * checksum mismatch refused, sha256 cache, and --size growing ext4 and xfs
 * (disk, last partition, filesystem: checked with statvfs in the guest).
 * Two appliances: restore --size's own, and one for the rest.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { GuestfsImageGuest } from '../../src/backends/guestfs/backend.js';
import { probeLvm } from '../../src/backends/guestfs/lvm-probe.js';
import { ApplianceLayout, openDrive } from '../../src/backends/guestfs/os-inspect.js';
import { GuestfsSession } from '../../src/backends/guestfs/session.js';
import { cachedSha256, growDrive, restore, sha256File, virtualSize, type RestoreProgress } from '../../src/image/restore.js';
import { LVM_VG, tempDir, testImage } from '../helpers/images.js';

const GiB = 1024 * 1024 * 1024;

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(() => { throw new Error('expected a rejection'); }, (e: unknown) => e as Error);
}

describe('restore (real qemu-img and guestfish)', function () {
  this.timeout(600_000);
  let dir: string;
  let base: string;
  let baseSha: string;
  const cache = () => path.join(dir, 'sha256.json');

  before(async () => {
    dir = await tempDir();
    base = await testImage('ext4-gpt');
    baseSha = await sha256File(base);
  });

  /** The appliance of the last two tests (grow, then writes to the clones). */
  let shared: GuestfsSession | undefined;
  let clonePartitions: Array<readonly number[] | undefined> = [];

  after(async () => {
    await shared?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('makes an overlay and a sparse copy, verified against the base checksum', async () => {
    const progress: RestoreProgress[] = [];
    const ov = await restore({ base, to: path.join(dir, 'ov.qcow2'), mode: 'overlay', expectedSha256: baseSha, sha256Cache: cache() });
    expect(ov).to.include({ format: 'qcow2', baseSha256: baseSha, mode: 'overlay' });
    expect(ov.virtualSize).to.equal(await virtualSize(base, 'qcow2'));
    const cp = await restore({ base, to: path.join(dir, 'cp.qcow2'), mode: 'copy', expectedSha256: baseSha, sha256Cache: cache(), onProgress: (p) => progress.push(p) });
    expect(progress.filter((p) => p.stage === 'copy').at(-1)?.fraction).to.equal(1);
    expect((await fs.stat(cp.path)).size).to.be.below(ov.virtualSize / 2); // sparse
    expect(await cachedSha256(base, cache())).to.deep.equal({ sha256: baseSha, cached: true });
    expect(await fs.readdir(dir)).to.have.members(['sha256.json', 'ov.qcow2', 'cp.qcow2']);
  });

  it('never overwrites without force and leaves nothing behind on failure', async () => {
    const to = path.join(dir, 'ov.qcow2');
    const before = await fs.stat(to);
    expect((await rejection(restore({ base, to, mode: 'overlay' }))).message).to.match(/exists; use --force/);
    expect((await fs.stat(to)).mtimeMs).to.equal(before.mtimeMs);
    await restore({ base, to, mode: 'overlay', force: true });
    expect((await rejection(restore({ base, to: base, mode: 'copy', force: true }))).message).to.match(/base image itself/);
    const bad = await rejection(restore({ base, to: path.join(dir, 'bad.qcow2'), mode: 'overlay', expectedSha256: '0'.repeat(64), sha256Cache: cache() }));
    expect(bad.message).to.match(/checksum mismatch/);
    expect((await rejection(restore({ base: path.join(dir, 'missing.qcow2'), to: path.join(dir, 'x.qcow2'), mode: 'copy' }))).message).to.match(/not found/);
    expect((await rejection(restore({ base, to: path.join(dir, 'x.qcow2'), mode: 'overlay', size: '20 G' }))).message).to.match(/invalid size/);
    expect((await rejection(restore({ base, to: '/dev/null', mode: 'device' }))).message).to.match(/--yes/);
    expect((await rejection(restore({ base, to: path.join(dir, 'x.img'), mode: 'device', yes: true }))).message).to.match(/not a block device/);
    expect((await fs.readdir(dir)).filter((n) => n.includes('ghostprep') || n.startsWith('bad') || n.startsWith('x.'))).to.deep.equal([]);
  });

  /** Filesystem size in bytes of `dev`, mounted read-only at / of `s`. */
  async function fsBytes(s: GuestfsSession, dev: string): Promise<number> {
    await s.command('mount-ro', [dev, '/']);
    try {
      const st = await s.fields('statvfs', ['/']);
      return Number(st.blocks) * Number(st.bsize);
    } finally {
      await s.command('umount-all');
    }
  }

  it('grows disk, partition and ext4 filesystem with --size', async () => {
    const ext4 = await restore({ base, to: path.join(dir, 'big-ext4.qcow2'), mode: 'overlay', size: '1G' });
    expect(ext4.virtualSize).to.equal(GiB);
    expect(ext4.grown).to.include({ filesystem: 'ext4', partition: '/dev/sda1', grown: '/dev/sda1' });
  });

  it('grows xfs and an LVM root in one appliance (growDrive), then checks all three', async () => {
    // qemu-img resize + growDrive is what restore --size does, minus one appliance per image.
    const xfs = await restore({ base: await testImage('xfs'), to: path.join(dir, 'big-xfs.qcow2'), mode: 'copy' });
    await execa('qemu-img', ['resize', '-q', '-f', 'qcow2', xfs.path, '1G']);
    // the size given to the overlay (qemu-img create … 1G), grown below: restore's `size` would grow it in an appliance of its own first
    const lvm = await restore({ base: await testImage('lvm'), to: path.join(dir, 'big-lvm.qcow2'), mode: 'overlay' });
    await execa('qemu-img', ['resize', '-q', '-f', 'qcow2', lvm.path, '1G']);
    // ov and cp (the first test's clones) ride along for the next test: one appliance for both
    const drives = [path.join(dir, 'big-ext4.qcow2'), xfs.path, lvm.path, path.join(dir, 'ov.qcow2'), path.join(dir, 'cp.qcow2')]
      .map((p, i) => ({ path: p, format: 'qcow2', readonly: i === 0 }));
    // read on the host before the launch, as GuestfsBackend does (qemu-img cannot read a drive the appliance writes)
    clonePartitions = await Promise.all([3, 4].map(async (i) => (await probeLvm(drives[i]!.path, 'qcow2')).partitions));
    const s = (shared = await GuestfsSession.open({ drives }));
    expect(await growDrive(s, 1, xfs.path)).to.deep.equal({ partition: '/dev/sdb1', filesystem: 'xfs', grown: '/dev/sdb1' });
    expect(await growDrive(s, 2, lvm.path)).to.deep.equal({ partition: '/dev/sdc1', filesystem: 'ext4', grown: `/dev/${LVM_VG}/root` });
    // were 256 MiB (ext4), 512 MiB (xfs), a 200 MiB root LV in a 512 MiB disk (LVM)
    expect(await fsBytes(s, '/dev/sda1')).to.be.above(0.85 * GiB);
    expect(await fsBytes(s, '/dev/sdb1')).to.be.above(0.85 * GiB);
    expect(await fsBytes(s, `/dev/${LVM_VG}/root`)).to.be.above(0.6 * GiB);
  });

  it('never writes the base: its sha256 is unchanged after writes to the clones', async () => {
    // the clones ov (an overlay of the base) and cp (a copy), drives 3 and 4 of the previous test's
    // appliance, opened and written as GuestfsBackend does (inspection, then GuestfsImageGuest)
    const s = shared!;
    for (const [k, index] of [3, 4].entries()) {
      const image = s.drives[index]!.path;
      const partitions = clonePartitions[k];
      const os = await openDrive(s, new ApplianceLayout(s), index, image, { readonly: false, ...(partitions && { partitions }) });
      const g = new GuestfsImageGuest(s, image, false, os);
      await g.writeFile('/etc/machine-id', Buffer.from('f'.repeat(32) + '\n'), { mode: 0o444, uid: 0, gid: 0 });
      expect((await g.readFile('/etc/machine-id'))?.toString(), image).to.equal('f'.repeat(32) + '\n');
      await s.command('umount-all');
    }
    shared = undefined;
    await s.close();
    expect(await sha256File(base)).to.equal(baseSha);
  });
});
