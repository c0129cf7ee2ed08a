/**
 * Device changes are all-or-nothing on the machine: a change that fails
 * part-way undoes the ones already made, and a machine rolled back after its
 * device changes gets its old identities back. GPT GUIDs are edited in both
 * copies of the table; a table with a damaged backup is left to sgdisk,
 * which writes the backup again. On an overlay of the multi-filesystem test
 * image, in the appliance new-uuids.test.ts shares.
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { GuestfsBlockDevices } from '../../src/backends/guestfs/storage-identity.js';
import type { InspectedOs } from '../../src/backends/guestfs/os-inspect.js';
import { detectDistro } from '../../src/distro/detect.js';
import type { DeviceChange } from '../../src/storage/types.js';
import { checkTable, entriesLength, parseGptHeader } from '../../src/storage/gpt.js';
import { tempDir } from '../helpers/images.js';
import { multiFsImage } from './storage-image.js';
import { storageAppliance } from './storage-appliance.js';

describe('storage device changes: undone on failure and on rollback', function () {
  this.timeout(900_000);

  it('a failing change undoes the earlier ones; rollback restores every old identity; the guest is mounted again each time', async () => {
    const { ids } = await multiFsImage();
    // the writable overlay at /dev/sda of the appliance new-uuids.test.ts shares (storage-appliance.ts)
    const { session: s, scratch: clone } = await storageAppliance();
    const os: InspectedOs = { type: 'linux', root: '/dev/sda2', mounts: [{ mountpoint: '/', device: '/dev/sda2' }, { mountpoint: '/srv', device: '/dev/sda3' }], distro: detectDistro('ID=debian\n'), product: 'Debian', notes: [] };
    try {
      await s.command('mount', ['/dev/sda2', '/']);
      await s.command('mount', ['/dev/sda3', '/srv']);
      const devices = new GuestfsBlockDevices(s, os, clone);
      const disks = await devices.probe();
      expect(disks[0]!.volumes.map((v) => v.fstype)).to.deep.equal(['vfat', 'ext4', 'xfs', 'btrfs', 'swap']);
      const good: DeviceChange[] = [
        { op: 'fs-uuid', device: '/dev/sda2', fstype: 'ext4', from: ids.fs.ext4, to: '0e4e4e4e-0000-4000-8000-000000000002', source: 't' },
        { op: 'fs-uuid', device: '/dev/sda3', fstype: 'xfs', from: ids.fs.xfs, to: '0e4e4e4e-0000-4000-8000-000000000003', source: 't' },
        { op: 'fs-uuid', device: '/dev/sda1', fstype: 'vfat', from: ids.fs.vfat, to: '0E4E-0001', source: 't' },
        { op: 'part-guid', device: '/dev/sda2', disk: '/dev/sda', partnum: 2, from: ids.part[2]!, to: '0e4e4e4e-0000-4000-8000-0000000000b2', source: 't' },
      ];
      // a disk the appliance does not have: the command fails after the good changes are made
      const bad: DeviceChange = { op: 'disk-guid', device: '/dev/sdz', from: 'x', to: '0e4e4e4e-0000-4000-8000-0000000000b9', source: 't' };
      const err = await devices.apply([...good, bad]).then(() => null, (e: Error) => e);
      expect(err?.message ?? 'no error', err?.message).to.contain('disk-guid of /dev/sdz');
      for (const c of good) expect((await devices.read(c)).toLowerCase(), `${c.op} ${c.device} undone`).to.equal(c.from.toLowerCase());
      expect(await s.lines('mounts')).to.include.members(['/dev/sda2', '/dev/sda3']);

      await devices.apply(good);
      for (const c of good) expect((await devices.read(c)).toLowerCase(), `${c.op} ${c.device} applied`).to.equal(c.to.toLowerCase());
      expect(await devices.rollback(good)).to.deep.equal([]);
      for (const c of good) expect((await devices.read(c)).toLowerCase(), `${c.op} ${c.device} rolled back`).to.equal(c.from.toLowerCase());
      expect(await s.lines('mounts')).to.include.members(['/dev/sda2', '/dev/sda3']);
      expect((await s.command('read-file', ['/srv/marker'])).toString()).to.equal('on /dev/sda3\n');

      // GPT GUIDs are written into both copies of the table by ghostprep itself; a table whose backup is
      // damaged is left to sgdisk (part-set-*-guid), which changes the GUID and writes a whole backup again
      const readTable = async () => {
        const header = await s.command('pread-device', ['/dev/sda', 512, 512]);
        const h = parseGptHeader(header);
        if (!h.ok) throw new Error(h.reason);
        const entries = await s.command('pread-device', ['/dev/sda', entriesLength(h.value), Number(h.value.entriesLba) * 512]);
        const backupHeader = await s.command('pread-device', ['/dev/sda', 512, Number(h.value.backupLba) * 512]);
        const b = parseGptHeader(backupHeader);
        const backupEntries = b.ok ? await s.command('pread-device', ['/dev/sda', entriesLength(b.value), Number(b.value.entriesLba) * 512]) : Buffer.alloc(0);
        return { primary: { header, entries }, backup: { header: backupHeader, entries: backupEntries }, backupLba: h.value.backupLba };
      };
      const whole = await readTable();
      expect(checkTable(whole.primary, whole.backup).ok, 'a whole table after the edits').to.equal(true);
      const zeros = path.join(await tempDir(), 'zeros');
      writeFileSync(zeros, Buffer.alloc(512));
      await s.command('upload-offset', [zeros, '/dev/sda', Number(whole.backupLba) * 512]);
      const damaged = await readTable();
      expect(checkTable(damaged.primary, damaged.backup).ok, 'backup header destroyed').to.equal(false);
      const gpt: DeviceChange[] = [
        { op: 'disk-guid', device: '/dev/sda', from: ids.disk, to: '0e4e4e4e-0000-4000-8000-0000000000d1', source: 't' },
        { op: 'part-guid', device: '/dev/sda3', disk: '/dev/sda', partnum: 3, from: ids.part[3]!, to: '0e4e4e4e-0000-4000-8000-0000000000b3', source: 't' },
      ];
      await devices.apply(gpt);
      for (const c of gpt) expect((await devices.read(c)).toLowerCase(), `${c.op} ${c.device} applied by sgdisk`).to.equal(c.to.toLowerCase());
      const repaired = await readTable();
      expect(checkTable(repaired.primary, repaired.backup).ok, 'sgdisk wrote the backup again').to.equal(true);
      expect(await devices.rollback(gpt)).to.deep.equal([]);
      for (const c of gpt) expect((await devices.read(c)).toLowerCase(), `${c.op} ${c.device} rolled back`).to.equal(c.from.toLowerCase());

      // a write to the whole disk makes udev have the kernel re-read its table (the partitions go and come
      // back): the changes on a partition right after a GPT edit, and the remount, must find it every time
      for (let round = 0; round < 4; round++) {
        const guid = `0e4e4e4e-0000-4000-8000-00000000${String(round).padStart(4, '0')}`;
        const uuid = `0e4e4e4e-0000-4000-8000-0000000001${String(round).padStart(2, '0')}`;
        const before = { disk: await devices.read(gpt[0]!), fs: await devices.read(good[0]!) };
        const step: DeviceChange[] = [
          { op: 'disk-guid', device: '/dev/sda', from: before.disk, to: guid, source: 't' },
          { op: 'fs-uuid', device: '/dev/sda2', fstype: 'ext4', from: before.fs, to: uuid, source: 't' },
        ];
        await devices.apply(step);
        expect([await devices.read(step[0]!), await devices.read(step[1]!)].map((x) => x.toLowerCase()), `round ${round}`).to.deep.equal([guid, uuid]);
        expect(await s.lines('mounts'), `round ${round}: mounted again`).to.include.members(['/dev/sda2', '/dev/sda3']);
      }
    } finally {
      await s.command('umount-all');
    }
  });
});
