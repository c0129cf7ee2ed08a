/**
 * deploy's pipeline on real qcow2 images: three batches of one clone, restore
 * of the next batch while the previous one is customized, and --jobs 2
 * (two appliances) with --size (each batch of two clones grown in one
 * appliance). Orders of events are checked, never times. Three batches are
 * what shows the restore staying one batch ahead (each is an appliance: a
 * clone more per batch would be one more drive in it, proving nothing about
 * the order); --jobs 2 needs two batches, and batches of several clones are
 * that run's (with --size each batch is two launches, grown then customized).
 */
import { expect } from 'chai';
import { expectOnlyBaseDiskShared } from '../helpers/audit.js';
import { copyFileSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { batchSize, defaultJobs, splitBatches } from '../../src/backends/guestfs/backend.js';
import { deploy, type BatchEvent, type RestoreEvent } from '../../src/fleet/deploy.js';
import type { MachineResult } from '../../src/fleet/run.js';
import { testImage } from '../helpers/images.js';
import { ghostprep } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';

process.env.LIBGUESTFS_BACKEND_SETTINGS ??= 'force_tcg';

/** The clones of the one-appliance run: three batches of 1. */
const N = 3;
/** The clones of the --jobs 2 run: two batches of 2. */
const N2 = 4;
const PROFILE = `
profile: pipe
site: {domain: pipe.example.org}
ssh: {hostKeys: [ed25519]}
`;

describe('appliance scheduling (pure)', () => {
  it('batch size: fewest rounds of `jobs` appliances of at most `max` drives, spread evenly', () => {
    expect(batchSize(100, 20, 2)).to.equal(17); // 6 batches: 3 rounds of 2, not 5 of 20
    expect(batchSize(100, 20, 1)).to.equal(20);
    expect(batchSize(20, 20, 2)).to.equal(10);
    expect(batchSize(5, 2, 1)).to.equal(2);
    expect(batchSize(5, 20, 2)).to.equal(3);
    expect(batchSize(1, 20, 2)).to.equal(1);
    expect(batchSize(0, 20, 2)).to.equal(1);
    for (let n = 1; n <= 300; n++) {
      for (const jobs of [1, 2, 3, 8]) {
        for (const max of [1, 2, 7, 20]) {
          const batches = splitBatches(Array.from({ length: n }, (_, i) => i), max, jobs);
          expect(batches.flat()).to.deep.equal(Array.from({ length: n }, (_, i) => i));
          expect(Math.max(...batches.map((b) => b.length))).to.be.at.most(max);
          const rounds = Math.ceil(batches.length / jobs);
          // never more rounds of `jobs` appliances than needed: one round fewer could not hold all n drives
          expect((rounds - 1) * jobs * max, `${n} drives, ${jobs} jobs, max ${max}: ${rounds} rounds`).to.be.lessThan(n);
          // spread evenly: every batch but the last the same size, the smallest that needs no more rounds
          // (a batch of one drive fewer would take another round, leaving appliances fuller than they need be)
          const size = batches[0]!.length;
          expect(batches.slice(0, -1).every((b) => b.length === size), `${n}/${jobs}/${max}: equal batches`).to.equal(true);
          if (size > 1) expect(Math.ceil(Math.ceil(n / (size - 1)) / jobs), `${n}/${jobs}/${max}: batches of ${size - 1}`).to.be.greaterThan(rounds);
        }
      }
    }
  });

  it('default jobs: one per core, at most one per 2 GiB of RAM, at least 1', () => {
    expect(defaultJobs(2, 23.5 * 2 ** 30)).to.equal(2);
    expect(defaultJobs(16, 8 * 2 ** 30)).to.equal(4);
    expect(defaultJobs(4, 1 * 2 ** 30)).to.equal(1);
    expect(defaultJobs(1, 64 * 2 ** 30)).to.equal(1);
  });
});

describe('e2e: deploy pipeline (batches, overlap of restore and customize, --jobs 2)', function () {
  this.timeout(1_800_000);
  const work = tempDir('ghostprep-pipeline-');
  const base = path.join(work, 'base.qcow2');
  const profile = path.join(work, 'pipe.yaml');
  const inventory = path.join(work, 'inv.yaml');
  const inventory2 = path.join(work, 'inv2.yaml');
  const names = Array.from({ length: N }, (_, i) => `p${i + 1}`);
  const names2 = Array.from({ length: N2 }, (_, i) => `p${i + 1}`);

  before(async () => {
    copyFileSync(await testImage('ext4-gpt'), base);
    writeFileSync(profile, PROFILE);
    writeFileSync(inventory, 'defaults: {profile: pipe}\nmachines:\n' + names.map((n) => `  - {name: ${n}}\n`).join(''));
    writeFileSync(inventory2, 'defaults: {profile: pipe}\nmachines:\n' + names2.map((n) => `  - {name: ${n}}\n`).join(''));
  });

  it('batches of 1 of 3 clones, one appliance at a time: next batch restored while the previous is customized; all clones correct', async () => {
    type Logged = { kind: 'batch'; e: BatchEvent } | { kind: 'restore'; e: RestoreEvent; done: number; total: number } | { kind: 'done'; r: MachineResult; done: number; total: number } | { kind: 'applied'; machine: string };
    const log: Logged[] = [];
    const out = path.join(work, 'j1');
    const result = await deploy({
      profiles: [profile], inventory, base, out, restoreMode: 'overlay', state: path.join(work, 'state-j1'),
      jobs: 1, drivesPerAppliance: 1,
      onBatch: (e) => log.push({ kind: 'batch', e }),
      onRestored: (e, done, total) => log.push({ kind: 'restore', e, done, total }),
      onMachineApplied: (machine) => log.push({ kind: 'applied', machine }),
      onMachineDone: (r, done, total) => log.push({ kind: 'done', r, done, total }),
    });

    // every clone customized and verified, with its own identity
    expect(result.results.map((r) => [r.report.name, r.report.status, r.report.error])).to.deep.equal(names.map((n) => [n, 'ok', null]));
    expect(result.results.map((r) => r.report.identity!.fqdn)).to.deep.equal(names.map((n) => `${n}.pipe.example.org`));
    expect(new Set(result.results.map((r) => r.report.identity!.machineId)).size).to.equal(N);
    expect(new Set(result.results.map((r) => r.report.identity!.sshHostKeys[0]!.sha256)).size).to.equal(N);
    expect(result.restores.map((r) => r.action)).to.deep.equal(names.map(() => 'restored'));
    expect(result.base.sha256After).to.equal(result.base.sha256);

    // per-stage counts: 1..N of N for restore and for done, each machine applied once
    expect(log.filter((x) => x.kind === 'restore').map((x) => x.kind === 'restore' && `${x.done}/${x.total}`)).to.deep.equal(names.map((_, i) => `${i + 1}/${N}`));
    expect(log.filter((x) => x.kind === 'done').map((x) => x.kind === 'done' && `${x.done}/${x.total}`)).to.deep.equal(names.map((_, i) => `${i + 1}/${N}`));
    expect(log.filter((x) => x.kind === 'applied').map((x) => x.kind === 'applied' && x.machine).sort()).to.deep.equal(names);

    // batches [p1] [p2] [p3], and the pipeline's order
    const at = (batch: number, stage: BatchEvent['stage'], phase: BatchEvent['phase']): number =>
      log.findIndex((x) => x.kind === 'batch' && x.e.batch === batch && x.e.stage === stage && x.e.phase === phase);
    const batchEvents = log.filter((x): x is { kind: 'batch'; e: BatchEvent } => x.kind === 'batch');
    expect(batchEvents.filter((x) => x.e.stage === 'restore' && x.e.phase === 'start').map((x) => x.e.machines)).to.deep.equal([['p1'], ['p2'], ['p3']]);
    for (let k = 0; k < 3; k++) {
      expect(at(k, 'restore', 'end'), `batch ${k} restored before it is customized`).to.be.lessThan(at(k, 'customize', 'start'));
    }
    // restore of batch k+1 overlaps customization of batch k (not restore-all-then-apply-all) ...
    expect(at(1, 'restore', 'start')).to.be.greaterThan(at(0, 'customize', 'start'));
    expect(at(1, 'restore', 'start')).to.be.lessThan(at(0, 'customize', 'end'));
    // ... and stays one batch ahead: batch 2 waits until the appliance of batch 1 is taken
    expect(at(2, 'restore', 'start')).to.be.greaterThan(at(0, 'customize', 'end'));
    const firstDone = log.findIndex((x) => x.kind === 'done');
    expect(log.slice(0, firstDone).filter((x) => x.kind === 'restore').length, 'restored before the first clone is done').to.be.lessThan(N);
  });

  it('--jobs 2 with --size: two appliances, each batch grown in one appliance, all clones correct and audited unique', () => {
    const out = path.join(work, 'j2');
    // batches of 2: [p1 p2] [p3 p4], one per appliance (two batches are all --jobs 2 needs; a third would be
    // grown and customized in appliances of its own: two launches more)
    const r = ghostprep(['deploy', '-p', profile, '-i', inventory2, '--base', base, '--out', out, '--state', path.join(work, 'state-j2'),
      '--jobs', '2', '--drives-per-appliance', '2', '--size', '384M', '--json', '--report', path.join(work, 'report-j2.json')]);
    expect(r.status, r.stdout + r.stderr).to.equal(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.filter((e) => e.event === 'restore').map((e) => `${String(e.machine)} ${String(e.action)} ${String(e.done)}/${String(e.total)}`))
      .to.deep.equal(names2.map((n, i) => `${n} restored ${i + 1}/${N2}`));
    const applied = events.filter((e) => e.event === 'apply');
    expect(applied.map((e) => e.status)).to.deep.equal(names2.map(() => 'ok'));
    expect(applied.map((e) => e.machine).sort()).to.deep.equal(names2);
    expect(applied.map((e) => e.done)).to.deep.equal(names2.map((_, i) => i + 1));
    expect(events.at(-1)).to.deep.include({ event: 'done' });
    for (const n of names2) {
      const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', path.join(out, `${n}.qcow2`)], { encoding: 'utf8' })) as { 'virtual-size': number };
      expect(info['virtual-size'], n).to.equal(384 * 2 ** 20);
    }
    // one appliance: what is asserted is uniqueness, not parallelism (two would cost a launch more)
    const audit = ghostprep(['audit', '--target', path.join(out, '*.qcow2'), '--json', '--jobs', '1']);
    // no storage.newUuids: the overlays keep the base's filesystem UUID and GPT GUIDs, and only those
    expectOnlyBaseDiskShared(audit.status, audit.stdout, N2);
  });
});
