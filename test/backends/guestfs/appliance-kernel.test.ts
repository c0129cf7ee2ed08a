/**
 * The uncompressed appliance kernel under TCG: the bzImage and ELF readers
 * over generated kernels (any setup size, payload place, compression the
 * host can undo, notes before and after the PVH one, and every truncation),
 * the cache (made once, atomic, stale entries pruned), when ghostprep keeps
 * out of the way, and the real thing: the host kernel, and the appliance the
 * shared session booted from it.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { uncompressedKernel, type KernelPaths } from '../../../src/backends/guestfs/appliance-kernel.js';
import { guestfsEnv } from '../../../src/backends/guestfs/env.js';
import { compressedKernel, hasPvhEntry } from '../../../src/backends/guestfs/kernel-image.js';
import { sharedExt4Appliance } from '../../helpers/ext4-appliance.js';

interface Note { readonly name: string; readonly type: number; readonly desc: Buffer }

/** A 64-bit little-endian ELF with one PT_NOTE segment holding `notes`, then `filler` bytes. */
function elfWith(notes: readonly Note[], filler = 0): Buffer {
  const pad4 = (b: Buffer): Buffer => Buffer.concat([b, Buffer.alloc((4 - (b.length % 4)) % 4)]);
  const noteBytes = Buffer.concat(notes.map((n) => {
    const head = Buffer.alloc(12);
    const name = Buffer.from(`${n.name}\0`, 'latin1');
    head.writeUInt32LE(name.length, 0);
    head.writeUInt32LE(n.desc.length, 4);
    head.writeUInt32LE(n.type, 8);
    return Buffer.concat([head, pad4(name), pad4(n.desc)]);
  }));
  const header = Buffer.alloc(64 + 56);
  header.writeUInt32BE(0x7f454c46, 0);
  header[4] = 2; // 64-bit
  header[5] = 1; // little-endian
  header.writeBigUInt64LE(64n, 0x20); // e_phoff
  header.writeUInt16LE(56, 0x36); // e_phentsize
  header.writeUInt16LE(1, 0x38); // e_phnum
  header.writeUInt32LE(4, 64); // PT_NOTE
  header.writeBigUInt64LE(BigInt(header.length), 64 + 8); // p_offset
  header.writeBigUInt64LE(BigInt(noteBytes.length), 64 + 32); // p_filesz
  return Buffer.concat([header, noteBytes, Buffer.alloc(filler, 0x90)]);
}

/** A bzImage as the kernel build lays it out: setup sectors, then the protected-mode part holding the payload + its size. */
function bzImage(payload: Buffer, size: number, setupSectors: number, offset: number, protocol = 0x20f): Buffer {
  const setup = Buffer.alloc(((setupSectors || 4) + 1) * 512); // 0 in the header means 4
  setup[0x1f1] = setupSectors;
  setup.write('HdrS', 0x202, 'latin1');
  setup.writeUInt16LE(protocol, 0x206);
  setup.writeUInt32LE(offset, 0x248);
  const sized = Buffer.concat([payload, Buffer.alloc(4)]);
  sized.writeUInt32LE(size, payload.length);
  setup.writeUInt32LE(sized.length, 0x24c);
  return Buffer.concat([setup, Buffer.alloc(offset, 0xcc), sized, Buffer.alloc(64, 0xee)]);
}

const PVH: Note = { name: 'Xen', type: 18, desc: Buffer.from([0, 0, 0, 1]) };
const noteArb = fc.record({
  name: fc.constantFrom('GNU', 'Linux', 'Xen', 'Xe'),
  type: fc.integer({ min: 1, max: 40 }).filter((t) => t !== 18),
  desc: fc.uint8Array({ maxLength: 13 }).map((a) => Buffer.from(a)),
});

function tempPaths(): KernelPaths & { root: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'gp-kernel-'));
  const paths = { root, boot: path.join(root, 'boot'), modules: path.join(root, 'modules'), cacheBase: path.join(root, 'cache') };
  for (const d of [paths.boot, paths.modules]) fs.mkdirSync(d);
  return paths;
}

function installKernel(paths: KernelPaths, version: string, image: Buffer): void {
  fs.writeFileSync(path.join(paths.boot, `vmlinuz-${version}`), image);
  fs.mkdirSync(path.join(paths.modules, version), { recursive: true });
}

