/**
 * Secrets never leak. Scans every output the tests of this run kept (stdout,
 * stderr, report files, plan JSON, error messages, and the command line of
 * every ghostprep, guestfish, qemu, qemu-img and ssh-keygen process seen
 * while they ran; under `npm test`, every group's ghostprep runs too:
 * helpers/trust-counts.ts) for the generated private keys, the password
 * hashes and the LUKS encryption key. The scan runs in a root-level hook
 * after every test of the process (atEndOfRun), so it sees every file's
 * outputs whatever order the files ran in; under `npm test` its group,
 * trust-secrets, starts after every other group (scripts/test.mjs).
 *
 * Adds its own runs so that it also stands alone: plan/apply with -v on a
 * tree, a failing machine, and an encrypted library image restored with the
 * right and a wrong key. Also: the state dir is 0700 and private keys 0600,
 * and no source file passes a key on a command line. Each describe makes
 * its own runs in a `before` hook: no test depends on another having run.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { overlayOf, testImage } from '../helpers/images.js';
import { copyFixture, REPO, tempDir } from '../helpers/rootfs.js';
import { atEndOfRun, count, mergeSharedTrustRecords, truncatedWrites, type Captured } from '../helpers/trust-counts.js';
import { addSecret, addStateSecrets, captured, execveCalls, gp, recordFile, secrets, show, traceLeaks, type RunResult } from '../helpers/trust-run.js';
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
  after(() => rmSync(work, { recursive: true, force: true }));

  before(() => {
    addSecret('password hash of the profile', PASSWORD_HASH);
    addSecret('LUKS key', LUKS_KEY);
  });

  describe('plan and apply -v of two trees, one of them failing', () => {
    const trees = path.join(work, 'trees');
    const state = path.join(work, 'state');
    const runs: Record<string, RunResult> = {};
    let stateSecrets = 0;

    before(async () => {
      for (const n of ['s1', 's2']) copyFixture('debian12', path.join(trees, n));
      const args = [...writeInputs(work, ['s1', 's2']), '--target', `rootfs:${trees}/{name}`, '--state', state];
      runs.plan = await gp(['plan', ...args, '-v', '--detailed-exitcode'], { timeoutMs: 120_000 });
      const report = path.join(work, 'apply.json');
      runs.apply = await gp(['apply', ...args, '-v', '--report', report, '--known-hosts', path.join(work, 'known_hosts')], { timeoutMs: 120_000 });
      recordFile(report);
      recordFile(path.join(work, 'known_hosts'));
      stateSecrets = addStateSecrets(state);
      runs.json = await gp(['plan', ...args, '--json'], { timeoutMs: 120_000 });
      // a machine that fails mid-apply (its /etc/shadow is a FIFO): the error names the file, not its contents
      rmSync(path.join(trees, 's2/etc/shadow'));
      execFileSync('mkfifo', [path.join(trees, 's2/etc/shadow')]);
      runs.bad = await gp(['apply', ...args, '-v', '--json'], { timeoutMs: 120_000 });
    });

    it('plan, apply -v, plan again and a failing machine: keys and hashes stay in the state dir and the guest', () => {
      expect(runs.plan!.status, show(runs.plan!)).to.equal(2);
      expect(runs.apply!.status, show(runs.apply!)).to.equal(0);
      expect(stateSecrets, 'private keys in the state dir, added to the secrets').to.be.above(0);
      expect(readFileSync(path.join(trees, 's1/etc/shadow'), 'utf8')).to.include(PASSWORD_HASH); // it did reach the guest
      expect(runs.json!.status, show(runs.json!)).to.equal(0);
      expect(runs.bad!.timedOut, show(runs.bad!)).to.equal(false);
      expect(runs.bad!.status, show(runs.bad!)).to.equal(3);
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
  });

  describe('an encrypted capture, and restores with the right key (from a variable, from a file) and a wrong one, under strace', () => {
    // strace runs of the encrypted capture and restores: what they found
    const traces: Array<{ what: string; file: string; allowInFirst: string[] }> = [];
    const traceLeakList: string[] = [];
    const inheritedKeyVar: string[] = [];
    const runs: Record<string, RunResult> = {};

    before(async () => {
      const lib = path.join(work, 'lib');
      mkdirSync(lib);
      const keyFile = path.join(work, 'luks.key');
      writeFileSync(keyFile, LUKS_KEY, { mode: 0o600 });
      const master = await overlayOf(await testImage('ext4-gpt'), work, 'master');
      // every process these runs start (qemu-img convert with its secret object, guestfish, qemu) is traced
      const traced = (what: string, allowInFirst: string[] = []) => {
        const file = path.join(work, `${traces.length}.strace`);
        traces.push({ what, file, allowInFirst });
        return file;
      };
      runs.capture = await gp(['capture', '--target', master, '--library', lib, '--name', 'enc', '--encrypt-key-file', keyFile, '--force', '--json'], { timeoutMs: 600_000, trace: traced('capture --encrypt-key-file') });
      recordFile(path.join(lib, 'library.yaml'));
      runs.viaEnv = await gp(['restore', '--base', 'library:enc', '--library', lib, '--to', path.join(work, 'a.qcow2'), '--mode', 'copy', '--key-env', 'GP_TRUST_KEY', '-v'],
        { timeoutMs: 300_000, env: { GP_TRUST_KEY: LUKS_KEY }, trace: traced('restore --key-env', [`GP_TRUST_KEY=${LUKS_KEY}`]) });
      runs.viaFile = await gp(['restore', '--base', 'library:enc', '--library', lib, '--to', path.join(work, 'b.qcow2'), '--mode', 'copy', '--key-file', keyFile, '--json'], { timeoutMs: 300_000, trace: traced('restore --key-file') });
      const wrongKey = 'trust-WRONG-key-0123456789';
      addSecret('a wrong LUKS key', wrongKey);
      runs.wrong = await gp(['restore', '--base', 'library:enc', '--library', lib, '--to', path.join(work, 'c.qcow2'), '--mode', 'copy', '--key-env', 'GP_TRUST_KEY'],
        { timeoutMs: 300_000, env: { GP_TRUST_KEY: wrongKey }, trace: traced('restore with a wrong key', [`GP_TRUST_KEY=${wrongKey}`]) });
      for (const t of traces) {
        for (const l of traceLeaks(execveCalls(t.file), t.allowInFirst)) (/GP_TRUST_KEY=/.test(l) ? inheritedKeyVar : traceLeakList).push(`${t.what}: ${l}`);
      }
    });

    it('the runs do what they say: the capture is encrypted, the right key restores, a wrong key fails without echoing it', () => {
      expect(runs.capture!.status, show(runs.capture!)).to.equal(0);
      expect(JSON.parse(runs.capture!.stdout)).to.include({ name: 'enc', encrypted: true });
      expect(runs.viaEnv!.status, show(runs.viaEnv!)).to.equal(0);
      expect(runs.viaFile!.status, show(runs.viaFile!)).to.equal(0);
      expect(runs.wrong!.status).to.equal(1);
      expect(runs.wrong!.stderr).to.match(/key does not unlock/);
    });

    it('no child process carries the key in its argv or environment', () => {
      const seen: string[] = [];
      expect(traces, 'the four traced runs').to.have.length(4);
      for (const t of traces) {
        const calls = execveCalls(t.file);
        const programs = new Set(calls.map((c) => c.program));
        // the key went through qemu-img in every run: a trace without it would prove nothing
        expect([...programs], `${t.what}: qemu-img in the trace`).to.include('qemu-img');
        seen.push(`${t.what}: ${calls.length} (${[...programs].sort().join(' ')})`);
      }
      console.log(`      strace execve calls: ${seen.join('; ')}`);
      expect(traceLeakList, traceLeakList.slice(0, 5).join('\n')).to.deep.equal([]);
    });

    it('a key handed in a variable (--key-env) is not passed on in the environment of the processes ghostprep starts', () => {
      expect(traces, 'the four traced runs').to.have.length(4);
      // (it was, until the variable was taken out of the environment when first read: src/image/decrypt.ts)
      expect(inheritedKeyVar, inheritedKeyVar.slice(0, 3).join('\n')).to.deep.equal([]);
    });
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

});

/**
 * Every kept output of the run (every group's ghostprep runs under npm test)
 * scanned for every secret: after every test of this process, whatever order
 * the files ran in (a failure fails the run as this hook's).
 */
