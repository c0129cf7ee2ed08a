import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { copyFixture, REPO, tempDir } from '../helpers/rootfs.js';
import { ghostprep } from '../helpers/cli.js';
import { lockTarget, targetLockFiles } from '../../src/util/file-lock.js';

const CLI = path.join(REPO, 'dist/src/cli/main.js');

/** Preloaded into a run: it stops itself (SIGSTOP) once it has written a target lock (`.NAME.ghostprep-lock`). */
const STOP_ON_TARGET_LOCK = `
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const open = fs.openSync, close = fs.closeSync, locks = new Set();
fs.openSync = function (file, flags, ...rest) {
  const fd = open.call(this, file, flags, ...rest);
  if (flags === 'wx' && String(file).endsWith('.ghostprep-lock')) locks.add(fd);
  return fd;
};
fs.closeSync = function (fd) {
  close.call(this, fd);
  if (locks.delete(fd)) process.kill(process.pid, 'SIGSTOP');
};
syncBuiltinESMExports();
`;

/** Resolves true once process `pid` is stopped (state T in /proc), false once it has ended. */
async function waitStopped(pid: number): Promise<boolean> {
  for (;;) {
    let stat: string;
    try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return false; }
    const state = /^\d+ \(.*\) (\S) /.exec(stat)?.[1];
    if (state === 'T') return true;
    if (state === 'Z') return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('e2e: concurrent runs on one machine are refused', function () {
  this.timeout(120_000);
  it('fails a machine locked by a live run or by another host, takes over a stale lock of this host, and releases its own', async () => {
    const work = tempDir('ghostprep-lock-');
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\n');
    writeFileSync(path.join(work, 'i.yaml'), 'defaults: {profile: p}\nmachines: [{name: a}, {name: b}, {name: c}, {name: d}]\n');
    for (const n of ['a', 'b', 'c', 'd']) copyFixture('alpine319', path.join(work, 'trees', n));
    const state = path.join(work, 'state');
    const holder = spawn('sleep', ['60']);
    try {
      mkdirSync(path.join(state, 'a'), { recursive: true, mode: 0o700 });
      writeFileSync(path.join(state, 'a/.lock'), `${holder.pid}\n`);
      mkdirSync(path.join(state, 'b'), { recursive: true, mode: 0o700 });
      writeFileSync(path.join(state, 'b/.lock'), '999999\n'); // no such process: stale
      // a state dir shared by several hosts (Slurm shards): a pid of another host means nothing here
      mkdirSync(path.join(state, 'c'), { recursive: true, mode: 0o700 });
      writeFileSync(path.join(state, 'c/.lock'), '999999 other-node.example\n');
      mkdirSync(path.join(state, 'd'), { recursive: true, mode: 0o700 });
      writeFileSync(path.join(state, 'd/.lock'), `999999 ${os.hostname()}\n`); // this host, gone: stale
      const args = ['apply', '-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml'), '--target', `rootfs:${work}/trees/{name}`, '--state', state, '--json'];
      const r = ghostprep(args);
      expect(r.status).to.equal(3);
      const rep = JSON.parse(r.stdout);
      expect(rep.machines[0].error).to.match(/being changed by another ghostprep run \(pid \d+/);
      expect(rep.machines[1].status).to.equal('ok');
      expect(existsSync(path.join(state, 'b/.lock'))).to.equal(false);
      expect(rep.machines[2].error).to.match(/being changed by another ghostprep run \(pid 999999 on host other-node\.example, lock .*c\/\.lock; remove it if that run is over\)/);
      expect(existsSync(path.join(state, 'c/.lock')), 'another host\'s lock is left alone').to.equal(true);
      expect(rep.machines[3].status).to.equal('ok');
      expect(existsSync(path.join(state, 'd/.lock'))).to.equal(false);
    } finally {
      holder.kill();
    }
  });
});

describe('e2e: two real runs on one target with different --state dirs', function () {
  this.timeout(300_000);
  it('one applies, the other is refused naming the target lock, and the tree ends exactly as the first run made it', async () => {
    const work = tempDir('ghostprep-target-lock-');
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\nssh: {hostKeys: [ed25519, ecdsa]}\n');
    writeFileSync(path.join(work, 'i.yaml'), 'defaults: {profile: p}\nmachines: [{name: a}]\n');
    const trees = path.join(work, 'trees');
    copyFixture('alpine319', path.join(trees, 'a'));
    const lock = path.join(trees, '.a.ghostprep-lock');
    const args = (state: string) => ['apply', '-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml'), '--target', `rootfs:${trees}/{name}`, '--state', state, '--json'];
    // Run A stops itself (SIGSTOP) right after it has written its target lock: a preloaded module
    // wraps the lock file's open and close, so that run B meets the lock for certain, whatever the
    // speed or the load of this host.
    const stopper = path.join(work, 'stop-on-target-lock.mjs');
    writeFileSync(stopper, STOP_ON_TARGET_LOCK);
    const stateA = path.join(work, 'state-a');
    const stateB = path.join(work, 'state-b');
    const a = spawn(process.execPath, ['--import', pathToFileURL(stopper).href, CLI, ...args(stateA)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let outA = '';
    a.stdout.setEncoding('utf8').on('data', (d: string) => (outA += d));
    a.stderr.setEncoding('utf8').on('data', (d: string) => (outA += d));
    const exitA = new Promise<number | null>((resolve) => a.on('close', (code) => resolve(code)));
    const stopped = await Promise.race([exitA.then(() => false), waitStopped(a.pid!)]);
    expect(stopped, `run A ended without stopping at its target lock: ${outA}`).to.equal(true);
    expect(readFileSync(lock, 'utf8')).to.match(new RegExp(`^${a.pid} `));
    let b: ReturnType<typeof ghostprep>;
    try {
      b = ghostprep(args(stateB));
    } finally {
      a.kill('SIGCONT');
    }
    expect(await exitA, outA).to.equal(0);
    expect(b.status, b.stderr).to.equal(1);
    const rep = JSON.parse(b.stdout) as { machines: Array<{ status: string; error: string }> };
    expect(rep.machines[0]!.status).to.equal('failed');
    expect(rep.machines[0]!.error).to.equal(`target ${path.join(trees, 'a')} is being changed by another ghostprep run (pid ${a.pid}, lock ${lock})`);
    // B generated nothing for the machine it was refused (no keys, no machine-id in its state)
    expect(existsSync(path.join(stateB, 'a', 'machine-id'))).to.equal(false);
    expect(existsSync(path.join(stateB, 'a', 'ssh'))).to.equal(false);
    // the tree is A's: its identity, and a plan with A's state finds nothing to change
    expect(readFileSync(path.join(trees, 'a', 'etc/machine-id'), 'utf8')).to.equal(readFileSync(path.join(stateA, 'a', 'machine-id'), 'utf8'));
    expect(readFileSync(path.join(trees, 'a', 'etc/ssh/ssh_host_ed25519_key'), 'utf8')).to.equal(readFileSync(path.join(stateA, 'a', 'ssh/ssh_host_ed25519_key'), 'utf8'));
    const plan = ghostprep(['plan', ...args(stateA).slice(1, -1), '--detailed-exitcode']);
    expect(plan.status, plan.stdout + plan.stderr).to.equal(0);
    expect(existsSync(lock), 'released at exit').to.equal(false);
    // and the refused run, once A is over, applies (its own identity): nothing was left locked
    const again = ghostprep(args(stateB));
    expect(again.status, again.stderr).to.equal(0);
    rmSync(work, { recursive: true, force: true });
  });

  it('takes over a target lock left by a run that is gone, and refuses one held by a live process', () => {
    const work = tempDir('ghostprep-target-lock2-');
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\n');
    writeFileSync(path.join(work, 'i.yaml'), 'defaults: {profile: p}\nmachines: [{name: a}, {name: b}]\n');
    for (const n of ['a', 'b']) copyFixture('alpine319', path.join(work, 'trees', n));
    const holder = spawn('sleep', ['60']);
    try {
      writeFileSync(path.join(work, 'trees/.a.ghostprep-lock'), `${holder.pid} ${os.hostname()}\n`);
      writeFileSync(path.join(work, 'trees/.b.ghostprep-lock'), `999999 ${os.hostname()}\n`);
      const r = ghostprep(['apply', '-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml'), '--target', `rootfs:${work}/trees/{name}`, '--state', path.join(work, 'state'), '--json']);
      expect(r.status, r.stderr).to.equal(3);
      const rep = JSON.parse(r.stdout) as { machines: Array<{ status: string; error: string | null }> };
      expect(rep.machines[0]!.error).to.equal(`target ${work}/trees/a is being changed by another ghostprep run (pid ${holder.pid}, lock ${work}/trees/.a.ghostprep-lock)`);
      expect(rep.machines[1]!.status).to.equal('ok');
      expect(existsSync(path.join(work, 'trees/.b.ghostprep-lock'))).to.equal(false);
      expect(readFileSync(path.join(work, 'trees/.a.ghostprep-lock'), 'utf8'), 'a live holder\'s lock is left alone').to.equal(`${holder.pid} ${os.hostname()}\n`);
    } finally {
      holder.kill();
      rmSync(work, { recursive: true, force: true });
    }
  });

  it('locks a block device, and a target whose parent takes no file, in the host lock directory', () => {
    const dev = targetLockFiles('device', '/dev/loop7');
    expect(dev.beside).to.equal(undefined);
    expect(dev.hostLocal).to.match(/^\/run\/lock\/ghostprep-target-loop7-[0-9a-f]{16}\.lock$|ghostprep-target-loop7-/);
    const ro = tempDir('ghostprep-target-lock-ro-');
    mkdirSync(path.join(ro, 'tree'));
    let mounted = false;
    try {
      try { execFileSync('mount', ['--bind', '-o', 'ro', ro, ro], { stdio: 'ignore' }); mounted = true; } catch { /* cannot mount here */ }
      if (!mounted) { console.log('      (read-only parent not tried: this host cannot bind-mount)'); return; }
      const release = lockTarget('rootfs', path.join(ro, 'tree'));
      const files = targetLockFiles('rootfs', path.join(ro, 'tree'));
      try {
        expect(existsSync(files.hostLocal), files.hostLocal).to.equal(true);
        expect(readFileSync(files.hostLocal, 'utf8')).to.equal(`${process.pid} ${os.hostname()}\n`);
      } finally {
        release();
      }
      expect(existsSync(files.hostLocal)).to.equal(false);
    } finally {
      if (mounted) execFileSync('umount', [ro]);
      rmSync(ro, { recursive: true, force: true });
    }
  });
});
