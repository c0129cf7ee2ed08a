/**
 * The Kubernetes manifest generator. Every generated object is validated
 * against the Kubernetes OpenAPI schema with the validators of the
 * kubernetes-models package (devDependency; ajv code generated from the
 * upstream OpenAPI spec, batch/v1 Job with the full PodSpec).
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Job } from 'kubernetes-models/batch/v1';
import { k8sManifests, parseVolume, type K8sExportOptions } from '../../src/fleet/export/k8s.js';
import { ghostprep } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const work = tempDir('ghostprep-export-k8s-');

function options(over: Partial<K8sExportOptions> = {}): K8sExportOptions {
  return {
    name: 'fleet', image: 'registry.example/ghostprep:0.1', command: 'deploy', profiles: ['profiles'], inventory: 'inventory.yaml',
    base: 'library:debian12', completions: 4, parallelism: 2, runId: 'r1', cpu: '1', memory: '2Gi', ...over,
  };
}

/** Throws with every schema error of one object. */
function validate(obj: Obj): void {
  new Job(obj as ConstructorParameters<typeof Job>[0]).validate();
}

describe('export k8s: manifest generator', () => {
  it('the validator is live: it rejects a broken Job', () => {
    const [job] = k8sManifests(options()) as Obj[];
    const broken = structuredClone(job!);
    broken.spec.completionMode = 'Indexd';
    broken.spec.template.spec.containers[0].volumeMounts[0].mountPath = 7;
    let message = '';
    try { validate(broken); } catch (err) { message = (err as Error).message; }
    expect(message).to.match(/completionMode must be equal to one of the allowed values/).and.match(/mountPath must be string/);
    const noName = structuredClone(job!);
    delete noName.spec.template.spec.containers[0].name;
    expect(() => validate(noName)).to.throw(/containers\/0 must have required property name/);
  });

  for (const [what, over] of [
    ['deploy from a library, PVCs', {}],
    ['deploy from a file, hostPath volumes, namespace, no resources', {
      base: 'debian12.qcow2', namespace: 'hpc', cpu: undefined, memory: undefined, imagePullPolicy: 'IfNotPresent' as const, serviceAccountName: 'gp',
      volumes: { config: { kind: 'hostPath', path: '/srv/gp/config' }, library: { kind: 'hostPath', path: '/srv/images' }, out: { kind: 'pvc', claim: 'clones' }, state: { kind: 'hostPath', path: '/srv/gp/state' } },
    }],
    ['apply on trees in the out volume', { command: 'apply' as const, base: undefined, target: 'rootfs:/ghostprep/out/nodes/{name}', jobs: 2 }],
  ] as Array<[string, Partial<K8sExportOptions>]>) {
    it(`valid against the Kubernetes schema: ${what}`, () => {
      const manifests = k8sManifests(options(over));
      expect(manifests).to.have.length(2);
      for (const m of manifests) validate(m);
    });
  }

  it('an Indexed Job: completions, parallelism, shard from JOB_COMPLETION_INDEX', () => {
    const [job] = k8sManifests(options()) as Obj[];
    expect(job!.spec).to.include({ completionMode: 'Indexed', completions: 4, parallelism: 2, backoffLimit: 3 });
    const c = job!.spec.template.spec.containers[0];
    expect(c.command).to.deep.equal(['ghostprep']);
    expect(c.args).to.deep.equal(['deploy', '-p', '/ghostprep/config/profiles', '-i', '/ghostprep/config/inventory.yaml', '--base', 'library:debian12',
      '--library', '/ghostprep/library', '--out', '/ghostprep/out/clones', '--state', '/ghostprep/state', '--jobs', '1',
      '--shard', '$(JOB_COMPLETION_INDEX)/4', '--report', '/ghostprep/out/reports/fleet-r1/shard-$(JOB_COMPLETION_INDEX)-of-4.json']);
    // declared explicitly so that the kubelet expands $(JOB_COMPLETION_INDEX) in args
    expect(c.env[0]).to.deep.equal({ name: 'JOB_COMPLETION_INDEX', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } });
    expect(c.env).to.deep.include({ name: 'LIBGUESTFS_BACKEND_SETTINGS', value: 'force_tcg' });
    expect(c.resources).to.deep.equal({ requests: { cpu: '1', memory: '2Gi' }, limits: { memory: '2Gi' } });
    expect(job!.spec.template.spec.restartPolicy).to.equal('Never');
    expect(job!.spec.podFailurePolicy.rules[0]).to.deep.include({ action: 'FailJob' });
    expect(job!.metadata.labels).to.include({ 'app.kubernetes.io/name': 'ghostprep', 'app.kubernetes.io/component': 'shard', 'ghostprep.io/run': 'r1' });
  });

  it('volumes: PVC ghostprep-ROLE by default, config and library read-only, scratch for the appliance', () => {
    const [job] = k8sManifests(options()) as Obj[];
    const spec = job!.spec.template.spec;
    expect(spec.volumes).to.deep.equal([
      { name: 'config', persistentVolumeClaim: { claimName: 'ghostprep-config', readOnly: true } },
      { name: 'library', persistentVolumeClaim: { claimName: 'ghostprep-library', readOnly: true } },
      { name: 'out', persistentVolumeClaim: { claimName: 'ghostprep-out' } },
      { name: 'state', persistentVolumeClaim: { claimName: 'ghostprep-state' } },
      { name: 'scratch', emptyDir: {} },
    ]);
    expect(spec.containers[0].volumeMounts).to.deep.equal([
      { name: 'config', mountPath: '/ghostprep/config', readOnly: true },
      { name: 'library', mountPath: '/ghostprep/library', readOnly: true },
      { name: 'out', mountPath: '/ghostprep/out' },
      { name: 'state', mountPath: '/ghostprep/state' },
      { name: 'scratch', mountPath: '/var/tmp' },
    ]);
    const [apply] = k8sManifests(options({ command: 'apply', base: undefined, target: 'rootfs:/ghostprep/out/n/{name}' })) as Obj[];
    expect(apply!.spec.template.spec.volumes.map((v: Obj) => v.name)).to.deep.equal(['config', 'out', 'state', 'scratch']);
    expect(parseVolume('out=host:/srv/out')).to.deep.equal(['out', { kind: 'hostPath', path: '/srv/out' }]);
    expect(parseVolume('state=pvc:gp-state')).to.deep.equal(['state', { kind: 'pvc', claim: 'gp-state' }]);
    expect(() => parseVolume('tmp=pvc:x')).to.throw(/unknown role/);
    expect(() => parseVolume('out=host:relative')).to.throw(/absolute/);
    expect(() => parseVolume('out=pvc:Bad_Name')).to.throw(/claim name/);
  });

  it('the merge Job waits for every shard report, merges with the inventory, audits, and is valid sh', () => {
    const [, merge] = k8sManifests(options({ ghostprep: ['/opt/gp/bin/ghostprep', '-v'] })) as Obj[];
    expect(merge!.metadata.name).to.equal('fleet-merge');
    expect(merge!.spec).to.include({ backoffLimit: 0, activeDeadlineSeconds: 86400 });
    expect(merge!.spec.completionMode).to.equal(undefined);
    const c = merge!.spec.template.spec.containers[0];
    expect(c.command.slice(0, 2)).to.deep.equal(['/bin/sh', '-c']);
    const script: string = c.command[2];
    expect(script).to.include('until [ -f "$reports/shard-$i-of-4.json" ]');
    expect(script).to.include(`/opt/gp/bin/ghostprep -v report merge "$reports"/shard-*-of-4.json -i /ghostprep/config/inventory.yaml -o "$reports/merged.json"`);
    expect(script).to.include(`/opt/gp/bin/ghostprep -v audit --target '/ghostprep/out/clones/*.qcow2' --jobs 1`);
    const file = path.join(work, 'merge.sh');
    writeFileSync(file, script);
    const n = spawnSync('sh', ['-n', file], { encoding: 'utf8' });
    expect(n.status, n.stderr).to.equal(0);
    if (spawnSync('shellcheck', ['--version']).status === 0) {
      const sc = spawnSync('shellcheck', ['-s', 'sh', file], { encoding: 'utf8' });
      expect(sc.status, sc.stdout).to.equal(0);
    }
  });

  it('refuses paths outside their volume and names that Kubernetes rejects', () => {
    expect(() => k8sManifests(options({ profiles: ['../etc'] }))).to.throw(/inside the config volume/);
    expect(() => k8sManifests(options({ base: '/etc/passwd' }))).to.throw(/inside the library volume/);
    expect(() => k8sManifests(options({ command: 'apply', base: undefined, target: 'rootfs:/srv/{name}' }))).to.throw(/under \/ghostprep\/out\//);
    expect(() => k8sManifests(options({ name: 'Fleet_1' }))).to.throw(/DNS label/);
    expect(() => k8sManifests(options({ image: '' }))).to.throw(/--image is required/);
    expect(() => k8sManifests(options({ completions: 0 }))).to.throw(/--tasks/);
    expect(() => k8sManifests(options({ base: undefined }))).to.throw(/--base is required/);
  });
});

