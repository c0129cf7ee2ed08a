/**
 * GuestfsBackend batching on real images: ext4 on GPT, two overlays of ONE
 * LVM guest (they must never share an appliance), xfs, and a broken image
 * that must fail alone; then a read-only pass that sees the writes; then
 * fresh copies with a layout hint and apply's preflight in one appliance,
 * whose appliance is killed once the last guest has written its changes
 * through (nothing may fail then).
 */
import { expect } from 'chai';
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Guest, TargetSpec } from '../../../src/core/backend.js';
import { GuestfsBackend, prepareTarget, scheduleBatches, type GuestfsImageGuest } from '../../../src/backends/guestfs/backend.js';
import { probeLvm } from '../../../src/backends/guestfs/lvm-probe.js';
import { driveDevice } from '../../../src/backends/guestfs/session.js';
import { LVM_VG, overlayOf, stageTree, tempDir, testImage, testImages } from '../../helpers/images.js';
import { qemuProcessesWith } from '../../helpers/processes.js';

describe('GuestfsBackend batching (real appliances)', function () {
  this.timeout(600_000);
  let dir: string;
  let targets: TargetSpec[];
  const log: string[] = [];

  before(async () => {
    dir = await tempDir();
    // the images not cached yet are built together: one appliance for lvm and xfs
    const images = await testImages(['ext4-gpt', 'lvm', 'xfs']);
    const lvm = images.lvm!;
    targets = [
      { kind: 'image', path: await overlayOf(images['ext4-gpt']!, dir, 'ext4'), machine: 'ext4' },
      { kind: 'image', path: await overlayOf(lvm, dir, 'lvm-a'), machine: 'lvm-a' },
      { kind: 'image', path: path.join(dir, 'broken.qcow2'), machine: 'broken' },
      { kind: 'image', path: await overlayOf(lvm, dir, 'lvm-b'), machine: 'lvm-b' },
      { kind: 'image', path: await overlayOf(images.xfs!, dir, 'xfs'), machine: 'xfs' },
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
    expect(await probeLvm(targets[0]!.path, 'qcow2')).to.deep.equal({ pvUuids: [], vgNames: [], vgUuids: [], luksUuids: [], partitions: [1] });
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
    // one appliance for the three (the default, one per core, launches two: one more launch for nothing this test asserts)
    await backend.forEachGuest(good, { readonly: true, jobs: 1 }, async (t, g) => {
      if (g instanceof Error) throw g;
      found.push(`${t.machine}=${(await g.readFile('/etc/hostname'))?.toString().trim()}/${(await g.readFile('/var/lib/ghostprep-test'))?.toString()}`);
      const err = await g.writeFile('/etc/x', Buffer.from(''), { mode: 0o644, uid: 0, gid: 0 }).then(() => null, (e: unknown) => e as Error);
      expect(err?.message).to.match(/read-only/);
    });
    expect(found.sort()).to.deep.equal(['ext4=ext4/ext4', 'lvm-a=lvm-a/lvm-a', 'xfs=xfs/xfs']);
  });

  // Apply's preflight (prepare) and fresh copies of one image (layoutKey) are what deploy's batches use together:
  // one appliance takes the copies of both cases, and each `it` checks its own part of that one run.
  describe('one appliance: copies with a layout hint, and apply\'s preflight', () => {
    const commands: string[] = [];
    const seen: string[] = [];
    const events: string[] = [];
    const prepared = new Map<string, unknown>();
    let hinted: string[];
    /** What forEachGuest threw, with the appliance killed right after the last guest wrote its changes through. */
    let batchError: unknown = null;
    let killed: number[] = [];

    before(async () => {
      const base = await testImage('ext4-gpt');
      // the wrong hint: the same key on an image whose filesystem fills the whole disk (no /dev/sdX1)
      const tree = await stageTree('ext4-gpt');
      const raw = path.join(dir, 'whole.raw');
      await execa('mkfs.ext4', ['-F', '-q', '-d', tree, raw, '200M']);
      const whole = path.join(dir, 'whole.qcow2');
      await execa('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, whole]);
      await fs.rm(path.dirname(tree), { recursive: true, force: true });
      const layoutKey = `test:${Date.now()}:${Math.random()}`;
      const copies: TargetSpec[] = [
        ...await Promise.all(['c1', 'c2'].map(async (n) => ({ kind: 'image' as const, path: await overlayOf(base, dir, n), machine: n, layoutKey }))),
        { kind: 'image', path: whole, machine: 'whole', layoutKey },
        { kind: 'image', path: await overlayOf(base, dir, 'c3'), machine: 'c3', layoutKey },
        ...await Promise.all(['p1', 'p2', 'p3'].map(async (n) => ({ kind: 'image' as const, path: await overlayOf(base, dir, n), machine: n }))),
      ];
      hinted = copies.slice(0, 4).map((_, i) => driveDevice(i));
      const prepare = async (t: TargetSpec, g: Guest) => {
        if (t.machine!.startsWith('p')) events.push(`prepare ${t.machine} ${(await g.readFile('/etc/hostname'))?.toString().trim()}`);
        prepared.set(t.machine!, g);
        return t.machine !== 'p2';
      };
      await new GuestfsBackend({ trace: (line) => commands.push(line) }).forEachGuest(copies, { readonly: false, jobs: 1, prepare }, async (t, g) => {
        if (g instanceof Error) throw g;
        expect(g, 'the prepared guest object').to.equal(prepared.get(t.machine!));
        const guest = g as GuestfsImageGuest;
        await guest.writeFile('/etc/hostname', Buffer.from(`${t.machine}\n`), { mode: 0o644, uid: 0, gid: 0 });
        const hostname = (await guest.readFile('/etc/hostname'))?.toString().trim();
        if (t.machine!.startsWith('p')) events.push(`visit ${t.machine} ${hostname}`);
        else seen.push(`${t.machine} ${guest.os.root} ${hostname} ${(await guest.stat('/etc/hostname'))?.mode.toString(8)}`);
        // the last guest: its writes go through (as apply's flush stage does), then the appliance dies
        if (t.machine === 'p3') {
          await guest.flush();
          killed = qemuProcessesWith(t.path);
          for (const pid of killed) process.kill(pid, 'SIGKILL');
        }
      }).catch((err: unknown) => { batchError = err; });
    });

    it('mounts fresh copies of one image like the first (layoutKey: one blkid), and inspects in full when that hint is wrong', () => {
      expect(seen).to.deep.equal(['c1 /dev/sda1 c1 644', 'c2 /dev/sdb1 c2 644', 'whole /dev/sdc whole 644', 'c3 /dev/sdd1 c3 644']);
      // c1 inspected (its one partition), whole inspected after the hinted mount failed; c2 and c3 not
      const onHinted = (line: string) => hinted.some((d) => new RegExp(`^blkid "${d}\\d*"$`).test(line));
      expect(commands.filter((c) => c.startsWith('blkid ') && onHinted(c))).to.have.length(2);
    });

    it('with prepare (apply\'s preflight), checks every guest of a batch before the first visit, and visits only those it keeps', () => {
      expect(events).to.deep.equal(['prepare p1 master', 'prepare p2 master', 'prepare p3 master', 'visit p1 p1', 'visit p3 p3']);
      // the copies were prepared too: every guest of the batch before the first visit
      expect([...prepared.keys()]).to.deep.equal(['c1', 'c2', 'whole', 'c3', 'p1', 'p2', 'p3']);
    });

    it('an appliance that dies after a guest wrote its changes through fails nothing: that guest is done', () => {
      expect(killed, 'the qemu of the batch, found and killed').to.not.deep.equal([]);
      expect(batchError, String((batchError as Error | null)?.message)).to.equal(null);
    });
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
