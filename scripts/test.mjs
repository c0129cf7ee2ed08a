#!/usr/bin/env node
/**
 * `npm test`: the whole suite as groups of spec files, one mocha process per
 * group, taken from a queue by three workers side by side. Nearly all the
 * time goes to QEMU under TCG, which keeps one core busy per VM or appliance;
 * on 2 cores, two workers take about half the wall time of one, and a third
 * fills the time a group spends waiting rather than computing (downloads of
 * debootstrap and apt, Slurm's jobs, kill points, the wait for a guest's
 * report): the two cores went from 85% to 92% busy. A queue keeps the
 * workers busy until the end (fixed lanes would leave one idle).
 *
 * GROUPS below: which files run together, what must end before a group may
 * start (`after`), and the minutes each is expected to take (from the
 * per-file table every run prints at the end: scripts/timing-reporter.cjs).
 * A free worker takes the ready group with the longest expected chain (the
 * group plus the longest chain of groups waiting for it). Files no group
 * names run in group `rest`, one process, in file order.
 *
 * The trust suite (test/trust/) adds up counts and scans every output of the
 * suite for secrets: the trust groups share their records through
 * GHOSTPREP_TRUST_SHARE (test/helpers/trust-counts.ts); every group's node
 * processes preload test/trust/cli-record.js (NODE_OPTIONS --import), which
 * keeps each ghostprep run's outputs and the secrets it was given or made;
 * and trust-secrets (the summary and the secrets scan) starts after every
 * other group, requiring a record of each (GHOSTPREP_TRUST_SHARE_FROM).
 *
 * Each group's output is kept in a log and printed when the group ends.
 * Exit status: non-zero if any group fails.
 *
 * Before this script, `npm test` runs its pretest: scripts/test-deps.mjs (the
 * Debian packages of .ci/apt-packages.d, installed when missing and root on
 * Debian, else one message naming them) and the build.
 *
 *   npm test                                   three workers
 *   GHOSTPREP_TEST_WORKERS=1 npm test          the same groups one after the other
 *   GHOSTPREP_TEST_GROUPS=trust,trust-secrets npm test   only these groups
 *   npm test -- dist/test/unit                 just these specs, one mocha process
 *   GHOSTPREP_TEST_LANES=1 npm test            everything in one process, in file order
 */
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { launchTable, readLaunches } from './launch-table.mjs';

const Reporter = createRequire(import.meta.url)('./timing-reporter.cjs');
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const mocha = path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');

/**
 * Each file goes to the first group that names it (an exact path, or a
 * directory ending in /). Minutes: each group's time in a full run of
 * `.ci/run` on a fresh clone (every cache cold, as in CI) on a 2-core host with
 * the three workers busy (73 min of groups, 24:34 wall).
 */
const GROUPS = [
  // one 10-clone deploy killed three times (4 to 6 launches, 35 to 49 drives: where the kills land)
  { name: 'trust-kill', files: ['dist/test/trust/interrupt.test.js'], minutes: 4.7 },
  // after every other group (the scan reads all their ghostprep runs' outputs): `after` is filled in below
  { name: 'trust-secrets', files: ['dist/test/trust/summary.test.js', 'dist/test/trust/secrets.test.js'], minutes: 0.3, after: ['*'] },
  { name: 'trust', files: ['dist/test/trust/'], minutes: 4.1 },
  // the first boot file builds the debootstrap master (cached under .cache/boot); the others wait for it
  { name: 'boot-harness', files: ['dist/test/boot/harness.test.js'], minutes: 2.6 },
  { name: 'boot-library', files: ['dist/test/boot/library.test.js'], minutes: 4.1, after: ['boot-harness'] },
  // the network boot matrix: one master per stack, one boot each (ten NICs)
  { name: 'boot-net-netplan', files: ['dist/test/boot/network/netplan.test.js'], minutes: 2.2, after: ['boot-harness'] },
  { name: 'boot-net-networkd', files: ['dist/test/boot/network/networkd.test.js'], minutes: 1.6, after: ['boot-harness'] },
  { name: 'boot-net-nm', files: ['dist/test/boot/network/network-manager.test.js'], minutes: 2.5, after: ['boot-harness'] },
  { name: 'boot-net-eni', files: ['dist/test/boot/network/eni.test.js'], minutes: 1.9, after: ['boot-harness'] },
  { name: 'boot-net-summary', files: ['dist/test/boot/network/summary.test.js'], minutes: 0.1, after: ['boot-net-netplan', 'boot-net-networkd', 'boot-net-nm', 'boot-net-eni'] },
  // two boots: an ext4 clone with new UUIDs, an LVM clone on its renamed VG
  { name: 'boot-storage', files: ['dist/test/storage/boot-new-uuids.test.js', 'dist/test/storage/boot-lvm.test.js'], minutes: 4.5, after: ['boot-harness'] },
  { name: 'boot-clones', files: ['dist/test/boot/'], minutes: 2.4, after: ['boot-harness'] },
  { name: 'storage', files: ['dist/test/storage/new-uuids.test.js', 'dist/test/storage/rollback.test.js'], minutes: 4.9 },
  // the 5-clone LVM fleet (apply in one appliance, then audit) is most of it
  { name: 'storage-lvm', files: ['dist/test/storage-lvm/identity-appliance.test.js'], minutes: 5.9 },
  { name: 'audit-images', files: ['dist/test/audit/audit-images.test.js'], minutes: 0.8 },
  { name: 'images', files: ['dist/test/e2e/images.test.js'], minutes: 5.3 },
  { name: 'slurm-cluster', files: ['dist/test/export/slurm-cluster.test.js'], minutes: 1.0 },
  { name: 'windows', files: ['dist/test/windows/'], minutes: 3.6 },
  { name: 'luks', files: ['dist/test/backends/guestfs/luks.test.js'], minutes: 3.5 },
  // cryptsetup reencrypt in the appliance: data rewritten under TCG, a group of its own so it runs beside the others
  { name: 'luks-reencrypt', files: ['dist/test/storage-lvm/luks-reencrypt.test.js'], minutes: 2.6 },
  { name: 'guestfs', files: ['dist/test/backends/guestfs/', 'dist/test/image/', 'dist/test/e2e/pipeline.test.js'], minutes: 7.4 },
  // the fuzzer's fixed-seed budget: its own process, next to the others, not lengthening `rest`
  { name: 'fuzz', files: ['dist/test/fuzz/'], minutes: 2.1 },
  { name: 'rest', files: [], minutes: 4.8 },
];

