/**
 * GuestfsGuest on a real ext4 image: reads, atomic writes of any bytes,
 * metadata, and symlink safety against a hostile guest (links that point at
 * `/../../etc/shadow`, appliance paths, loops): everything stays inside the
 * guest. No appliance of its own: the guest is a drive of the appliance
 * shared with partition-table.test and session.test (helpers/ext4-appliance.ts),
 * inspected and mounted as GuestfsBackend does (openDrive, GuestfsImageGuest).
 */
import { expect } from 'chai';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Guest } from '../../../src/core/backend.js';
import { GuestfsBackend, GuestfsImageGuest } from '../../../src/backends/guestfs/backend.js';
import { GuestfsGuest } from '../../../src/backends/guestfs/guest.js';
import type { GuestfsSession } from '../../../src/backends/guestfs/session.js';
import { ApplianceLayout, openDrive } from '../../../src/backends/guestfs/os-inspect.js';
import { GuestError } from '../../../src/util/errors.js';
import { FIXTURE } from '../../helpers/images.js';
import { sharedExt4Appliance, type SharedAppliance } from '../../helpers/ext4-appliance.js';
import { buildGuestTree, faultyGuest, planUnder, snapshotGuest } from '../../helpers/faulty-guest.js';
import { snapshotDiff } from '../../helpers/hostile-tree.js';
import { commitChanges, verifyChanges } from '../../../src/plan/apply.js';
import { effectiveChanges } from '../../../src/plan/diff.js';
import { RolledBackError } from '../../../src/plan/transaction.js';

const root = { mode: 0o644, uid: 0, gid: 0 };

/**
 * Hold one guest opened by GuestfsBackend across many `it`s: the visitor waits
 * until `after`. (This file's guest is a drive of the shared appliance instead.)
 */
export function holdGuest(backend: GuestfsBackend, target: string, readonly: boolean) {
  let release!: () => void;
  let running!: Promise<void>;
  const guest = new Promise<GuestfsImageGuest>((resolve, reject) => {
    running = backend.forEachGuest([{ kind: 'image', path: target }], { readonly }, async (_t, g) => {
      if (g instanceof Error) return reject(g);
      resolve(g as GuestfsImageGuest);
      await new Promise<void>((r) => (release = r));
    });
    running.catch(reject);
  });
  return { guest, done: async () => { release?.(); await running; } };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(() => { throw new Error('expected a rejection'); }, (e: unknown) => e as Error);
}

