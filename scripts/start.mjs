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
  say('building (tsc)');
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
}
if (spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error) {
  console.error('ssh-keygen is missing: install openssh-client (apt-get install openssh-client)');
  process.exit(4);
}

const { copyFixture } = await import(path.join(repo, 'dist/test/helpers/rootfs.js'));
const fleet = { node01: 'debian12', node02: 'rocky9', node03: 'ubuntu2204', gpu01: 'arch' };
const out = path.join(repo, 'out/demo');
rmSync(out, { recursive: true, force: true });
rmSync(path.join(repo, 'out/demo-state'), { recursive: true, force: true });
say(`copying the master fixture trees to out/demo/{${Object.keys(fleet).join(',')}}`);
for (const [name, fixture] of Object.entries(fleet)) copyFixture(fixture, path.join(out, name));

const cli = (args, ok = [0]) => {
  console.error(`\n$ ghostprep ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [built, ...args], { stdio: 'inherit' });
  if (!ok.includes(r.status)) { console.error(`ghostprep exited ${r.status}`); process.exit(r.status ?? 1); }
  return r.status;
};
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
