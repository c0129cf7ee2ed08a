/**
 * The storage-references operation and the plan output of device changes,
 * against an in-memory guest with fake block devices (no appliance): the
 * fixture master's files are rewritten to name the derived values, symlinks
 * and unrelated files are left alone, and plan text/JSON show each device change.
 */
import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { MemoryGuest } from '../../src/backends/memory.js';
import { storageReferencesOperation } from '../../src/operations/customize/storage-references.js';
import type { OperationContext } from '../../src/core/operation.js';
import { planEntry } from '../../src/fleet/plan-text.js';
import type { MachineResult } from '../../src/fleet/run.js';
import { planNewUuids } from '../../src/storage/plan.js';
import { mentionsAny } from '../../src/storage/references.js';
import type { BlockDevices, BlockDisk, DeviceChange } from '../../src/storage/types.js';
import { REPO } from '../helpers/rootfs.js';

const MASTER = path.join(REPO, 'fixtures/storage/master');

function walk(dir: string, base = dir): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p, base) : ['/' + path.relative(base, p)];
  });
}

/** The fixture master's disk: the identities named in fixtures/storage/README.md. */
const DISK: BlockDisk = {
  device: '/dev/sda', table: 'gpt', diskGuid: 'AAAAAAAA-0000-4000-8000-000000000000',
  volumes: [
    { device: '/dev/sda1', fstype: 'vfat', uuid: '7A1C-33E0', label: 'EFI', partnum: 1, partGuid: '11111111-0000-4000-8000-000000000001' },
    { device: '/dev/sda2', fstype: 'ext4', uuid: '0b3f6b3c-8a3e-4b6e-9d0c-2f5f1b7c9a11', label: '', partnum: 2, partGuid: 'c0ffee00-1234-4abc-8def-0123456789ab' },
    { device: '/dev/sda3', fstype: 'swap', uuid: '5e8d2c4a-1f7b-4c3e-a9d2-6b0e8f1c2d33', label: 'swap', partnum: 3, partGuid: '11111111-0000-4000-8000-000000000003' },
  ],
};

function guestWithDisk(extra: Record<string, string | { symlink: string }> = {}): MemoryGuest {
  const files: Record<string, string | { symlink: string }> = { ...extra };
  for (const f of walk(MASTER)) files[f] = readFileSync(path.join(MASTER, f), 'utf8');
  const g = new MemoryGuest(files);
  const devices: BlockDevices = { probe: async () => [DISK], apply: async () => undefined, read: async () => '' };
  return Object.assign(g, { blockDevices: devices });
}

function ctx(guest: MemoryGuest, newUuids: boolean, name = 'node01'): OperationContext {
  return { guest, distro: { id: 'debian', idLike: [], versionId: '12', name: 'Debian', family: 'debian', major: 12 }, machine: { prepared: { name } }, profile: { profile: 'p', storage: { newUuids } }, identity: {} } as unknown as OperationContext;
}

describe('storage-references operation', () => {
  it('plans nothing without storage.newUuids', async () => {
    expect(await storageReferencesOperation.plan(ctx(guestWithDisk(), false))).to.deep.equal([]);
  });

  it('rewrites every reference file of the master to the derived values, keeping modes; links and other files alone', async () => {
    const g = guestWithDisk({ '/etc/grub2.cfg': { symlink: '../boot/grub2/grub.cfg' }, '/etc/hosts': 'UUID 0b3f6b3c-8a3e-4b6e-9d0c-2f5f1b7c9a11\n' });
    const changes = await storageReferencesOperation.plan(ctx(g, true));
    const { ids } = planNewUuids('node01', [DISK]);
    expect(changes.map((c) => c.path).sort()).to.deep.equal(walk(MASTER).sort());
    for (const c of changes) {
      if (c.op !== 'write') throw new Error(c.op);
      expect(c.source).to.equal('storage.newUuids');
      expect(c.mode).to.equal(0o644);
      expect(mentionsAny(c.content.toString('utf8'), ids.keys()), c.path).to.equal(false);
    }
    const fstab = changes.find((c) => c.path === '/etc/fstab');
    expect(fstab && fstab.op === 'write' && fstab.content.toString()).to.contain(`UUID=${ids.get('0b3f6b3c-8a3e-4b6e-9d0c-2f5f1b7c9a11')} /`);
  });

  it('warns of a PV it leaves alone only when storage.lvm does not renew it', async () => {
    const pv = { device: '/dev/sda4', fstype: 'LVM2_member', uuid: 'x81VodWiIo67yyV6dA3BhbbD5B1oP1xc', label: '', partnum: 4 };
    const warnings = async (lvm: boolean): Promise<string[]> => {
      const out: string[] = [];
      const g = guestWithDisk();
      Object.assign(g, { blockDevices: { probe: async () => [{ ...DISK, volumes: [...DISK.volumes, pv] }], apply: async () => undefined, read: async () => '' } });
      const c = ctx(g, true);
      await storageReferencesOperation.plan({ ...c, profile: { profile: 'p', storage: { newUuids: true, ...(lvm && { lvm: { newUuids: true } }) } }, warn: (m: string) => out.push(m) } as unknown as OperationContext);
      return out;
    };
    expect(await warnings(false)).to.deep.equal(['/dev/sda4 (LVM2_member): its identity is not changed by storage.newUuids (storage.lvm renews it)']);
    expect(await warnings(true)).to.deep.equal([]);
  });

  it('is refused on a guest without block devices (a rootfs tree)', async () => {
    const err = await storageReferencesOperation.plan(ctx(new MemoryGuest({ '/etc/fstab': 'x' }), true)).then(() => null, (e: Error) => e);
    expect(err?.message).to.contain('storage.newUuids needs a disk image or device target');
  });
});

describe('plan output of device changes', () => {
  const changes: DeviceChange[] = [...planNewUuids('node01', [DISK]).changes];
  const r: MachineResult = {
    report: { name: 'node01', target: 'c/node01.qcow2', status: 'ok', error: null, distro: null, identity: null, changes: [], durationMs: 1, deviceChanges: changes.map((c) => ({ op: c.op, device: c.device, from: c.from, to: c.to })) },
    changes: [], publicKeys: [], deviceChanges: changes,
  };

  it('text: one line per device change, counted with the file changes', () => {
    const text = planEntry(r, false);
    expect(text.split('\n')[0]).to.equal(`=== node01 (c/node01.qcow2): ${changes.length} change(s)`);
    expect(text).to.contain(`device /dev/sda2: ext4 UUID 0b3f6b3c-8a3e-4b6e-9d0c-2f5f1b7c9a11 -> ${changes.find((c) => c.op === 'fs-uuid' && c.device === '/dev/sda2')!.to}`);
    expect(text).to.contain('device /dev/sda2: GPT partition 2 GUID c0ffee00-1234-4abc-8def-0123456789ab -> ');
    expect(text).to.contain('device /dev/sda: GPT disk GUID AAAAAAAA-0000-4000-8000-000000000000 -> ');
    expect(text).to.contain('device /dev/sda1: vfat UUID 7A1C-33E0 -> ');
  });

  it('json: the deviceChanges of the report', () => {
    const j = JSON.parse(planEntry(r, true)) as { deviceChanges: Array<{ op: string }> };
    expect(j.deviceChanges.map((c) => c.op)).to.deep.equal(changes.map((c) => c.op));
  });
});
