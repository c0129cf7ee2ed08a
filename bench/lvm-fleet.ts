/**
 * LVM fleet: per-image time to open and customize clones of ONE LVM master.
 *
 *   before: no storage.lvm (what ghostprep did without it): clones share PV/VG
 *           UUIDs and the VG name, so each gets an appliance of its own;
 *           measured on a sample (per-image time does not depend on N).
 *   after:  storage.lvm {newUuids: true, vgName: "vg-NAME"}: the identity
 *           pass renews each clone behind an LVM filter and all N share one
 *           appliance (up to --drives-per-appliance).
 *
 * Both runs go through the guestfs backend (GuestfsBackend.forEachGuest,
 * writable) with the same visit per guest: read /etc/hostname, write it.
 * Besides wall time each run reports its CPU seconds (this process and its
 * reaped children: guestfish and the appliance's qemu), which a loaded host
 * inflates far less than wall time.
 *
 *   node dist/bench/lvm-fleet.js [--clones 20] [--before-samples 3] [--jobs 1] [--out bench/results.md]
 *
 * The markdown goes to stdout and replaces the section between the
 * bench:lvm-fleet markers of --out (appended when absent).
 */
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GuestfsBackend } from '../src/backends/guestfs/backend.js';
import type { TargetSpec } from '../src/core/backend.js';
import { cloneOf, identityMasters } from '../test/storage-lvm/images.js';

process.env.LIBGUESTFS_BACKEND ??= 'direct';
process.env.LIBGUESTFS_BACKEND_SETTINGS ??= 'force_tcg';
const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

/** CPU seconds used so far by this process and its reaped children (the children's from Linux /proc). */
function cpuSeconds(): number {
  const own = process.cpuUsage();
  let children = 0;
  try {
    // fields after the parenthesized command name: cutime and cstime are the 14th and 15th (0-based 13, 14), in clock ticks (100 Hz on Linux)
    const fields = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\)\s*/s, '').split(' ');
    children = (Number(fields[13]) + Number(fields[14])) / 100;
  } catch { /* not Linux: own CPU only */ }
  return (own.user + own.system) / 1e6 + children;
}

async function run(targets: TargetSpec[], jobs: number, renew: boolean): Promise<{ seconds: number; cpu: number; appliances: string; failed: number }> {
  const log: string[] = [];
  let failed = 0;
  const backend = new GuestfsBackend({ verbose: (m) => log.push(m), drivesPerAppliance: 20 });
  const c0 = cpuSeconds();
  const t0 = performance.now();
  await backend.forEachGuest(targets, {
    readonly: false, jobs,
    ...(renew && { deviceIdentity: (t: TargetSpec) => ({ lvm: { newUuids: true, vgName: `vg-${t.machine}` } }) }),
  }, async (t, guest) => {
    if (guest instanceof Error) { failed++; return; }
    await guest.readFile('/etc/hostname');
    await guest.writeFile('/etc/hostname', Buffer.from(`${t.machine}\n`), { mode: 0o644, uid: 0, gid: 0 });
  });
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, cpu: cpuSeconds() - c0, appliances: /in (\d+) appliance/.exec(log.join('\n'))?.[1] ?? '?', failed };
}

async function main(): Promise<void> {
  const n = Number(arg('--clones', '20'));
  const samples = Math.min(n, Number(arg('--before-samples', '3')));
  const jobs = Number(arg('--jobs', '1'));
  const out = path.resolve(arg('--out', path.join(REPO, 'bench/results.md')));
  const { lvm } = await identityMasters();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'ghostprep-bench-lvm-'));
  try {
    const load0 = os.loadavg()[0]!.toFixed(1);
    const before: TargetSpec[] = [];
    for (let i = 0; i < samples; i++) before.push({ kind: 'image', path: await cloneOf(lvm, dir, `b${i}`), format: 'qcow2', machine: `b${i}` });
    process.stderr.write(`lvm-fleet: before, ${samples} clone(s)\n`);
    const b = await run(before, jobs, false);
    const after: TargetSpec[] = [];
    for (let i = 0; i < n; i++) after.push({ kind: 'image', path: await cloneOf(lvm, dir, `a${i}`), format: 'qcow2', machine: `a${i}` });
    process.stderr.write(`lvm-fleet: after, ${n} clone(s)\n`);
    const a = await run(after, jobs, true);
    const load1 = os.loadavg()[0]!.toFixed(1);
    const perB = b.seconds / samples;
    const perA = a.seconds / n;
    const lines = [
      `## LVM fleet (${new Date().toISOString()}, ${n} clones, --jobs ${jobs})`, '',
      'Clones of one LVM master (VG `vg-master`, LVs root and var) through the guestfs backend, each guest opened and `/etc/hostname` written (`bench/lvm-fleet.ts`).', '',
      '| run | clones | appliances | wall (s) | per image wall (s) | CPU (s) | per image CPU (s) | failed |', '|---|---|---|---|---|---|---|---|',
      `| before: no storage.lvm, one appliance per clone (sample) | ${samples} | ${b.appliances} | ${b.seconds.toFixed(1)} | ${perB.toFixed(1)} | ${b.cpu.toFixed(1)} | ${(b.cpu / samples).toFixed(1)} | ${b.failed} |`,
      `| after: storage.lvm {newUuids, vgName: vg-NAME}, renewed in the appliance | ${n} | ${a.appliances} | ${a.seconds.toFixed(1)} | ${perA.toFixed(1)} | ${a.cpu.toFixed(1)} | ${(a.cpu / n).toFixed(1)} | ${a.failed} |`,
      '', `Per image: ${(perB / perA).toFixed(1)}x less wall time, ${((b.cpu / samples) / (a.cpu / n)).toFixed(1)}x less CPU after. Load average (1 min) ${load0} before, ${load1} after, on ${os.availableParallelism()} cores${Number(load0) > os.availableParallelism() || Number(load1) > os.availableParallelism() ? ' (a loaded host: wall times are inflated, CPU seconds much less so)' : ''}.`,
    ];
    const md = lines.join('\n');
    process.stdout.write(md + '\n');
    const start = '<!-- bench:lvm-fleet start (generated by bench/lvm-fleet.ts) -->';
    const end = '<!-- bench:lvm-fleet end -->';
    const old = await fs.readFile(out, 'utf8').catch(() => '');
    const block = `${start}\n${md}\n${end}`;
    const i = old.indexOf(start);
    const j = old.indexOf(end);
    await fs.writeFile(out, i >= 0 && j > i ? old.slice(0, i) + block + old.slice(j + end.length) : `${old.replace(/\n*$/, '\n\n')}${block}\n`);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
