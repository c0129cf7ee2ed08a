/**
 * `npm test`'s dependency step (scripts/test-deps.mjs): which Debian packages
 * are missing, what is done about them, and the one message when nothing can
 * be. The decisions take dpkg-query's output and the facts of the machine as
 * arguments; main() runs against stand-in dpkg-query and apt-get commands.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO, tempDir } from '../helpers/rootfs.js';

interface TestDeps {
  LISTS_DIR: string;
  parsePackageLists(texts: string[]): string[];
  readPackageLists(dir?: string): string[];
  installedPackages(dpkgOutput: string): Set<string>;
  missingPackages(wanted: string[], installed: Set<string>): string[];
  decide(facts: { missing: string[]; root: boolean; debian: boolean }): { action: 'ready' | 'install' | 'refuse'; message?: string };
  refusal(missing: string[], why: 'not-root' | 'not-debian'): string;
}
const SCRIPT = path.join(REPO, 'scripts/test-deps.mjs');
const deps = (): Promise<TestDeps> => import(pathToFileURL(SCRIPT).href) as Promise<TestDeps>;

describe('test dependencies: which packages are missing', () => {
  it('lists: one package a word, # comments and blank lines skipped, each package once in first-seen order', async () => {
    const { parsePackageLists } = await deps();
    expect(parsePackageLists(['# boot\ndebootstrap\nqemu-utils\n\n', 'qemu-utils   # again\nntfs-3g   # mkntfs\n  strace  \n'])).to.deep.equal(['debootstrap', 'qemu-utils', 'ntfs-3g', 'strace']);
  });
  it('the lists in .ci/apt-packages.d name the packages .ci/run used to install', async () => {
    const { readPackageLists } = await deps();
    const all = readPackageLists();
    expect(all).to.include.members(['openssh-client', 'debootstrap', 'libguestfs-tools', 'slurm-wlm', 'munge', 'strace', 'ntfs-3g', 'libhivex-bin']);
    expect(all.every((p) => /^[a-z0-9][a-z0-9+.-]+$/.test(p)), all.join(' ')).to.equal(true);
  });
  it('installed means dpkg status "install ok installed"; config-files, half-installed and unknown packages are missing', async () => {
    const { installedPackages, missingPackages } = await deps();
    const output = [
      'debootstrap\tinstall ok installed',
      'munge\tdeinstall ok config-files',
      'strace\tinstall reinstreq half-installed',
      'libfoo:amd64\tinstall ok installed',
      'libfoo:i386\tdeinstall ok not-installed',
      '',
    ].join('\n');
    const installed = installedPackages(output);
    expect([...installed].sort()).to.deep.equal(['debootstrap', 'libfoo']);
    expect(missingPackages(['strace', 'debootstrap', 'munge', 'slurm-wlm', 'libfoo'], installed)).to.deep.equal(['strace', 'munge', 'slurm-wlm']);
  });
});

describe('test dependencies: what is done', () => {
  it('nothing missing: ready, whoever runs it', async () => {
    const { decide } = await deps();
    for (const root of [true, false]) for (const debian of [true, false]) expect(decide({ missing: [], root, debian })).to.deep.equal({ action: 'ready' });
  });
  it('root on Debian installs; not root, or not Debian, refuses with one message', async () => {
    const { decide, refusal } = await deps();
    expect(decide({ missing: ['munge'], root: true, debian: true })).to.deep.equal({ action: 'install' });
    expect(decide({ missing: ['munge', 'strace'], root: false, debian: true })).to.deep.equal({ action: 'refuse', message: refusal(['munge', 'strace'], 'not-root') });
    expect(decide({ missing: ['munge'], root: true, debian: false })).to.deep.equal({ action: 'refuse', message: refusal(['munge'], 'not-debian') });
  });
  it('the message lists the missing packages and the command that installs them', async () => {
    const { refusal } = await deps();
    expect(refusal(['slurm-wlm', 'munge'], 'not-root')).to.equal([
      'npm test: 2 Debian packages the tests need are missing: slurm-wlm munge',
      'Install them as root (npm test does so itself when run as root):',
      '  sudo apt-get update && sudo apt-get install --no-install-recommends slurm-wlm munge',
      'GHOSTPREP_TEST_DEPS=skip npm test runs the tests without this check (those that need a missing package fail).',
    ].join('\n'));
    expect(refusal(['strace'], 'not-debian')).to.equal([
      'npm test: 1 Debian package the tests need is missing: strace',
      'This machine has no dpkg/apt-get: on Debian or Ubuntu, as root, install it with',
      '  apt-get update && apt-get install --no-install-recommends strace',
      'or install the equivalent packages with this system\'s package manager.',
      'GHOSTPREP_TEST_DEPS=skip npm test runs the tests without this check (those that need a missing package fail).',
    ].join('\n'));
  });
});

describe('test dependencies: the pretest step against stand-in dpkg-query and apt-get', () => {
  const root = process.getuid?.() === 0;
  let wanted: string[] = [];
  before(async () => { wanted = (await deps()).readPackageLists(); });

  /** A bin dir with a dpkg-query that reports STATE/installed and an apt-get that logs its calls and installs into it. */
  function machine(installed: readonly string[]): { state: string; run: (env?: Record<string, string>, asUser?: number) => { status: number | null; stderr: string }; aptCalls: () => string[] } {
    const state = tempDir('ghostprep-test-deps-');
    const bin = path.join(state, 'bin');
    mkdirSync(bin);
    writeFileSync(path.join(state, 'installed'), installed.map((p) => `${p}\n`).join(''));
    writeFileSync(path.join(bin, 'dpkg-query'), `#!/bin/sh
shift 2; st=0
for p in "$@"; do
  if grep -qx "$p" "$STATE/installed"; then printf '%s\\tinstall ok installed\\n' "$p"; else echo "dpkg-query: no packages found matching $p" >&2; st=1; fi
done
exit $st
`);
    writeFileSync(path.join(bin, 'apt-get'), `#!/bin/sh
echo "$DEBIAN_FRONTEND $*" >> "$STATE/apt.log"
if [ "$1" = install ]; then for p in "$@"; do case "$p" in install|-*) ;; *) echo "$p" >> "$STATE/installed";; esac; done; fi
`);
    for (const f of ['dpkg-query', 'apt-get']) chmodSync(path.join(bin, f), 0o755);
    const run = (env: Record<string, string> = {}, asUser?: number) => {
      const r = spawnSync(process.execPath, [SCRIPT], {
        encoding: 'utf8', env: { ...process.env, STATE: state, PATH: `${bin}:/usr/bin:/bin`, GHOSTPREP_TEST_DEPS: '', ...env },
        ...(asUser !== undefined ? { uid: asUser, gid: asUser } : {}),
      });
      return { status: r.status, stderr: r.stderr };
    };
    const aptCalls = () => (existsSync(path.join(state, 'apt.log')) ? readFileSync(path.join(state, 'apt.log'), 'utf8').trim().split('\n') : []);
    return { state, run, aptCalls };
  }

  it('everything installed: exit 0 at once, apt-get not called', () => {
    const m = machine(wanted);
    expect(m.run()).to.deep.equal({ status: 0, stderr: '' });
    expect(m.aptCalls()).to.deep.equal([]);
  });
  it('as root, some missing: apt-get update, then install of exactly the missing ones, noninteractive', function () {
    if (!root) this.skip();
    const m = machine(wanted.filter((p) => p !== 'munge' && p !== 'strace'));
    const r = m.run();
    expect(r.status, r.stderr).to.equal(0);
    expect(m.aptCalls()).to.deep.equal(['noninteractive update -qq', 'noninteractive install -y -qq --no-install-recommends munge strace']);
    expect(m.run()).to.deep.equal({ status: 0, stderr: '' }); // and the next run finds them
  });
  it('as root, nothing installed: everything is installed', function () {
    if (!root) this.skip();
    const m = machine([]);
    expect(m.run().status).to.equal(0);
    expect(m.aptCalls()).to.deep.equal(['noninteractive update -qq', `noninteractive install -y -qq --no-install-recommends ${wanted.join(' ')}`]);
  });
  it('not root, some missing: the one message, exit 1, apt-get not called', async () => {
    const { refusal } = await deps();
    const m = machine(wanted.filter((p) => p !== 'munge'));
    // as root, the run is made as nobody (uid 65534), who may read the stand-ins but change nothing
    for (const p of [m.state, path.join(m.state, 'bin')]) chmodSync(p, 0o755);
    chmodSync(path.join(m.state, 'installed'), 0o644);
    const r = m.run({}, root ? 65534 : undefined);
    expect(r).to.deep.equal({ status: 1, stderr: `${refusal(['munge'], 'not-root')}\n` });
    expect(m.aptCalls()).to.deep.equal([]);
  });
  it('no dpkg/apt-get: every package is missing as far as we can tell; the one message, exit 1', async () => {
    const { refusal } = await deps();
    const m = machine([]);
    const r = m.run({ PATH: path.join(m.state, 'nothing-here') });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.equal(`${refusal(wanted, 'not-debian')}\n`);
  });
  it('GHOSTPREP_TEST_DEPS=skip: no check at all', () => {
    const m = machine([]);
    expect(m.run({ GHOSTPREP_TEST_DEPS: 'skip' })).to.deep.equal({ status: 0, stderr: '' });
    expect(m.aptCalls()).to.deep.equal([]);
  });
});