describe('appliance kernel: bzImage and ELF readers', () => {
  it('finds the payload and its recorded size wherever the build put it, and the PVH note among any others (fast-check)', () => {
    fc.assert(fc.property(
      fc.array(noteArb, { maxLength: 4 }), fc.array(noteArb, { maxLength: 4 }), fc.boolean(),
      fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 3000 }),
      (before, after, pvh, setupSectors, offset) => {
        const elf = elfWith([...before, ...(pvh ? [PVH] : []), ...after], 100);
        const found = compressedKernel(bzImage(gzipSync(elf), elf.length, setupSectors, offset));
        if ('reason' in found) throw new Error(found.reason);
        expect(found.compression).to.equal('gzip');
        expect(found.size).to.equal(elf.length);
        expect(hasPvhEntry(elf)).to.equal(pvh);
      },
    ), { numRuns: 300 });
  });

  it('refuses, never throws, on any truncation or damage of either format (fast-check)', () => {
    const elf = elfWith([PVH]);
    const image = bzImage(gzipSync(elf), elf.length, 4, 100);
    fc.assert(fc.property(fc.integer({ min: 0, max: image.length }), fc.integer({ min: 0, max: image.length - 1 }), fc.integer({ min: 0, max: 255 }), (cut, at, byte) => {
      const damaged = Buffer.from(image.subarray(0, cut));
      if (at < damaged.length) damaged[at] = byte;
      compressedKernel(damaged); // a result either way, no exception
      const shortElf = Buffer.from(elf.subarray(0, Math.min(cut, elf.length)));
      if (at < shortElf.length) shortElf[at] = byte;
      hasPvhEntry(shortElf);
    }), { numRuns: 500 });
    expect(compressedKernel(Buffer.alloc(4096))).to.have.property('reason').that.matches(/not a bzImage/);
    expect(compressedKernel(bzImage(gzipSync(elf), elf.length, 4, 0, 0x206))).to.have.property('reason').that.matches(/boot protocol 2\.06/);
    expect(compressedKernel(bzImage(Buffer.from('not compressed at all'), 9, 4, 0))).to.have.property('reason').that.matches(/unknown compression/);
  });
});

