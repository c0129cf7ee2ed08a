import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RootfsBackend, RootfsGuest } from '../../src/backends/rootfs.js';
import { MemoryGuest } from '../../src/backends/memory.js';
import type { GuestReader } from '../../src/core/backend.js';
import { tempDir } from '../helpers/rootfs.js';

const ROOT = { mode: 0o644, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };

/** A root tree plus an "outside" directory that must never be touched. */
function hostileTree(): { root: string; outside: string } {
  const base = tempDir('ghostprep-hostile-');
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  mkdirSync(path.join(root, 'etc'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'secret'), 'host secret\n');
  writeFileSync(path.join(root, 'etc/shadow'), 'root:guest-hash:::\n');
  symlinkSync(outside, path.join(root, 'abs-out'));                 // absolute link to a host path
  symlinkSync('../../../../../../..' + outside, path.join(root, 'etc/dots'));  // ".." chain
  symlinkSync('/etc/shadow', path.join(root, 'etc/hostname'));     // hostname -> shadow (inside)
  symlinkSync('loop2', path.join(root, 'loop1'));
  symlinkSync('loop1', path.join(root, 'loop2'));
  execFileSync('mkfifo', [path.join(root, 'etc/fifo')]);
  return { root, outside };
}

function snapshot(dir: string): string {
  return readdirSync(dir).map((n) => `${n}:${readFileSync(path.join(dir, n), 'utf8')}`).join('|');
}

describe('rootfs backend: paths resolve inside the root as if chrooted', () => {
  it('reads through an absolute symlink to a host path inside the root, not on the host', async () => {
    const { root, outside } = hostileTree();
    const g = new RootfsGuest(root, true);
    expect(await g.resolve('/abs-out/secret', true)).to.equal(path.join(root, outside.slice(1), 'secret'));
    expect(await g.readFile('/abs-out/secret')).to.equal(null);
    expect(await g.readFile('/etc/dots/secret')).to.equal(null);
  });
  it('never writes outside the root through absolute or ".." symlinks', async () => {
    const { root, outside } = hostileTree();
    const before = snapshot(outside);
    const g = new RootfsGuest(root, false);
    await g.writeFile('/abs-out/secret', Buffer.from('pwned'), ROOT);
    await g.writeFile('/etc/dots/new', Buffer.from('pwned'), ROOT);
    await g.mkdir('/abs-out/dir', ROOT);
    await g.remove('/etc/dots/secret');
    expect(snapshot(outside)).to.equal(before);
    // both links lead to the same place inside the root: the write landed there, then the remove took it
    expect(readFileSync(path.join(root, outside.slice(1), 'new'), 'utf8')).to.equal('pwned');
    expect(existsSync(path.join(root, outside.slice(1), 'secret'))).to.equal(false);
  });
  it('resolves a link through a missing directory and ".." (x -> missing/../evil, evil -> host path) inside the root', async () => {
    const { root, outside } = hostileTree();
    const before = snapshot(outside);
    symlinkSync('missing/../abs-out', path.join(root, 'x'));
    const g = new RootfsGuest(root, false);
    expect(await g.readFile('/x/secret')).to.equal(null);
    await g.writeFile('/x/pwned', Buffer.from('W'), ROOT);
    expect(snapshot(outside)).to.equal(before);
    expect(readFileSync(path.join(root, outside.slice(1), 'pwned'), 'utf8')).to.equal('W');
  });
  it('replaces a symlinked /etc/hostname instead of writing into its target', async () => {
    const { root } = hostileTree();
    const g = new RootfsGuest(root, false);
    expect((await g.readFile('/etc/hostname'))!.toString()).to.equal('root:guest-hash:::\n');
    await g.writeFile('/etc/hostname', Buffer.from('node01\n'), ROOT);
    expect(readFileSync(path.join(root, 'etc/shadow'), 'utf8')).to.equal('root:guest-hash:::\n');
    expect(readFileSync(path.join(root, 'etc/hostname'), 'utf8')).to.equal('node01\n');
  });
  it('refuses a FIFO where a file is expected without hanging, and symlink loops', async () => {
    const { root } = hostileTree();
    const g = new RootfsGuest(root, true);
    let err: Error | undefined;
    try { await g.readFile('/etc/fifo'); } catch (e) { err = e as Error; }
    expect(err?.message).to.match(/not a regular file/);
    let loop: Error | undefined;
    try { await g.readFile('/loop1/x'); } catch (e) { loop = e as Error; }
    expect(loop?.message).to.match(/too many levels of symbolic links/);
  });
  it('refuses files over the read limit', async () => {
    const { root } = hostileTree();
    writeFileSync(path.join(root, 'etc/big'), Buffer.alloc(2048));
    let err: Error | undefined;
    try { await new RootfsGuest(root, true).readFile('/etc/big', { maxBytes: 1024 }); } catch (e) { err = e as Error; }
    expect(err?.message).to.match(/too large/);
  });
  it('writes atomically with the planned mode and leaves no temp files', async () => {
    const { root } = hostileTree();
    const g = new RootfsGuest(root, false);
    await g.writeFile('/etc/new/deep/file', Buffer.from('x'), { ...ROOT, mode: 0o600 });
    expect(statSync(path.join(root, 'etc/new/deep/file')).mode & 0o777).to.equal(0o600);
    expect(readdirSync(path.join(root, 'etc/new/deep'))).to.deep.equal(['file']);
  });
  it('refuses every write when opened read-only', async () => {
    const { root } = hostileTree();
    const g = new RootfsGuest(root, true);
    for (const op of [() => g.writeFile('/x', Buffer.from(''), ROOT), () => g.remove('/etc/shadow'), () => g.mkdir('/d', ROOT), () => g.symlink('a', '/b')]) {
      let err: Error | undefined;
      try { await op(); } catch (e) { err = e as Error; }
      expect(err?.message).to.match(/read-only/);
    }
    expect(existsSync(path.join(root, 'etc/shadow'))).to.equal(true);
  });
  it('reports a missing target as that target\'s error', async () => {
    const seen: string[] = [];
    await new RootfsBackend().forEachGuest([{ kind: 'rootfs', path: '/nonexistent/x' }], { readonly: true }, async (_t, g) => { seen.push(g instanceof Error ? g.message : 'guest'); });
    expect(seen[0]).to.match(/does not exist/);
  });
});

describe('memory guest behaves like the rootfs guest', () => {
  async function probe(g: GuestReader): Promise<unknown[]> {
    return [
      (await g.readFile('/etc/hostname'))?.toString(), (await g.lstat('/etc/hostname'))?.type, (await g.stat('/etc/hostname'))?.type,
      await g.readlink('/etc/hostname'), await g.readdir('/etc'), await g.readdir('/etc/passwd'), await g.readFile('/nope'),
    ];
  }
  it('answers the same for files, symlinks, directories and absent paths', async () => {
    const root = tempDir();
    mkdirSync(path.join(root, 'etc'));
    writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
    writeFileSync(path.join(root, 'etc/real'), 'n1\n');
    symlinkSync('/etc/real', path.join(root, 'etc/hostname'));
    const mem = new MemoryGuest({ '/etc/passwd': 'root:x:0:0::/root:/bin/sh\n', '/etc/real': 'n1\n', '/etc/hostname': { symlink: '/etc/real' } });
    expect(await probe(mem)).to.deep.equal(await probe(new RootfsGuest(root, true)));
  });
});
