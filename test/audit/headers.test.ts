/**
 * Header parsers on volumes made by the real tools (mkfs.*, mkswap,
 * cryptsetup, sfdisk) on plain files: no loop device, no appliance.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { formatGuid, parseVolume, probeDiskIdentity, readDiskIdentity, imageReader, type Reader } from '../../src/audit/headers.js';
import { tempDir } from '../helpers/images.js';

const UUID = {
  ext: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
  xfs: '1b2c3d4e-5f60-4b7c-9d8e-0f1a2b3c4d5e',
  btrfs: '2c3d4e5f-6071-4c8d-8e9f-1a2b3c4d5e6f',
  swap: '3d4e5f60-7182-4d9e-9fa0-2b3c4d5e6f70',
  luks1: '4e5f6071-8293-4eaf-8a01-3c4d5e6f7081',
  luks2: '5f607182-93a4-4fb0-9b12-4d5e6f708192',
  disk: '6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d',
  part1: '7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e',
  part2: '8c9d0e1f-2a3b-4c4d-8e5f-6a7b8c9d0e1f',
};
const MiB = 1024 * 1024;

async function sh(cmd: string, args: string[], input?: string): Promise<void> {
  await execa(cmd, args, { input, env: { LC_ALL: 'C' } });
}

async function head(file: string): Promise<Buffer> {
  const r = imageReader(file, 'raw');
  try { return await r.read(0, 128 * 1024); } finally { await r.close(); }
}

async function luks(file: string, type: 'luks1' | 'luks2', uuid: string, dir: string): Promise<void> {
  const key = path.join(dir, 'key');
  await fs.writeFile(key, 'not a real secret, test only');
  await fs.truncate(file, 16 * MiB).catch(async () => { await fs.writeFile(file, ''); await fs.truncate(file, 16 * MiB); });
  await sh('cryptsetup', ['luksFormat', '--batch-mode', '--type', type, '--uuid', uuid, '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000', '--key-file', key, file]);
}

describe('audit: disk headers read host-side', function () {
  this.timeout(120_000);
  let dir: string;
  before(async () => { dir = await tempDir('ghostprep-headers-'); });
  after(async () => { await fs.rm(dir, { recursive: true, force: true }); });

  const make = async (name: string, size: number): Promise<string> => {
    const f = path.join(dir, name);
    await fs.writeFile(f, '');
    await fs.truncate(f, size);
    return f;
  };

  it('ext4, xfs, btrfs and swap UUIDs are the ones mkfs/mkswap were given', async () => {
    const ext = await make('ext.img', 8 * MiB);
    await sh('mkfs.ext4', ['-q', '-F', '-U', UUID.ext, ext]);
    const xfs = await make('xfs.img', 320 * MiB);
    await sh('mkfs.xfs', ['-q', '-f', '-m', `uuid=${UUID.xfs}`, xfs]);
    const btrfs = await make('btrfs.img', 128 * MiB);
    await sh('mkfs.btrfs', ['-q', '-f', '-U', UUID.btrfs, btrfs]);
    const swap = await make('swap.img', 4 * MiB);
    await sh('mkswap', ['-q', '-U', UUID.swap, swap]);
    expect(parseVolume(await head(ext))).to.deep.equal({ kind: 'ext', uuid: UUID.ext });
    expect(parseVolume(await head(xfs))).to.deep.equal({ kind: 'xfs', uuid: UUID.xfs });
    expect(parseVolume(await head(btrfs))).to.deep.equal({ kind: 'btrfs', uuid: UUID.btrfs });
    expect(parseVolume(await head(swap))).to.deep.equal({ kind: 'swap', uuid: UUID.swap });
  });

  it('vfat volume ids of FAT16 and FAT32 as blkid prints them', async () => {
    const f16 = await make('fat16.img', 32 * MiB);
    await sh('mkfs.vfat', ['-F', '16', '-i', '1234abcd', f16]);
    const f32 = await make('fat32.img', 64 * MiB);
    await sh('mkfs.vfat', ['-F', '32', '-i', 'deadbeef', f32]);
    expect(parseVolume(await head(f16))).to.deep.equal({ kind: 'vfat', uuid: '1234-ABCD' });
    expect(parseVolume(await head(f32))).to.deep.equal({ kind: 'vfat', uuid: 'DEAD-BEEF' });
  });

  it('LUKS1 and LUKS2: the UUID, and one volume-key fingerprint per key, kept when only the UUID changes', async () => {
    const l1 = path.join(dir, 'l1.img');
    const l2 = path.join(dir, 'l2.img');
    await luks(l1, 'luks1', UUID.luks1, dir);
    await luks(l2, 'luks2', UUID.luks2, dir);
    const r1 = await probeDiskIdentity(l1, 'raw');
    const r2 = await probeDiskIdentity(l2, 'raw');
    expect(r1.volumes).to.have.length(1);
    expect(r1.volumes[0]).to.include({ partition: 'disk', kind: 'luks1', uuid: UUID.luks1 });
    expect(r2.volumes[0]).to.include({ partition: 'disk', kind: 'luks2', uuid: UUID.luks2 });
    expect(r1.volumes[0]!.volumeKey).to.match(/^sha256:[0-9a-f]{32}$/);
    expect(r2.volumes[0]!.volumeKey).to.match(/^sha256:[0-9a-f]{32}$/);
    // a copy with a new UUID still opens with the same volume key: the fingerprint stays
    for (const [src, type] of [[l1, 'luks1'], [l2, 'luks2']] as const) {
      const copy = path.join(dir, `${type}-copy.img`);
      await fs.copyFile(src, copy);
      await sh('cryptsetup', ['luksUUID', '--batch-mode', '--uuid', UUID.disk, copy]);
      const orig = (await probeDiskIdentity(src, 'raw')).volumes[0]!;
      const c = (await probeDiskIdentity(copy, 'raw')).volumes[0]!;
      expect(c.uuid).to.equal(UUID.disk);
      expect(c.volumeKey).to.equal(orig.volumeKey);
    }
    // a new format of the same UUID is a new volume key
    const again = path.join(dir, 'l1-again.img');
    await luks(again, 'luks1', UUID.luks1, dir);
    expect((await probeDiskIdentity(again, 'raw')).volumes[0]!.volumeKey).to.not.equal(r1.volumes[0]!.volumeKey);
  });

  it('a GPT disk: disk GUID, partition GUIDs, and the volume in each partition (raw and qcow2 overlay alike)', async () => {
    const disk = await make('disk.raw', 64 * MiB);
    await sh('sfdisk', ['-q', disk], `label: gpt\nlabel-id: ${UUID.disk}\nstart=2048, size=16384, uuid=${UUID.part1}\nstart=18432, size=8192, uuid=${UUID.part2}\n`);
    const ext = await make('p1.img', 8 * MiB);
    await sh('mkfs.ext4', ['-q', '-F', '-U', UUID.ext, ext]);
    const swap = await make('p2.img', 4 * MiB);
    await sh('mkswap', ['-q', '-U', UUID.swap, swap]);
    await sh('dd', [`if=${ext}`, `of=${disk}`, 'bs=512', 'seek=2048', 'conv=notrunc,sparse', 'status=none']);
    await sh('dd', [`if=${swap}`, `of=${disk}`, 'bs=512', 'seek=18432', 'conv=notrunc,sparse', 'status=none']);
    const expected = {
      gptDiskGuid: UUID.disk,
      gptPartitionGuids: [{ partition: 1, guid: UUID.part1 }, { partition: 2, guid: UUID.part2 }],
      volumes: [{ partition: '1', kind: 'ext', uuid: UUID.ext }, { partition: '2', kind: 'swap', uuid: UUID.swap }],
    };
    expect(await probeDiskIdentity(disk, 'raw')).to.deep.equal(expected);
    const overlay = path.join(dir, 'clone.qcow2');
    await sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', disk, '-F', 'raw', overlay]);
    expect(await probeDiskIdentity(overlay, 'qcow2')).to.deep.equal(expected);
  });

  it('an MBR disk: the disk identifier', async () => {
    const disk = await make('mbr.raw', 16 * MiB);
    await sh('sfdisk', ['-q', disk], 'label: dos\nlabel-id: 0x1a2b3c4d\nstart=2048, type=83\n');
    const id = await probeDiskIdentity(disk, 'raw');
    expect(id.mbrDiskId).to.equal('1a2b3c4d');
    expect(id.gptDiskGuid).to.equal(undefined);
  });

  it('property: any bytes parse to a result or undefined, never an exception', async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 70 * 1024 }), fc.boolean(), async (bytes, magic) => {
      const buf = Buffer.from(bytes);
      // put real magics at their places some of the time so deeper parsing runs too
      if (magic && buf.length >= 4096) { buf.write('LUKS\xba\xbe', 0, 'latin1'); buf[7] = 2; }
      parseVolume(buf);
      const read: Reader = async (o, l) => buf.subarray(Math.min(o, buf.length), Math.min(o + l, buf.length));
      await readDiskIdentity(read);
    }), { numRuns: 200 });
  });

  it('property: GPT GUIDs keep the mixed-endian layout uuid tools print', () => {
    fc.assert(fc.property(fc.uuid(), (u) => {
      const hex = u.replace(/-/g, '');
      const b = Buffer.from(hex, 'hex');
      const le = Buffer.concat([Buffer.from(b.subarray(0, 4)).reverse(), Buffer.from(b.subarray(4, 6)).reverse(), Buffer.from(b.subarray(6, 8)).reverse(), b.subarray(8)]);
      expect(formatGuid(le)).to.equal(u.toLowerCase());
    }));
  });
});