describe('appliance kernel: the cache', () => {
  const cleanup: string[] = [];
  after(() => cleanup.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

  it('makes the vmlinux once, with modules and version for supermin and an appliance cache of its own', () => {
    const paths = tempPaths();
    cleanup.push(paths.root);
    const elf = elfWith([PVH], 5000);
    installKernel(paths, '6.1.0-9-amd64', bzImage(gzipSync(elf), elf.length, 30, 17));
    const first = uncompressedKernel(paths);
    if ('reason' in first) throw new Error(first.reason);
    expect(first.env.SUPERMIN_KERNEL_VERSION).to.equal('6.1.0-9-amd64');
    expect(first.env.SUPERMIN_MODULES).to.equal(path.join(paths.modules, '6.1.0-9-amd64'));
    expect(path.dirname(first.env.SUPERMIN_KERNEL)).to.equal(first.env.LIBGUESTFS_CACHEDIR);
    expect(fs.readFileSync(first.env.SUPERMIN_KERNEL).equals(elf)).to.equal(true);
    expect(fs.readdirSync(first.env.LIBGUESTFS_CACHEDIR), 'no temp file left').to.deep.equal(['vmlinux']);
    expect(first.note).to.match(/made in/);
    const again = uncompressedKernel(paths);
    expect(again).to.deep.include({ env: first.env });
    expect((again as { note: string }).note).to.match(/kept in/);
  });

  it('prefers the newest kernel with modules, and prunes the entries of kernels replaced or removed', () => {
    const paths = tempPaths();
    cleanup.push(paths.root);
    const elf = elfWith([PVH]);
    const image = bzImage(gzipSync(elf), elf.length, 4, 0);
    installKernel(paths, '6.1.0-9-amd64', image);
    installKernel(paths, '6.1.0-10-amd64', image);
    fs.writeFileSync(path.join(paths.boot, 'vmlinuz-6.1.0-11-amd64'), image); // no modules: not a candidate
    const newer = uncompressedKernel(paths);
    if ('reason' in newer) throw new Error(newer.reason);
    expect(newer.env.SUPERMIN_KERNEL_VERSION).to.equal('6.1.0-10-amd64');
    // the kernel is rebuilt (new mtime): its old entry goes when the new one is made
    const file = path.join(paths.boot, 'vmlinuz-6.1.0-10-amd64');
    fs.utimesSync(file, new Date(), new Date(Date.now() + 60_000));
    const rebuilt = uncompressedKernel(paths);
    if ('reason' in rebuilt) throw new Error(rebuilt.reason);
    expect(rebuilt.env.LIBGUESTFS_CACHEDIR).to.not.equal(newer.env.LIBGUESTFS_CACHEDIR);
    expect(fs.readdirSync(paths.cacheBase)).to.deep.equal([path.basename(rebuilt.env.LIBGUESTFS_CACHEDIR)]);
  });

  it('leaves the kernel to libguestfs, saying why, when it has no PVH entry or no kernel is found', () => {
    const paths = tempPaths();
    cleanup.push(paths.root);
    expect(uncompressedKernel(paths)).to.have.property('reason').that.matches(/no .*vmlinuz-VERSION/);
    const elf = elfWith([{ name: 'GNU', type: 3, desc: Buffer.alloc(20) }]);
    installKernel(paths, '5.10.0-1-amd64', bzImage(gzipSync(elf), elf.length, 4, 0));
    expect(uncompressedKernel(paths)).to.have.property('reason').that.matches(/no PVH entry point/);
    installKernel(paths, '5.10.0-1-amd64', bzImage(gzipSync(elf), elf.length + 1, 4, 0));
    expect(uncompressedKernel(paths)).to.have.property('reason').that.matches(/recorded/);
    expect(fs.existsSync(paths.cacheBase), 'nothing cached from an unusable kernel').to.equal(false);
  });
});

describe('appliance kernel: when ghostprep chooses it', () => {
  const tcg = { LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg', PATH: process.env.PATH, HOME: process.env.HOME };
  const ours = (env: NodeJS.ProcessEnv): string[] => Object.keys(guestfsEnv(env)).filter((k) => /^SUPERMIN_|^LIBGUESTFS_CACHEDIR$/.test(k));

  it('not under KVM, not with GHOSTPREP_APPLIANCE_KERNEL=host, not over a kernel or cache the user chose; a typo is an error', () => {
    expect(ours({ ...tcg, LIBGUESTFS_BACKEND_SETTINGS: '' })).to.deep.equal([]);
    expect(ours({ ...tcg, GHOSTPREP_APPLIANCE_KERNEL: 'host' })).to.deep.equal([]);
    expect(guestfsEnv({ ...tcg, SUPERMIN_KERNEL: '/boot/mine' })).to.deep.include({ SUPERMIN_KERNEL: '/boot/mine' }).and.not.have.property('LIBGUESTFS_CACHEDIR');
    expect(ours({ ...tcg, LIBGUESTFS_CACHEDIR: '/srv/cache' })).to.deep.equal(['LIBGUESTFS_CACHEDIR']);
    expect(() => guestfsEnv({ ...tcg, GHOSTPREP_APPLIANCE_KERNEL: 'hots' })).to.throw(/GHOSTPREP_APPLIANCE_KERNEL=hots: say 'uncompressed'.*or 'host'/);
  });
});

describe('appliance kernel: the host kernel and a real appliance', function () {
  this.timeout(300_000);

  it('this host\'s kernel uncompresses to the size its build recorded, with a PVH entry; the shared appliance booted from it', async function () {
    const env = guestfsEnv({ ...process.env, LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' });
    if (!env.SUPERMIN_KERNEL) this.skip(); // no readable /boot kernel here (said under --verbose)
    const vmlinux = fs.readFileSync(env.SUPERMIN_KERNEL!);
    expect(hasPvhEntry(vmlinux)).to.equal(true);
    const version = env.SUPERMIN_KERNEL_VERSION!;
    const found = compressedKernel(fs.readFileSync(`/boot/vmlinuz-${version}`));
    if ('reason' in found) throw new Error(found.reason);
    expect(found.size).to.equal(vmlinux.length);
    await sharedExt4Appliance(); // launched through guestfsEnv like every session
    const uid = process.getuid?.() ?? 0;
    const booted = path.join(env.LIBGUESTFS_CACHEDIR!, `.guestfs-${uid}`, 'appliance.d', 'kernel');
    expect(execFileSync('cmp', [booted, env.SUPERMIN_KERNEL!]).length, 'supermin copied our vmlinux as the appliance kernel').to.equal(0);
  });
});
