/**
 * Secrets never leak. Runs last in the trust suite (file order; under
 * `npm test`, after the other trust groups, whose outputs it reads back:
 * helpers/trust-counts.ts): scans every output the trust tests kept (stdout, stderr, report files, plan JSON, error
 * messages, and the command line of every ghostprep, guestfish, qemu,
 * qemu-img and ssh-keygen process seen while they ran) for the generated
 * private keys, the password hashes and the LUKS encryption key. Adds its own
 * runs so that it also stands alone: plan/apply with -v on a tree, a failing
 * machine, and an encrypted library image restored with the right and a
 * wrong key. Also: the state dir is 0700 and private keys 0600, and no source
 * file passes a key on a command line.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { addEntry } from '../../src/image/library.js';
import { sha256File } from '../../src/image/checksum.js';
import { testImage } from '../helpers/images.js';
import { copyFixture, REPO, tempDir } from '../helpers/rootfs.js';
import { count, mergeSharedTrustRecords } from '../helpers/trust-counts.js';
import { addSecret, addStateSecrets, captured, gp, recordFile, secrets, show } from '../helpers/trust-run.js';
import { PASSWORD_HASH, writeInputs } from './profile.js';

const LUKS_KEY = 'trust-luks-Kx81vQ2pLm7Zr4tW9yB3';

function walk(dir: string, visit: (p: string, isDir: boolean) => void): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    visit(p, e.isDirectory());
    if (e.isDirectory()) walk(p, visit);
  }
}

describe('trust: secrets never leak', function () {
  this.timeout(900_000);
  const work = tempDir('ghostprep-trust-secrets-');
  const state = path.join(work, 'state');
  let args: string[];

  before(() => {
    addSecret('password hash of the profile', PASSWORD_HASH);
    addSecret('LUKS key', LUKS_KEY);
    for (const n of ['s1', 's2']) copyFixture('debian12', path.join(work, 'trees', n));
    args = [...writeInputs(work, ['s1', 's2']), '--target', `rootfs:${work}/trees/{name}`, '--state', state];
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  it('plan, apply -v, plan again and a failing machine: keys and hashes stay in the state dir and the guest', async () => {
    const plan = await gp(['plan', ...args, '-v', '--detailed-exitcode'], { timeoutMs: 120_000 });
    expect(plan.status, show(plan)).to.equal(2);
    const report = path.join(work, 'apply.json');
    const apply = await gp(['apply', ...args, '-v', '--report', report, '--known-hosts', path.join(work, 'known_hosts')], { timeoutMs: 120_000 });
    expect(apply.status, show(apply)).to.equal(0);
    recordFile(report);
    recordFile(path.join(work, 'known_hosts'));
    expect(addStateSecrets(state)).to.be.above(0);
    expect(readFileSync(path.join(work, 'trees/s1/etc/shadow'), 'utf8')).to.include(PASSWORD_HASH); // it did reach the guest
    const json = await gp(['plan', ...args, '--json'], { timeoutMs: 120_000 });
    expect(json.status, show(json)).to.equal(0);
    // a machine that fails mid-apply (its /etc/shadow is a FIFO): the error names the file, not its contents
    rmSync(path.join(work, 'trees/s2/etc/shadow'));
    execFileSync('mkfifo', [path.join(work, 'trees/s2/etc/shadow')]);
    const bad = await gp(['apply', ...args, '-v', '--json'], { timeoutMs: 120_000 });
    expect(bad.timedOut, show(bad)).to.equal(false);
    expect(bad.status, show(bad)).to.equal(3);
  });

  it('state dir 0700, per-machine dirs 0700, private keys 0600 (public 0644)', () => {
    expect(statSync(state).mode & 0o777).to.equal(0o700);
    let keys = 0;
    walk(state, (p, isDir) => {
      const mode = statSync(p).mode & 0o777;
      if (isDir) expect(mode, p).to.equal(0o700);
      else if (/_key$/.test(p)) { expect(mode, p).to.equal(0o600); keys++; }
      else if (/\.pub$/.test(p)) expect(mode, p).to.equal(0o644);
      else expect(mode & 0o077, `${p} readable by others`).to.equal(0);
    });
    expect(keys).to.equal(4); // 2 machines x ed25519, ecdsa
  });

  it('an encrypted library image restores with the key from a variable or a file; a wrong key fails without echoing it', async () => {
    const lib = path.join(work, 'lib');
    mkdirSync(lib);
    const keyFile = path.join(work, 'luks.key');
    writeFileSync(keyFile, LUKS_KEY, { mode: 0o600 });
    const enc = path.join(lib, 'enc.qcow2');
    execFileSync('qemu-img', ['convert', '--object', `secret,id=k,file=${keyFile}`, '-f', 'qcow2', '-O', 'qcow2',
      '-o', 'encrypt.format=luks,encrypt.key-secret=k,encrypt.iter-time=10', await testImage('ext4-gpt'), enc]);
    await addEntry(lib, { name: 'enc', file: 'enc.qcow2', format: 'qcow2', virtualSize: 0, sha256: await sha256File(enc), compression: 'none', encrypted: true, created: new Date().toISOString(), sealed: true, source: 'test', notes: '' });
    const viaEnv = await gp(['restore', '--base', 'library:enc', '--library', lib, '--to', path.join(work, 'a.qcow2'), '--mode', 'copy', '--key-env', 'GP_TRUST_KEY', '-v'], { timeoutMs: 300_000, env: { GP_TRUST_KEY: LUKS_KEY } });
    expect(viaEnv.status, show(viaEnv)).to.equal(0);
    const viaFile = await gp(['restore', '--base', 'library:enc', '--library', lib, '--to', path.join(work, 'b.qcow2'), '--mode', 'copy', '--key-file', keyFile, '--json'], { timeoutMs: 300_000 });
    expect(viaFile.status, show(viaFile)).to.equal(0);
    const wrongKey = 'trust-WRONG-key-0123456789';
    addSecret('a wrong LUKS key', wrongKey);
    const wrong = await gp(['restore', '--base', 'library:enc', '--library', lib, '--to', path.join(work, 'c.qcow2'), '--mode', 'copy', '--key-env', 'GP_TRUST_KEY'], { timeoutMs: 300_000, env: { GP_TRUST_KEY: wrongKey } });
    expect(wrong.status).to.equal(1);
    expect(wrong.stderr).to.match(/key does not unlock/);
  });

  it('no source file puts a key on a command line (qemu secrets come from files)', () => {
    const problems: string[] = [];
    walk(path.join(REPO, 'src'), (p, isDir) => {
      if (isDir || !p.endsWith('.ts')) return;
      const text = readFileSync(p, 'utf8');
      for (const [i, line] of text.split('\n').entries()) {
        if (/secret,id=[^`'"]*,data=/.test(line)) problems.push(`${p}:${i + 1}: qemu secret passed as data= on the command line`);
        if (/'--object'/.test(line) && /secret/.test(line) && !/file=/.test(line)) problems.push(`${p}:${i + 1}: secret object without file=`);
        if (/execa\('ssh-keygen'/.test(line) && !/stdin: 'ignore'/.test(line)) problems.push(`${p}:${i + 1}: ssh-keygen with a passphrase source`);
        if (/(passwordHash|privateKey|passphrase)[^\n]*\b(args|argv)\.push/.test(line)) problems.push(`${p}:${i + 1}: secret pushed onto an argument list`);
      }
    });
    expect(problems, problems.join('\n')).to.deep.equal([]);
    // ssh-keygen runs with an empty passphrase (-N '') and no key material in its arguments
    expect(readFileSync(path.join(REPO, 'src/identity/ssh-keys.ts'), 'utf8')).to.match(/'-N', ''/);
  });

  it('scans every kept output of the trust suite for every secret', () => {
    // under npm test the other trust files ran in other processes: add their outputs and secrets
    const groups = mergeSharedTrustRecords();
    if (groups.length) console.log(`      with the outputs of the trust groups ${groups.join(', ')}`);
    const cmdlines = captured.filter((c) => c.label.startsWith('cmdline'));
    expect(secrets.size, 'secrets collected').to.be.above(10);
    expect(cmdlines.length, 'process command lines sampled').to.be.above(0);
    const leaks: string[] = [];
    for (const c of captured) {
      for (const [needle, what] of secrets) {
        if (c.text.includes(needle)) leaks.push(`${what} in ${c.label}: …${c.text.slice(Math.max(0, c.text.indexOf(needle) - 80), c.text.indexOf(needle) + 20)}…`);
      }
    }
    count('outputsScanned', captured.length);
    count('secretsChecked', secrets.size);
    console.log(`      scanned ${captured.length} outputs (${cmdlines.length} process command lines) for ${secrets.size} secret strings`);
    expect(leaks, leaks.slice(0, 10).join('\n')).to.deep.equal([]);
  });
});
