/**
 * GuestfsBackend batching on real images: ext4 on GPT, two overlays of ONE
 * LVM guest (they must never share an appliance), xfs, and a broken image
 * that must fail alone; then a read-only pass that sees the writes.
 */
import { expect } from 'chai';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { TargetSpec } from '../../../src/backends/backend.js';
import { GuestfsBackend, prepareTarget, scheduleBatches, type GuestfsImageGuest } from '../../../src/backends/guestfs/backend.js';
import { probeLvm } from '../../../src/backends/guestfs/lvm-probe.js';
import { LVM_VG, overlayOf, tempDir, testImage } from '../../helpers/images.js';

describe('GuestfsBackend batching (real appliances)', function () {
  this.timeout(600_000);
  let dir: string;
  let targets: TargetSpec[];
  const log: string[] = [];

  before(async () => {
    dir = await tempDir();
    const lvm = await testImage('lvm');
    targets = [
      { kind: 'image', path: await overlayOf(await testImage('ext4-gpt'), dir, 'ext4'), machine: 'ext4' },
      { kind: 'image', path: await overlayOf(lvm, dir, 'lvm-a'), machine: 'lvm-a' },
      { kind: 'image', path: path.join(dir, 'broken.qcow2'), machine: 'broken' },
      { kind: 'image', path: await overlayOf(lvm, dir, 'lvm-b'), machine: 'lvm-b' },
      { kind: 'image', path: await overlayOf(await testImage('xfs'), dir, 'xfs'), machine: 'xfs' },
    ];
    await fs.writeFile(targets[2]!.path, 'QFI\xfb this is not a qcow2 image');
  });

  after(async () => {
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('reads the VG of an LVM image from its header and schedules its clones apart', async () => {
    const info = await probeLvm(targets[1]!.path, 'qcow2');
    expect(info.vgNames).to.deep.equal([LVM_VG]);
    expect(info.pvUuids).to.have.length(1);
    expect(await probeLvm(targets[0]!.path, 'qcow2')).to.deep.equal({ pvUuids: [], vgNames: [], vgUuids: [], luksUuids: [] });
    const prepared = await Promise.all([0, 1, 3, 4].map((i) => prepareTarget(targets[i]!)));
    const batches = scheduleBatches(prepared, 20).map((b) => b.map((p) => p.target.machine));
    expect(batches).to.deep.equal([['ext4', 'lvm-a', 'xfs'], ['lvm-b']]);
  });

  it('opens every good image (both LVM clones included) and fails the broken one alone', async () => {
    const seen = new Map<string, string>();
    const backend = new GuestfsBackend({ verbose: (m) => log.push(m) });
    await backend.forEachGuest(targets, { readonly: false, jobs: 2 }, async (t, g) => {
      if (g instanceof Error) {
        seen.set(t.machine!, `error: ${g.message}`);
        return;
      }
      const guest = g as GuestfsImageGuest;
      await guest.writeFile('/etc/hostname', Buffer.from(`${t.machine}\n`), { mode: 0o644, uid: 0, gid: 0 });
      await guest.writeFile('/var/lib/ghostprep-test', Buffer.from(t.machine!), { mode: 0o600, uid: 0, gid: 0 });
      seen.set(t.machine!, `${guest.os.root} ${guest.os.mounts.map((m) => m.mountpoint).join(',')}`);
    });
    expect(seen.get('broken')).to.match(/^error: .*broken\.qcow2/);
    expect(seen.get('ext4')).to.match(/^\/dev\/sd[a-z]1 \/$/);
    expect(seen.get('xfs')).to.match(/^\/dev\/sd[a-z]1 \/$/);
    expect(seen.get('lvm-a')).to.equal(`/dev/${LVM_VG}/root /,/var`);
    expect(seen.get('lvm-b')).to.equal(`/dev/${LVM_VG}/root /,/var`);
    expect(log.join('\n')).to.match(/4 image\(s\) in 2 appliance\(s\)/);
  });

  it('sees each clone\'s own writes in a read-only pass, and refuses writes there', async () => {
    const good = targets.filter((t) => t.machine !== 'broken' && t.machine !== 'lvm-b');
    const backend = new GuestfsBackend();
    const found: string[] = [];
    await backend.forEachGuest(good, { readonly: true }, async (t, g) => {
      if (g instanceof Error) throw g;
      found.push(`${t.machine}=${(await g.readFile('/etc/hostname'))?.toString().trim()}/${(await g.readFile('/var/lib/ghostprep-test'))?.toString()}`);
      const err = await g.writeFile('/etc/x', Buffer.from(''), { mode: 0o644, uid: 0, gid: 0 }).then(() => null, (e: unknown) => e as Error);
      expect(err?.message).to.match(/read-only/);
    });
    expect(found.sort()).to.deep.equal(['ext4=ext4/ext4', 'lvm-a=lvm-a/lvm-a', 'xfs=xfs/xfs']); // appliances run in parallel by default
  });

  it('reports a visitor failure after visiting every target', async () => {
    const visited: string[] = [];
    const err = await new GuestfsBackend().forEachGuest([targets[2]!, { kind: 'rootfs', path: dir }], { readonly: true }, async (t, g) => {
      visited.push(t.path);
      if (g instanceof Error) throw g;
    }).then(() => null, (e: unknown) => e as Error);
    expect(visited).to.have.length(2);
    expect(err).to.be.instanceOf(AggregateError);
    expect(err!.message).to.match(/rootfs target cannot be opened/);
  });
});
