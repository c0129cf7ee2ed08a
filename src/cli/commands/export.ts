import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { k8sManifests, k8sReportsDir, parseVolume, type VolumeRole, type VolumeSource } from '../../fleet/export/k8s.js';
import type { FleetCommand, FleetJob } from '../../fleet/export/job.js';
import { slurmPaths, slurmScript } from '../../fleet/export/slurm.js';
import { DEFAULT_STATE_DIR } from '../../identity/state.js';
import { defaultLibraryDir } from '../../image/library.js';
import { writeAtomic } from '../../report/report.js';
import { ExitCode, GhostprepError } from '../../util/errors.js';
import { collect, Logger, out, type GlobalOptions } from '../common.js';

type Run = (fn: (g: GlobalOptions) => Promise<number>) => Promise<void>;

interface CommonOptions {
  run: string; profile: string[]; inventory: string; base?: string; out?: string; mode?: string; size?: string;
  sha256?: string; target?: string; state?: string; tasks: string; jobs?: string; output?: string; submit?: boolean;
}
interface SlurmOptions extends CommonOptions {
  library: string; maxParallel?: string; outputDir: string; ghostprep?: string; jobName: string; partition?: string; account?: string;
  time?: string; cpusPerTask?: string; mem?: string; sbatchArg?: string[]; keyFile?: string;
}
interface K8sOptions extends CommonOptions {
  name: string; namespace?: string; image?: string; pullPolicy?: string; parallelism?: string; cpu?: string; memory?: string;
  volume?: string[]; ghostprep?: string; backoffLimit: string; mergeDeadline: string; runId?: string; serviceAccount?: string;
}

function int(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new GhostprepError(`${option} ${value}: need a whole number`);
  return Number(value);
}

function command(o: CommonOptions): FleetCommand {
  if (o.run !== 'deploy' && o.run !== 'apply') throw new GhostprepError(`--run ${o.run}: use deploy or apply`);
  return o.run;
}

function mode(o: CommonOptions): 'overlay' | 'copy' | undefined {
  if (o.mode !== undefined && o.mode !== 'overlay' && o.mode !== 'copy') throw new GhostprepError(`--mode ${o.mode}: use overlay or copy`);
  return o.mode;
}

/** A target pattern with its path made absolute (the jobs run in another directory, on other nodes). */
function absoluteTarget(t: string): string {
  const m = /^rootfs:(.*)$/.exec(t);
  if (m) return `rootfs:${path.resolve(m[1]!)}`;
  return path.resolve(t);
}

function fleetOptions(cmd: Command): Command {
  return cmd
    .option('--run <command>', 'what each shard runs: deploy (clones from --base into --out) or apply (--target)', 'deploy')
    .requiredOption('-p, --profile <file|dir>', 'profile file or directory (repeatable)', collect)
    .requiredOption('-i, --inventory <file>', 'machine inventory')
    .option('--base <image|library:NAME>', 'deploy: base image or library image')
    .option('--out <dir>', 'deploy: directory of the clones')
    .option('--mode <mode>', 'deploy: overlay or copy')
    .option('--size <size>', 'deploy: grow each clone (e.g. 20G)')
    .option('--sha256 <hex>', 'deploy: refuse the base unless its sha256 is this')
    .option('-t, --target <pattern>', "apply: target pattern with {name}, e.g. 'rootfs:/srv/nodes/{name}'")
    .option('--tasks <n>', 'shards: array tasks (Slurm) or completions (Kubernetes)', '4')
    .option('-j, --jobs <n>', 'appliances in parallel inside one shard')
    .option('-o, --output <file>', 'write here instead of stdout')
    .option('--submit', 'submit right away (needs -o)');
}

