/**
 * Hostile qcow2 images (overlays of the cached test image made hostile in
 * ONE setup appliance, kept in the test image cache: test/helpers/cached-layers.ts;
 * each run applies to fresh overlays of them), applied in ONE ghostprep run (--jobs 1: one
 * appliance for all) together with two good images and one image held open
 * by a running (paused) qemu: symlinked /etc, /etc/hostname -> /etc/shadow
 * or an absolute path, `..` chains, a FIFO and a device node where files are
 * expected, a 2 GiB sparse /etc/os-release, non-UTF-8 file names, an
 * immutable file, a full filesystem, an image in use. Exit 3, good images
 * correct, every hostile one safe or failed with a clear message, nothing on
 * the host touched, no temp file left in any guest.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GuestfsSession, driveDevice, type Arg } from '../../src/backends/guestfs/session.js';
import { sha256File } from '../../src/image/checksum.js';
import { CACHE_DIR, LUKS_PASSPHRASE, overlayOf, testImage } from '../helpers/images.js';
import { cachedLayers } from '../helpers/cached-layers.js';
import { tempDir } from '../helpers/rootfs.js';
import { treeDigest } from '../helpers/cli.js';
import { count } from '../helpers/trust-counts.js';
import { addSecret, addStateSecrets, execveCalls, gp, recordFile, show, traceLeaks } from '../helpers/trust-run.js';
import { writeInputs } from './profile.js';

type Step = [string, ...Arg[]];

/** What a machine whose guest cannot be written fails with (the write's EROFS, named with its path). */
const READ_ONLY_FAILURE = /cannot write \/etc\/hostname: .*fs-read-only\.qcow2: .*Read-only file system/;

interface Case {
  readonly name: string;
  readonly why: string;
  /** guestfish commands run with the image's root mounted at / (unless `unmounted`); `device` is its root filesystem's (API name), `drive` its drive's index. */
  readonly unmounted?: true;
  readonly steps: (canary: string, device: string, drive: number) => Step[] | ((s: GuestfsSession) => Promise<void>);
  readonly expect: 'ok' | RegExp;
}

