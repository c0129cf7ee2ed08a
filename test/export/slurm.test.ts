/**
 * The Slurm batch script generator: its text, shellcheck, and each of its
 * three steps (submit, shard, merge) run with stand-ins for sbatch and
 * ghostprep that record their arguments.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { slurmPaths, slurmScript, type SlurmExportOptions } from '../../src/fleet/export/slurm.js';
import { shQuote } from '../../src/fleet/export/shell.js';
import { ghostprep } from '../helpers/cli.js';
import { REPO, tempDir } from '../helpers/rootfs.js';

const work = tempDir('ghostprep-export-slurm-');

function options(over: Partial<SlurmExportOptions> = {}): SlurmExportOptions {
  return {
    job: { command: 'deploy', profiles: ['/site/profiles'], inventory: '/site/inventory.yaml', base: '/images/debian 12.qcow2', out: '/shared/clones', state: '/shared/state' },
    tasks: 4, maxParallel: 2, outputDir: path.join(work, 'run'), ghostprep: [path.join(work, 'bin', 'fake-ghostprep')],
    partition: 'batch', account: 'hpc', time: '01:00:00', cpusPerTask: 2, mem: '4G', sbatchArgs: ['--qos=long'],
    ...over,
  };
}

const hasShellcheck = spawnSync('shellcheck', ['--version']).status === 0;

/** sbatch and ghostprep stand-ins: each appends its arguments (one per line, then ---) to a log. */
function stubs(dir: string): { log: string; env: NodeJS.ProcessEnv } {
  const bin = path.join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const log = path.join(dir, 'calls.log');
  writeFileSync(path.join(bin, 'sbatch'), `#!/usr/bin/env bash
{ echo "sbatch"; printf '%s\\n' "$@"; echo "env GHOSTPREP_SCRIPT=$GHOSTPREP_SCRIPT"; echo ---; } >> ${shQuote(log)}
for a in "$@"; do case $a in --wait) echo "Submitted batch job 102"; exit "\${FAKE_MERGE_RC:-0}";; --dependency=*) echo 102; exit 0;; esac; done
echo "101;cluster"
`);
  writeFileSync(path.join(bin, 'fake-ghostprep'), `#!/usr/bin/env bash
{ echo "ghostprep"; printf '%s\\n' "$@"; echo ---; } >> ${shQuote(log)}
out=""; prev=""
for a in "$@"; do if [[ $prev == --report || $prev == -o ]]; then out=$a; fi; prev=$a; done
case $1 in
  deploy|apply) [[ -n $out ]] && echo '{}' > "$out"; exit "\${FAKE_SHARD_RC:-0}" ;;
  report) echo '{}' > "$out"; exit "\${FAKE_MERGE_RC:-0}" ;;
  audit) echo "audit: 20 target(s), every identity unique"; exit "\${FAKE_AUDIT_RC:-0}" ;;
esac
`);
  for (const f of ['sbatch', 'fake-ghostprep']) chmodSync(path.join(bin, f), 0o755);
  return { log, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } };
}

function calls(log: string): string[][] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8').split('---\n').filter(Boolean).map((c) => c.trim().split('\n'));
}

describe('export: shell quoting', () => {
  it('bash and sh read every quoted word back unchanged', () => {
    const words = ['plain', 'with space', "it's", '"dq"', '$HOME', '`id`', 'a\\b', '$(x) \'y\' "z"', '', '{name}', '*.qcow2', 'new\nline', '!bang', '~tilde'];
    for (const sh of ['bash', 'sh']) {
      const r = spawnSync(sh, ['-c', `printf '%s\\0' ${words.map(shQuote).join(' ')}`], { encoding: 'utf8' });
      expect(r.stdout.split('\0').slice(0, -1), sh).to.deep.equal(words);
    }
  });
});

