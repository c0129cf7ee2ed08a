/**
 * readPartitionTable: partition numbers as the appliance's kernel gives them,
 * read on the host so that inspection can skip `list-partitions` (which settles
 * udev for every drive of the appliance): pure logic over synthetic tables,
 * then openDrive in a real appliance with right and wrong numbers.
 */
import { expect } from 'chai';
import { ApplianceLayout, openDrive } from '../../../src/backends/guestfs/os-inspect.js';
import { probeLvm, readPartitionTable } from '../../../src/backends/guestfs/lvm-probe.js';
import { sharedExt4Appliance, type SharedAppliance } from '../../helpers/ext4-appliance.js';

const SECTOR = 512;
const reader = (disk: Buffer) => async (o: number, l: number): Promise<Buffer> => disk.subarray(o, o + l);

function mbrDisk(slots: Array<{ type: number; start: number; size: number; boot?: number }>): Buffer {
  const disk = Buffer.alloc(256 * SECTOR);
  disk.writeUInt16LE(0xaa55, 510);
  slots.forEach((s, i) => {
    const at = 446 + 16 * i;
    disk[at] = s.boot ?? 0;
    disk[at + 4] = s.type;
    disk.writeUInt32LE(s.start, at + 8);
    disk.writeUInt32LE(s.size, at + 12);
  });
  return disk;
}

function gptDisk(entries: number[], protective = true, count = 128): Buffer {
  const disk = Buffer.alloc(64 * SECTOR);
  if (protective) {
    disk.writeUInt16LE(0xaa55, 510);
    disk[446 + 4] = 0xee;
    disk.writeUInt32LE(1, 446 + 8);
    disk.writeUInt32LE(0xffffffff, 446 + 12);
  }
  disk.write('EFI PART', SECTOR, 'latin1');
  disk.writeBigUInt64LE(2n, SECTOR + 72);
  disk.writeUInt32LE(count, SECTOR + 80);
  disk.writeUInt32LE(128, SECTOR + 84);
  for (const n of entries) {
    const e = 2 * SECTOR + (n - 1) * 128;
    disk[e] = 0xaf; // non-zero type GUID
    disk.writeBigUInt64LE(BigInt(2048 * n), e + 32);
  }
  return disk;
}

describe('host-side partition table (guestfs inspection without list-partitions)', () => {
  it('numbers GPT partitions by entry slot, gaps included (cloud images use 1, 14, 15)', async () => {
    const t = await readPartitionTable(reader(gptDisk([1, 14, 15])));
    expect(t.exact).to.equal(true);
    expect(t.entries.map((e) => e.number)).to.deep.equal([1, 14, 15]);
    expect(t.entries[1]!.offset).to.equal(14 * 2048 * SECTOR);
  });

  it('is not exact for a GPT the kernel would not take (no protective MBR) or cannot be read whole', async () => {
    expect((await readPartitionTable(reader(gptDisk([1], false)))).exact).to.equal(false);
    // 256 entries of 128 bytes end past the 34 sectors read
    expect((await readPartitionTable(reader(gptDisk([1], true, 256)))).exact).to.equal(false);
  });

  it('numbers MBR primaries by slot and logical partitions from 5 in chain order', async () => {
    const disk = mbrDisk([{ type: 0x83, start: 2048, size: 100 }, { type: 0, start: 0, size: 0 }, { type: 0x05, start: 100, size: 50 }]);
    const ebr = (at: number, dataRel: number, nextRel: number): void => {
      disk.writeUInt16LE(0xaa55, at * SECTOR + 510);
      disk[at * SECTOR + 446 + 4] = 0x83;
      disk.writeUInt32LE(dataRel, at * SECTOR + 446 + 8);
      disk.writeUInt32LE(10, at * SECTOR + 446 + 12);
      if (nextRel) {
        disk[at * SECTOR + 462 + 4] = 0x05;
        disk.writeUInt32LE(nextRel, at * SECTOR + 462 + 8);
      }
    };
    ebr(100, 2, 20); // logical at 102, next EBR at 100 + 20
    ebr(120, 2, 0); // logical at 122
    const t = await readPartitionTable(reader(disk));
    expect(t.exact).to.equal(true);
    expect(t.entries).to.deep.equal([
      { number: 1, offset: 2048 * SECTOR },
      { number: 5, offset: 102 * SECTOR },
      { number: 6, offset: 122 * SECTOR },
    ]);
  });

  it('reads no table on a whole-disk filesystem, and leaves a FAT-like boot sector to the appliance', async () => {
    const bare = await readPartitionTable(reader(Buffer.alloc(64 * SECTOR)));
    expect(bare).to.deep.equal({ entries: [], exact: true });
    const boot = mbrDisk([{ type: 0x83, start: 2048, size: 100, boot: 0x3c }]);
    expect((await readPartitionTable(reader(boot))).exact).to.equal(false);
  });

  it('is not exact when the image is too short to hold a table', async () => {
    expect((await readPartitionTable(reader(Buffer.alloc(SECTOR)))).exact).to.equal(false);
  });
});

describe('openDrive with host-read partition numbers (real appliance)', function () {
  // two read-only drives of the appliance shared with guest.test and session.test (helpers/ext4-appliance.ts)
  this.timeout(600_000);
  let shared: SharedAppliance;

  before(async () => {
    shared = await sharedExt4Appliance();
  });

  after(async () => {
    if (shared?.session.alive) await shared.session.command('umount-all');
  });

  it('finds the root from the host-read numbers without list-partitions, and falls back to it when they are wrong', async () => {
    const session = shared.session;
    const from = shared.commands.length; // the commands of this test only
    const commands = () => shared.commands.slice(from).map((line) => line.split(' ')[0]!);
    const layout = new ApplianceLayout(session);
    const a = shared.index('hint-a');
    const b = shared.index('hint-b');
    const hinted = await openDrive(session, layout, a, 'a.qcow2', { readonly: true, partitions: (await probeLvm(session.drives[a]!.path, 'qcow2')).partitions! });
    expect(hinted.root).to.equal(`${shared.device('hint-a')}1`);
    expect(commands()).to.not.include('list-partitions');
    // a hint naming a partition the kernel does not show: no OS there, so the appliance is asked
    const wrong = await openDrive(session, layout, b, 'b.qcow2', { readonly: true, partitions: [7] });
    expect(wrong.root).to.equal(`${shared.device('hint-b')}1`);
    expect(commands().filter((c) => c === 'list-partitions')).to.have.length(1);
  });
});
