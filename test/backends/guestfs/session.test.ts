/**
 * GuestfsSession against a real appliance: round trips, error recovery,
 * timeouts, missing tool, and no orphaned qemu after SIGTERM of Node.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { GuestfsError, GuestfsSession } from '../../../src/backends/guestfs/session.js';
import { MissingToolError } from '../../../src/util/errors.js';
import { overlayOf, REPO_ROOT, tempDir, testImage } from '../../helpers/images.js';

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
    const img = await overlayOf(await testImage('ext4-gpt'), dir, 'session');
    session = await GuestfsSession.open({ drives: [{ path: img, format: 'qcow2', readonly: false }] });
    await session.command('mount', ['/dev/sda1', '/']);
  });

  after(async () => {
    await session?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  it('round-trips many commands on one appliance', async () => {
    // (how fast: npm run bench; a timing is no pass/fail criterion)
    for (let i = 0; i < 50; i++) expect(await session.text('echo', [`hello ${i}`])).to.equal(`hello ${i}`);
    for (let i = 0; i < 50; i++) expect(await session.fields('lstatns', ['/etc'])).to.have.property('st_mode');
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

  it('transfers arbitrary bytes through write and pread', async () => {
    const bytes = Buffer.from([0x01, 0xff, 0x0a, 0x22, 0x5c, 0x24, 0x0d, 0x80, 0x7f]);
    await session.command('write', ['/tmp/bytes', bytes]);
    expect((await session.command('pread', ['/tmp/bytes', 100, 0])).equals(bytes)).to.equal(true);
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
    const img = await overlayOf(await testImage('ext4-gpt'), dir, 'sigterm');
    const script = path.join(dir, 'child.mjs');
    const mod = path.join(REPO_ROOT, 'dist/src/backends/guestfs/session.js');
    await fs.writeFile(script, `import { GuestfsSession } from ${JSON.stringify(mod)};
const s = await GuestfsSession.open({ drives: [{ path: ${JSON.stringify(img)}, format: 'qcow2', readonly: true }] });
console.log('PID ' + s.pid);
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
    const { stdout } = await execa('ps', ['-o', 'comm=', '-g', String(pid)]);
    expect(stdout).to.match(/qemu/);
    child.kill('SIGTERM');
    const r = await child;
    expect(r.signal).to.equal('SIGTERM'); // our handler re-raised the signal: default death
    expect(await waitGroupGone(pid, 15_000)).to.equal(true);
  });
});