describe('export slurm: script generator', () => {
  it('writes the #SBATCH directives, the shard count and the quoted command', () => {
    const s = slurmScript(options());
    expect(s.split('\n')[0]).to.equal('#!/usr/bin/env bash');
    for (const d of ['--job-name=ghostprep', '--partition=batch', '--account=hpc', '--time=01:00:00', '--cpus-per-task=2', '--mem=4G']) expect(s).to.include(`#SBATCH ${d}\n`);
    expect(s).to.include('\nTASKS=4\n');
    expect(s).to.include(`SHARD_ARGS=(deploy -p /site/profiles -i /site/inventory.yaml --base '/images/debian 12.qcow2' --out /shared/clones --state /shared/state)`);
    expect(s).to.include(`AUDIT_TARGET='/shared/clones/*.qcow2'`);
    expect(s).to.include('export LIBGUESTFS_BACKEND_SETTINGS="${LIBGUESTFS_BACKEND_SETTINGS:-force_tcg}"');
    // every #SBATCH line comes before the first command (sbatch stops reading at it)
    const lines = s.split('\n');
    const firstCommand = lines.findIndex((l) => l && !l.startsWith('#'));
    expect(Math.max(...lines.map((l, i) => (l.startsWith('#SBATCH') ? i : -1)))).to.be.lessThan(firstCommand);
  });

  it('is valid bash and shellcheck-clean, also with hostile paths', function () {
    const hostile = options({ job: { command: 'apply', profiles: [`/data/it's a "profile"`, '/p/$HOME'], inventory: '/data/inv `x`.yaml', target: 'rootfs:/srv/my nodes/{name}', state: '/s;rm -rf /' } });
    for (const s of [slurmScript(options()), slurmScript(hostile), slurmScript(options({ maxParallel: undefined, sbatchArgs: [], partition: undefined }))]) {
      const file = path.join(work, 'check.sh');
      writeFileSync(file, s);
      const n = spawnSync('bash', ['-n', file], { encoding: 'utf8' });
      expect(n.status, n.stderr).to.equal(0);
      if (!hasShellcheck) {
        if (process.env.CI) throw new Error('shellcheck missing (apt-get install shellcheck; .ci/apt-packages.d/slurm.txt)');
        continue;
      }
      const sc = spawnSync('shellcheck', ['-s', 'bash', file], { encoding: 'utf8' });
      expect(sc.status, sc.stdout).to.equal(0);
    }
    if (!hasShellcheck && !process.env.CI) console.log('      (shellcheck not installed: only bash -n checked)');
  });

  it('refuses what cannot work', () => {
    expect(() => slurmScript(options({ partition: 'a b' }))).to.throw(/#SBATCH value/);
    expect(() => slurmScript(options({ time: '1:00\n#SBATCH --x' }))).to.throw(/#SBATCH value/);
    expect(() => slurmScript(options({ tasks: 0 }))).to.throw(/--tasks/);
    expect(() => slurmScript(options({ outputDir: 'relative' }))).to.throw(/absolute/);
    expect(() => slurmScript(options({ job: { command: 'deploy', profiles: ['/p'], inventory: '/i', state: '/s', out: '/o' } }))).to.throw(/--base is required/);
    expect(() => slurmScript(options({ job: { command: 'apply', profiles: ['/p'], inventory: '/i', state: '/s', target: 'rootfs:/srv/x' } }))).to.throw(/needs \{name\}/);
    expect(() => slurmScript(options({ job: { command: 'deploy', profiles: [], inventory: '/i', state: '/s', base: '/b', out: '/o' } }))).to.throw(/--profile/);
  });

  it('apply: audits the target pattern with * for {name}', () => {
    const s = slurmScript(options({ job: { command: 'apply', profiles: ['/p'], inventory: '/i.yaml', state: '/s', target: 'rootfs:/srv/nodes/{name}', jobs: 3 } }));
    expect(s).to.include(`AUDIT_TARGET='rootfs:/srv/nodes/*'`);
    expect(s).to.include(`SHARD_ARGS=(apply -p /p -i /i.yaml --target 'rootfs:/srv/nodes/{name}' --state /s)`);
    expect(s).to.include('--jobs "3"');
  });

  it('paths of the reports', () => {
    expect(slurmPaths('/r', 2)).to.deep.equal({ merged: '/r/reports/merged.json', audit: '/r/reports/audit.txt', logs: '/r/logs', reports: ['/r/reports/shard-0-of-2.json', '/r/reports/shard-1-of-2.json'] });
  });
});

describe('export slurm: the script run with stand-ins for sbatch and ghostprep', () => {
  let n = 0;
  const setup = (over: Partial<SlurmExportOptions> = {}) => {
    const dir = path.join(work, `case${n++}`);
    mkdirSync(dir, { recursive: true });
    const { log, env } = stubs(dir);
    const file = path.join(dir, 'fleet.sbatch');
    writeFileSync(file, slurmScript(options({ outputDir: path.join(dir, 'run'), ghostprep: [path.join(dir, 'bin', 'fake-ghostprep')], ...over })), { mode: 0o755 });
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => spawnSync('bash', [file, ...args], { encoding: 'utf8', env: { ...env, ...extra } });
    return { dir, log, file, run, reports: path.join(dir, 'run', 'reports') };
  };

  it('submit: the array with its throttle, then the merge job after it (afterany)', () => {
    const t = setup();
    mkdirSync(t.reports, { recursive: true });
    writeFileSync(path.join(t.reports, 'shard-1-of-4.json'), 'stale');
    const r = t.run([]);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/job array 101;?/).and.match(/merge and audit: job 102 \(after 101\)/);
    const [array, merge] = calls(t.log);
    expect(array).to.include.members(['sbatch', '--parsable', '--qos=long', '--array=0-3%2', `--output=${t.dir}/run/logs/%x-%A_%a.out`, '--export=ALL,GHOSTPREP_STEP=shard', t.file, `env GHOSTPREP_SCRIPT=${t.file}`]);
    expect(merge).to.include.members(['--dependency=afterany:101', '--export=ALL,GHOSTPREP_STEP=merge', `--output=${t.dir}/run/logs/%x-merge-%j.out`, t.file]);
    expect(existsSync(path.join(t.reports, 'shard-1-of-4.json')), 'a full submission removes old shard reports').to.equal(false);
    expect(existsSync(path.join(t.dir, 'run', 'logs'))).to.equal(true);
  });

  it('submit 1,3: only those shards again, keeping the others\' reports; --wait returns the merge job\'s code', () => {
    const t = setup({ maxParallel: undefined });
    mkdirSync(t.reports, { recursive: true });
    writeFileSync(path.join(t.reports, 'shard-0-of-4.json'), '{}');
    const r = t.run(['1,3', '--wait'], { FAKE_MERGE_RC: '5' });
    expect(r.status, r.stderr).to.equal(5);
    const [array, merge] = calls(t.log);
    expect(array).to.include('--array=1,3');
    expect(merge).to.include.members(['--wait', '--dependency=afterany:101']);
    expect(existsSync(path.join(t.reports, 'shard-0-of-4.json'))).to.equal(true);
    expect(t.run(['1;rm']).status).to.equal(1);
  });

  it('shard step: --shard I/N of the array task, its own report, --jobs from the cpus, exit code passed on', () => {
    const t = setup();
    const r = t.run([], { GHOSTPREP_STEP: 'shard', SLURM_ARRAY_TASK_ID: '2', SLURM_CPUS_PER_TASK: '2', FAKE_SHARD_RC: '3' });
    expect(r.status, r.stderr).to.equal(3);
    const [call] = calls(t.log);
    expect(call!.slice(0, 2)).to.deep.equal(['ghostprep', 'deploy']);
    const args = call!.join(' ');
    expect(args).to.include('--base /images/debian 12.qcow2').and.include('--jobs 2 --shard 2/4 --report ' + path.join(t.reports, 'shard-2-of-4.json'));
    // an array task without GHOSTPREP_STEP (sbatch --array run by hand) is a shard too
    expect(t.run([], { SLURM_ARRAY_TASK_ID: '1' }).status).to.equal(0);
    const bad = t.run([], { GHOSTPREP_STEP: 'shard', SLURM_ARRAY_TASK_ID: '4' });
    expect(bad.status).to.equal(1);
    expect(bad.stderr).to.match(/array task 4 is not a shard \(0\.\.3\)/);
  });

  it('merge step: a missing shard report fails and names it; otherwise merge, then audit', () => {
    const t = setup();
    mkdirSync(t.reports, { recursive: true });
    for (const i of [0, 2]) writeFileSync(path.join(t.reports, `shard-${i}-of-4.json`), '{}');
    const gap = t.run([], { GHOSTPREP_STEP: 'merge', GHOSTPREP_SCRIPT: t.file });
    expect(gap.status).to.equal(1);
    expect(gap.stderr).to.include(`no report from shard(s) 1,3`).and.include(`bash ${t.file} 1,3`);
    expect(calls(t.log)).to.deep.equal([]);

    for (const i of [1, 3]) writeFileSync(path.join(t.reports, `shard-${i}-of-4.json`), '{}');
    const ok = t.run([], { GHOSTPREP_STEP: 'merge' });
    expect(ok.status, ok.stderr).to.equal(0);
    const [merge, audit] = calls(t.log);
    expect(merge).to.deep.equal(['ghostprep', 'report', 'merge', ...[0, 1, 2, 3].map((i) => path.join(t.reports, `shard-${i}-of-4.json`)), '-i', '/site/inventory.yaml', '-o', path.join(t.reports, 'merged.json')]);
    expect(audit).to.deep.equal(['ghostprep', 'audit', '--target', '/shared/clones/*.qcow2', '--jobs', '1']);
    expect(readFileSync(path.join(t.reports, 'audit.txt'), 'utf8')).to.match(/every identity unique/);

    expect(t.run([], { GHOSTPREP_STEP: 'merge', FAKE_AUDIT_RC: '5' }).status).to.equal(5);
    expect(t.run([], { GHOSTPREP_STEP: 'merge', FAKE_MERGE_RC: '3' }).status).to.equal(3);
    expect(t.run([], { GHOSTPREP_STEP: 'merge', FAKE_MERGE_RC: '1' }).status).to.equal(1);
    expect(t.run([], { GHOSTPREP_STEP: 'nonsense' }).status).to.equal(1);
  });
});

describe('export slurm: CLI', () => {
  it('prints the script on stdout with absolute paths, or writes -o FILE (executable); --json describes it', () => {
    const r = ghostprep(['export', 'slurm', '-p', 'profiles/', '-i', 'examples/inventory.yaml', '--base', 'x.qcow2', '--out', 'clones', '--tasks', '3', '--ghostprep', 'ghostprep --verbose']);
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/^#!\/usr\/bin\/env bash/).and.include('\nTASKS=3\n').and.include('GHOSTPREP=(ghostprep --verbose)');
    expect(r.stdout).to.match(/SHARD_ARGS=\(deploy -p \/\S+\/profiles -i \/\S+\/examples\/inventory.yaml --base \/\S+\/x.qcow2 --out \/\S+\/clones --state \//);
    const file = path.join(work, 'cli.sbatch');
    const j = ghostprep(['export', 'slurm', '-p', 'profiles/', '-i', 'examples/inventory.yaml', '--base', 'library:deb', '--library', '/lib', '--out', '/c', '--output-dir', '/r', '-o', file, '--json']);
    expect(j.status, j.stderr).to.equal(0);
    expect(JSON.parse(j.stdout)).to.deep.include({ kind: 'slurm', file, tasks: 4, outputDir: '/r', mergedReport: '/r/reports/merged.json' });
    expect(readFileSync(file, 'utf8')).to.include('--base library:deb --library /lib');
    expect(spawnSync('test', ['-x', file]).status).to.equal(0);
  });

  it('--run apply takes --target with {name}, made absolute; --submit runs the file and reports the job ids', () => {
    const dir = path.join(work, 'cli-submit');
    mkdirSync(dir, { recursive: true });
    const { log, env } = stubs(dir);
    const file = path.join(dir, 'apply.sbatch');
    const r = spawnSync(process.execPath, [path.join(REPO, 'dist/src/cli/main.js'), 'export', 'slurm', '--run', 'apply', '-p', 'p.yaml', '-i', 'inv.yaml',
      '--target', 'rootfs:nodes/{name}', '--output-dir', path.join(dir, 'run'), '-o', file, '--submit', '--json'], { cwd: dir, env, encoding: 'utf8' });
    expect(r.status, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout).submitted).to.deep.equal({ arrayJob: '101', mergeJob: '102' });
    expect(readFileSync(file, 'utf8')).to.include(`SHARD_ARGS=(apply -p ${dir}/p.yaml -i ${dir}/inv.yaml --target 'rootfs:${dir}/nodes/{name}'`);
    expect(calls(log).map((c) => c[0])).to.deep.equal(['sbatch', 'sbatch']);
  });

  it('errors name the option; --help has examples', () => {
    const r = ghostprep(['export', 'slurm', '-p', 'p', '-i', 'i', '--out', 'o']);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/--base is required/);
    expect(ghostprep(['export', 'slurm', '-p', 'p', '-i', 'i', '--base', 'b', '--out', 'o', '--partition', 'a b']).stderr).to.match(/#SBATCH value/);
    expect(ghostprep(['export', 'slurm', '-p', 'p', '-i', 'i', '--base', 'b', '--out', 'o', '--submit']).stderr).to.match(/--submit needs -o/);
    const help = ghostprep(['export', 'slurm', '--help']);
    expect(help.stdout).to.match(/Usage: ghostprep export slurm/).and.match(/Examples:\n\s+ghostprep export slurm/);
    expect(ghostprep(['export', '--help']).stdout).to.match(/ghostprep export k8s/);
  });
});
