/**
 * storage.newUuids on a real disk through the appliance: one image with
 * vfat, ext4, xfs, btrfs and swap on GPT, applied to one clone (m1; the
 * report's device changes), read back in an appliance with the clone
 * read-only (blkid, GPT GUIDs, labels kept, every reference file, each
 * filesystem's data), then ONE plan (JSON) over that clone and a fresh one
 * of the same image (m2): m2's lists every device change apply made on m1
 * and the rewrite of every reference file; m1's finds nothing left to change.
 *
 * A machine's new values are derived from its name (storage/uuids.ts), and
 * a plan lists a device change exactly where the disk's value differs from
 * the derived one: m1 planned after apply with no device change, with the
 * read back showing apply's values on its disk, is the proof that plan
 * shows the values apply writes. Three appliances for the group: apply,
 * plan, and the read back's, which rollback.test.ts shares
 * (storage-appliance.ts).
 */
import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { overlayOf } from '../helpers/images.js';
import { ghostprep } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';
import { multiFsImage, referenceFiles, type MultiFsIds } from './storage-image.js';
import { storageAppliance } from './storage-appliance.js';

interface DeviceEntry { op: string; device: string; from: string; to: string; fstype?: string; partnum?: number }
interface Entry { name: string; status: string; error: string | null; deviceChanges?: DeviceEntry[]; diff?: string; changes: Array<{ path: string }> }

