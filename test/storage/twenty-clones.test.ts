/**
 * 20 clones of one ext4 master applied with storage.newUuids in one
 * appliance, then read back in one read-only appliance with all 20 drives:
 * every filesystem UUID, GPT partition GUID and GPT disk GUID is distinct
 * (and none is the master's), and each clone's fstab names its own root.
 */
import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GuestfsSession, driveDevice } from '../../src/backends/guestfs/session.js';
import { EXT4_FS_UUID, EXT4_PART_UUID, overlayOf, testImage } from '../helpers/images.js';
import { ghostprep } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';

const N = 20;

interface Entry { name: string; status: string; error: string | null; deviceChanges?: Array<{ op: string; device: string; to: string }> }

describe('storage.newUuids: 20 clones of one ext4 master', function () {
  this.timeout(1_800_000);
  const work = tempDir('ghostprep-newuuids-20-');
  const names = Array.from({ length: N }, (_, i) => `c${String(i).padStart(2, '0')}`);
  const clones: string[] = [];
  let masterDiskGuid = '';

  before(async () => {
    const base = await testImage('ext4-gpt');
    for (const n of names) clones.push(await overlayOf(base, work, n));
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\nstorage: {newUuids: true}\n');
    writeFileSync(path.join(work, 'i.yaml'), 'defaults: {profile: p}\nmachines:\n' + names.map((n) => `  - {name: ${n}}\n`).join(''));
    const s = await GuestfsSession.open({ drives: [{ path: base, format: 'qcow2', readonly: true }] });
    try { masterDiskGuid = (await s.text('part-get-disk-guid', ['/dev/sda'])).toLowerCase(); } finally { await s.close(); }
  });

  it('applies all 20 in one appliance; then all 60 identities are distinct and each fstab names its own root', async () => {
    const report = path.join(work, 'report.json');
    const r = ghostprep(['apply', '-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml'), '--state', path.join(work, 'state'),
      '--target', path.join(work, '{name}.qcow2'), '--jobs', '1', '--report', report]);
    expect(r.status, r.stderr + r.stdout).to.equal(0);
    const machines = (JSON.parse(readFileSync(report, 'utf8')) as { machines: Entry[] }).machines;
    expect(machines.map((m) => m.status)).to.deep.equal(names.map(() => 'ok'));

    const s = await GuestfsSession.open({ drives: clones.map((p) => ({ path: p, format: 'qcow2', readonly: true })) });
    const seen = new Map<string, string>();
    const add = (what: string, value: string): void => {
      const v = value.toLowerCase();
      expect(seen.has(v), `${what} ${v} is also ${seen.get(v)}`).to.equal(false);
      seen.set(v, what);
    };
    try {
      for (const [i, name] of names.entries()) {
        const dev = driveDevice(i);
        const b = await s.fields('blkid', [`${dev}1`]);
        const disk = await s.text('part-get-disk-guid', [dev]);
        add(`${name} fs`, b.UUID!);
        add(`${name} part`, b.PART_ENTRY_UUID!);
        add(`${name} disk`, disk);
        const planned = machines[i]!.deviceChanges ?? [];
        expect(planned.find((c) => c.op === 'fs-uuid')!.to.toLowerCase()).to.equal(b.UUID!.toLowerCase());
        await s.command('mount-ro', [`${dev}1`, '/']);
        const fstab = (await s.command('read-file', ['/etc/fstab'])).toString('utf8');
        expect(fstab, name).to.contain(`UUID=${b.UUID} / ext4`);
        expect(fstab, name).to.not.contain(EXT4_FS_UUID);
        await s.command('umount-all');
      }
    } finally {
      await s.close();
    }
    expect(seen.size).to.equal(3 * N);
    for (const old of [EXT4_FS_UUID, EXT4_PART_UUID, masterDiskGuid]) expect(seen.has(old.toLowerCase()), old).to.equal(false);
  });
});
