/**
 * audit's host-side NTFS reader (src/audit/ntfs.ts) against ntfs-3g's own
 * tools: every directory listing and every file of the test images, and of
 * a volume with hundreds of files in one directory (a multi-level $I30
 * B-tree), read by both must agree byte for byte; the Windows identity
 * read through it (by audit and by inspect) equals the one read from
 * ntfs-3g's copy. No appliance (the Windows test images come from
 * image.ts's cache).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { imageReader, readDiskIdentity, type Reader } from '../../src/audit/headers.js';
import { NtfsFs, NtfsGuest, NtfsUnsupported } from '../../src/audit/ntfs.js';
import type { GuestReader } from '../../src/core/backend.js';
import { inspectGuest } from '../../src/fleet/guest-identity.js';
import { readHostSide } from '../../src/fleet/audit.js';
import { ghostprep } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';
import { windowsImages, type WindowsImages } from './image.js';
import { readNtfsClone } from './ntfs-read.js';

/** Every path below `dir` with its listing (directories) or bytes (files). */
async function tree(g: GuestReader, dir = '/', out = new Map<string, string[] | Buffer>()): Promise<Map<string, string[] | Buffer>> {
  const names = (await g.readdir(dir))!;
  out.set(dir, names);
  for (const n of names) {
    const p = path.posix.join(dir, n);
    const st = (await g.lstat(p))!;
    if (st.type === 'dir') await tree(g, p, out);
    else out.set(p, (await g.readFile(p, { maxBytes: 1 << 26 }))!);
  }
  return out;
}

function fileReader(file: string): Reader {
  const bytes = readFileSync(file);
  return async (offset, length) => bytes.subarray(offset, offset + length);
}

