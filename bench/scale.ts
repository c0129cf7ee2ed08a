/**
 * `npm run bench:scale`: `validate` and render-only `plan` (no --target) of a
 * generated 10,000-machine inventory (bench/make-inventory.ts: compute and gpu
 * profiles extending base, static network, every tenth machine a GPU node with a
 * fabric interface), through the real CLI as child processes, each run under
 * GNU time for wall time, CPU time and peak RSS. The target is validate + plan
 * under 10 s and under 1 GiB on a 2-core machine.
 *
 *   node dist/bench/scale.js [--machines 10000] [--runs 3] [--out bench/results.md] [--no-write]
 *                            [--cli dist/src/cli/main.js] [--baseline OTHER/dist/src/cli/main.js] [--max-wait 120]
 *
 * Runs are interleaved (validate, plan, plan --json, then again) so that load from
 * other jobs on the machine hits every command alike; the table gives the minimum
 * and the median, and the 1-minute load before each run. `--baseline` runs another
 * build's CLI (e.g. a checkout of an older commit) in the same rounds, for a
 * before/after under the same conditions. The "## 10k machines" section of the
 * results file is replaced (the rest of the file is kept); the same text goes to
 * stdout (without its heading), which `npm run bench` (bench/run.ts) includes.
 */
import { execa } from 'execa';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeInventory } from './make-inventory.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '../..');
const CLI = path.join(REPO, 'dist/src/cli/main.js');

export interface ScaleOptions {
  machines: number;
  runs: number;
  out: string;
  write: boolean;
  /** The CLI measured (default: this checkout's build). */
  cli: string;
  baseline?: string;
  maxWaitS: number;
}

export interface Sample { wallS: number; cpuS: number; maxRssKb: number; exitCode: number; outBytes: number; load1: number }
export interface CommandResult { label: string; cli: string; args: string[]; samples: Sample[] }
export interface ScaleResult {
  opts: ScaleOptions;
  started: Date;
  host: string;
  loadBefore: string;
  loadAfter: string;
  commands: CommandResult[];
}