export function register(program: Command, run: Run): void {
  const exp = program.command('export').description('write a Slurm job array or a Kubernetes Indexed Job that deploys (or applies) a fleet in shards, then merges and audits')
    .addHelpText('after', `
Examples:
  ghostprep export slurm -p profiles/ -i inventory.yaml --base images/debian12.qcow2 --out /shared/clones \\
    --state /shared/state --tasks 16 --partition batch --time 02:00:00 --mem 4G -o fleet.sbatch
  bash fleet.sbatch --wait
  ghostprep export k8s -p profiles/ -i inventory.yaml --base library:debian12 --tasks 8 --image registry.example/ghostprep:0.1 -o fleet.yaml
  kubectl apply -f fleet.yaml`);

  fleetOptions(exp.command('slurm'))
    .description('a bash file: submits a job array (one shard per task) and a dependent merge + audit job')
    .option('--state <dir>', 'state dir shared by every node', process.env.GHOSTPREP_STATE ?? DEFAULT_STATE_DIR)
    .option('--library <dir>', 'deploy: image library for library:NAME (default $GHOSTPREP_LIBRARY or ./images)', defaultLibraryDir())
    .option('--key-file <file>', 'deploy: key of an encrypted library image (readable on the nodes)')
    .option('--max-parallel <n>', 'array tasks running at once (sbatch --array=…%N)')
    .option('--output-dir <dir>', 'where reports/ and logs/ go (shared by every node)', 'ghostprep-slurm')
    .option('--ghostprep <command>', 'ghostprep on the compute nodes (default: the node and script running this export)')
    .option('--job-name <name>', '#SBATCH --job-name', 'ghostprep')
    .option('--partition <name>', '#SBATCH --partition')
    .option('--account <name>', '#SBATCH --account')
    .option('--time <limit>', '#SBATCH --time, e.g. 02:00:00 (per task, and for the merge job)')
    .option('--cpus-per-task <n>', '#SBATCH --cpus-per-task (default 1; --jobs defaults to it)')
    .option('--mem <size>', '#SBATCH --mem, e.g. 4G (an appliance with 20 drives takes about 1.5G)')
    .option('--sbatch-arg <arg>', 'one more sbatch option for both submissions, e.g. --sbatch-arg=--qos=long (repeatable)', collect)
    .addHelpText('after', `
Every path is made absolute: the nodes must see the same files (a shared filesystem).
Run the file with bash (not sbatch): it submits the array (--array=0-N-1) and the merge job
(--dependency=afterany:ARRAY), which merges the shard reports into OUTPUT_DIR/reports/merged.json
and audits every machine. 'bash FILE --wait' waits and exits with the merge job's code;
'bash FILE 2,5' runs shards 2 and 5 again, then the merge.

Examples:
  ghostprep export slurm -p profiles/ -i inventory.yaml --base /shared/images/debian12.qcow2 \\
    --out /shared/clones --state /shared/state --tasks 16 --max-parallel 8 --partition batch \\
    --account hpc --time 01:00:00 --cpus-per-task 2 --mem 4G --output-dir /shared/run1 -o run1.sbatch
  bash run1.sbatch --wait
  ghostprep export slurm --run apply -p profiles/ -i inventory.yaml --target 'rootfs:/srv/nodes/{name}' \\
    --state /shared/state --tasks 4 --ghostprep /opt/ghostprep/bin/ghostprep -o apply.sbatch --submit`)
    .action((o: SlurmOptions) => run(async (g) => {
      const log = new Logger(g);
      const cmd = command(o);
      const deploy = cmd === 'deploy';
      const job: FleetJob = {
        command: cmd,
        profiles: o.profile.map((p) => path.resolve(p)),
        inventory: path.resolve(o.inventory),
        state: path.resolve(o.state ?? DEFAULT_STATE_DIR),
        base: deploy && o.base ? (o.base.startsWith('library:') ? o.base : path.resolve(o.base)) : o.base,
        library: deploy && o.base?.startsWith('library:') ? path.resolve(o.library) : undefined,
        out: o.out ? path.resolve(o.out) : undefined,
        mode: mode(o), size: o.size, sha256: o.sha256,
        keyFile: o.keyFile ? path.resolve(o.keyFile) : undefined,
        target: o.target ? absoluteTarget(o.target) : undefined,
        jobs: int('--jobs', o.jobs),
      };
      const tasks = int('--tasks', o.tasks)!;
      const outputDir = path.resolve(o.outputDir);
      const ghostprep = o.ghostprep ? o.ghostprep.trim().split(/\s+/) : [process.execPath, path.resolve(process.argv[1]!)];
      const script = slurmScript({
        job, tasks, maxParallel: int('--max-parallel', o.maxParallel), outputDir, ghostprep,
        jobName: o.jobName, partition: o.partition, account: o.account, time: o.time,
        cpusPerTask: int('--cpus-per-task', o.cpusPerTask), mem: o.mem, sbatchArgs: o.sbatchArg,
      });
      const paths = slurmPaths(outputDir, tasks);
      if (o.submit && !o.output) throw new GhostprepError('--submit needs -o FILE (sbatch runs that file)');
      if (o.output) {
        writeAtomic(o.output, script, 0o755);
        chmodSync(o.output, 0o755);
      }
      let submitted: { arrayJob?: string; mergeJob?: string } | undefined;
      if (o.submit) {
        const r = spawnSync('bash', [path.resolve(o.output!)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
        process.stderr.write(r.stdout ?? '');
        if (r.error || r.status !== 0) throw new GhostprepError(`submitting ${o.output} failed${r.error ? `: ${r.error.message}` : ` (exit ${r.status})`}`);
        submitted = { arrayJob: /job array ([^;\s]+)/.exec(r.stdout)?.[1], mergeJob: /merge and audit: job (\S+)/.exec(r.stdout)?.[1] };
      }
      if (g.json) {
        out(JSON.stringify({ kind: 'slurm', file: o.output ?? null, tasks, outputDir, mergedReport: paths.merged, logs: paths.logs, ...(o.output ? {} : { script }), ...(submitted ? { submitted } : {}) }));
      } else if (o.output) {
        log.info(`wrote ${o.output}: ${tasks} shard(s) of ${cmd}; submit with: bash ${o.output}  (merged report: ${paths.merged})`);
      } else {
        out(script);
      }
      return ExitCode.ok;
    }));

  fleetOptions(exp.command('k8s'))
    .description('Kubernetes manifests: an Indexed Job (shard = JOB_COMPLETION_INDEX) and a merge + audit Job')
    .option('--image <ref>', 'container image with ghostprep and libguestfs (required)')
    .option('--name <name>', 'Job name (the merge Job is NAME-merge)', 'ghostprep')
    .option('--namespace <ns>', 'namespace of both Jobs')
    .option('--parallelism <n>', 'pods at once (default: --tasks)')
    .option('--cpu <q>', 'cpu request per pod, e.g. 1')
    .option('--memory <q>', 'memory request and limit per pod, e.g. 4Gi')
    .option('--volume <ROLE=pvc:CLAIM|ROLE=host:/DIR>', 'source of a volume: config, library, out, state (default PVC ghostprep-ROLE; repeatable)', collect)
    .option('--ghostprep <command>', 'ghostprep inside the image', 'ghostprep')
    .option('--pull-policy <policy>', 'imagePullPolicy: Always, IfNotPresent or Never')
    .option('--backoff-limit <n>', 'pod retries of the shard Job', '3')
    .option('--merge-deadline <seconds>', 'the merge Job waits at most this long for the shard reports', '86400')
    .option('--run-id <id>', 'names this run\'s report directory (default: random)')
    .option('--service-account <name>', 'serviceAccountName of the pods')
    .addHelpText('after', `
Paths are inside the pods: -p and -i are relative to the config volume (/ghostprep/config),
--base to the library volume (/ghostprep/library; or library:NAME), --out (default clones) to the
out volume (/ghostprep/out); the state volume is /ghostprep/state. Reports land in
/ghostprep/out/reports/NAME-RUN/, merged.json and audit.txt included. The merge Job starts
with the shards and waits for their reports. --submit runs kubectl apply -f FILE.

Examples:
  ghostprep export k8s -p profiles/ -i inventory.yaml --base library:debian12 --tasks 8 --parallelism 4 \\
    --image registry.example/ghostprep:0.1 --cpu 2 --memory 4Gi -o fleet.yaml
  ghostprep export k8s -p profiles/ -i inv.yaml --base debian12.qcow2 --tasks 2 --image ghostprep:dev \\
    --volume config=host:/srv/gp/config --volume library=host:/srv/images --volume out=host:/srv/gp/out \\
    --volume state=host:/srv/gp/state --json > fleet.json`)
    .action((o: K8sOptions) => run(async (g) => {
      const log = new Logger(g);
      const volumes: Partial<Record<VolumeRole, VolumeSource>> = {};
      for (const v of o.volume ?? []) { const [role, src] = parseVolume(v); volumes[role] = src; }
      if (o.pullPolicy !== undefined && !['Always', 'IfNotPresent', 'Never'].includes(o.pullPolicy)) throw new GhostprepError(`--pull-policy ${o.pullPolicy}: Always, IfNotPresent or Never`);
      const runId = o.runId ?? randomBytes(4).toString('hex');
      const manifests = k8sManifests({
        name: o.name, namespace: o.namespace, image: o.image ?? '', imagePullPolicy: o.pullPolicy as 'Always' | undefined,
        command: command(o), profiles: o.profile, inventory: o.inventory, base: o.base, out: o.out, mode: mode(o), size: o.size, sha256: o.sha256,
        target: o.target, completions: int('--tasks', o.tasks)!, parallelism: int('--parallelism', o.parallelism), jobs: int('--jobs', o.jobs),
        cpu: o.cpu, memory: o.memory, volumes, ghostprep: o.ghostprep?.trim().split(/\s+/), backoffLimit: int('--backoff-limit', o.backoffLimit),
        mergeDeadlineSeconds: int('--merge-deadline', o.mergeDeadline), runId, serviceAccountName: o.serviceAccount,
      });
      const reports = k8sReportsDir(o.name, runId);
      const text = g.json
        ? JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }, null, 2) + '\n'
        : `# ghostprep ${o.run} in ${o.tasks} shard(s), then merge + audit. kubectl apply -f THIS_FILE\n# reports: ${reports}/ (merged.json, audit.txt) on the out volume\n`
          + manifests.map((m) => stringify(m, { lineWidth: 0 })).join('---\n');
      if (o.submit && !o.output) throw new GhostprepError('--submit needs -o FILE (kubectl applies that file)');
      if (o.output) writeAtomic(o.output, text);
      else out(text);
      if (o.output) log.info(`wrote ${o.output}: Job ${o.name} (${o.tasks} indexed shard(s)) and Job ${o.name}-merge; reports in ${reports}/`);
      if (o.submit) {
        const r = spawnSync('kubectl', ['apply', '-f', o.output!], { stdio: ['ignore', 2, 'inherit'] });
        if (r.error || r.status !== 0) throw new GhostprepError(`kubectl apply -f ${o.output} failed${r.error ? `: ${r.error.message}` : ` (exit ${r.status})`}`);
      }
      return ExitCode.ok;
    }));
}