function specs(dir) {
  const out = [];
  for (const name of readdirSync(path.join(root, dir)).sort()) {
    const rel = `${dir}/${name}`;
    if (statSync(path.join(root, rel)).isDirectory()) out.push(...specs(rel));
    else if (name.endsWith('.test.js')) out.push(rel);
  }
  return out;
}

/** One mocha process over `files`; resolves with its exit status once its output is all read. */
function runMocha(files, env = process.env, output) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [mocha, ...files], { cwd: root, stdio: output ? ['ignore', 'pipe', 'pipe'] : 'inherit', env });
    if (output) { child.stdout.pipe(output, { end: false }); child.stderr.pipe(output, { end: false }); }
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.on('error', () => resolve(1));
  });
}

// GHOSTPREP_LAUNCH_LOG=FILE: every node process of the run counts the appliances, boots… it starts (test/helpers/launch-log.ts)
const launchLog = process.env.GHOSTPREP_LAUNCH_LOG ? path.resolve(process.env.GHOSTPREP_LAUNCH_LOG) : undefined;
const withLaunchLog = (env) => (launchLog ? {
  ...env, GHOSTPREP_LAUNCH_LOG: launchLog,
  NODE_OPTIONS: [env.NODE_OPTIONS, `--import=${path.join(root, 'dist/test/helpers/launch-log.js')}`].filter(Boolean).join(' '),
} : env);
const printLaunches = () => {
  if (launchLog) console.log(`\n  launches (${path.relative(process.cwd(), launchLog)}; scripts/launch-table.mjs)\n${launchTable(readLaunches(launchLog))}`);
};

const args = process.argv.slice(2);
if (args.length) {
  const code = await runMocha(args, withLaunchLog(process.env));
  printLaunches();
  process.exit(code);
}

const all = specs('dist/test');
if (process.env.GHOSTPREP_TEST_LANES === '1') process.exit(await runMocha(all));

// files -> groups
const groups = GROUPS.map((g) => ({ ...g, match: g.files, after: g.after ?? [], files: [] }));
for (const f of all) {
  const g = groups.find((x) => x.match.some((p) => (p.endsWith('/') ? f.startsWith(p) : f === p))) ?? groups.find((x) => x.name === 'rest');
  g.files.push(f);
}
let scheduled = groups.filter((g) => g.files.length);
const only = process.env.GHOSTPREP_TEST_GROUPS?.split(',').filter(Boolean);
if (only) {
  const unknown = only.filter((n) => !scheduled.some((g) => g.name === n));
  if (unknown.length) { console.error(`GHOSTPREP_TEST_GROUPS: no group ${unknown.join(', ')} (groups: ${scheduled.map((g) => g.name).join(', ')})`); process.exit(2); }
  scheduled = scheduled.filter((g) => only.includes(g.name));
}
const names = new Set(scheduled.map((g) => g.name));
for (const g of scheduled) g.after = g.after.includes('*') ? [...names].filter((n) => n !== g.name) : g.after.filter((n) => names.has(n));
// priority: the group's minutes plus the longest chain of groups that wait for it
const chain = (g) => g.minutes + Math.max(0, ...scheduled.filter((x) => x.after.includes(g.name)).map(chain));
for (const g of scheduled) g.priority = chain(g);

