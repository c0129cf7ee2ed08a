/**
 * 20 clones of one ext4 master applied with storage.newUuids in one
 * appliance, then read back on the host (qemu-img convert, sfdisk, blkid -p, debugfs):
 * every filesystem UUID, GPT partition GUID and GPT disk GUID is distinct
 * (and none is the master's), and each clone's fstab names its own root.
 */
import { expect } from 'chai';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import path from 'node:path';
import { GuestfsSession } from '../../src/backends/guestfs/session.js';
import { EXT4_FS_UUID, EXT4_PART_UUID, overlayOf, testImage } from '../helpers/images.js';
import { ghostprep } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';

const N = 20;

interface Entry { name: string; status: string; error: string | null; deviceChanges?: Array<{ op: string; device: string; to: string }> }

describe('storage.newUuids: 20 clones of one ext4 master', function () {
  this.timeout(3_600_000);
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

    // read back on the host, without an appliance: each clone as raw, its GPT by sfdisk, its ext4 by blkid -p and debugfs
    const seen = new Map<string, string>();
    const add = (what: string, value: string): void => {
      const v = value.toLowerCase();
      expect(seen.has(v), `${what} ${v} is also ${seen.get(v)}`).to.equal(false);
      seen.set(v, what);
    };
    for (const [i, name] of names.entries()) {
      const raw = path.join(work, `${name}.raw`);
      await execa('qemu-img', ['convert', '-f', 'qcow2', '-O', 'raw', clones[i]!, raw]);
      try {
        const table = (JSON.parse((await execa('sfdisk', ['-J', raw])).stdout) as { partitiontable: { id: string; partitions: Array<{ uuid: string }> } }).partitiontable;
        const fsUuid = (await execa('blkid', ['-p', '-O', '1048576', '-s', 'UUID', '-o', 'value', raw])).stdout.trim();
        add(`${name} fs`, fsUuid);
        add(`${name} part`, table.partitions[0]!.uuid);
        add(`${name} disk`, table.id);
        const planned = machines[i]!.deviceChanges ?? [];
        expect(planned.find((c) => c.op === 'fs-uuid')!.to.toLowerCase()).to.equal(fsUuid.toLowerCase());
        const fstab = (await execa('debugfs', ['-R', 'cat /etc/fstab', `${raw}?offset=1048576`])).stdout;
        expect(fstab, name).to.contain(`UUID=${fsUuid} / ext4`);
        expect(fstab, name).to.not.contain(EXT4_FS_UUID);
      } finally {
        rmSync(raw, { force: true });
      }
    }
    expect(seen.size).to.equal(3 * N);
    for (const old of [EXT4_FS_UUID, EXT4_PART_UUID, masterDiskGuid]) expect(seen.has(old.toLowerCase()), old).to.equal(false);
  });
});
