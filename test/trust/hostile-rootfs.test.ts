/**
 * Hostile rootfs trees through the real CLI, in ONE apply batch with two good
 * machines: symlinked /etc (absolute host path, `..` chain), /etc/hostname ->
 * /etc/shadow or a host file, a FIFO and a device node where files are
 * expected, a 2 GiB sparse /etc/os-release, non-UTF-8 file names, immutable
 * and read-only files, a full filesystem. ghostprep must never read or write
 * outside the root, never hang, fail only the broken machines with a clear
 * message (exit 3) and leave the good ones correct.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync, cpSync } from 'node:fs';
import path from 'node:path';
import { copyFixture, tempDir } from '../helpers/rootfs.js';
import { treeDigest } from '../helpers/cli.js';
import { count } from '../helpers/trust-counts.js';
import { addSecret, addStateSecrets, gp, recordFile, show } from '../helpers/trust-run.js';
import { writeInputs } from './profile.js';

interface Case {
  readonly name: string;
  readonly why: string;
  /** Make the tree hostile; `outside` is a host directory that must stay untouched. */
  readonly make: (root: string, outside: string) => void;
  /** ok: the hostile part was handled safely; a RegExp: the machine failed with this message. */
  readonly expect: 'ok' | RegExp;
  readonly check?: (root: string, outside: string) => void;
  /** Needs something this host may not allow (mount, mknod, chattr): skipped when make throws. */
  readonly optional?: boolean;
}

const b = (s: string) => Buffer.from(s, 'latin1');

function replaceEtcWithLink(root: string, target: string, outside: string): void {
  // the guest's real /etc is moved to the host side: following the link on the host would find it
  cpSync(path.join(root, 'etc'), path.join(outside, 'etc'), { recursive: true, verbatimSymlinks: true });
  rmSync(path.join(root, 'etc'), { recursive: true });
  symlinkSync(target, path.join(root, 'etc'));
}

const mounts: string[] = [];
const immutable: string[] = [];

