/**
 * `ghostprep export k8s`: an Indexed Job (one pod per shard, the shard from
 * JOB_COMPLETION_INDEX) and a merge Job that waits for every shard's report,
 * merges them and audits the machines. Pure: returns the objects.
 *
 * Volumes, one per role, each a PersistentVolumeClaim (default: claim
 * `ghostprep-ROLE`) or a hostPath:
 *   config  /ghostprep/config   read-only: profiles, inventory, templates (-p, -i are relative to it)
 *   library /ghostprep/library  read-only: base images / the image library (--base is relative to it)
 *   out     /ghostprep/out      clones (--out is relative to it), reports/RUN/
 *   state   /ghostprep/state    generated identities (private keys: its own volume)
 * and an emptyDir at /var/tmp for the libguestfs appliance.
 * PVCs because shards run on any node: `out` and `state` need ReadWriteMany
 * (NFS, CephFS…); hostPath suits one node or a test cluster.
 */
import path from 'node:path';
import { GhostprepError } from '../../util/errors.js';
import { auditTarget, checkJob, shardArgs, shardReportName, type FleetCommand } from './job.js';
import { shQuote } from './shell.js';

export const ROLES = ['config', 'library', 'out', 'state'] as const;
export type VolumeRole = (typeof ROLES)[number];
export type VolumeSource = { readonly kind: 'pvc'; readonly claim: string } | { readonly kind: 'hostPath'; readonly path: string };
export const MOUNT_ROOT = '/ghostprep';
const READ_ONLY: Record<VolumeRole, boolean> = { config: true, library: true, out: false, state: false };

export interface K8sExportOptions {
  readonly name: string;
  readonly namespace?: string;
  readonly image: string;
  readonly imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  readonly command: FleetCommand;
  /** relative to the config volume */
  readonly profiles: readonly string[];
  readonly inventory: string;
  /** deploy: library:NAME, or a file relative to the library volume */
  readonly base?: string;
  /** deploy: clone directory relative to the out volume (default: clones) */
  readonly out?: string;
  readonly mode?: 'overlay' | 'copy';
  readonly size?: string;
  readonly sha256?: string;
  /** apply: target pattern with {name}, a path inside the pod (under /ghostprep/out) */
  readonly target?: string;
  readonly completions: number;
  readonly parallelism?: number;
  readonly jobs?: number;
  readonly cpu?: string;
  readonly memory?: string;
  readonly volumes?: Partial<Record<VolumeRole, VolumeSource>>;
  /** ghostprep inside the image (default ['ghostprep']) */
  readonly ghostprep?: readonly string[];
  readonly backoffLimit?: number;
  /** the merge Job gives up after this long (default 24 h) */
  readonly mergeDeadlineSeconds?: number;
  /** names this run's report directory: reports/NAME-RUN/ (a fresh one per export) */
  readonly runId: string;
  readonly serviceAccountName?: string;
}

type Json = Record<string, unknown>;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function mountOf(role: VolumeRole): string { return `${MOUNT_ROOT}/${role}`; }

/** `rel` inside the volume of `role`; refuses .. and absolute paths outside it. */
function inVolume(role: VolumeRole, rel: string, option: string): string {
  const root = mountOf(role);
  const p = path.posix.resolve(root, rel);
  if (p !== root && !p.startsWith(root + '/')) throw new GhostprepError(`${option} ${rel}: must be inside the ${role} volume (${root})`);
  return p;
}

