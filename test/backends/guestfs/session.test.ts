/**
 * GuestfsSession against a real appliance: the framing of outputs and errors
 * whatever the content (property-based), error recovery, timeouts, missing
 * tool, and no orphaned qemu after SIGTERM of Node. The round-trip time of a
 * command is measured in `npm run bench`, not here.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { GuestfsError, GuestfsSession } from '../../../src/backends/guestfs/session.js';
import { MissingToolError } from '../../../src/util/errors.js';
import { overlayOf, REPO_ROOT, tempDir, testImage } from '../../helpers/images.js';
import { sharedExt4Appliance } from '../../helpers/ext4-appliance.js';

/** True while any process of the group lives. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGroupGone(pgid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!groupAlive(pgid)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return !groupAlive(pgid);
}

describe('GuestfsSession (real guestfish)', function () {
  this.timeout(300_000);
  let dir: string;
  let session: GuestfsSession;

  before(async () => {
    dir = await tempDir();
    // One drive of the appliance shared with guest.test and partition-table.test (helpers/ext4-appliance.ts),
    // which the timeout case below kills: the last use of it in the group. The SIGTERM case needs an
    // appliance of its own, in a child process that gets the signal.
    const shared = await sharedExt4Appliance();
    session = shared.session;
    await session.command('mount', [`${shared.device('session')}1`, '/']);
  });

  after(async () => {
    if (session?.alive) await session.command('umount-all');
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('frames every command\'s output and error, whatever the guest content: forged sentinels, error-like text, any bytes (fast-check)', async () => {
    // What is tested is GuestfsSession's protocol (quoting, the stdout/stderr sentinels, the queue),
    // not guestfish: each command's result must be exactly its own, in call order, with outputs
    // that look like sentinels of another session, like guestfish errors, or hold any byte but NUL.
    const otherNonce = 'GP' + 'ab'.repeat(16);
    const content = fc.oneof(
      fc.uint8Array({ minLength: 0, maxLength: 600 }).map((a) => Buffer.from(a.map((b) => b || 1))),
      fc.nat(40).map((seq) => Buffer.from(`${otherNonce}:${seq}\n`)),
      fc.nat(40).map((seq) => Buffer.from(`${otherNonce}_${seq}: unknown command\nlibguestfs: error: cat: /x: No such file or directory\n`)),
      fc.string({ maxLength: 80 }).map((t) => Buffer.from(`*stdin*:1: ${t.replace(/\0/g, '')}\n`)),
    );
    let runs = 0;
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(content, fc.boolean()), { minLength: 1, maxLength: 4 }), async (steps) => {
      runs++;
      // all commands queued at once: the queue must keep them apart
      const results = await Promise.all(steps.flatMap(([bytes, failBetween], i) => [
        session.command('write', [`/tmp/p${i}`, bytes]).then(() => 'written'),
        failBetween ? session.command('cat', [`/no/such/${i}`]).then(() => 'no error', (e: unknown) => (e as GuestfsError).stderr) : Promise.resolve('skipped'),
        session.command('pread', [`/tmp/p${i}`, bytes.length + 10, 0]),
      ]));
      for (const [i, [bytes, failBetween]] of steps.entries()) {
        expect(results[3 * i]).to.equal('written');
        if (failBetween) expect(results[3 * i + 1]).to.match(/No such file or directory/).and.not.match(new RegExp(`/no/such/(?!${i}\\b)`));
        expect(Buffer.compare(results[3 * i + 2] as Buffer, bytes), `content ${i}: ${bytes.toString('hex').slice(0, 80)}`).to.equal(0);
      }
    }), {
      numRuns: 30, seed: 20261207,
      // quotes, backslash, $, CR, LF, DEL and bytes above 0x7f, each quoted by quoteArg
      examples: [[[[Buffer.from([0x01, 0xff, 0x0a, 0x22, 0x5c, 0x24, 0x0d, 0x80, 0x7f]), true]]]],
    });
    expect(runs, 'the example and the generated cases').to.equal(30);
    expect(session.alive).to.equal(true);
    // output bigger than a pipe's buffer (64 KiB) arrives in many chunks: still one result
    const big = Buffer.alloc(300_000, 'x');
    const file = path.join(dir, 'big');
    await fs.writeFile(file, big);
    await session.command('upload', [file, '/tmp/big']);
    expect((await session.command('read-file', ['/tmp/big'])).equals(big)).to.equal(true);
  });

  it('turns a failing command into a GuestfsError and goes on', async () => {
    const err = await session.command('cat', ['/no/such/file']).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(GuestfsError);
    const ge = err as GuestfsError;
    expect(ge.notFound).to.equal(true);
    expect(ge.command).to.equal('cat "/no/such/file"');
    expect(ge.message).to.match(/No such file or directory/);
    expect(session.alive).to.equal(true);
    expect(await session.text('echo', ['still here'])).to.equal('still here');
  });

  it('kills the appliance when a command times out', async () => {
    const pid = session.pid!;
    const err = await session.command('sleep', [5], { timeoutMs: 300 }).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(GuestfsError);
    expect((err as Error).message).to.match(/timed out/);
    expect(session.alive).to.equal(false);
    expect(await waitGroupGone(pid, 10_000)).to.equal(true);
    const after = await session.command('echo', ['x']).then(() => null, (e: unknown) => e);
    expect((after as Error).message).to.match(/session closed/);
  });

  it('throws MissingToolError (exit code 4) when guestfish is not installed', async () => {
    const err = await GuestfsSession.open({ env: { PATH: '/nonexistent' } }).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(MissingToolError);
    expect((err as MissingToolError).exitCode).to.equal(4);
    expect((err as Error).message).to.match(/apt-get install libguestfs-tools/);
  });

  it('leaves no qemu behind when the Node process gets SIGTERM', async () => {
    // The signal comes while the appliance boots: its process group (guestfish, qemu, libguestfs's
    // recovery process) is the one a launched appliance has, and the handler is installed when the
    // session starts guestfish. Waiting for the launch to end would only add a TCG boot.
    const img = await overlayOf(await testImage('ext4-gpt'), dir, 'sigterm');
    const script = path.join(dir, 'child.mjs');
    const mod = path.join(REPO_ROOT, 'dist/src/backends/guestfs/session.js');
    await fs.writeFile(script, `import { readdirSync, readFileSync } from 'node:fs';
import { GuestfsSession } from ${JSON.stringify(mod)};
// writable: qemu is given the image itself (a read-only drive is given an overlay of it)
GuestfsSession.open({ drives: [{ path: ${JSON.stringify(img)}, format: 'qcow2', readonly: false }] }).catch((e) => { console.error(String(e)); process.exit(9); });
// [pid, ppid, pgrp, comm, cmdline] of every process
const procs = () => readdirSync('/proc').filter((p) => /^\\d+$/.test(p)).flatMap((p) => {
  try {
    const s = readFileSync('/proc/' + p + '/stat', 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return [[Number(p), Number(f[1]), Number(f[2]), s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), readFileSync('/proc/' + p + '/cmdline', 'latin1')]];
  } catch { return []; }
});
// guestfish (our child) once the appliance's qemu (the one given the drive, not a probe of qemu's
// features) runs in its process group
const timer = setInterval(() => {
  const all = procs();
  const fish = all.find(([, ppid, , comm]) => ppid === process.pid && comm === 'guestfish');
  if (fish && all.some(([, , pgrp, comm, cmd]) => pgrp === fish[0] && /qemu/.test(comm) && cmd.includes(${JSON.stringify(img)}))) {
    clearInterval(timer);
    console.log('PID ' + fish[0]);
  }
}, 20);
setInterval(() => {}, 1000);
`);
    const child = execa('node', [script], { reject: false, buffer: false });
    const pid = await new Promise<number>((resolve, reject) => {
      child.stdout?.on('data', (d: Buffer) => {
        const m = /PID (\d+)/.exec(d.toString());
        if (m) resolve(Number(m[1]));
      });
      child.then((r) => reject(new Error(`child exited early: ${r.exitCode}`)), reject);
    });
    const { stdout } = await execa('ps', ['-ww', '-o', 'comm=,args=', '-g', String(pid)]);
    expect(stdout.split('\n').filter((l) => /^qemu/.test(l) && l.includes(img)), stdout).to.have.length(1);
    child.kill('SIGTERM');
    const r = await child;
    expect(r.signal).to.equal('SIGTERM'); // our handler re-raised the signal: default death
    expect(await waitGroupGone(pid, 15_000)).to.equal(true);
  });
});