const CASES: Case[] = [
  { name: 'etc-link', why: '/etc is a symlink to an appliance path', steps: () => [['mv', '/etc', '/etc.real'], ['ln-s', '/sysroot/etc.real', '/etc']], expect: /no Linux.* operating system found/ },
  { name: 'hostname-shadow', why: '/etc/hostname -> /etc/shadow', steps: () => [['rm', '/etc/hostname'], ['ln-s', '/etc/shadow', '/etc/hostname']], expect: 'ok' },
  { name: 'hostname-host', why: '/etc/hostname -> an absolute host path', steps: (canary) => [['rm', '/etc/hostname'], ['ln-s', canary, '/etc/hostname']], expect: 'ok' },
  { name: 'machine-id-dotdot', why: '/etc/machine-id -> ../../../../../etc/shadow', steps: () => [['rm', '/etc/machine-id'], ['ln-s', '../../../../../../../etc/shadow', '/etc/machine-id']], expect: 'ok' },
  { name: 'hostname-fifo', why: 'a FIFO at /etc/hostname', steps: () => [['rm', '/etc/hostname'], ['mkfifo', 0o644, '/etc/hostname']], expect: /\/etc\/hostname.*not a regular file/ },
  { name: 'machine-id-device', why: 'a device node (/dev/zero) at /etc/machine-id', steps: () => [['rm', '/etc/machine-id'], ['mknod-c', 0o644, 1, 5, '/etc/machine-id']], expect: /\/etc\/machine-id.*not a regular file/ },
  { name: 'os-release-2g', why: 'a 2 GiB sparse /etc/os-release', steps: () => [['rm-f', '/etc/os-release'], ['touch', '/etc/os-release'], ['truncate-size', '/etc/os-release', 2 * 1024 ** 3]], expect: /\/etc\/os-release is too large/ },
  {
    name: 'non-utf8-names', why: 'non-UTF-8 file names in directories ghostprep lists',
    steps: () => ['/etc/ssh/', '/etc/', '/etc/network/', '/var/lib/dbus/'].flatMap((d): Step[] => [
      ['touch', Buffer.concat([Buffer.from(d), Buffer.from([0xff, 0xfe, 0x2d, 0xe9])])],
      ['touch', Buffer.concat([Buffer.from(d + 'ssh_host_'), Buffer.from([0xff]), Buffer.from('_key')])],
    ]),
    expect: 'ok',
  },
  { name: 'hostname-immutable', why: 'chattr +i /etc/hostname', steps: () => [['set-e2attrs', '/etc/hostname', 'i']], expect: /\/etc\/hostname.*Operation not permitted/ },
  // a failure after hostname, machine-id and keys are written: the whole machine is rolled back
  { name: 'shadow-immutable', why: 'chattr +i /etc/shadow', steps: () => [['set-e2attrs', '/etc/shadow', 'i']], expect: /cannot write \/etc\/shadow: .*Operation not permitted.*; rolled back: the machine is as it was$/ },
  { name: 'ssh-dir-file', why: '/etc/ssh is a regular file', steps: () => [['rm-rf', '/etc/ssh'], ['write', '/etc/ssh', 'not a directory\n']], expect: /refused before writing anything: \/etc\/ssh\/ssh_host_\w+_key: \/etc\/ssh is a regular file, not a directory/ },
  { name: 'root-ssh-out', why: '/root/.ssh is a .. chain to a directory not in the guest', steps: () => [['mkdir-p', '/root'], ['rm-rf', '/root/.ssh'], ['ln-s', '../../../../home/host/.ssh', '/root/.ssh']], expect: /refused before writing anything: \/root\/\.ssh is a symlink to \.\.\/\.\.\/\.\.\/\.\.\/home\/host\/\.ssh, which is not a directory in the guest/ },
  {
    name: 'full-fs', why: 'a full filesystem',
    steps: () => async (s) => {
      const st = await s.fields('statvfs', ['/']);
      const free = Number(st.bfree) * Number(st.bsize); // root may use the reserved blocks too
      for (let size = free, i = 0; size > 1 << 20; size = Math.floor(size * 0.97), i++) {
        if (await s.command('fallocate64', [`/filler${i}`, size]).then(() => true, () => false)) break;
      }
      // the last blocks, whatever fallocate left
      for (let i = 0; i < 200; i++) if (await s.command('write', [`/f${i}`, 'x'.repeat(3000)]).then(() => false, () => true)) break;
    },
    expect: /No space left on device/,
  },
  {
    // the ext4 `read-only` feature: the kernel refuses to mount it writable, so every write fails
    name: 'fs-read-only', why: 'a guest filesystem that cannot be written (ext4 read-only feature, tune2fs -O read-only)',
    // on the unmounted filesystem: an umount first would let the partition's node lag behind on a loaded host.
    // `debug sh` runs with the kernel's names, which need not follow the drive order of guestfs's API (the
    // daemon translates /dev/sdX for API calls only): the drive is found by the serial libguestfs gives it.
    unmounted: true,
    steps: (_canary, _device, drive) => [['debug', 'sh', `udevadm settle; d=$(readlink -f /dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_hd${drive}); for i in $(seq 300); do [ -b \${d}1 ] && break; sleep 0.1; done; tune2fs -O read-only \${d}1`]],
    expect: READ_ONLY_FAILURE,
  },
];