describe('export k8s: CLI', () => {
  const args = ['export', 'k8s', '-p', 'profiles/', '-i', 'inventory.yaml', '--base', 'library:deb', '--tasks', '3', '--image', 'gp:1', '--run-id', 'abc'];
  it('YAML on stdout: two documents, both valid Jobs', () => {
    const r = ghostprep(args);
    expect(r.status, r.stderr).to.equal(0);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
    expect(docs.map((d) => d.metadata.name)).to.deep.equal(['ghostprep', 'ghostprep-merge']);
    for (const d of docs) validate(d);
    expect(docs[0]!.spec.completions).to.equal(3);
    expect(docs[0]!.spec.parallelism).to.equal(3);
  });
  it('--json: a v1 List; --volume sets the sources', () => {
    const r = ghostprep([...args, '--json', '--parallelism', '1', '--volume', 'out=host:/srv/out', '--name', 'run7']);
    expect(r.status, r.stderr).to.equal(0);
    const list = JSON.parse(r.stdout) as Obj;
    expect(list).to.include({ apiVersion: 'v1', kind: 'List' });
    for (const item of list.items) validate(item);
    expect(list.items[0].spec.template.spec.volumes[2]).to.deep.equal({ name: 'out', hostPath: { path: '/srv/out', type: 'Directory' } });
    expect(list.items[0].spec.template.spec.containers[0].args).to.include('/ghostprep/out/reports/run7-abc/shard-$(JOB_COMPLETION_INDEX)-of-3.json');
  });
  it('errors and help', () => {
    expect(ghostprep(['export', 'k8s', '-p', 'p', '-i', 'i', '--base', 'b']).stderr).to.match(/--image is required/);
    expect(ghostprep([...args, '--volume', 'x=pvc:y']).stderr).to.match(/unknown role x/);
    expect(ghostprep(['export', 'k8s', '--help']).stdout).to.match(/Examples:\n\s+ghostprep export k8s/);
  });
});
