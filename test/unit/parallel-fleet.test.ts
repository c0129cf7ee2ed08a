/**
 * `validate` and render-only `plan` on worker threads (fleet/parallel.ts) must
 * print exactly what one thread prints: the same stdout, stderr and exit code,
 * through the real CLI, on generated inventories (clean, and with errors in
 * machines of different slices, duplicates across slices), in every output
 * format, with --shard and --machine. $GHOSTPREP_MACHINES_PER_THREAD lets a few
 * hundred machines go to three threads in slices of ten or twenty;
 * $GHOSTPREP_WORKERS_ONLY makes sure the workers do them all (two of them, so
 * that their slices come back out of turn), and the default run mixes them with
 * the main thread's.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { makeInventory } from '../../bench/make-inventory.js';
import { LUKS_KEY_ENV } from '../../src/backends/guestfs/luks.js';
import { WorkerPool } from '../../src/fleet/parallel-pool.js';
import { defaultThreads, idleCores, threadCount, validateThreaded } from '../../src/fleet/parallel.js';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import { GhostprepError } from '../../src/util/errors.js';
import { REPO } from '../helpers/rootfs.js';

const CLI = path.join(REPO, 'dist/src/cli/main.js');
const PROFILES = path.join(REPO, 'profiles');
const N = 200;

interface Run { status: number; stdout: string; stderr: string }

function cli(args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: REPO, encoding: 'utf8', maxBuffer: 1 << 30,
    env: { ...process.env, GHOSTPREP_MACHINES_PER_THREAD: '20', GHOSTPREP_STATE: path.join(os.tmpdir(), 'ghostprep-parallel-no-state'), ...env },
  });
  // the only thing allowed to differ: how long each machine took
  return { status: r.status ?? -1, stdout: r.stdout.replace(/"durationMs":\d+/g, '"durationMs":0'), stderr: r.stderr };
}

/** Each line of the generated inventory, edited by machine number. */
function inventory(edit: (line: string, i: number) => string = (l) => l): string {
  const lines = makeInventory(N).split('\n');
  const first = lines.findIndex((l) => l.startsWith('  - '));
  return lines.map((l, k) => (k >= first && l.startsWith('  - ') ? edit(l, k - first) : l)).join('\n');
}

const name = (i: number): string => `${i % 10 === 9 ? 'gpu' : 'node'}${String(i).padStart(5, '0')}`;