describe('GuestfsGuest on a real image', function () {
  this.timeout(300_000);
  let shared: SharedAppliance;
  let g: Guest;

  before(async () => {
    shared = await sharedExt4Appliance();
    const img = shared.path('guest');
    // what GuestfsBackend does for one image: partition numbers read on the host, inspection, the guest object
    const partitions = shared.partitions('guest');
    const os = await openDrive(shared.session, new ApplianceLayout(shared.session), shared.index('guest'), img, { readonly: false, ...(partitions && { partitions }) });
    g = new GuestfsImageGuest(shared.session, img, false, os);
  });

  after(async () => {
    // unmounting writes the guest's changes to its overlay; the next spec mounts its own drive
    if (shared?.session.alive) await shared.session.command('umount-all');
  });

  it('reads files, following symlinks inside the guest', async () => {
    expect((await g.readFile('/etc/hostname'))?.toString()).to.equal('master\n');
    const osRelease = await fs.readFile(path.join(FIXTURE, 'usr/lib/os-release'));
    expect((await g.readFile('/etc/os-release'))?.equals(osRelease)).to.equal(true); // -> ../usr/lib/os-release
    expect(await g.readFile('/etc/nope')).to.equal(null);
    expect(await g.readFile('/etc/hostname/x')).to.equal(null);
    expect((await rejection(g.readFile('/etc'))).message).to.match(/not a regular file/);
    expect((await rejection(g.readFile('/etc/passwd', { maxBytes: 10 }))).message).to.match(/too large/);
    expect((g as GuestfsImageGuest).os.distro.family).to.equal('debian');
  });

  it('stats, lists and reads links', async () => {
    expect(await g.lstat('/etc/os-release')).to.include({ type: 'symlink' });
    expect(await g.stat('/etc/os-release')).to.include({ type: 'file', uid: 0 });
    expect(await g.stat('/etc/shadow')).to.include({ type: 'file', mode: 0o640, gid: 42 });
    expect(await g.readlink('/etc/os-release')).to.equal('../usr/lib/os-release');
    expect(await g.readlink('/etc/hostname')).to.equal(null);
    const etc = await g.readdir('/etc');
    expect(etc).to.include.members(['hostname', 'machine-id', 'ssh']);
    expect(etc).to.deep.equal([...etc!].sort());
    expect(await g.readdir('/nope')).to.equal(null);
  });

  it('writes any bytes atomically, with mode and owner, leaving no temp file', async () => {
    const cases: [string, Buffer][] = [
      ['/etc/t-empty', Buffer.alloc(0)],
      ['/etc/t-text', Buffer.from('line 1\nline "2" \\ $HOME `x`\n\ttab\r\n')],
      ['/etc/t-latin1', Buffer.from([0xe9, 0xff, 0x80, 0x0a])],
      ['/etc/t-nul', Buffer.from([0x00, 0x01, 0x00, 0x0a, 0xff])],
      ['/etc/t-10k', Buffer.alloc(10_000, 'abc"\\\n')],
      ['/etc/t-200k', Buffer.alloc(200_000, 'x\n')],
      ['/etc/t-3m', Buffer.alloc(3 * 1024 * 1024 + 17, 0xfe)],
    ];
    for (const [p, content] of cases) {
      await g.writeFile(p, content, { mode: 0o600, uid: 1000, gid: 1000 });
      expect((await g.readFile(p))?.equals(content), p).to.equal(true);
      expect(await g.stat(p)).to.deep.equal({ type: 'file', mode: 0o600, uid: 1000, gid: 1000, size: content.length });
    }
    await g.writeFile('/etc/hostname', Buffer.from('node01\n'), root);
    expect((await g.readFile('/etc/hostname'))?.toString()).to.equal('node01\n');
    expect((await g.readdir('/etc'))!.filter((n) => n.includes('ghostprep'))).to.deep.equal([]);
    await g.writeFile('/etc/new/deep/file', Buffer.from('x'), root);
    expect(await g.stat('/etc/new/deep')).to.include({ type: 'dir', mode: 0o755, uid: 0 });
  });

  it('replaces a symlink with the file instead of writing into its target', async () => {
    const target = await g.readFile('/usr/lib/os-release');
    await g.writeFile('/etc/os-release', Buffer.from('ID=debian\n'), root);
    expect(await g.lstat('/etc/os-release')).to.include({ type: 'file' });
    expect((await g.readFile('/etc/os-release'))?.toString()).to.equal('ID=debian\n');
    expect((await g.readFile('/usr/lib/os-release'))?.equals(target!)).to.equal(true);
  });

  it('keeps hostile links inside the guest', async () => {
    const guestShadow = await g.readFile('/etc/shadow');
    await g.symlink('/../../etc/shadow', '/etc/evil-abs');
    await g.symlink('../../../../../../etc/shadow', '/etc/evil-rel');
    expect((await g.readFile('/etc/evil-abs'))?.equals(guestShadow!)).to.equal(true);
    expect((await g.readFile('/etc/evil-rel'))?.equals(guestShadow!)).to.equal(true);
    // Paths that exist only in the appliance are absent from the guest.
    for (const target of ['/sysroot/etc/hostname', '/usr/lib/x86_64-linux-gnu/guestfs', '/init']) {
      await g.symlink(target, '/etc/evil-app');
      expect(await g.readFile('/etc/evil-app'), target).to.equal(null);
      expect(await g.stat('/etc/evil-app'), target).to.equal(null);
    }
    // A write to a link to an appliance-looking path replaces the link; nothing lands elsewhere.
    await g.symlink('/../../../run/escape', '/etc/hostname');
    await g.writeFile('/etc/hostname', Buffer.from('inside\n'), root);
    expect(await g.lstat('/etc/hostname')).to.include({ type: 'file' });
    expect((await g.readFile('/etc/hostname'))?.toString()).to.equal('inside\n');
    expect(await g.lstat('/run/escape')).to.equal(null);
    // hostname -> shadow: shadow is left alone
    await g.symlink('/etc/shadow', '/etc/hostname');
    await g.writeFile('/etc/hostname', Buffer.from('node01\n'), root);
    expect((await g.readFile('/etc/shadow'))?.equals(guestShadow!)).to.equal(true);
    // A directory link to / is just the guest's root.
    await g.symlink('/', '/etc/rootlink');
    expect(await g.readdir('/etc/rootlink/etc/..')).to.deep.equal(await g.readdir('/'));
    await g.symlink('loop-b', '/etc/loop-a');
    await g.symlink('loop-a', '/etc/loop-b');
    expect((await rejection(g.readFile('/etc/loop-a'))).message).to.match(/too many levels/);
  });

  it('makes directories, removes, chmods and chowns', async () => {
    await g.mkdir('/srv/a/b', { mode: 0o750, uid: 1000, gid: 1000 });
    expect(await g.stat('/srv/a/b')).to.include({ type: 'dir', mode: 0o750, uid: 1000 });
    await g.writeFile('/srv/a/b/f', Buffer.from('x'), root);
    expect((await rejection(g.remove('/srv/a'))).message).to.match(/rmdir|not empty/i);
    await g.symlink('/srv/a', '/srv/link');
    await g.remove('/srv/link');
    expect(await g.stat('/srv/a/b/f')).to.include({ type: 'file' });
    await g.chown('/srv/a/b/f', 5, 6); // chown clears setuid: chmod second, as writeFile does
    await g.chmod('/srv/a/b/f', 0o4755);
    expect(await g.stat('/srv/a/b/f')).to.include({ mode: 0o4755, uid: 5, gid: 6 });
    await g.remove('/srv/a', { recursive: true });
    expect(await g.lstat('/srv/a')).to.equal(null);
    await g.remove('/srv/never-there');
    expect((await rejection(g.remove('/'))).message).to.match(/refusing/);
    expect((await rejection(g.chmod('/nope', 0o644))).message).to.match(/does not exist/);
    await g.symlink('/etc', '/srv/dirlink');
    await g.symlink('/etc/machine-id', '/srv/dirlink'); // replaces the link, does not write inside /etc
    expect(await g.readlink('/srv/dirlink')).to.equal('/etc/machine-id');
  });

  it('keeps directory listings true across its own writes (listings are cached per guest)', async () => {
    const before = (await g.readdir('/'))!;
    expect(before).to.not.include('lst');
    await g.writeFile('/lst/x/y/file', Buffer.from('x'), root); // mkdir-p creates /lst and /lst/x
    expect(await g.readdir('/')).to.deep.equal([...before, 'lst'].sort());
    expect(await g.readdir('/lst')).to.deep.equal(['x']);
    expect(await g.readdir('/lst/x/y')).to.deep.equal(['file']);
    await g.symlink('/etc', '/lst/x/y/link');
    await g.mkdir('/lst/x/y/dir', { mode: 0o755, uid: 0, gid: 0 });
    expect(await g.readdir('/lst/x/y')).to.deep.equal(['dir', 'file', 'link']);
    await g.remove('/lst/x/y/file');
    expect(await g.readdir('/lst/x/y')).to.deep.equal(['dir', 'link']);
    await g.remove('/lst', { recursive: true });
    expect(await g.readdir('/')).to.deep.equal(before);
    expect(await g.readdir('/lst')).to.equal(null);
  });

  it('renames (how a transaction sets a deleted path aside), neither end followed', async () => {
    await g.writeFile('/mv/dir/file', Buffer.from('x\n'), root);
    await g.symlink('/etc/shadow', '/mv/link');
    await g.rename('/mv/dir', '/mv/.dir.ghostprep-trash');
    await g.rename('/mv/link', '/mv/.link.ghostprep-trash');
    expect(await g.readdir('/mv')).to.deep.equal(['.dir.ghostprep-trash', '.link.ghostprep-trash']);
    expect(await g.readlink('/mv/.link.ghostprep-trash')).to.equal('/etc/shadow');
    expect((await g.readFile('/mv/.dir.ghostprep-trash/file'))?.toString()).to.equal('x\n');
    await g.rename('/mv/.dir.ghostprep-trash', '/mv/dir');
    expect((await g.readFile('/mv/dir/file'))?.toString()).to.equal('x\n');
    await g.remove('/mv', { recursive: true });
  });

  it('commits a machine as one transaction: with each write failing in turn, the guest is left identical', async () => {
    const clean = faultyGuest(g, 0);
    await buildGuestTree(g, '/txn');
    const tx = await commitChanges(clean, await effectiveChanges(clean, planUnder('/txn')));
    const commitCalls = clean.calls;
    expect(await verifyChanges(g, planUnder('/txn'), { checkOwner: true })).to.deep.equal([]);
    expect(await tx.finish()).to.deep.equal([]);
    expect([...(await snapshotGuest(g, '/txn')).keys()].filter((k) => k.includes('ghostprep-'))).to.deep.equal([]);
    // every k would cost ~1 s of guestfish round trips each: the first, a middle and the last write
    for (const k of [...new Set([1, Math.ceil(commitCalls / 2), commitCalls])]) {
      await buildGuestTree(g, '/txn');
      const before = await snapshotGuest(g, '/txn');
      const faulty = faultyGuest(g, k);
      const err = await rejection(commitChanges(faulty, await effectiveChanges(faulty, planUnder('/txn'))));
      expect(err, `k=${k}: ${err.message}`).to.be.instanceOf(RolledBackError);
      expect(err.message).to.match(/; rolled back: the machine is as it was$/);
      expect(snapshotDiff(before, await snapshotGuest(g, '/txn')), `k=${k}`).to.deep.equal([]);
    }
    await g.remove('/txn', { recursive: true });
  });

  it('refuses writes on a read-only guest before touching the appliance', async () => {
    const ro = new GuestfsGuest({} as GuestfsSession, 'img.qcow2', true);
    for (const p of [ro.writeFile('/x', Buffer.from(''), root), ro.mkdir('/x', root), ro.remove('/x'), ro.symlink('/a', '/x'), ro.chmod('/x', 0), ro.chown('/x', 0, 0), ro.rename('/x', '/y')]) {
      const err = await rejection(p);
      expect(err).to.be.instanceOf(GuestError);
      expect(err.message).to.match(/img.qcow2 is open read-only/);
    }
  });
});
