/**
 * storage.newUuids on a real disk through the appliance: one image with
 * vfat, ext4, xfs, btrfs and swap on GPT, planned (JSON), applied, read back
 * in one read-only appliance (blkid, GPT GUIDs, labels kept, every reference
 * file, each filesystem's data), and planned again (nothing left to change).
 */
import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GuestfsSession } from '../../src/backends/guestfs/session.js';
import { overlayOf } from '../helpers/images.js';
import { ghostprep } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';
import { multiFsImage, referenceFiles, type MultiFsIds } from './storage-image.js';

interface DeviceEntry { op: string; device: string; from: string; to: string; fstype?: string; partnum?: number }
interface Entry { name: string; status: string; error: string | null; deviceChanges?: DeviceEntry[]; diff?: string; changes: Array<{ path: string }> }

describe('storage.newUuids on an image with vfat, ext4, xfs, btrfs and swap', function () {
  this.timeout(900_000);
  const work = tempDir('ghostprep-newuuids-');
  let ids: MultiFsIds;
  let clone: string;
  let planned: DeviceEntry[] = [];
  const args = () => ['-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml'), '--state', path.join(work, 'state'), '--target', path.join(work, '{name}.qcow2')];

  before(async () => {
    const built = await multiFsImage();
    ids = built.ids;
    clone = await overlayOf(built.image, work, 'm1');
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\nstorage: {newUuids: true}\n');
    writeFileSync(path.join(work, 'i.yaml'), 'defaults: {profile: p}\nmachines: [{name: m1}]\n');
  });

  it('plan --json lists every device change and the rewrite of every reference file', () => {
    const r = ghostprep(['plan', ...args(), '--json']);
    expect(r.status, r.stderr).to.equal(0);
    const m = (JSON.parse(r.stdout) as { machines: Entry[] }).machines[0]!;
    expect(m.status, m.error ?? '').to.equal('ok');
    planned = m.deviceChanges ?? [];
    const byOp = (op: string) => planned.filter((c) => c.op === op);
    expect(byOp('disk-guid')).to.have.length(1);
    expect(byOp('part-guid').map((c) => c.partnum)).to.deep.equal([1, 2, 3, 4, 5]);
    expect(byOp('fs-uuid').map((c) => `${c.device}:${c.fstype}`)).to.deep.equal(['/dev/sda1:vfat', '/dev/sda2:ext4', '/dev/sda3:xfs', '/dev/sda4:btrfs', '/dev/sda5:swap']);
    expect(byOp('fs-uuid').map((c) => c.from.toLowerCase())).to.deep.equal([ids.fs.vfat, ids.fs.ext4, ids.fs.xfs, ids.fs.btrfs, ids.fs.swap].map((x) => x.toLowerCase()));
    for (const p of Object.keys(referenceFiles(ids))) expect(m.diff, p).to.contain(`+++ b${p}`);
  });

  it('apply changes them all in the appliance and reports the same values as the plan', () => {
    const report = path.join(work, 'report.json');
    const r = ghostprep(['apply', ...args(), '--report', report]);
    expect(r.status, r.stderr + r.stdout).to.equal(0);
    const m = (JSON.parse(readFileSync(report, 'utf8')) as { machines: Entry[] }).machines[0]!;
    expect(m.status, m.error ?? '').to.equal('ok');
    expect(m.deviceChanges).to.deep.equal(planned);
  });

  it('reads back: new identities on every device, labels kept, every reference rewritten, every filesystem intact', async () => {
    const to = (op: string, device: string) => planned.find((c) => c.op === op && c.device === device)!.to;
    const s = await GuestfsSession.open({ drives: [{ path: clone, format: 'qcow2', readonly: true }] });
    try {
      const labels: Record<string, string> = { '/dev/sda1': 'EFI', '/dev/sda2': 'root', '/dev/sda3': 'srv', '/dev/sda4': 'data', '/dev/sda5': 'swap' };
      const part: string[] = [];
      for (let n = 1; n <= 5; n++) {
        const dev = `/dev/sda${n}`;
        const b = await s.fields('blkid', [dev]);
        expect(b.UUID!.toLowerCase(), dev).to.equal(to('fs-uuid', dev).toLowerCase());
        expect(b.LABEL, dev).to.equal(labels[dev]);
        part[n] = (await s.text('part-get-gpt-guid', ['/dev/sda', n])).toLowerCase();
        expect(part[n], dev).to.equal(to('part-guid', dev).toLowerCase());
        expect(part[n]).to.not.equal(ids.part[n]);
      }
      expect((await s.text('part-get-disk-guid', ['/dev/sda'])).toLowerCase()).to.equal(to('disk-guid', '/dev/sda').toLowerCase());
      const fresh: MultiFsIds = {
        fs: { vfat: to('fs-uuid', '/dev/sda1'), ext4: to('fs-uuid', '/dev/sda2'), xfs: to('fs-uuid', '/dev/sda3'), btrfs: to('fs-uuid', '/dev/sda4'), swap: to('fs-uuid', '/dev/sda5') },
        part, disk: to('disk-guid', '/dev/sda'),
      };
      // the files name the new values, in the case the master wrote them (blkid's: vfat upper, the rest lower)
      await s.command('mount-ro', ['/dev/sda2', '/']);
      for (const [p, text] of Object.entries(referenceFiles(fresh))) expect((await s.command('read-file', [p])).toString('utf8'), p).to.equal(text);
      // each filesystem mounts by its new UUID and holds its data
      for (const [mp, t] of [['/boot/efi', 'vfat'], ['/srv', 'xfs'], ['/data', 'btrfs']] as const) {
        const dev = (await s.text('findfs-uuid', [fresh.fs[t]])).trim();
        await s.command('mount-ro', [dev, mp]);
        expect((await s.command('read-file', [`${mp}/marker`])).toString('utf8')).to.equal(`on ${dev}\n`);
      }
    } finally {
      await s.close();
    }
  });

  it('a second plan of the applied clone finds nothing left to change on its devices or in its references', () => {
    const r = ghostprep(['plan', ...args(), '--json']);
    expect(r.status, r.stderr).to.equal(0);
    const m = (JSON.parse(r.stdout) as { machines: Entry[] }).machines[0]!;
    expect(m.status, m.error ?? '').to.equal('ok');
    expect(m.deviceChanges ?? []).to.deep.equal([]);
    expect(m.diff ?? '').to.not.contain('/etc/fstab');
  });
});