const CASES: Case[] = [
  {
    name: 'etc-abs-host', why: '/etc is a symlink to an absolute host path',
    make: (root, outside) => replaceEtcWithLink(root, path.join(outside, 'etc'), outside),
    // resolved inside the root, the link leads nowhere: no passwd to add the user to
    expect: /users: the guest has no \/etc\/passwd/,
  },
  {
    name: 'etc-dotdot', why: '/etc is a ../../.. chain to a host path',
    make: (root, outside) => replaceEtcWithLink(root, '../../../../../../../../..' + path.join(outside, 'etc'), outside),
    expect: /users: the guest has no \/etc\/passwd/,
  },
  {
    name: 'etc-loop', why: '/etc is a symlink to itself through ..',
    make: (root) => { rmSync(path.join(root, 'etc'), { recursive: true }); symlinkSync('../etc', path.join(root, 'etc')); },
    expect: /too many levels of symbolic links/,
  },
  {
    name: 'hostname-shadow', why: '/etc/hostname -> /etc/shadow',
    make: (root) => { unlinkSync(path.join(root, 'etc/hostname')); symlinkSync('/etc/shadow', path.join(root, 'etc/hostname')); },
    expect: 'ok',
    check: (root) => {
      expect(lstatSync(path.join(root, 'etc/hostname')).isFile()).to.equal(true);
      expect(readFileSync(path.join(root, 'etc/shadow'), 'utf8')).to.match(/^root:\$6\$/);
      expect(readFileSync(path.join(root, 'etc/shadow'), 'utf8')).to.not.match(/hostname-shadow/);
    },
  },
  {
    name: 'hostname-host', why: '/etc/hostname -> an absolute host file',
    make: (root, outside) => { unlinkSync(path.join(root, 'etc/hostname')); symlinkSync(path.join(outside, 'host-hostname'), path.join(root, 'etc/hostname')); },
    expect: 'ok',
  },
  {
    name: 'ssh-dir-host', why: '/etc/ssh is a symlink to a host directory of keys',
    make: (root, outside) => {
      cpSync(path.join(root, 'etc/ssh'), path.join(outside, 'ssh'), { recursive: true });
      rmSync(path.join(root, 'etc/ssh'), { recursive: true });
      symlinkSync(path.join(outside, 'ssh'), path.join(root, 'etc/ssh'));
    },
    expect: 'ok',
  },
  {
    name: 'hostname-fifo', why: 'a FIFO at /etc/hostname (a read would block forever)',
    make: (root) => { unlinkSync(path.join(root, 'etc/hostname')); execFileSync('mkfifo', [path.join(root, 'etc/hostname')]); },
    expect: /\/etc\/hostname.*not a regular file/,
  },
  {
    name: 'machine-id-device', why: 'a character device (/dev/zero) at /etc/machine-id',
    make: (root) => { unlinkSync(path.join(root, 'etc/machine-id')); execFileSync('mknod', [path.join(root, 'etc/machine-id'), 'c', '1', '5']); },
    expect: /\/etc\/machine-id.*not a regular file/, optional: true,
  },
  {
    name: 'os-release-2g', why: 'a 2 GiB (sparse) /etc/os-release',
    make: (root) => { unlinkSync(path.join(root, 'etc/os-release')); writeFileSync(path.join(root, 'etc/os-release'), 'ID=debian\n'); truncateSync(path.join(root, 'etc/os-release'), 2 * 1024 ** 3); },
    expect: /\/etc\/os-release is too large/,
  },
  {
    name: 'non-utf8-names', why: 'file names that are not UTF-8 where ghostprep lists directories',
    make: (root) => {
      for (const dir of ['etc/ssh', 'etc/netplan', 'etc/network/interfaces.d', 'etc', 'var/lib/dbus']) {
        mkdirSync(path.join(root, dir), { recursive: true });
        writeFileSync(Buffer.concat([b(path.join(root, dir) + '/'), Buffer.from([0xff, 0xfe, 0x2d, 0xe9]), b('.conf')]), 'x\n');
        writeFileSync(Buffer.concat([b(path.join(root, dir) + '/ssh_host_'), Buffer.from([0xff]), b('_key')]), 'not a key\n');
      }
    },
    expect: 'ok',
    check: (root) => {
      const names = readdirSync(b(path.join(root, 'etc/ssh')), { encoding: 'buffer' }).map((n) => n.toString('latin1'));
      expect(names).to.include('ssh_host_\xff_key');
    },
  },
  {
    name: 'hostname-immutable', why: 'chattr +i /etc/hostname',
    make: (root) => { execFileSync('chattr', ['+i', path.join(root, 'etc/hostname')]); immutable.push(path.join(root, 'etc/hostname')); },
    expect: /\/etc\/hostname.*(not permitted|EPERM)/, optional: true,
  },
  {
    name: 'etc-readonly', why: 'a read-only /etc (0555) with 0444 files',
    make: (root) => {
      for (const f of ['hostname', 'machine-id', 'hosts']) execFileSync('chmod', ['0444', path.join(root, 'etc', f)]);
      execFileSync('chmod', ['0555', path.join(root, 'etc')]);
    },
    // root may write anyway; without root the machine fails, naming the file
    expect: process.getuid?.() === 0 ? 'ok' : /permission denied/i,
  },
  {
    // really read-only, root or not: a read-only bind mount of the whole tree (the mode bits above do not stop root)
    name: 'root-ro-mount', why: 'the whole tree on a read-only bind mount',
    make: (root) => {
      execFileSync('mount', ['--bind', root, root]);
      mounts.push(root);
      execFileSync('mount', ['-o', 'remount,bind,ro', root]);
    },
    expect: /cannot write \/etc\/hostname: the guest filesystem is read-only \(EROFS\)/, optional: true,
  },
  {
    name: 'full-fs', why: 'a full filesystem (tmpfs filled to the last block)',
    make: (root) => {
      const copy = root + '.src';
      execFileSync('mv', [root, copy]);
      mkdirSync(root);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', root]);
      mounts.push(root);
      execFileSync('cp', ['-a', copy + '/.', root]);
      try { execFileSync('dd', ['if=/dev/zero', `of=${path.join(root, 'filler')}`, 'bs=4k'], { stdio: 'ignore' }); } catch { /* ENOSPC: full */ }
    },
    expect: /no space left|ENOSPC/i, optional: true,
  },
];

