#!/usr/bin/env node
/**
 * `npm test`: the whole suite in two lanes, one mocha process each, side by
 * side. Nearly all the time goes to QEMU under TCG, which keeps one core
 * busy per VM or appliance; on 2 cores, two lanes take about half the wall
 * time of one. Lane "vm" holds files that are independent of the rest (real
 * boots, the Slurm cluster, Windows images); lane "main" holds everything
 * else in one process, in file order, because the trust suite adds up counts
 * and scans the outputs of earlier files in the same process.
 *
 * The main lane streams; the vm lane's output is kept in a log and printed
 * when it ends. Exit status: non-zero if either lane fails.
 *
 *   npm test                        both lanes
 *   npm test -- dist/test/unit      just these specs, one mocha process
 *   GHOSTPREP_TEST_LANES=1 npm test everything in one process, one after the other
 */
import { spawn } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const Reporter = createRequire(import.meta.url)('./timing-reporter.cjs');
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const mocha = path.join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
const VM_LANE = [/^dist\/test\/boot\//, /^dist\/test\/export\/slurm-cluster\.test\.js$/, /^dist\/test\/windows\//];

function specs(dir) {
  const out = [];
  for (const name of readdirSync(path.join(root, dir)).sort()) {
    const rel = `${dir}/${name}`;
    if (statSync(path.join(root, rel)).isDirectory()) out.push(...specs(rel));
    else if (name.endsWith('.test.js')) out.push(rel);
  }
  return out;
}

function runMocha(files, stdio, lane = 'all') {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [mocha, ...files], { cwd: root, stdio, env: laneEnv(lane) });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.on('error', () => resolve(1));
  });
}

/** Each lane's per-file times (scripts/timing-reporter.cjs) go to one file, printed as one table at the end. */
const timings = path.join(os.tmpdir(), `ghostprep-test-timings-${process.pid}.jsonl`);
function laneEnv(lane) {
  return lane === 'all' ? process.env : { ...process.env, GHOSTPREP_TEST_LANE: lane, GHOSTPREP_TEST_TIMINGS: timings };
}

function printTimings() {
  let lines;
  try { lines = readFileSync(timings, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)); } catch { return; }
  const rows = lines.filter((r) => r.file).sort((a, b) => b.ms - a.ms);
  const walls = lines.filter((r) => !r.file).map((r) => `${r.lane} ${Reporter.fmt(r.wall)}`).join(', ');
  console.log(Reporter.table(rows.map((r) => ({ ...r, file: `[${r.lane}] ${r.file}` })), `per-file time, both lanes, slowest first (lane wall: ${walls})`));
  rmSync(timings, { force: true });
}

const args = process.argv.slice(2);
if (args.length) process.exit(await runMocha(args, 'inherit'));

const all = specs('dist/test');
if (process.env.GHOSTPREP_TEST_LANES === '1') process.exit(await runMocha(all, 'inherit'));

const vm = all.filter((f) => VM_LANE.some((re) => re.test(f)));
const main = all.filter((f) => !vm.includes(f));
const log = path.join(os.tmpdir(), `ghostprep-test-vm-lane-${process.pid}.log`);
const started = Date.now();
console.log(`ghostprep tests: lane main (${main.length} files) streams below; lane vm (${vm.length} files: ${vm.map((f) => path.basename(f, '.test.js')).join(', ')}) runs beside it, log ${log}`);

const logStream = createWriteStream(log);
const vmDone = new Promise((resolve) => {
  const child = spawn(process.execPath, [mocha, ...vm], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: laneEnv('vm') });
  child.stdout.pipe(logStream, { end: false });
  child.stderr.pipe(logStream, { end: false });
  child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
});
const mainCode = await runMocha(main, 'inherit', 'main');
const mainMinutes = ((Date.now() - started) / 60000).toFixed(1);
const vmCode = await vmDone;
await new Promise((r) => logStream.end(r));
const minutes = ((Date.now() - started) / 60000).toFixed(1);
console.log(`\n===== lane vm (${vm.length} files), finished after ${minutes} min (lane main: ${mainMinutes} min) =====`);
process.stdout.write(readFileSync(log, 'utf8'));
printTimings();
console.log(`\nghostprep tests: lane main ${mainCode === 0 ? 'passed' : `FAILED (exit ${mainCode})`}, lane vm ${vmCode === 0 ? 'passed' : `FAILED (exit ${vmCode})`}; ${minutes} min in all`);
process.exit(mainCode || vmCode);