async function holdImage(image: string): Promise<ChildProcess> {
  // paused (-S): holds the image open read-write, as a running VM does, without burning CPU
  const qemu = spawn('qemu-system-x86_64', ['-S', '-nodefaults', '-display', 'none', '-machine', 'accel=tcg', '-m', '64',
    '-drive', `file=${image},format=qcow2,if=virtio`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  qemu.stderr!.on('data', (d: Buffer) => (err += d));
  // wait until it has the image open (qemu-img info then fails on the lock): up to a minute, as a loaded host may need
  for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
    if (qemu.exitCode !== null) throw new Error(`qemu exited: ${err}`);
    const probe = spawn('qemu-img', ['info', image], { stdio: 'ignore' });
    const code = await new Promise<number | null>((r) => probe.on('close', r));
    if (code !== 0) return qemu;
    await new Promise((r) => setTimeout(r, 100));
  }
  qemu.kill('SIGKILL');
  throw new Error('qemu did not take the image lock');
}

describe('trust: hostile qcow2 images in one appliance', function () {
  this.timeout(900_000);
  const work = tempDir('ghostprep-trust-img-');
  const imgs = path.join(work, 'imgs');
  // the host file a guest symlink points to: at a fixed path, since the cached hostile layers hold the link
  const outside = path.join(CACHE_DIR, 'trust-host-canary');
  const canary = path.join(outside, 'canary');
  const state = path.join(work, 'state');
  const good = ['good-a', 'good-b'];
  // a LUKS-encrypted guest opened with --luks-key-file in the same appliance: the apply runs under strace,
  // and no process it starts may carry the passphrase in its arguments or environment
  const luks = 'luks-guest';
  const trace = path.join(work, 'apply.strace');
  let qemu: ChildProcess | undefined;
  let args: string[];
  let outsideBefore: string;
  let inUseSha: string;
  let report: { machines: Array<{ name: string; status: string; error: string | null }> };

  before(async () => {
    mkdirSync(imgs, { recursive: true });
    mkdirSync(outside, { recursive: true });
    if (!existsSync(canary)) writeFileSync(canary, 'host file\n');
    const base = await testImage('ext4-gpt');
    for (const n of [...good, 'in-use']) await overlayOf(base, imgs, n);
    // the hostile layers: made in one appliance on the first run (the recipe, each case's steps as
    // written, is the cache key), then each run applies to an overlay of its own on each layer
    const recipe = JSON.stringify(CASES.map((c) => [c.name, String(c.steps)])) + `\0${canary}`;
    const layers = await cachedLayers(base, recipe, CASES.map((c) => c.name), async (fresh) => {
      const session = await GuestfsSession.open({ drives: CASES.map((c) => ({ path: fresh.get(c.name)!, format: 'qcow2', readonly: false })) });
      try {
        // the unmounted cases first, before any mount or umount has made udev redo a partition's node
        const order = [...CASES.entries()].sort(([, a], [, b]) => Number(!a.unmounted) - Number(!b.unmounted));
        for (const [i, c] of order) {
          if (!c.unmounted) await session.command('mount', [`${driveDevice(i)}1`, '/']);
          const steps = c.steps(canary, `${driveDevice(i)}1`, i);
          if (typeof steps === 'function') await steps(session);
          else for (const [cmd, ...a] of steps) await session.command(cmd, a);
          await session.command('umount-all');
        }
      } finally {
        await session.close();
      }
    });
    for (const c of CASES) await overlayOf(layers.get(c.name)!, imgs, c.name);
    await overlayOf(await testImage('luks'), imgs, luks);
    writeFileSync(path.join(work, 'luks.key'), LUKS_PASSPHRASE + '\n', { mode: 0o600 });
    addSecret('LUKS passphrase of the guest (--luks-key-file)', LUKS_PASSPHRASE);
    if (process.env.TRUST_VERBOSE) console.log(`      setup done at ${new Date().toISOString()}`);
    count('hostileImages', CASES.length + 1);
    args = [...writeInputs(work, [...good, luks, 'in-use', ...CASES.map((c) => c.name)]), '--target', `${imgs}/{name}.qcow2`, '--state', state];
    outsideBefore = treeDigest(outside);
    qemu = await holdImage(path.join(imgs, 'in-use.qcow2'));
    inUseSha = await sha256File(path.join(imgs, 'in-use.qcow2'));
  });

  after(() => {
    qemu?.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  it('applies in one appliance without hanging: exit 3, good images ok, hostile ones safe or failed clearly', async () => {
    const file = path.join(work, 'report.json');
    const r = await gp(['--luks-key-file', path.join(work, 'luks.key'), 'apply', ...args, '--jobs', '1', '--report', file], { timeoutMs: 600_000, trace });
    recordFile(file);
    addStateSecrets(state);
    if (process.env.TRUST_VERBOSE) console.log(`      apply took ${r.ms} ms`);
    expect(r.timedOut, show(r)).to.equal(false);
    expect(r.status, show(r)).to.equal(3);
    report = JSON.parse(readFileSync(file, 'utf8'));
    const byName = new Map(report.machines.map((m) => [m.name, m]));
    for (const n of [...good, luks]) expect(byName.get(n)?.status, `${n}: ${byName.get(n)?.error}`).to.equal('ok');
    const problems: string[] = [];
    for (const c of CASES) {
      const m = byName.get(c.name)!;
      if (process.env.TRUST_VERBOSE) console.log(`      ${c.name}: ${m.status} ${m.error ?? ''}`);
      if (c.expect === 'ok' ? m.status !== 'ok' : m.status !== 'failed' || !c.expect.test(m.error ?? '')) problems.push(`${c.name} (${c.why}): expected ${c.expect}, got ${m.status}: ${m.error}`);
    }
    expect(problems, problems.join('\n')).to.deep.equal([]);
    expect(treeDigest(outside), 'nothing on the host changed').to.equal(outsideBefore);
  });

  it('under strace: no process the apply started (qemu, guestfish, ssh-keygen...) had a key, hash or the LUKS passphrase in its argv or environment', () => {
    const calls = execveCalls(trace);
    const programs = new Set(calls.map((c) => c.program));
    // the trace saw the children that matter, or it proves nothing
    for (const p of ['guestfish', 'qemu-system-x86_64', 'ssh-keygen']) expect([...programs], `${p} in the trace`).to.include(p);
    const leaks = traceLeaks(calls);
    console.log(`      strace: ${calls.length} execve calls (${[...programs].sort().join(', ')}) checked for ${leaks.length ? 'LEAKS' : 'no leak of'} the run's secrets`);
    expect(leaks, leaks.slice(0, 5).join('\n')).to.deep.equal([]);
  });

  it('refuses the image a running VM holds, naming it and saying it is in use; the image is unchanged', async () => {
    const m = report.machines.find((x) => x.name === 'in-use')!;
    expect(m.status).to.equal('failed');
    expect(m.error).to.include(path.join(imgs, 'in-use.qcow2'));
    expect(m.error).to.match(/is in use: another process .* holds qemu's "write" lock/);
    expect(await sha256File(path.join(imgs, 'in-use.qcow2'))).to.equal(inUseSha);
  });

  it('leaves the guests consistent: shadow intact behind links, links replaced, no temp files', async () => {
    const names = [...good, ...CASES.map((c) => c.name).filter((n) => n !== 'etc-link')];
    const session = await GuestfsSession.open({ drives: names.map((n) => ({ path: path.join(imgs, `${n}.qcow2`), format: 'qcow2', readonly: true })) });
    try {
      const shadowOf: Record<string, string> = {};
      for (const [i, n] of names.entries()) {
        await session.command('mount-ro', [`${driveDevice(i)}1`, '/']);
        const etc = await session.lines('ls', ['/etc']);
        expect(etc.filter((e) => e.includes('.ghostprep-')), n).to.deep.equal([]);
        shadowOf[n] = (await session.command('cat', ['/etc/shadow'])).toString();
        if (n === 'hostname-shadow' || n === 'hostname-host') {
          expect(await session.text('is-file', ['/etc/hostname', { opt: 'followsymlinks', value: false }]), n).to.equal('true');
          expect((await session.text('cat', ['/etc/hostname'])).trim(), n).to.equal(n);
        }
        if (n === 'machine-id-dotdot') expect((await session.text('cat', ['/etc/machine-id'])).trim()).to.match(/^[0-9a-f]{32}$/);
        await session.command('umount-all');
      }
      // shadow behind the hostname/machine-id links got the user added like any other, and no hostname in it
      for (const n of ['hostname-shadow', 'machine-id-dotdot']) {
        expect(shadowOf[n], n).to.match(/^root:\$6\$/);
        expect(shadowOf[n], n).to.include('ops:$6$trustSalt');
      }
    } finally {
      await session.close();
    }
  });
});
