/**
 * A one-host Slurm cluster for tests: munged, slurmctld and slurmd (Debian's
 * slurm-wlm and munge, .ci/apt-packages.d/slurm.txt) with a fresh munge key,
 * slurm.conf, state and spool under one temporary directory and free ports,
 * so that a system Slurm (if any) is not touched. Needs root (CI runs as
 * root): slurmd starts the jobs as the submitting user. Clients find the
 * cluster through SLURM_CONF in `env`.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const SLURM_PROGRAMS = ['munged', 'slurmctld', 'slurmd', 'sbatch', 'sinfo', 'scontrol'] as const;
export const NODE_NAME = 'gpnode';
export const PARTITION = 'gp';

export interface SlurmCluster {
  readonly dir: string;
  /** process.env plus SLURM_CONF: pass it to sbatch, squeue, … */
  readonly env: NodeJS.ProcessEnv;
  /** the daemons' logs, for a failing test's message */
  logs(): string;
  stop(): Promise<void>;
}

function which(program: string): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', ...(process.env.PATH ?? '').split(':')]) {
    const p = path.join(dir, program);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

/** Why a cluster cannot start here, or undefined when it can. */
export function slurmMissing(): string | undefined {
  const missing = SLURM_PROGRAMS.filter((p) => !which(p));
  if (missing.length) return `${missing.join(', ')} not found: apt-get install slurm-wlm munge (listed in .ci/apt-packages.d/slurm.txt)`;
  if (process.getuid?.() !== 0) return 'the test Slurm cluster needs root (slurmd runs jobs as their user)';
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pidOf(file: string): number | undefined {
  try { const n = Number(readFileSync(file, 'utf8').trim()); return n > 0 ? n : undefined; } catch { return undefined; }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

export async function startSlurm(opts: { cpus?: number } = {}): Promise<SlurmCluster> {
  const why = slurmMissing();
  if (why) throw new Error(why);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-slurm-'));
  for (const d of ['state', 'spool', 'log']) mkdirSync(path.join(dir, d));
  const key = path.join(dir, 'munge.key');
  writeFileSync(key, randomBytes(1024), { mode: 0o400 });
  const socket = path.join(dir, 'munge.sock');
  const host = os.hostname().split('.')[0]!;
  const [ctlPort, dPort] = [await freePort(), await freePort()];
  const memMb = Math.floor((os.totalmem() / 1024 / 1024) * 0.8);
  const conf = path.join(dir, 'slurm.conf');
  writeFileSync(conf, [
    'ClusterName=ghostpreptest',
    `SlurmctldHost=${host}(127.0.0.1)`,
    `SlurmctldPort=${ctlPort}`,
    `SlurmdPort=${dPort}`,
    'SlurmUser=root',
    'SlurmdUser=root',
    'AuthType=auth/munge',
    'CredType=cred/munge',
    `AuthInfo=socket=${socket}`,
    `StateSaveLocation=${dir}/state`,
    `SlurmdSpoolDir=${dir}/spool`,
    `SlurmctldPidFile=${dir}/slurmctld.pid`,
    `SlurmdPidFile=${dir}/slurmd.pid`,
    `SlurmctldLogFile=${dir}/log/slurmctld.log`,
    `SlurmdLogFile=${dir}/log/slurmd.log`,
    // no cgroups in a container: plain process tracking, no task binding, no accounting
    'ProctrackType=proctrack/linuxproc',
    'TaskPlugin=task/none',
    'JobAcctGatherType=jobacct_gather/none',
    'AccountingStorageType=accounting_storage/none',
    'JobCompType=jobcomp/none',
    'SelectType=select/cons_tres',
    'SelectTypeParameters=CR_CPU',
    'SchedulerType=sched/backfill',
    'MpiDefault=none',
    'ReturnToService=2',
    // `sbatch --wait` polls the job every 2 s only while that is under MinJobAge/2, else every 8 then
    // 32 s (up to half a minute lost after the merge job ends); 4 s keeps a finished job's record
    // for two polls, and the merge job's dependency holds either way (a purged job counts as ended)
    'MinJobAge=4',
    'SlurmdParameters=config_overrides',
    `NodeName=${NODE_NAME} NodeHostname=${host} NodeAddr=127.0.0.1 CPUs=${opts.cpus ?? 2} RealMemory=${memMb} State=UNKNOWN`,
    `PartitionName=${PARTITION} Nodes=${NODE_NAME} Default=YES MaxTime=INFINITE State=UP`,
    '',
  ].join('\n'));

  const env: NodeJS.ProcessEnv = { ...process.env, SLURM_CONF: conf };
  const cluster: SlurmCluster = {
    dir,
    env,
    logs: () => readdirSync(path.join(dir, 'log')).map((f) => {
      const text = readFileSync(path.join(dir, 'log', f), 'utf8');
      return `--- ${f} (last lines)\n${text.split('\n').slice(-25).join('\n')}`;
    }).join('\n'),
    stop: async () => {
      const pids = ['slurmd.pid', 'slurmctld.pid', 'munged.pid'].map((f) => pidOf(path.join(dir, f))).filter((p): p is number => p !== undefined);
      for (const pid of pids) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
      for (let i = 0; i < 100 && pids.some(alive); i++) await sleep(100);
      for (const pid of pids.filter(alive)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const start = (program: string, args: string[]) => {
    const r = spawnSync(which(program)!, args, { env, encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`${program} ${args.join(' ')}: exit ${r.status}: ${r.stderr}\n${cluster.logs()}`);
  };
  try {
    // munged refuses to run as root without --force; every path is ours, so nothing clashes with a system munged
    start('munged', ['--force', `--key-file=${key}`, `--socket=${socket}`, `--pid-file=${dir}/munged.pid`, `--log-file=${dir}/log/munged.log`, `--seed-file=${dir}/munge.seed`]);
    start('slurmctld', ['-f', conf, '-c']);
    start('slurmd', ['-f', conf, '-N', NODE_NAME]);
    for (let i = 0; ; i++) {
      const r = spawnSync(which('sinfo')!, ['-h', '-N', '-o', '%T'], { env, encoding: 'utf8' });
      if (r.status === 0 && /^idle/m.test(r.stdout)) break;
      if (i > 120) throw new Error(`the Slurm node did not become idle: ${r.stdout}${r.stderr}\n${cluster.logs()}`);
      await sleep(500);
    }
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