const timings = path.join(os.tmpdir(), `ghostprep-test-timings-${process.pid}.jsonl`);
const trustShare = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-trust-share-'));
// every group must have left a record (at least its mocha process's, written by cli-record.js)
const trustFrom = scheduled.filter((g) => g.name !== 'trust-secrets').map((g) => g.name);
const cliRecord = path.join(root, 'dist/test/trust/cli-record.js');
const env = (g) => withLaunchLog({
  ...process.env, GHOSTPREP_TEST_LANE: g.name, GHOSTPREP_TEST_TIMINGS: timings,
  GHOSTPREP_TRUST_SHARE: trustShare, GHOSTPREP_TRUST_SHARE_FROM: g.name === 'trust-secrets' ? trustFrom.join(',') : '',
  // the network boot matrix's results of this run only (test/helpers/boot-network.ts prints them as one table)
  GHOSTPREP_BOOT_MATRIX: process.env.GHOSTPREP_BOOT_MATRIX ?? path.join(trustShare, 'boot-matrix.jsonl'),
  NODE_OPTIONS: [process.env.NODE_OPTIONS, `--import=${cliRecord}`].filter(Boolean).join(' '),
});

const workers = Math.max(1, Number(process.env.GHOSTPREP_TEST_WORKERS) || 3);
// CPU seconds of every finished process below this one (cutime + cstime, ticks of 1/100 s): a group's
// mocha process is reaped with its appliances and VMs, so the growth since the last reading is that
// group's CPU (Slurm's jobs, which slurmd starts, are not in it)
const childCpu = () => {
  try {
    const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(f[13]) + Number(f[14])) / 100;
  } catch { return NaN; }
};
let cpuRead = childCpu();
const started = Date.now();
const clock = () => {
  const s = Math.round((Date.now() - started) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};
console.log(`ghostprep tests: ${all.length} files in ${scheduled.length} groups, ${workers} worker(s); each group's output is printed when it ends`);
for (const g of [...scheduled].sort((a, b) => b.priority - a.priority)) {
  console.log(`  ${g.name} (~${g.minutes} min${g.after.length ? `, after ${g.after.join(', ')}` : ''}): ${g.files.map((f) => path.basename(f, '.test.js')).join(', ')}`);
}

const pending = [...scheduled];
const done = new Set();
const results = [];
let wake = () => {};
async function worker(id) {
  for (;;) {
    const ready = pending.filter((g) => g.after.every((n) => done.has(n))).sort((a, b) => b.priority - a.priority);
    if (!ready.length) {
      if (!pending.length) return;
      await new Promise((r) => { const prev = wake; wake = () => { prev(); r(); }; });
      continue;
    }
    const g = ready[0];
    pending.splice(pending.indexOf(g), 1);
    const log = path.join(os.tmpdir(), `ghostprep-test-${g.name}-${process.pid}.log`);
    const t0 = Date.now();
    console.log(`[${clock()}] worker ${id}: ${g.name} started (log ${log})`);
    const out = createWriteStream(log);
    const code = await runMocha(g.files, env(g), out);
    const cpuNow = childCpu();
    const cpu = (cpuNow - cpuRead) / 60;
    cpuRead = cpuNow;
    await new Promise((r) => out.end(r));
    const minutes = (Date.now() - t0) / 60000;
    results.push({ name: g.name, code, minutes, cpu });
    console.log(`\n===== [${clock()}] ${g.name}: ${code === 0 ? 'passed' : `FAILED (exit ${code})`} after ${minutes.toFixed(1)} min, CPU ${cpu.toFixed(1)} min (worker ${id}) =====`);
    process.stdout.write(readFileSync(log, 'utf8'));
    rmSync(log, { force: true });
    done.add(g.name);
    const w = wake;
    wake = () => {};
    w();
  }
}
await Promise.all(Array.from({ length: workers }, (_, i) => worker(i + 1)));
rmSync(trustShare, { recursive: true, force: true });

let lines = [];
try { lines = readFileSync(timings, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)); } catch { /* no group got that far */ }
rmSync(timings, { force: true });
const rows = lines.filter((r) => r.file).sort((a, b) => b.ms - a.ms).map((r) => ({ ...r, file: `[${r.lane}] ${r.file}` }));
console.log(Reporter.table(rows, `per-file time, all groups, slowest first (${clock()} wall, ${workers} worker(s))`));
// CPU time of every finished process below this one (the groups, their appliances and VMs; not
// Slurm's jobs, which slurmd starts): how busy the workers kept the cores
const cpu = (() => {
  try {
    const s = childCpu();
    const wall = (Date.now() - started) / 1000;
    return `; CPU ${(s / 60).toFixed(1)} min = ${Math.round((100 * s) / (wall * os.cpus().length))}% of ${os.cpus().length} cores over the wall time (load now ${os.loadavg()[0].toFixed(1)})`;
  } catch { return ''; }
})();
printLaunches();
console.log(`ghostprep tests: ${results.map((r) => `${r.name} ${r.code === 0 ? 'passed' : 'FAILED'} ${r.minutes.toFixed(1)} min (CPU ${r.cpu.toFixed(1)})`).join(', ')}; ${clock()} in all${cpu}`);
process.exit(results.some((r) => r.code !== 0) ? 1 : 0);