/** The Indexed Job and the merge Job, in the order to apply them. */
export function k8sManifests(o: K8sExportOptions): Json[] {
  if (!DNS_LABEL.test(o.name) || o.name.length > 50) throw new GhostprepError(`--name ${o.name}: a DNS label of at most 50 characters (lower case, digits, -)`);
  if (o.namespace !== undefined && !DNS_LABEL.test(o.namespace)) throw new GhostprepError(`--namespace ${o.namespace}: not a DNS label`);
  if (!o.image) throw new GhostprepError('--image is required: a container image with ghostprep and libguestfs');
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(o.runId) || o.runId.length > 20) throw new GhostprepError(`run id ${o.runId}: lower case letters, digits and -, at most 20`);
  const completions = o.completions;
  if (!Number.isInteger(completions) || completions < 1) throw new GhostprepError(`--tasks ${completions}: need a whole number >= 1`);
  const parallelism = o.parallelism ?? completions;
  if (!Number.isInteger(parallelism) || parallelism < 1) throw new GhostprepError(`--parallelism ${parallelism}: need a whole number >= 1`);

  const roles: VolumeRole[] = o.command === 'deploy' ? ['config', 'library', 'out', 'state'] : ['config', 'out', 'state'];
  const job = {
    command: o.command,
    profiles: o.profiles.map((p) => inVolume('config', p, '-p')),
    inventory: inVolume('config', o.inventory, '-i'),
    state: mountOf('state'),
    ...(o.command === 'deploy' ? {
      base: o.base?.startsWith('library:') ? o.base : o.base === undefined ? undefined : inVolume('library', o.base, '--base'),
      library: o.base?.startsWith('library:') ? mountOf('library') : undefined,
      out: inVolume('out', o.out ?? 'clones', '--out'),
      mode: o.mode, size: o.size, sha256: o.sha256,
    } : { target: o.target }),
    jobs: o.jobs,
  };
  checkJob(job);
  if (o.command === 'apply' && !o.target!.replace(/^rootfs:/, '').startsWith(mountOf('out') + '/')) {
    throw new GhostprepError(`--target ${o.target}: on Kubernetes the machines must be under ${mountOf('out')}/ (the out volume)`);
  }

  const ghostprep = o.ghostprep?.length ? [...o.ghostprep] : ['ghostprep'];
  const reports = `${mountOf('out')}/reports/${o.name}-${o.runId}`;
  const jobs = String(o.jobs ?? 1);
  const labels = { 'app.kubernetes.io/name': 'ghostprep', 'app.kubernetes.io/instance': o.name, 'ghostprep.io/run': o.runId };
  const metadata = (name: string, component: string) => ({ name, ...(o.namespace ? { namespace: o.namespace } : {}), labels: { ...labels, 'app.kubernetes.io/component': component } });

  const volumes = [
    ...roles.map((role) => {
      const src = o.volumes?.[role] ?? { kind: 'pvc', claim: `ghostprep-${role}` };
      return src.kind === 'pvc'
        ? { name: role, persistentVolumeClaim: { claimName: src.claim, ...(READ_ONLY[role] ? { readOnly: true } : {}) } }
        : { name: role, hostPath: { path: src.path, type: 'Directory' } };
    }),
    { name: 'scratch', emptyDir: {} },
  ];
  const volumeMounts = [
    ...roles.map((role) => ({ name: role, mountPath: mountOf(role), ...(READ_ONLY[role] ? { readOnly: true } : {}) })),
    { name: 'scratch', mountPath: '/var/tmp' },
  ];
  const resources = (o.cpu || o.memory) ? {
    resources: {
      requests: { ...(o.cpu ? { cpu: o.cpu } : {}), ...(o.memory ? { memory: o.memory } : {}) },
      ...(o.memory ? { limits: { memory: o.memory } } : {}),
    },
  } : {};
  const env = [
    { name: 'LIBGUESTFS_BACKEND', value: 'direct' },
    { name: 'LIBGUESTFS_BACKEND_SETTINGS', value: 'force_tcg' },
    { name: 'TMPDIR', value: '/var/tmp' },
  ];
  const podSpec = (container: Json) => ({
    restartPolicy: 'Never',
    ...(o.serviceAccountName ? { serviceAccountName: o.serviceAccountName } : {}),
    containers: [{ name: 'ghostprep', image: o.image, ...(o.imagePullPolicy ? { imagePullPolicy: o.imagePullPolicy } : {}), ...container, ...resources, volumeMounts }],
    volumes,
  });

  // $(JOB_COMPLETION_INDEX) is expanded by the kubelet because the variable is declared in env
  // (the Job controller also injects it, but only an explicit declaration guarantees the expansion).
  const shardJob = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: metadata(o.name, 'shard'),
    spec: {
      completionMode: 'Indexed',
      completions,
      parallelism,
      backoffLimit: o.backoffLimit ?? 3,
      // invalid input (1) and a missing tool (4) do not get better by retrying
      podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: { containerName: 'ghostprep', operator: 'In', values: [1, 4] } }] },
      template: {
        metadata: { labels: { ...labels, 'app.kubernetes.io/component': 'shard' } },
        spec: podSpec({
          command: ghostprep,
          args: [...shardArgs(job), '--jobs', jobs, '--shard', `$(JOB_COMPLETION_INDEX)/${completions}`,
            '--report', `${reports}/${shardReportName('$(JOB_COMPLETION_INDEX)', completions)}`],
          env: [{ name: 'JOB_COMPLETION_INDEX', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } }, ...env],
        }),
      },
    },
  };

  const g = ghostprep.map(shQuote).join(' ');
  const script = [
    'set -u',
    `reports=${shQuote(reports)}`,
    'mkdir -p "$reports"',
    `i=0; while [ "$i" -lt ${completions} ]; do`,
    `  until [ -f "$reports/shard-$i-of-${completions}.json" ]; do sleep 10; done`,
    '  i=$((i + 1))',
    'done',
    'rc=0',
    `${g} report merge "$reports"/shard-*-of-${completions}.json -i ${shQuote(job.inventory)} -o "$reports/merged.json" || rc=$?`,
    'if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; then exit "$rc"; fi',
    'audit=0',
    `${g} audit --target ${shQuote(auditTarget(job))} --jobs ${jobs} > "$reports/audit.txt" || audit=$?`,
    'tail -n 3 "$reports/audit.txt"',
    'if [ "$audit" -eq 5 ]; then exit 5; fi',
    'if [ "$rc" -ne 0 ]; then exit "$rc"; fi',
    'exit "$audit"',
  ].join('\n');
  const mergeJob = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: metadata(`${o.name}-merge`, 'merge'),
    spec: {
      completions: 1,
      backoffLimit: 0,
      activeDeadlineSeconds: o.mergeDeadlineSeconds ?? 86_400,
      template: {
        metadata: { labels: { ...labels, 'app.kubernetes.io/component': 'merge' } },
        spec: podSpec({ command: ['/bin/sh', '-c', script], env }),
      },
    },
  };
  return [shardJob, mergeJob];
}

/** Where the merged report lands inside the pods. */
export function k8sReportsDir(name: string, runId: string): string {
  return `${mountOf('out')}/reports/${name}-${runId}`;
}

/** "pvc:CLAIM" or "host:/abs/dir" for --volume ROLE=…. */
export function parseVolume(spec: string): [VolumeRole, VolumeSource] {
  const m = /^([a-z]+)=(pvc|host):(.+)$/.exec(spec);
  if (!m) throw new GhostprepError(`--volume ${spec}: expected ROLE=pvc:CLAIM or ROLE=host:/DIR (ROLE: ${ROLES.join(', ')})`);
  const role = m[1] as VolumeRole;
  if (!ROLES.includes(role)) throw new GhostprepError(`--volume ${spec}: unknown role ${role} (${ROLES.join(', ')})`);
  if (m[2] === 'pvc') {
    if (!/^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$/.test(m[3]!)) throw new GhostprepError(`--volume ${spec}: ${m[3]} is not a valid claim name`);
    return [role, { kind: 'pvc', claim: m[3]! }];
  }
  if (!m[3]!.startsWith('/')) throw new GhostprepError(`--volume ${spec}: a hostPath must be absolute`);
  return [role, { kind: 'hostPath', path: m[3]! }];
}