describe('validate and plan on worker threads', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-parallel-'));
  const clean = path.join(dir, 'clean.yaml');
  const broken = path.join(dir, 'broken.yaml');
  writeFileSync(clean, inventory());
  // errors spread over many slices: a bad mac and ip, a bad and a repeated hostname, an unknown
  // profile, a repeated name (first and last slice), a repeated ip and mac across slices
  writeFileSync(broken, inventory((l, i) => {
    if (i === 3) return l.replace(/mac: "[^"]+"/, 'mac: "zz:00"');
    if (i === 40) return l.replace(/ip: [^,]+/, 'ip: 10.0.0.999/8');
    if (i === 150) return l.replace(/ip: [^,]+/, 'ip: 10.0.0.14/8');
    if (i === 100) return l.replace(/\{name: (\w+),/, '{name: $1, hostname: bad_host,');
    if (i === 101) return l.replace(/mac: "[^"]+"/, 'mac: "52:54:00:00:00:05"');
    if (i === 180) return l.replace(/\{name: (\w+),/, `{name: $1, hostname: ${name(10)},`);
    if (i === 120) return l.replace(/\{name: (\w+),/, '{name: $1, profile: nosuch,');
    if (i === N - 1) return l.replace(/\{name: \w+,/, `{name: ${name(7)},`);
    return l;
  }));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** One thread, then two workers alone; `mixed`: also the default split between the main thread and a worker. */
  const same = (args: string[], expectStatus?: number, mixed = false): Run => {
    const one = cli([...args, '--threads', '1']);
    const many = cli([...args, '--threads', '3'], { GHOSTPREP_WORKERS_ONLY: '1' });
    expect(many, args.join(' ')).to.deep.equal(one);
    if (mixed) expect(cli(args, { GHOSTPREP_THREADS: '2' }), `GHOSTPREP_THREADS=2 ${args.join(' ')}`).to.deep.equal(one);
    if (expectStatus !== undefined) expect(one.status, one.stderr).to.equal(expectStatus);
    return one;
  };

  for (const format of ['text', 'json', 'github']) {
    it(`validate --format ${format}: the same on one thread and on three`, () => {
      same(['validate', '-p', PROFILES, '-i', clean, '--format', format], 0, format === 'text');
      const bad = same(['validate', '-p', PROFILES, '-i', broken, '--format', format], 1, format === 'text');
      expect(bad.stdout + bad.stderr).to.match(/duplicate machine name/).and.match(/zz:00/).and.match(/nosuch/).and.match(/duplicate IP address/).and.match(/duplicate MAC address/).and.match(/duplicate hostname/);
    });
  }

  it('plan (text and --json, --detailed-exitcode): the same, machine by machine in inventory order', () => {
    const text = same(['plan', '-p', PROFILES, '-i', clean], 0, true);
    expect(text.stdout.match(/^=== \S+/gm)!.map((l) => l.slice(4))).to.deep.equal(Array.from({ length: N }, (_, i) => name(i)));
    const json = same(['--json', 'plan', '-p', PROFILES, '-i', clean, '--detailed-exitcode'], 2);
    expect((JSON.parse(json.stdout) as { machines: Array<{ name: string }> }).machines.map((m) => m.name)).to.deep.equal(Array.from({ length: N }, (_, i) => name(i)));
  });

  it('plan --shard and --machine: the same', () => {
    same(['plan', '-p', PROFILES, '-i', clean, '--shard', '1/3'], 0);
    same(['--json', 'plan', '-p', PROFILES, '-i', clean, '--shard', '0/4'], 0);
    same(['plan', '-p', PROFILES, '-i', clean, '--machine', name(199), '--machine', name(3)], 0);
    same(['plan', '-p', PROFILES, '-i', clean, '--machine', 'nosuch'], 1);
  });

  it('plan of an invalid inventory: the same diagnostics, nothing planned', () => {
    for (const g of [[], ['--json']]) {
      const r = same([...g, 'plan', '-p', PROFILES, '-i', broken], 1, g.length === 0);
      expect(r.stdout).to.not.match(/^=== /m);
    }
  });

  it('plan | head: exits 0 when the reader stops early', () => {
    for (const threads of ['1', '3']) {
      const r = spawnSync('bash', ['-c', `node "${CLI}" plan -p "${PROFILES}" -i "${clean}" --threads ${threads} | head -n 3 >/dev/null; echo "\${PIPESTATUS[0]}"`], {
        encoding: 'utf8', env: { ...process.env, GHOSTPREP_MACHINES_PER_THREAD: '20' },
      });
      expect(r.stdout.trim(), `--threads ${threads}: ${r.stderr}`).to.equal('0');
    }
  });

  it('validateThreaded uses the workers and gives validateFleet\'s diagnostics', async () => {
    process.env.GHOSTPREP_MACHINES_PER_THREAD = '20';
    process.env.GHOSTPREP_WORKERS_ONLY = '1';
    try {
      for (const inv of [clean, broken]) {
        const v = await validateThreaded([PROFILES], inv, { threads: 3, keepPool: true });
        await v.pool?.close();
        expect(v.pool, 'a pool').to.not.equal(undefined);
        expect(v.sliceThread, 'slices on the workers').to.not.include(0);
        expect(v.diagnostics).to.deep.equal(validateFleet([PROFILES], inv).diagnostics);
      }
    } finally {
      delete process.env.GHOSTPREP_MACHINES_PER_THREAD;
      delete process.env.GHOSTPREP_WORKERS_ONLY;
    }
  });
});

describe('threads: options and failures', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-pool-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const script = (name: string, body: string): URL => {
    const file = path.join(dir, name);
    writeFileSync(file, `import { parentPort } from 'node:worker_threads';\n${body}\n`);
    return pathToFileURL(file);
  };
  const tasks = Array.from({ length: 20 }, (_, i) => i);
  const local = async (t: number): Promise<number> => t * 10;

  it('hands results back in task order, from workers and the main thread', async () => {
    const pool = new WorkerPool<number>(script('echo.mjs', `parentPort.postMessage({ type: 'ready', info: 1 });
parentPort.on('message', ({ id, task }) => setTimeout(() => parentPort.postMessage({ type: 'result', id, result: task * 10 }), (task * 7) % 5));`), 2, null);
    const got: number[] = [];
    try {
      await pool.run({ tasks, local, deliver: (r, i) => { expect(i).to.equal(got.length); got.push(r); }, window: 4 });
    } finally {
      await pool.close();
    }
    expect(got).to.deep.equal(tasks.map((t) => t * 10));
  });

  it('never waits for a worker that has nothing to do (small windows)', async function () {
    this.timeout(60_000);
    // a worker that answers at once while the main thread is slow: its results open the window
    // while the main thread works, and the next task must still be started (this once hung)
    const pool = new WorkerPool<number>(script('fast.mjs', `parentPort.postMessage({ type: 'ready', info: 1 });
parentPort.on('message', ({ id, task }) => parentPort.postMessage({ type: 'result', id, result: task * 10 }));`), 1, null);
    const slow = async (t: number): Promise<number> => { await new Promise((r) => setTimeout(r, 2)); return t * 10; };
    try {
      for (const window of [1, 2, 3, 6]) {
        for (let round = 0; round < 4; round++) {
          const got: number[] = [];
          await pool.run({ tasks, local: slow, deliver: (r) => got.push(r), window });
          expect(got, `window ${window}`).to.deep.equal(tasks.map((t) => t * 10));
        }
      }
    } finally {
      await pool.close();
    }
  });

  for (const [what, body, message] of [
    ['throws', `parentPort.postMessage({ type: 'ready', info: 1 }); parentPort.on('message', () => { throw new Error('boom'); });`, /worker thread 1 failed: boom/],
    ['exits', `parentPort.postMessage({ type: 'ready', info: 1 }); parentPort.on('message', () => process.exit(3));`, /worker thread 1 exited \(code 3\)/],
    ['reports an error', `parentPort.postMessage({ type: 'error', message: 'worker thread: no inventory' });`, /no inventory/],
    ['fails to load', `throw new Error('cannot load');`, /worker thread 1 failed: cannot load/],
    ['saw another fleet', `parentPort.postMessage({ type: 'ready', info: 2 });`, /other machines/],
  ] as const) {
    it(`a worker that ${what}: the run fails with a GhostprepError, no hang`, async () => {
      const pool = new WorkerPool<number>(script(`${what.replace(/ /g, '-')}.mjs`, body), 1, null, (info) => (info === 1 ? undefined : 'other machines'));
      // workers only: the run cannot end without the worker, whatever the machine's load (a main thread
      // that merely ran slowly could finish every task before a worker slow to start had failed)
      const slow = async (t: number): Promise<number> => { await new Promise((r) => setTimeout(r, 20)); return t; };
      let err: unknown;
      try {
        await pool.run({ tasks, local: slow, deliver: () => undefined, workersOnly: true });
      } catch (e) {
        err = e;
      } finally {
        await pool.close();
      }
      expect(err).to.be.instanceOf(GhostprepError);
      expect((err as Error).message).to.match(message);
    });
  }

  it('--threads and $GHOSTPREP_THREADS: positive integers, the option before the variable', () => {
    const saved = process.env.GHOSTPREP_THREADS;
    try {
      delete process.env.GHOSTPREP_THREADS;
      expect(threadCount()).to.equal(undefined);
      expect(threadCount('3')).to.equal(3);
      process.env.GHOSTPREP_THREADS = '1';
      expect(threadCount()).to.equal(1);
      expect(threadCount('2')).to.equal(2);
      expect(() => threadCount('0')).to.throw(GhostprepError, '--threads 0: a positive integer');
      process.env.GHOSTPREP_THREADS = 'x';
      expect(() => threadCount()).to.throw(GhostprepError, 'GHOSTPREP_THREADS=x: a positive integer');
    } finally {
      if (saved === undefined) delete process.env.GHOSTPREP_THREADS;
      else process.env.GHOSTPREP_THREADS = saved;
    }
    const r = cli(['validate', '-p', PROFILES, '--threads', 'two']);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.equal('error: --threads two: a positive integer\n');
  });

  it('the default follows the machine\'s load: with every core kept busy, no core is idle and one thread is the default', async function () {
    this.timeout(60_000);
    // one spinning thread per core: each is a runnable task in /proc/loadavg, whatever else the machine runs
    const cores = os.availableParallelism();
    const spin = script('spin.mjs', `const end = Date.now() + 20_000; parentPort.postMessage('spinning'); while (Date.now() < end) { /* busy */ }`);
    const spinners = Array.from({ length: cores }, () => new Worker(spin));
    try {
      await Promise.all(spinners.map((w) => new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); })));
      await new Promise((r) => setTimeout(r, 50));
      expect(idleCores(), `${cores} spinning threads on ${cores} cores`).to.equal(0);
      expect(defaultThreads(), 'the default on a busy machine').to.equal(1);
    } finally {
      await Promise.all(spinners.map((w) => w.terminate()));
    }
  });

  it('the CLI names the LUKS key variable of the guestfs backend (main.ts does not import it)', () => {
    expect(cli(['--help']).stdout).to.include(`$${LUKS_KEY_ENV}`);
  });
});
