/**
 * Pure parts of the guestfs backend: quoting, device names, fstab mapping,
 * batching, partition-table and LVM label parsing, the header reads' prefetch. No appliance.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { scheduleBatches } from '../../../src/backends/guestfs/backend.js';
import { inlineChunks } from '../../../src/backends/guestfs/guest.js';
import { findVolume, fstabMounts, layoutOnDrive, safeMountpoint, type InspectedOs } from '../../../src/backends/guestfs/os-inspect.js';
import { conflictKeys, parsePvLabel, prefetchingReader, PREFETCH_BYTES, readPartitionTable } from '../../../src/backends/guestfs/lvm-probe.js';
import { cleanStderr, commandLine, driveDevice, MAX_LINE, quoteArg } from '../../../src/backends/guestfs/session.js';
import { imageFormat } from '../../../src/backends/image-format.js';

const vol = (device: string, type: string, extra: Partial<Record<'uuid' | 'label' | 'partUuid' | 'partLabel', string>> = {}) =>
  ({ device, type, uuid: '', label: '', partUuid: '', partLabel: '', ...extra });

describe('guestfs units', () => {
  it('derives device names like the kernel (sda…sdz, sdaa…)', () => {
    expect([0, 1, 25, 26, 27, 51, 52, 701, 702].map(driveDevice)).to.deep.equal(
      ['/dev/sda', '/dev/sdb', '/dev/sdz', '/dev/sdaa', '/dev/sdab', '/dev/sdaz', '/dev/sdba', '/dev/sdzz', '/dev/sdaaa']);
  });

  it('moves an inspected layout to another drive, and only layouts made of that drive\'s partitions', () => {
    const os = (root: string, ...mounts: [string, string][]): InspectedOs => ({
      type: 'linux', root, mounts: [{ mountpoint: '/', device: root }, ...mounts.map(([mountpoint, device]) => ({ mountpoint, device }))],
      distro: { id: 'debian' } as InspectedOs['distro'], product: 'Debian', notes: [],
    });
    expect(layoutOnDrive(os('/dev/sda2', ['/boot', '/dev/sda1']), 0, 27)).to.deep.equal(os('/dev/sdab2', ['/boot', '/dev/sdab1']));
    expect(layoutOnDrive(os('/dev/sdb'), 1, 0)).to.deep.equal(os('/dev/sda'));
    expect(layoutOnDrive(os('/dev/sda1'), 0, 0)).to.deep.equal(os('/dev/sda1'));
    expect(layoutOnDrive(os('/dev/vg0/root'), 0, 1)).to.equal(undefined); // LVM: names do not follow the drive
    expect(layoutOnDrive(os('/dev/mapper/luks-1'), 0, 1)).to.equal(undefined);
    expect(layoutOnDrive(os('/dev/sda1', ['/var', '/dev/sdb1']), 0, 2)).to.equal(undefined); // another drive
    expect(layoutOnDrive(os('/dev/sdaa1'), 0, 1)).to.equal(undefined); // sdaa is not sda
  });

  it('quotes every unsafe byte and refuses NUL', () => {
    expect(quoteArg('a b"c\\d\n$é')).to.equal('"a b\\x22c\\x5cd\\x0a$\\xc3\\xa9"');
    expect(quoteArg(Buffer.from([0xff, 0x01]))).to.equal('"\\xff\\x01"');
    expect(() => quoteArg('a\0b')).to.throw(RangeError);
  });

  it('builds command lines with optional arguments and refuses overlong lines and odd names', () => {
    expect(commandLine('add-drive', ['/x y.qcow2', { opt: 'format', value: 'qcow2' }, { opt: 'readonly', value: true }]))
      .to.equal('add-drive "/x y.qcow2" format:qcow2 readonly:true');
    expect(() => commandLine('write', ['/f', 'x'.repeat(MAX_LINE)])).to.throw(/too long/);
    expect(() => commandLine('rm; !sh', [])).to.throw(/bad guestfish command/);
    expect(() => commandLine('add-drive', [{ opt: 'format', value: 'qcow2 readonly:false' }])).to.throw(/unsafe/);
  });

  it('cleans guestfish stderr and drops warnings', () => {
    expect(cleanStderr('*stdin*:12: libguestfs: error: lstatns: /x: No such file or directory\nlibguestfs: warning: meh\n'))
      .to.equal('lstatns: /x: No such file or directory');
  });

  it('splits inline content so each quoted piece fits a line', () => {
    const content = Buffer.concat([Buffer.alloc(5000, 0x41), Buffer.alloc(3000, 0xff)]);
    const chunks = inlineChunks(content, 3000);
    expect(Buffer.concat(chunks).equals(content)).to.equal(true);
    for (const c of chunks) expect(quoteArg(c).length).to.be.at.most(3002);
    expect(inlineChunks(Buffer.alloc(0), 100)).to.have.length(1);
  });

  it('keeps conflicting targets apart and spreads batches over jobs', () => {
    const items = [
      { id: 'a', keys: ['file:a', 'vg-name:vg0'] }, { id: 'b', keys: ['file:b', 'vg-name:vg0'] },
      { id: 'c', keys: ['file:c'] }, { id: 'd', keys: ['file:d'] }, { id: 'e', keys: ['file:e'] },
    ];
    const batches = scheduleBatches(items, 20).map((b) => b.map((x) => x.id));
    expect(batches).to.deep.equal([['a', 'c', 'd', 'e'], ['b']]);
    expect(scheduleBatches(items, 20, 2).map((b) => b.map((x) => x.id))).to.deep.equal([['a', 'c', 'd'], ['b', 'e']]);
    expect(scheduleBatches(items, 2).every((b) => b.length <= 2)).to.equal(true);
  });

  it('maps fstab specs to this drive only, shallowest mount first', () => {
    const vols = [
      vol('/dev/sdc1', 'vfat', { uuid: 'AAAA-BBBB' }), vol('/dev/sdc2', 'ext4', { uuid: 'root-uuid', label: 'root' }),
      vol('/dev/sdc3', 'xfs', { partUuid: 'p-3', label: 'data' }), vol('/dev/vg0/var', 'ext4'),
    ];
    const fstab = [
      '# comment', 'UUID=root-uuid / ext4 defaults 0 1', 'UUID=AAAA-BBBB /boot/efi vfat umask=0077 0 1',
      '/dev/vda3 /srv/data xfs defaults 0 2', '/dev/mapper/vg0-var /var ext4 defaults 0 2',
      'UUID=other-disk /mnt/other ext4 defaults 0 2', 'nas:/x /mnt/nas nfs defaults 0 0',
      '/dev/sdc2 none swap sw 0 0', 'LABEL=data /../../etc xfs defaults 0 0', 'tmpfs /tmp tmpfs defaults 0 0',
    ].join('\n');
    const { mounts, notes } = fstabMounts(fstab, vols[1]!, vols);
    expect(mounts).to.deep.equal([
      { mountpoint: '/', device: '/dev/sdc2' }, { mountpoint: '/var', device: '/dev/vg0/var' },
      { mountpoint: '/boot/efi', device: '/dev/sdc1' }, { mountpoint: '/srv/data', device: '/dev/sdc3' },
    ]);
    expect(notes.join('\n')).to.match(/mnt\/other/).and.match(/refusing mountpoint "\/..\/..\/etc"/).and.match(/mnt\/nas/);
    expect(findVolume('PARTUUID=P-3', vols)?.device).to.equal('/dev/sdc3');
    expect(findVolume('/dev/disk/by-label/root', vols)?.device).to.equal('/dev/sdc2');
    expect(findVolume('/dev/nvme0n1p1', vols)?.device).to.equal('/dev/sdc1');
  });

  it('accepts only normalized absolute mountpoints', () => {
    expect(['/', '/var', '/boot/efi'].every(safeMountpoint)).to.equal(true);
    expect(['var', '/var/', '/a/../b', '/a//b', '/a\nb'].some(safeMountpoint)).to.equal(false);
  });

  it('names image formats from extensions, never from content', () => {
    expect(imageFormat('a.qcow2')).to.equal('qcow2');
    expect(imageFormat('a.IMG')).to.equal('raw');
    expect(imageFormat('/dev/sdb')).to.equal('raw');
    expect(imageFormat('a.bin', 'raw')).to.equal('raw');
    expect(() => imageFormat('a.bin')).to.throw(/extension/);
    expect(() => imageFormat('a.qcow2', 'qed')).to.throw(/unknown image format/);
  });

  it('parses MBR, extended and GPT partition tables', async () => {
    const disk = Buffer.alloc(64 * 1024);
    disk.writeUInt16LE(0xaa55, 510);
    const entry = (i: number, type: number, start: number) => { disk[446 + 16 * i + 4] = type; disk.writeUInt32LE(start, 446 + 16 * i + 8); };
    entry(0, 0x83, 2048);
    entry(1, 0x05, 100); // extended at sector 100
    const ebr = 100 * 512;
    disk.writeUInt16LE(0xaa55, ebr + 510);
    disk[ebr + 446 + 4] = 0x8e;
    disk.writeUInt32LE(2, ebr + 446 + 8); // logical at 102
    const read = async (o: number, l: number) => disk.subarray(o, o + l);
    const offsets = async (r: typeof read) => (await readPartitionTable(r)).entries.map((e) => e.offset);
    expect(await offsets(read)).to.deep.equal([2048 * 512, 102 * 512]);

    const gpt = Buffer.alloc(34 * 512);
    gpt.write('EFI PART', 512, 'latin1');
    gpt.writeBigUInt64LE(2n, 512 + 72);
    gpt.writeUInt32LE(128, 512 + 80);
    gpt.writeUInt32LE(128, 512 + 84);
    gpt[1024] = 1; // non-zero type GUID
    gpt.writeBigUInt64LE(2048n, 1024 + 32);
    expect(await offsets(async (o, l) => gpt.subarray(o, o + l))).to.deep.equal([2048 * 512]);
  });

  it('reads the PV UUID and metadata area from an LVM2 label', () => {
    const b = Buffer.alloc(2048);
    b.write('LABELONE', 512, 'latin1');
    b.writeUInt32LE(32, 512 + 20);
    b.write('LVM2 001', 512 + 24, 'latin1');
    b.write('A'.repeat(32), 512 + 32, 'latin1');
    // data area {1048576, 0}, end; metadata area {4096, 1044480}
    b.writeBigUInt64LE(1048576n, 512 + 72);
    b.writeBigUInt64LE(4096n, 512 + 104);
    expect(parsePvLabel(b)).to.deep.equal({ pvUuid: 'A'.repeat(32), mdaOffset: 4096 });
    expect(parsePvLabel(Buffer.alloc(2048))).to.equal(undefined);
    expect(conflictKeys('/x', { pvUuids: ['p'], vgNames: ['vg'], vgUuids: ['u'], luksUuids: [] })).to.deep.equal(['file:/x', 'pv-uuid:p', 'vg-name:vg', 'vg-uuid:u']);
  });

  it('reads image headers through one prefetch: the same bytes as direct reads, and one read for all inside it (fast-check)', async () => {
    const MAX = PREFETCH_BYTES + 128 * 1024;
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 0, max: MAX }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: MAX }), fc.integer({ min: 0, max: 80 * 1024 })), { minLength: 1, maxLength: 8 }),
      async (size, reads) => {
        const disk = Buffer.alloc(size);
        for (let i = 0; i < size; i += 997) disk[i] = (i / 997) & 0xff;
        // what readImageBytes gives: the bytes there, short past the end of the image
        const direct = async (o: number, l: number): Promise<Buffer> => disk.subarray(o, o + l);
        const calls: Array<[number, number]> = [];
        const read = prefetchingReader('img.qcow2', 'qcow2', async (_image, _format, o, l) => { calls.push([o, l]); return direct(o, l); });
        for (const [o, l] of reads) expect(Buffer.compare(await read(o, l), await direct(o, l)), `${o}+${l} of ${size}`).to.equal(0);
        const inside = reads.filter(([o, l]) => o + l <= Math.min(size, PREFETCH_BYTES)).length;
        expect(calls[0]).to.deep.equal([0, PREFETCH_BYTES]);
        expect(calls.length).to.equal(1 + reads.length - inside);
      },
    ), { numRuns: 200, seed: 20261207 });
  });
});