function parseArgs(argv: string[]): ScaleOptions {
  const o: ScaleOptions = { machines: 10_000, runs: 3, out: path.join(REPO, 'bench/results.md'), write: true, cli: CLI, maxWaitS: 120 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${k} needs a value`);
      return x;
    };
    if (k === '--machines') o.machines = Number(v());
    else if (k === '--runs') o.runs = Number(v());
    else if (k === '--out') o.out = path.resolve(v());
    else if (k === '--no-write') o.write = false;
    else if (k === '--cli') o.cli = path.resolve(v());
    else if (k === '--baseline') o.baseline = path.resolve(v());
    else if (k === '--max-wait') o.maxWaitS = Number(v());
    else throw new Error(`unknown argument ${k}`);
  }
  if (!Number.isInteger(o.machines) || o.machines < 1 || !Number.isInteger(o.runs) || o.runs < 1) throw new Error('--machines and --runs: positive integers');
  return o;
}

const log = (msg: string): void => void process.stderr.write(`[bench:scale ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
const loadavg = async (): Promise<string> => (await fs.readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');
const median = (xs: number[]): number => {
  const v = [...xs].sort((x, y) => x - y);
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};

/** One CLI run under GNU time (`-f` into its own file, so the CLI's stderr stays apart). */
async function timed(dir: string, cli: string, args: string[]): Promise<Sample> {
  const outFile = path.join(dir, 'stdout');
  const timeFile = path.join(dir, 'time');
  const load1 = Number((await loadavg()).split(' ')[0]);
  const r = await execa('/usr/bin/time', ['-o', timeFile, '-f', '%e %U %S %M %x', 'node', cli, ...args], { reject: false, stdout: { file: outFile }, stderr: 'pipe', cwd: REPO });
  const t = (await fs.readFile(timeFile, 'utf8')).trim().split('\n').at(-1)!.split(' ').map(Number);
  const [wallS, user, sys, maxRssKb, exitCode] = t as [number, number, number, number, number];
  if (exitCode !== 0) log(`exit ${exitCode}: ${args.join(' ')}: ${String(r.stderr).slice(-400)}`);
  return { wallS, cpuS: user + sys, maxRssKb, exitCode, outBytes: (await fs.stat(outFile)).size, load1 };
}

/** Wait (at most maxWaitS) for the 1-minute load to drop to the number of cores or below. */
async function waitForQuiet(maxWaitS: number): Promise<void> {
  const cores = os.cpus().length;
  for (let waited = 0; waited < maxWaitS; waited += 10) {
    const l1 = Number((await loadavg()).split(' ')[0]);
    if (l1 <= cores) return;
    if (waited === 0) log(`load ${l1} > ${cores} cores: waiting up to ${maxWaitS} s`);
    await new Promise((r) => setTimeout(r, 10_000));
  }
}

export async function runScale(opts: ScaleOptions): Promise<ScaleResult> {
  const started = new Date();
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'ghostprep-scale-'));
  try {
    const inv = path.join(work, `inventory-${opts.machines}.yaml`);
    await fs.writeFile(inv, makeInventory(opts.machines));
    const base = ['-p', 'profiles/', '-i', inv];
    const commands: CommandResult[] = [];
    for (const [tag, cli] of [['', opts.cli], ...(opts.baseline ? [['baseline: ', opts.baseline]] : [])] as Array<[string, string]>) {
      commands.push(
        { label: `${tag}validate`, cli, args: ['validate', ...base], samples: [] },
        { label: `${tag}plan (render only)`, cli, args: ['plan', ...base], samples: [] },
        { label: `${tag}plan --json (render only)`, cli, args: ['plan', ...base, '--json'], samples: [] },
      );
    }
    await waitForQuiet(opts.maxWaitS);
    const loadBefore = await loadavg();
    for (let run = 1; run <= opts.runs; run++) {
      for (const c of commands) {
        const s = await timed(work, c.cli, c.args);
        c.samples.push(s);
        log(`run ${run}/${opts.runs} ${c.label}: ${s.wallS.toFixed(2)} s wall, ${s.cpuS.toFixed(2)} s CPU, ${(s.maxRssKb / 1024).toFixed(0)} MiB, exit ${s.exitCode}, load ${s.load1}`);
      }
    }
    const host = `${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${os.release()}, node ${process.version}`;
    return { opts, started, host, loadBefore, loadAfter: await loadavg(), commands };
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

/** The results text (without its heading). */
export function scaleText(r: ScaleResult): string {
  const n = r.opts.machines.toLocaleString('en');
  const L: string[] = [];
  L.push(`Generated by \`npm run bench:scale\` (bench/scale.ts) on ${r.started.toISOString()}, ${r.host}. ` +
    `Inventory: \`bench/make-inventory.ts\` with ${n} machines (profiles \`profiles/\`: compute and gpu extending base, static network, every tenth a GPU node with a fabric interface). ` +
    `Each command is the real CLI in a child process under GNU time; ${r.opts.runs} interleaved run(s) each. Load (1/5/15 min) before: ${r.loadBefore}; after: ${r.loadAfter}.`, '');
  L.push('| command | wall min (s) | wall median (s) | CPU user+sys min (s) | peak RSS max (MiB) | exit | stdout (MiB) | 1-min load before each run |', '|---|---|---|---|---|---|---|---|');
  for (const c of r.commands) {
    const w = c.samples.map((s) => s.wallS);
    L.push(`| \`${c.label}\` | ${Math.min(...w).toFixed(2)} | ${median(w).toFixed(2)} | ${Math.min(...c.samples.map((s) => s.cpuS)).toFixed(2)} | ${(Math.max(...c.samples.map((s) => s.maxRssKb)) / 1024).toFixed(0)} | ${[...new Set(c.samples.map((s) => s.exitCode))].join(', ')} | ${(c.samples[0]!.outBytes / 2 ** 20).toFixed(1)} | ${c.samples.map((s) => s.load1).join(', ')} |`);
  }
  const total = (tag: string): string => {
    const v = r.commands.find((c) => c.label === `${tag}validate`)!;
    const p = r.commands.find((c) => c.label === `${tag}plan (render only)`)!;
    const min = Math.min(...v.samples.map((s) => s.wallS)) + Math.min(...p.samples.map((s) => s.wallS));
    const med = median(v.samples.map((s) => s.wallS)) + median(p.samples.map((s) => s.wallS));
    const rss = Math.max(...r.commands.filter((c) => (tag ? c.label.startsWith(tag) : !c.label.startsWith('baseline'))).flatMap((c) => c.samples.map((s) => s.maxRssKb))) / 1024;
    return `${min.toFixed(1)} s (min; median ${med.toFixed(1)} s), peak RSS ${rss.toFixed(0)} MiB`;
  };
  L.push('', `**validate + plan: ${total('')}** (target: under 10 s and under 1 GiB).${r.opts.cli !== CLI ? ` Measured build: \`${r.opts.cli}\`.` : ''}${r.commands.some((c) => c.label.startsWith('baseline')) ? ` Baseline build (\`${r.opts.baseline}\`) in the same rounds: ${total('baseline: ')}.` : ''}`);
  L.push('', 'Wall time depends on what else runs: this machine is shared with other jobs (qemu appliances, test suites), so the load column matters; CPU time is less sensitive to it but still inflated under load.');
  return L.join('\n') + '\n';
}

const START = '<!-- bench:scale start (generated by npm run bench:scale; everything outside these markers is kept) -->';
const END = '<!-- bench:scale end -->';

/** Replace this bench's section of the results file (or append it), keeping everything else. */
export async function writeScaleSection(file: string, text: string): Promise<void> {
  const old = await fs.readFile(file, 'utf8').catch(() => '');
  const block = `${START}\n## 10k machines\n\n${text}${END}\n`;
  const a = old.indexOf(START);
  const b = old.indexOf(END);
  await fs.writeFile(file, a >= 0 && b > a ? old.slice(0, a) + block + old.slice(b + END.length + 1) : old + (old && !old.endsWith('\n\n') ? '\n' : '') + block);
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const r = await runScale(opts);
  const text = scaleText(r);
  process.stdout.write(text);
  if (opts.write) {
    await writeScaleSection(opts.out, text);
    log(`wrote the "10k machines" section of ${path.relative(process.cwd(), opts.out)}`);
  }
  if (r.commands.some((c) => c.samples.some((s) => s.exitCode !== 0))) process.exitCode = 1;
}

if (process.argv[1]?.endsWith('scale.js')) {
  main().catch((e: unknown) => {
    process.stderr.write(`bench:scale failed: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    process.exit(1);
  });
}
