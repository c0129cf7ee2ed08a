/**
 * The host-side guest reader (ext2/3/4 over raw or qcow2) reads a tree the
 * way the rootfs backend reads the same tree from a directory: every path of
 * the fixture, files, directories, symlinks (absolute, relative, dangling,
 * escaping), modes and owners. Images are made by mkfs.ext* -d on plain files.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import fs from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { GuestReader } from '../../src/core/backend.js';
import { RootfsBackend } from '../../src/backends/rootfs.js';
import { HostGuest } from '../../src/audit/host-guest.js';
import { imageReader, readDiskIdentity } from '../../src/audit/headers.js';
import { stageTree, tempDir } from '../helpers/images.js';

const MiB = 1024 * 1024;
const ROOT_UUID = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
const VAR_UUID = '8b7c6d5e-4f3a-4b2c-9d1e-0f9a8b7c6d5e';

async function allPaths(root: string): Promise<string[]> {
  const out: string[] = ['/'];
  const walk = async (rel: string) => {
    for (const e of await fs.readdir(path.join(root, rel))) {
      const p = path.posix.join(rel, e);
      out.push('/' + p);
      if ((await fs.lstat(path.join(root, p))).isDirectory()) await walk(p);
    }
  };
  await walk('');
  return out;
}

async function same(host: GuestReader, ref: GuestReader, p: string): Promise<void> {
  const get = async (g: GuestReader) => {
    // a refusal (a link loop, not a file) must be a refusal on both sides
    const attempt = async (f: () => Promise<unknown>) => { try { return await f(); } catch { return 'error'; } };
    // a directory's size is its filesystem's business (the host's and the image's differ)
    const st = async (f: () => Promise<unknown>) => { const r = await attempt(f) as { type?: string; size?: number } | null | string; return r && typeof r === 'object' && r.type === 'dir' ? { ...r, size: 'dir' } : r; };
    return {
      // mkfs makes /lost+found, the tree has none
      lstat: await st(() => g.lstat(p)), stat: await st(() => g.stat(p)), readdir: await attempt(async () => (await g.readdir(p))?.filter((n) => n !== 'lost+found') ?? null),
      readlink: await attempt(() => g.readlink(p)), file: await attempt(async () => (await g.readFile(p))?.toString('base64') ?? null),
    };
  };
  expect(await get(host), p).to.deep.equal(await get(ref));
}

async function withRootfs<T>(dir: string, fn: (g: GuestReader) => Promise<T>): Promise<T> {
  let out: T | undefined;
  await new RootfsBackend().forEachGuest([{ kind: 'rootfs', path: dir }], { readonly: true }, async (_t, g) => {
    if (g instanceof Error) throw g;
    out = await fn(g);
  });
  return out!;
}

describe('audit: guests read host-side from ext filesystems', function () {
  this.timeout(300_000);
  let dir: string;
  let tree: string;
  before(async () => {
    dir = await tempDir('ghostprep-hostguest-');
    tree = await stageTree('ext4-gpt');
    // links the fixture lacks: absolute, escaping the root, dangling, a loop, and a long (slow) target
    await fs.symlink('/etc/hostname', path.join(tree, 'etc/abs-link'));
    await fs.symlink('../../../../../etc/hostname', path.join(tree, 'etc/escaping-link'));
    await fs.symlink('/nonexistent/file', path.join(tree, 'etc/dangling-link'));
    await fs.symlink('loop-b', path.join(tree, 'etc/loop-a'));
    await fs.symlink('loop-a', path.join(tree, 'etc/loop-b'));
    await fs.symlink('/etc/' + './'.repeat(40) + 'hostname', path.join(tree, 'etc/slow-link'));
    await fs.mkdir(path.join(tree, 'etc/big-dir'));
    for (let i = 0; i < 400; i++) await fs.writeFile(path.join(tree, `etc/big-dir/file-${i}-with-a-longer-name`), `${i}\n`);
    await fs.writeFile(path.join(tree, 'etc/large-file'), Buffer.alloc(3 * MiB + 17, 7));
  });
  after(async () => { await fs.rm(dir, { recursive: true, force: true }); await fs.rm(path.dirname(tree), { recursive: true, force: true }); });

  for (const variant of [
    { name: 'ext4 (extents, htree, 4 KiB blocks) in a GPT partition of a qcow2 overlay', mkfs: 'mkfs.ext4', opts: [] as string[] },
    { name: 'ext2 (block maps, 1 KiB blocks, indirect blocks)', mkfs: 'mkfs.ext2', opts: ['-b', '1024'] },
    { name: 'ext3 (64-bit descriptors off, journal)', mkfs: 'mkfs.ext3', opts: [] as string[] },
  ]) {
    it(`property: ${variant.name} reads as the rootfs backend reads the tree`, async () => {
      const raw = path.join(dir, `${variant.mkfs}.raw`);
      await fs.writeFile(raw, '');
      await fs.truncate(raw, 200 * MiB);
      await execa('sfdisk', ['-q', raw], { input: 'label: gpt\nstart=2048, type=linux\n' });
      await execa(variant.mkfs, ['-q', '-F', ...variant.opts, '-U', ROOT_UUID, '-d', tree, '-E', `offset=${2048 * 512}`, raw, '190M']);
      const img = path.join(dir, `${variant.mkfs}.qcow2`);
      await execa('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', raw, '-F', 'raw', img]);
      const r = imageReader(img, 'qcow2');
      try {
        const host = await HostGuest.open(r.read, await readDiskIdentity(r.read));
        expect(host, 'opened host-side').to.not.equal(undefined);
        const paths = await allPaths(tree);
        await withRootfs(tree, async (ref) => {
          for (const p of ['/etc/abs-link', '/etc/escaping-link', '/etc/dangling-link', '/etc/loop-a', '/etc/slow-link', '/etc/big-dir', '/etc/large-file', '/etc/os-release', '/', '/..', '/etc/../etc/./hostname', '/nonexistent', '/etc/hostname/x']) await same(host!, ref, p);
          await fc.assert(fc.asyncProperty(fc.constantFrom(...paths), async (p) => same(host!, ref, p)), { numRuns: 300 });
        });
      } finally { await r.close(); }
    });
  }

  it('/var on its own partition (fstab UUID=) is mounted; an fstab source it cannot place sends the guest to an appliance', async () => {
    const raw = path.join(dir, 'two.raw');
    await fs.writeFile(raw, '');
    await fs.truncate(raw, 300 * MiB);
    await execa('sfdisk', ['-q', raw], { input: 'label: gpt\nstart=2048, size=389120, type=linux\nstart=391168, type=linux\n' });
    const rootTree = path.join(dir, 'root-tree');
    const varTree = path.join(dir, 'var-tree');
    await execa('cp', ['-a', tree, rootTree]);
    await execa('mv', [path.join(rootTree, 'var'), varTree]);
    await fs.mkdir(path.join(rootTree, 'var'));
    await fs.mkdir(path.join(varTree, 'lib/dhcp'), { recursive: true });
    await fs.writeFile(path.join(varTree, 'lib/dhcp/dhclient.leases'), 'default-duid "\\000\\003\\000\\001RT\\000\\022\\0044";\n');
    await fs.writeFile(path.join(rootTree, 'etc/fstab'), `UUID=${ROOT_UUID} / ext4 defaults 0 1\nUUID=${VAR_UUID} /var ext4 defaults 0 2\n`);
    await execa('mkfs.ext4', ['-q', '-F', '-U', ROOT_UUID, '-d', rootTree, '-E', `offset=${2048 * 512}`, raw, '190M']);
    await execa('mkfs.ext4', ['-q', '-F', '-U', VAR_UUID, '-d', varTree, '-E', `offset=${391168 * 512}`, raw, '100M']);
    const r = imageReader(raw, 'raw');
    try {
      const disk = await readDiskIdentity(r.read);
      const host = await HostGuest.open(r.read, disk);
      expect(host).to.not.equal(undefined);
      expect((await host!.readFile('/var/lib/dhcp/dhclient.leases'))?.toString()).to.include('default-duid');
      expect(await host!.readdir('/var')).to.include('lib');
    } finally { await r.close(); }
    // the same disk with /var named by LABEL=: not placed, so not read host-side
    await fs.writeFile(path.join(rootTree, 'etc/fstab'), `UUID=${ROOT_UUID} / ext4 defaults 0 1\nLABEL=var /var ext4 defaults 0 2\n`);
    await execa('mkfs.ext4', ['-q', '-F', '-U', ROOT_UUID, '-d', rootTree, '-E', `offset=${2048 * 512}`, raw, '190M']);
    const r2 = imageReader(raw, 'raw');
    try { expect(await HostGuest.open(r2.read, await readDiskIdentity(r2.read))).to.equal(undefined); } finally { await r2.close(); }
  });
});