atEndOfRun('scan', () => {
  // under npm test the other groups ran in other processes: add their outputs and secrets
  const groups = mergeSharedTrustRecords();
  if (groups.length) console.log(`      with the outputs of the groups ${groups.join(', ')}`);
  const cmdlines = captured.filter((c) => c.label.startsWith('cmdline') || / cmdline of pid /.test(c.label));
  expect(secrets.size, 'secrets collected').to.be.above(10);
  expect(cmdlines.length, 'process command lines sampled').to.be.above(0);
  const leaks = findSecrets(captured, secrets);
  count('outputsScanned', captured.length);
  count('secretsChecked', secrets.size);
  const bytes = captured.reduce((n, c) => n + c.text.length, 0);
  console.log(`\n  secrets scan: ${captured.length} outputs (${(bytes / 1e6).toFixed(1)} MB, ${cmdlines.length} process command lines${truncatedWrites ? `, ${truncatedWrites} writes beyond the 8 MB cap of an output left out` : ''}) for ${secrets.size} secret strings`);
  expect(leaks, leaks.slice(0, 10).join('\n')).to.deep.equal([]);
});

/**
 * Every occurrence of a secret in the outputs. Needles are indexed by their
 * first 12 characters (every needle has at least 12), so each output is read
 * once whatever the number of secrets (thousands of key lines, megabytes of
 * plan output) instead of once per secret.
 */
function findSecrets(outputs: readonly Captured[], needles: ReadonlyMap<string, string>): string[] {
  const K = 12;
  const byPrefix = new Map<string, string[]>();
  for (const n of needles.keys()) byPrefix.set(n.slice(0, K), [...(byPrefix.get(n.slice(0, K)) ?? []), n]);
  const leaks: string[] = [];
  for (const c of outputs) {
    const t = c.text;
    for (let i = 0; i + K <= t.length; i++) {
      const candidates = byPrefix.get(t.slice(i, i + K));
      if (!candidates) continue;
      for (const n of candidates) if (t.startsWith(n, i)) leaks.push(`${needles.get(n)} in ${c.label}: …${t.slice(Math.max(0, i - 80), i + 20)}…`);
    }
  }
  return leaks;
}