describe('storage.newUuids on an image with vfat, ext4, xfs, btrfs and swap', function () {
  this.timeout(900_000);
  const work = tempDir('ghostprep-newuuids-');
  let ids: MultiFsIds;
  let clone: string;
  let applied: DeviceEntry[] = [];
  const args = () => ['-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml'), '--state', path.join(work, 'state'), '--target', path.join(work, '{name}.qcow2')];

  before(async () => {
    const built = await multiFsImage();
    ids = built.ids;
    clone = await overlayOf(built.image, work, 'm1');
    await overlayOf(built.image, work, 'm2');
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\nstorage: {newUuids: true}\n');
    writeFileSync(path.join(work, 'i.yaml'), 'defaults: {profile: p}\nmachines: [{name: m1}, {name: m2}]\n');
  });

  /**
   * A machine's device changes name its disk as the appliance that planned it saw it: /dev/sda
   * alone, /dev/sdb as the second drive of a plan of two. `onSda` names them as on a disk of its own.
   */
  const diskOf = (list: DeviceEntry[]) => list.find((c) => c.op === 'disk-guid')!.device;
  const onSda = (list: DeviceEntry[]): DeviceEntry[] => JSON.parse(JSON.stringify(list).replaceAll(`"${diskOf(list)}`, '"/dev/sda'));
  /** All but the machine's own new values: what every clone of the image plans alike. */
  const shape = (list: DeviceEntry[]) => onSda(list).map(({ to: _to, ...rest }) => rest);
  const checkDeviceChanges = (list: DeviceEntry[], disk: string) => {
    const byOp = (op: string) => list.filter((c) => c.op === op);
    expect(byOp('disk-guid').map((c) => c.device)).to.deep.equal([disk]);
    expect(byOp('part-guid').map((c) => c.partnum)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(byOp('fs-uuid').map((c) => `${c.device}:${c.fstype}`)).to.deep.equal(['vfat', 'ext4', 'xfs', 'btrfs', 'swap'].map((t, i) => `${disk}${i + 1}:${t}`));
    expect(byOp('fs-uuid').map((c) => c.from.toLowerCase())).to.deep.equal([ids.fs.vfat, ids.fs.ext4, ids.fs.xfs, ids.fs.btrfs, ids.fs.swap].map((x) => x.toLowerCase()));
    for (const c of list) expect(c.to.toLowerCase(), `${c.op} ${c.device}`).to.not.equal(c.from.toLowerCase());
  };

  it('apply changes every device in the appliance: a new disk GUID, partition GUIDs and filesystem UUIDs', () => {
    const report = path.join(work, 'report.json');
    const r = ghostprep(['apply', ...args(), '--machine', 'm1', '--report', report]);
    expect(r.status, r.stderr + r.stdout).to.equal(0);
    const machines = (JSON.parse(readFileSync(report, 'utf8')) as { machines: Entry[] }).machines;
    expect(machines.map((m) => m.name)).to.deep.equal(['m1']);
    const m = machines[0]!;
    expect(m.status, m.error ?? '').to.equal('ok');
    applied = m.deviceChanges ?? [];
    checkDeviceChanges(applied, '/dev/sda');
    // the reference files apply rewrote
    for (const p of Object.keys(referenceFiles(ids))) expect(m.changes.map((c) => c.path), p).to.include(p);
  });

  it('reads back: new identities on every device, labels kept, every reference rewritten, every filesystem intact', async () => {
    const to = (op: string, device: string) => applied.find((c) => c.op === op && c.device === device)!.to;
    // the shared storage appliance (storage-appliance.ts): the clone is its second drive, /dev/sdb
    const { session: s } = await storageAppliance(clone);
    const sdb = (dev: string) => dev.replace(/^\/dev\/sda/, '/dev/sdb');
    try {
      const labels: Record<string, string> = { '/dev/sda1': 'EFI', '/dev/sda2': 'root', '/dev/sda3': 'srv', '/dev/sda4': 'data', '/dev/sda5': 'swap' };
      const part: string[] = [];
      for (let n = 1; n <= 5; n++) {
        const dev = `/dev/sda${n}`;
        const b = await s.fields('blkid', [sdb(dev)]);
        expect(b.UUID!.toLowerCase(), dev).to.equal(to('fs-uuid', dev).toLowerCase());
        expect(b.LABEL, dev).to.equal(labels[dev]);
        part[n] = (await s.text('part-get-gpt-guid', ['/dev/sdb', n])).toLowerCase();
        expect(part[n], dev).to.equal(to('part-guid', dev).toLowerCase());
        expect(part[n]).to.not.equal(ids.part[n]);
      }
      expect((await s.text('part-get-disk-guid', ['/dev/sdb'])).toLowerCase()).to.equal(to('disk-guid', '/dev/sda').toLowerCase());
      const fresh: MultiFsIds = {
        fs: { vfat: to('fs-uuid', '/dev/sda1'), ext4: to('fs-uuid', '/dev/sda2'), xfs: to('fs-uuid', '/dev/sda3'), btrfs: to('fs-uuid', '/dev/sda4'), swap: to('fs-uuid', '/dev/sda5') },
        part, disk: to('disk-guid', '/dev/sda'),
      };
      // the files name the new values, in the case the master wrote them (blkid's: vfat upper, the rest lower)
      await s.command('mount-ro', ['/dev/sdb2', '/']);
      for (const [p, text] of Object.entries(referenceFiles(fresh))) expect((await s.command('read-file', [p])).toString('utf8'), p).to.equal(text);
      // each filesystem mounts by its new UUID (found on the clone's disk, not the other drive) and holds its data,
      // written when the image was built, as its partition on /dev/sda
      for (const [mp, t, n] of [['/boot/efi', 'vfat', 1], ['/srv', 'xfs', 3], ['/data', 'btrfs', 4]] as const) {
        const dev = (await s.text('findfs-uuid', [fresh.fs[t]])).trim();
        expect(dev).to.equal(`/dev/sdb${n}`);
        await s.command('mount-ro', [dev, mp]);
        expect((await s.command('read-file', [`${mp}/marker`])).toString('utf8')).to.equal(`on /dev/sda${n}\n`);
      }
    } finally {
      await s.command('umount-all');
    }
  });

  it('one plan --json: the fresh clone lists every device change apply made and the rewrite of every reference file; the applied clone has nothing left to change', () => {
    const r = ghostprep(['plan', ...args(), '--json', '--jobs', '1']);
    expect(r.status, r.stderr).to.equal(0);
    const machines = (JSON.parse(r.stdout) as { machines: Entry[] }).machines;
    expect(machines.map((m) => m.name)).to.deep.equal(['m1', 'm2']);
    const [m1, m2] = machines as [Entry, Entry];
    // m2, as m1 was before apply: every change apply made on m1, each to m2's own value
    expect(m2.status, m2.error ?? '').to.equal('ok');
    const planned = m2.deviceChanges ?? [];
    expect(diskOf(planned)).to.match(/^\/dev\/sd[ab]$/);
    checkDeviceChanges(planned, diskOf(planned));
    expect(shape(planned)).to.deep.equal(shape(applied));
    for (const [i, c] of planned.entries()) expect(c.to.toLowerCase(), `${c.op} ${c.device}: m2's own`).to.not.equal(applied[i]!.to.toLowerCase());
    for (const p of Object.keys(referenceFiles(ids))) expect(m2.diff, p).to.contain(`+++ b${p}`);
    // m1, applied: nothing left on its devices or in its references (its plan's values are those on its disk: apply's)
    expect(m1.status, m1.error ?? '').to.equal('ok');
    expect(m1.deviceChanges ?? []).to.deep.equal([]);
    expect(m1.diff ?? '').to.not.contain('/etc/fstab');
  });
});
