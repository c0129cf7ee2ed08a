#!/usr/bin/env node
// `npm start`: make the project runnable on a fresh machine (dependencies, build), then run the
// main job on the bundled example: the example fleet of profiles/ + examples/inventory.yaml,
// applied to fresh copies of fixture root filesystems, followed by the audit.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, rmSync, statSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(repo);
process.env.LIBGUESTFS_BACKEND_SETTINGS ||= 'force_tcg';
const say = (m) => console.error(`\x1b[1m==> ${m}\x1b[0m`);

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

if (!existsSync('node_modules/.package-lock.json')) {
  say('installing npm dependencies (npm ci)');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
}
const built = 'dist/src/cli/main.js';
if (!existsSync(built) || statSync(built).mtimeMs < Math.max(newest('src'), newest('test'))) {
  say('building (tsc + precompiled schemas)');
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
}
if (spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error) {
  console.error('ssh-keygen is missing: install openssh-client (apt-get install openssh-client)');
  process.exit(4);
}

const cli = (args, ok = [0]) => {
  console.error(`\n$ ghostprep ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [built, ...args], { stdio: 'inherit' });
  if (!ok.includes(r.status)) { console.error(`ghostprep exited ${r.status}`); process.exit(r.status ?? 1); }
  return r.status;
};
const have = (tool) => !spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status;

/** libguestfs for disk images: installed here when we are root on Debian/Ubuntu, else explained. */
function ensureImageTools() {
  const ready = () => have('guestfish') && have('qemu-img') && have('sfdisk') && existsSync('/boot') && readdirSync('/boot').some((f) => f.startsWith('vmlinuz'));
  if (ready()) return true;
  const packages = ['libguestfs-tools', 'libguestfs-xfs', 'qemu-utils', 'linux-image-amd64', 'fdisk', 'e2fsprogs'];
  if (process.getuid?.() === 0 && have('apt-get')) {
    say(`installing ${packages.join(' ')} (Debian packages for disk images; supermin needs a kernel in /boot)`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
    spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: 'inherit', env });
    if (ready()) return true;
  }
  console.error(`libguestfs is not available: install it with\n  sudo apt-get install ${packages.join(' ')}   (Debian/Ubuntu)\n  sudo dnf install guestfs-tools qemu-img            (Fedora/RHEL)\nfalling back to the root-filesystem demo.`);
  return false;
}

const { copyFixture } = await import(path.join(repo, 'dist/test/helpers/rootfs.js'));
const fleet = { node01: 'debian12', node02: 'rocky9', node03: 'ubuntu2204', gpu01: 'arch' };

function rootfsDemo() {
  const out = path.join(repo, 'out/demo');
  rmSync(out, { recursive: true, force: true });
  rmSync(path.join(repo, 'out/demo-state'), { recursive: true, force: true });
  say(`copying the master fixture trees to out/demo/{${Object.keys(fleet).join(',')}}`);
  for (const [name, fixture] of Object.entries(fleet)) copyFixture(fixture, path.join(out, name));
  const common = ['-p', 'profiles/', '-i', 'examples/inventory.yaml', '--target', 'rootfs:out/demo/{name}', '--state', 'out/demo-state'];
  say('the untouched clones share the master identity');
  cli(['audit', '--target', 'rootfs:out/demo/*'], [5]);
  say('validate, plan (summary), apply, verify');
  cli(['validate', '-p', 'profiles/', '-i', 'examples/inventory.yaml']);
  cli(['plan', ...common, '--detailed-exitcode', '-q', '--machine', 'node01'], [0, 2]);
  cli(['apply', ...common, '--report', 'out/demo/report.json', '--known-hosts', 'out/demo/known_hosts']);
  cli(['plan', ...common, '--detailed-exitcode', '-q'], [0]);
  say('audit after apply: every identity unique');
  cli(['audit', '--target', 'rootfs:out/demo/*']);
  say('done: report in out/demo/report.json, known_hosts in out/demo/known_hosts');
}

async function imageDemo() {
  const out = path.join(repo, 'out/demo-images');
  rmSync(out, { recursive: true, force: true });
  const { testImage } = await import(path.join(repo, 'dist/test/helpers/images.js'));
  say('building the bundled base image from fixtures/rootfs/debian12 (sfdisk + mkfs.ext4 -d + qemu-img; cached in .cache/)');
  const base = await testImage('ext4-gpt');
  const { mkdirSync, copyFileSync, appendFileSync } = await import('node:fs');
  mkdirSync(out, { recursive: true });
  copyFileSync(base, path.join(out, 'base.qcow2'));
  // disk images get their own filesystem UUIDs and GPT GUIDs too (a rootfs tree has none): the bundled
  // profiles plus `storage: {newUuids: true}` in the site profile every node profile extends
  const profiles = path.join(out, 'profiles');
  mkdirSync(profiles, { recursive: true });
  for (const f of readdirSync(path.join(repo, 'profiles'))) copyFileSync(path.join(repo, 'profiles', f), path.join(profiles, f));
  appendFileSync(path.join(profiles, 'base.yaml'), 'storage:\n  newUuids: true\n');
  say('validate, then deploy one overlay clone per machine and apply (one libguestfs appliance, TCG: about a minute)');
  cli(['validate', '-p', profiles, '-i', 'examples/inventory.yaml']);
  cli(['deploy', '-p', profiles, '-i', 'examples/inventory.yaml', '--base', 'out/demo-images/base.qcow2', '--out', 'out/demo-images/clones', '--state', 'out/demo-images/state', '--report', 'out/demo-images/report.json']);
  say('audit of the clones: every identity unique');
  cli(['audit', '--target', 'out/demo-images/clones/*.qcow2']);
  say('done: clones in out/demo-images/clones/, report in out/demo-images/report.json');
}

if (process.argv.includes('--rootfs') || !ensureImageTools()) rootfsDemo();
else await imageDemo();