describe('trust: hostile rootfs trees in one apply batch', function () {
  this.timeout(300_000);
  const work = tempDir('ghostprep-trust-rootfs-');
  const trees = path.join(work, 'trees');
  const outside = path.join(work, 'outside');
  const state = path.join(work, 'state');
  const good = ['good-a', 'good-b'];
  let active: Case[] = [];
  const skipped: string[] = [];
  let args: string[];
  let outsideBefore: string;

  before(() => {
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'host-hostname'), 'the host\n');
    for (const n of good) copyFixture('debian12', path.join(trees, n));
    for (const c of CASES) {
      const root = path.join(trees, c.name);
      copyFixture('debian12', root);
      const own = path.join(outside, c.name);
      mkdirSync(own);
      try {
        c.make(root, own);
        active.push(c);
      } catch (err) {
        if (!c.optional) throw err;
        skipped.push(`${c.name}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    // the master's password hashes are secrets too (the hostname -> shadow case reads them)
    for (const l of readFileSync(path.join(trees, 'good-a', 'etc/shadow'), 'utf8').split('\n')) if (l.split(':')[1]?.startsWith('$')) addSecret('master password hash', l.split(':')[1]!);
    args = [...writeInputs(work, [...good, ...active.map((c) => c.name)]), '--target', `rootfs:${trees}/{name}`, '--state', state];
    outsideBefore = treeDigest(outside);
    count('hostileRootfs', active.length);
  });

  after(() => {
    for (const f of immutable) try { execFileSync('chattr', ['-i', f]); } catch { /* gone */ }
    for (const m of mounts) try { execFileSync('umount', [m]); } catch { /* not mounted */ }
    rmSync(work, { recursive: true, force: true });
  });

  it('plans every tree without hanging, showing nothing from outside the root', async () => {
    if (skipped.length) console.log(`      (skipped on this host: ${skipped.join('; ')})`);
    const r = await gp(['plan', ...args, '--json'], { timeoutMs: 120_000 });
    expect(r.timedOut, show(r)).to.equal(false);
    expect(r.status, show(r)).to.be.oneOf([1, 2, 3]);
    expect(r.stdout + r.stderr).to.not.include('the host');
    // hostname -> shadow: the plan shows the file being replaced, never the shadow's hashes
    expect(r.stdout).to.not.match(/\$6\$(Zk4dN8|7Qm2hX)/);
    const text = await gp(['plan', ...args], { timeoutMs: 120_000 });
    expect(text.timedOut, show(text)).to.equal(false);
    expect(text.stdout).to.match(/modify \/etc\/hostname \(hostname: replaces a symlink\)/);
    expect(text.stdout + text.stderr).to.not.match(/\$6\$(Zk4dN8|7Qm2hX)|the host/);
    expect(treeDigest(outside)).to.equal(outsideBefore);
  });

  it('applies: exit 3, the good machines correct, each hostile one safe or failed with a clear message', async () => {
    const report = path.join(work, 'report.json');
    const r = await gp(['apply', ...args, '--report', report], { timeoutMs: 180_000 });
    recordFile(report);
    addStateSecrets(state);
    expect(r.timedOut, show(r)).to.equal(false);
    expect(r.status, show(r)).to.equal(3);
    const rep = JSON.parse(readFileSync(report, 'utf8')) as { machines: Array<{ name: string; status: string; error: string | null }> };
    const byName = new Map(rep.machines.map((m) => [m.name, m]));
    for (const n of good) {
      expect(byName.get(n)?.status, n).to.equal('ok');
      expect(readFileSync(path.join(trees, n, 'etc/hostname'), 'utf8')).to.equal(`${n}\n`);
      expect(readFileSync(path.join(trees, n, 'etc/shadow'), 'utf8')).to.include('ops:$6$trustSalt');
    }
    const problems: string[] = [];
    for (const c of active) {
      const m = byName.get(c.name)!;
      const got = m.status === 'ok' ? 'ok' : m.error ?? '';
      if (c.expect === 'ok' ? m.status !== 'ok' : m.status !== 'failed' || !c.expect.test(got)) problems.push(`${c.name} (${c.why}): expected ${c.expect}, got ${m.status}: ${got}`);
      if (process.env.TRUST_VERBOSE) console.log(`      ${c.name}: ${m.status} ${m.error ?? ''}`);
      try { c.check?.(path.join(trees, c.name), path.join(outside, c.name)); } catch (err) { problems.push(`${c.name}: ${(err as Error).message}`); }
    }
    expect(problems, problems.join('\n')).to.deep.equal([]);
    expect(treeDigest(outside), 'nothing outside the roots changed').to.equal(outsideBefore);
    // no temp file left behind in a failed tree
    for (const c of active) {
      const etc = path.join(trees, c.name, 'etc');
      if (existsSync(etc) && statSync(etc).isDirectory()) expect(readdirSync(etc).filter((n) => n.includes('.ghostprep-')), c.name).to.deep.equal([]);
    }
  });

  it('re-applying changes nothing on the good machines and still fails the same hostile ones', async () => {
    const r = await gp(['apply', ...args, '--json'], { timeoutMs: 180_000 });
    expect(r.timedOut, show(r)).to.equal(false);
    expect(r.status, show(r)).to.equal(3);
    const rep = JSON.parse(r.stdout) as { machines: Array<{ name: string; status: string; changes: unknown[] }> };
    for (const n of good) expect(rep.machines.find((m) => m.name === n)?.changes, n).to.deep.equal([]);
    expect(treeDigest(outside)).to.equal(outsideBefore);
  });
});
