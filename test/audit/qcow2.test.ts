/** The in-process qcow2 reader against qemu's own view of the same chain (qemu-img convert to raw). */
import { expect } from 'chai';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { openImageBytes, Qcow2Unsupported, qemuBlockReads } from '../../src/audit/qcow2.js';
import { tempDir } from '../helpers/images.js';

const MiB = 1024 * 1024;

describe('audit: qcow2 reader', function () {
  this.timeout(120_000);
  let dir: string;
  before(async () => { dir = await tempDir('ghostprep-qcow2-'); });
  after(async () => { await fs.rm(dir, { recursive: true, force: true }); });

  it('property: any byte range of a compressed base + overlay chain reads as qemu reads it', async () => {
    const raw = path.join(dir, 'base.raw');
    // random data with holes and repeated runs, so compression and unallocated clusters both occur
    const data = Buffer.alloc(6 * MiB);
    randomBytes(2 * MiB).copy(data, 0);
    data.fill(0x5a, 3 * MiB, 4 * MiB);
    randomBytes(512 * 1024).copy(data, 5 * MiB + 4096);
    await fs.writeFile(raw, data);
    const base = path.join(dir, 'base.qcow2');
    await execa('qemu-img', ['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'compression_type=zlib,cluster_size=65536', raw, base]);
    const mid = path.join(dir, 'mid.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', '-o', 'cluster_size=4096', mid]);
    await execa('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xab 1000000 70000', '-c', 'write -z 3145728 131072', mid]);
    const top = path.join(dir, 'top.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', top, '8M']);
    await execa('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0xcd 4194000 9000', '-c', 'write -P 0x11 7340032 4096', top]);
    const full = path.join(dir, 'full.raw');
    await execa('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', top, full]);
    const expected = await fs.readFile(full);
    const img = await openImageBytes(top, 'qcow2');
    try {
      expect(img.size).to.equal(8 * MiB);
      await fc.assert(fc.asyncProperty(fc.nat(8 * MiB - 1), fc.integer({ min: 1, max: 300_000 }), async (offset, len) => {
        const n = Math.min(len, 8 * MiB - offset);
        expect((await img.read(offset, n)).equals(expected.subarray(offset, offset + n))).to.equal(true);
      }), { numRuns: 150 });
    } finally { await img.close(); }
  });

  it('property: overlays of a zstd base read as qemu reads them; the base\'s blocks come through qemu-img once for all overlays', async () => {
    const raw = path.join(dir, 'zb.raw');
    const data = Buffer.alloc(3 * MiB);
    randomBytes(MiB).copy(data, 0);
    data.fill(0x77, 2 * MiB, 2 * MiB + 300_000);
    await fs.writeFile(raw, data);
    const base = path.join(dir, 'zb.qcow2');
    await execa('qemu-img', ['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'compression_type=zstd', raw, base]);
    const clones: Array<{ file: string; expected: Buffer }> = [];
    for (const [i, at] of [[1, 500_000], [2, 2_100_000]] as const) {
      const file = path.join(dir, `zc${i}.qcow2`);
      await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', file]);
      await execa('qemu-io', ['-f', 'qcow2', '-c', `write -P 0x${i}${i} ${at} 70000`, file]);
      const full = path.join(dir, `zc${i}.raw`);
      await execa('qemu-img', ['convert', '-q', '-f', 'qcow2', '-O', 'raw', file, full]);
      clones.push({ file, expected: await fs.readFile(full) });
    }
    const ranges = fc.sample(fc.tuple(fc.nat(3 * MiB - 1), fc.integer({ min: 1, max: 300_000 })), { numRuns: 60, seed: 7 });
    const start = qemuBlockReads;
    const readsAfter: number[] = [];
    for (const { file, expected } of clones) {
      const img = await openImageBytes(file, 'qcow2');
      try {
        expect(img.size).to.equal(3 * MiB);
        await fc.assert(fc.asyncProperty(fc.nat(3 * MiB - 1), fc.integer({ min: 1, max: 300_000 }), async (offset, len) => {
          const n = Math.min(len, 3 * MiB - offset);
          expect((await img.read(offset, n)).equals(expected.subarray(offset, offset + n))).to.equal(true);
        }), { numRuns: 60 });
        // the same ranges on each overlay: the second reads the base from the blocks the first fetched
        for (const [offset, len] of ranges) {
          const n = Math.min(len, 3 * MiB - offset);
          expect((await img.read(offset, n)).equals(expected.subarray(offset, offset + n))).to.equal(true);
        }
        readsAfter.push(qemuBlockReads - start);
      } finally { await img.close(); }
    }
    // 3 MiB of base: at most 12 blocks of 256 KiB, however many reads of however many overlays
    expect(readsAfter[0]).to.be.greaterThan(0);
    expect(readsAfter[1]).to.be.at.most(12);
  });

  it('refuses what it does not follow: zstd clusters, a backing file without a named format', async () => {
    const raw = path.join(dir, 'z.raw');
    await fs.writeFile(raw, randomBytes(256 * 1024));
    const z = path.join(dir, 'z.qcow2');
    await execa('qemu-img', ['convert', '-q', '-c', '-f', 'raw', '-O', 'qcow2', '-o', 'compression_type=zstd', raw, z]);
    let err: unknown;
    try { await openImageBytes(z, 'qcow2'); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(Qcow2Unsupported);
    const unnamed = path.join(dir, 'unnamed.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', raw, '-F', 'raw', unnamed, '256K']);
    // turn the backing-format header extension into an unknown one: what an old qemu-img wrote
    const img = await fs.readFile(unnamed);
    const at = img.subarray(0, 4096).indexOf(Buffer.from('e2792aca', 'hex'));
    expect(at).to.be.greaterThan(0);
    img.writeUInt32BE(0x6770aaaa, at);
    await fs.writeFile(unnamed, img);
    err = undefined;
    try { await openImageBytes(unnamed, 'qcow2'); } catch (e) { err = e; }
    expect(err).to.be.instanceOf(Qcow2Unsupported);
  });
});