describe('audit: the host-side NTFS reader agrees with ntfs-3g (no appliance)', function () {
  this.timeout(300_000);
  const work = tempDir('ghostprep-ntfs-');
  let images: WindowsImages;

  before(async () => { images = await windowsImages(); });

  for (const flavour of ['generalized', 'specialized'] as const) {
    it(`the ${flavour} test image: every listing and file as ntfsls/ntfscat read them; the same Windows identity`, async () => {
      const r = imageReader(images[flavour], 'qcow2');
      try {
        const guest = (await NtfsGuest.open(r.read, await readDiskIdentity(r.read)))!;
        expect(guest, 'a Windows system volume found').to.not.equal(undefined);
        const oracle = await readNtfsClone(images[flavour], path.join(work, flavour));
        const mine = await tree(guest);
        const theirs = await tree(oracle);
        expect([...mine.keys()].sort()).to.deep.equal([...theirs.keys()].sort());
        expect(mine.size).to.be.greaterThan(15);
        for (const [p, v] of theirs) expect(mine.get(p), p).to.deep.equal(v);
        const id = await inspectGuest(guest);
        expect(id.windows?.generalized).to.equal(flavour === 'generalized');
        expect(id).to.deep.equal(await inspectGuest(oracle));
        expect(guest.unsupported).to.equal(undefined);
      } finally { await r.close(); }
    });
  }

  it('a directory of 400 files (a multi-level index B-tree), written with ntfscp: the listing and every file', async () => {
    const vol = path.join(work, 'big.raw');
    writeFileSync(vol, '');
    await fs.truncate(vol, 32 * 1024 * 1024);
    execFileSync('mkntfs', ['-F', '-Q', '-q', vol], { stdio: 'ignore' });
    const src = path.join(work, 'payload');
    const names: string[] = [];
    for (let i = 0; i < 400; i++) {
      const name = `file-${String(i).padStart(3, '0')}-${'x'.repeat(i % 40)}.txt`;
      names.push(name);
      // small files stay resident in their MFT record, large ones get runs
      writeFileSync(src, Buffer.alloc(i % 7 === 0 ? 5000 + i * 37 : 10 + i, `${name}\n`));
      execFileSync('ntfscp', ['-q', '-f', vol, src, name]);
    }
    const fs1 = (await NtfsFs.open(fileReader(vol), 0))!;
    const guest = new NtfsGuest(fs1);
    const listed = (await guest.readdir('/'))!;
    expect(listed.filter((n) => n.startsWith('file-'))).to.deep.equal([...names].sort());
    const ntfsls = execFileSync('ntfsls', ['-f', vol], { encoding: 'utf8' }).split('\n').filter((n) => n.startsWith('file-')).sort();
    expect(listed.filter((n) => n.startsWith('file-'))).to.deep.equal(ntfsls);
    for (const name of names.filter((_, i) => i % 13 === 0 || i % 7 === 0)) {
      expect((await guest.readFile(`/${name}`))!.equals(execFileSync('ntfscat', ['-f', vol, name])), name).to.equal(true);
    }
    expect(await guest.readFile('/absent.txt')).to.equal(null);
    expect(await guest.lstat('/file-000-.txt/below')).to.equal(null);
  });

  it('random damage to the volume: the reader answers or refuses (NtfsUnsupported), never hangs or reads out of bounds', async () => {
    const vol = path.join(work, 'damage.raw');
    writeFileSync(vol, '');
    await fs.truncate(vol, 8 * 1024 * 1024);
    execFileSync('mkntfs', ['-F', '-Q', '-q', vol], { stdio: 'ignore' });
    const clean = readFileSync(vol);
    const mftLcn = Number(clean.readBigUInt64LE(0x30));
    const cluster = clean.readUInt16LE(0x0b) * clean[0x0d]!;
    const mft = mftLcn * cluster;
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ at: fc.integer({ min: 0, max: 16 * 1024 - 1 }), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }),
      async (hits) => {
        const b = Buffer.from(clean);
        for (const h of hits) b[mft + h.at] = h.byte;
        const read: Reader = async (offset, length) => b.subarray(offset, offset + length);
        try {
          const fsx = await NtfsFs.open(read, 0);
          if (!fsx) return;
          const g = new NtfsGuest(fsx);
          for (const n of (await g.readdir('/')) ?? []) await g.lstat(`/${n}`);
        } catch (err) {
          // refusals are NtfsUnsupported; a malformed record caught by a bounds check surfaces as a RangeError,
          // which audit's host-side path treats the same way (the image goes to an appliance)
          expect(err instanceof NtfsUnsupported || err instanceof RangeError, String(err)).to.equal(true);
        }
      },
    ), { numRuns: 150 });
  });

  it('audit reads the Windows test images host-side (no appliance), with the identities of ntfs-3g\'s copy', async () => {
    const targets = (['generalized', 'specialized'] as const).map((f) => ({ kind: 'image' as const, path: images[f], format: 'qcow2' }));
    const host = await readHostSide(targets, true);
    for (const [i, flavour] of (['generalized', 'specialized'] as const).entries()) {
      const h = host.get(targets[i]!.path)!;
      expect(h.error).to.equal(undefined);
      expect(h.identity, `${flavour}: read host-side`).to.not.equal(undefined);
      expect(h.identity).to.deep.equal(await inspectGuest(await readNtfsClone(images[flavour], path.join(work, `audit-${flavour}`))));
    }
    // without host reads (--no-host-read) nothing is read host-side but the disk headers
    expect([...(await readHostSide(targets, false)).values()].map((h) => h.identity)).to.deep.equal([undefined, undefined]);
  });

  it('inspect, seal --check and capture read Windows images host-side too: they succeed where no appliance can start, and inspect --no-host-read then fails', async () => {
    const saved = process.env.LIBGUESTFS_BACKEND;
    process.env.LIBGUESTFS_BACKEND = 'ghostprep-test-no-such-backend'; // any appliance launch fails at once
    try {
      const targets = ['--target', images.generalized, '--target', images.specialized, '--jobs', '1'];
      const json = ghostprep(['--json', 'inspect', ...targets]);
      expect(json.status, json.stderr).to.equal(0);
      const found = JSON.parse(json.stdout) as Array<{ target: string; identity: Record<string, unknown> }>;
      expect(found.map((f) => f.target)).to.deep.equal([images.generalized, images.specialized]);
      for (const [i, flavour] of (['generalized', 'specialized'] as const).entries()) {
        expect(found[i]!.identity).to.deep.equal(JSON.parse(JSON.stringify(await inspectGuest(await readNtfsClone(images[flavour], path.join(work, `inspect-${flavour}`))))));
      }
      const text = ghostprep(['inspect', ...targets]);
      expect(text.status, text.stderr).to.equal(0);
      expect(text.stdout).to.match(/generalized: yes \(image state IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE\)[\s\S]*generalized: NO/);
      // the seal check of seal --check and capture reads a Windows master host-side too
      const check = ghostprep(['seal', '--check', '--target', images.generalized, '--target', images.specialized]);
      expect(check.status, check.stdout + check.stderr).to.equal(5);
      expect(check.stdout).to.include(`${images.generalized}: sealed (no identity a clone would inherit)`);
      expect(check.stdout).to.include(`${images.specialized}: NOT sealed, 1 identity a clone would inherit\n  Windows image state: image state IMAGE_STATE_COMPLETE`);
      const refused = ghostprep(['capture', '--target', images.specialized, '--library', path.join(work, 'lib'), '--name', 'spec']);
      expect(refused.status, refused.stderr).to.equal(1);
      expect(refused.stderr).to.match(/is not sealed; still identifying:\n {2}Windows image state IMAGE_STATE_COMPLETE: the master Windows installation is not generalized/);
      const captured = ghostprep(['capture', '--target', images.generalized, '--library', path.join(work, 'lib'), '--name', 'gen']);
      expect(captured.status, captured.stderr).to.equal(0);
      expect(captured.stdout).to.match(/captured gen: .* sha256 [0-9a-f]{64}/).and.not.match(/UNSEALED/);
      const appliance = ghostprep(['inspect', '--no-host-read', ...targets]);
      expect(appliance.status, 'an appliance was needed and could not start').to.not.equal(0);
      expect(appliance.stdout + appliance.stderr).to.match(/invalid backend: ghostprep-test-no-such-backend/);
    } finally {
      if (saved === undefined) delete process.env.LIBGUESTFS_BACKEND; else process.env.LIBGUESTFS_BACKEND = saved;
    }
  });
});
