/**
 * kill -9 at three points of one 10-clone deploy, each followed by the same
 * deploy again (a resume), chained on the same clones and state:
 *
 *   run 1  ghostprep killed early (restoring the clones, launching the appliance)
 *   run 2  the resume, ghostprep killed mid-customization
 *   run 3  the resume, the qemu appliance killed mid-customization: ghostprep
 *          survives, exactly the clone in progress fails (exit 3), a new
 *          appliance takes the rest
 *   run 4  the resume, which ends with every clone correct (exit 0)
 *
 * After each kill: the kill landed (ghostprep died of SIGKILL; a qemu of the
 * deploy was found and killed), no appliance process outlives a killed
 * ghostprep, the base image's checksum is unchanged; and the next run never
 * takes an interrupted clone as done: it is restored afresh or redone (its
 * customization makes changes), and the clone cut short mid-customization is
 * listed as redone in the report, or as already done when the kill fell after
 * its last write (the resumed run plans it against what it reads and finds
 * nothing to change). At the end: every clone correct (the resumed
 * run verifies each by reading back) and unique (audit), and no temp file in
 * the clones that were in progress at the kills.
 *
 * One chain instead of three separate deploys: every kill
 * still lands on a real guestfs deploy and every resume is checked, for about
 * half the appliance launches and clone visits. A kill during a resumed run is
 * itself a case the separate rounds did not cover.
 *
 * The kill points come from a seeded generator: the seed is printed (replay
 * with TRUST_SEED=N).
 */
import { expect } from 'chai';
import { expectOnlyBaseDiskShared } from '../helpers/audit.js';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { GuestfsSession } from '../../src/backends/guestfs/session.js';
import { driveDevice } from '../../src/backends/guestfs/session.js';
import { sha256File } from '../../src/image/checksum.js';
import { testImage } from '../helpers/images.js';
import { tempDir } from '../helpers/rootfs.js';
import { count } from '../helpers/trust-counts.js';
import { processesWith, qemuProcessesWith } from '../helpers/processes.js';
import { addStateSecrets, gp, recordFile, show, type RunResult } from '../helpers/trust-run.js';
import { writeInputs } from './profile.js';

/**
 * Clones of the deploy: 10. The kill points (after 1-3 clones in run 2, 1-3
 * more in run 3) leave at least 4 to do at run 3's kill (the one cut short and
 * at least 2 more the relaunched appliance takes, checked below), so every
 * kill lands mid-batch. More clones add appliance drives and clone visits to
 * every run (each clone is visited by runs 2, 3 and 4 and the audit) without
 * adding a case: the count is not the point here.
 */
const N = 10;
const SEED = process.env.TRUST_SEED ? Number(process.env.TRUST_SEED) : Date.now() % 2 ** 31;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Orphans of a killed ghostprep (guestfish sees EOF and shuts its appliance down): wait, then end what remains. */
async function reapOrphans(needle: string): Promise<string[]> {
  for (let i = 0; i < 180; i++) {
    if (!processesWith(needle).length) return [];
    await sleep(500);
  }
  const left = processesWith(needle);
  for (const [pid] of left) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  return left.map(([pid, cmd]) => `${pid} ${cmd.slice(0, 120)}`);
}

type Kind = 'ghostprep-early' | 'ghostprep-mid' | 'qemu-mid';

interface DeployReport {
  summary: { ok: number; failed: number };
  base: { sha256: string; sha256After: string };
  resume: { reused: number; restored: number; failed: number; redone: string[]; alreadyDone: string[] };
  machines: Array<{ name: string; status: string; error: string | null; identity: { machineId: string | null } | null }>;
}

/** The --json events of a deploy: restores (reused or restored) and applies (with their change count). */
interface DeployEvent { event: string; machine: string; status?: string; action?: string; changes?: number }

interface Struck {
  readonly run: RunResult;
  /** Clones whose customization ended ok in this run before the strike. */
  readonly done: string[];
  readonly events: DeployEvent[];
  readonly struck: string;
  readonly killedQemu: number[];
}

describe(`trust: kill -9 three times during a ${N}-clone deploy, each time resumed (seed ${SEED})`, function () {
  this.timeout(1_800_000);
  const rand = mulberry32(SEED);
  const work = tempDir('ghostprep-trust-kill-');
  const names = Array.from({ length: N }, (_, i) => `k${String(i).padStart(2, '0')}`);
  const out = path.join(work, 'clones');
  const state = path.join(work, 'state');
  let base: string;
  let baseSha: string;
  let args: string[];
  /** Clones done (customized and never interrupted since) so far. */
  const doneSoFar = new Set<string>();
  /** The clone cut short by each mid-customization kill (checked for temp files at the end). */
  const inProgress: string[] = [];
  /** Steps that passed: each later step needs the one before (one chain of runs on the same clones). */
  const passed = new Set<string>();
  const needs = (step: string) => expect(passed.has(step), `this step resumes the deploy left by "${step}", which did not pass`).to.equal(true);

  before(async () => {
    console.log(`      interruption seed: ${SEED} (replay: TRUST_SEED=${SEED})`);
    base = await testImage('ext4-gpt');
    baseSha = await sha256File(base);
    args = ['deploy', ...writeInputs(work, names), '--base', base, '--out', out, '--state', state, '--jobs', '1', '--json'];
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  /**
   * One deploy run, struck `delay` ms after the `after`-th clone it customizes
   * is done (or after its start, for 0). Clones done by earlier runs (a prefix
   * of the inventory: one appliance visits them in order) are verified first
   * and do not count: the strike lands on a clone that still needs changes.
   */
  async function runAndStrike(n: number, kind: Kind, after: number, delay: number, report: string): Promise<Struck> {
    const before = new Set(doneSoFar);
    /** Clones whose customization ended ok, as the events arrive (arms the strike). */
    const done: string[] = [];
    /** Every event of the run, in the order ghostprep wrote them. */
    const events: DeployEvent[] = [];
    const killedQemu: number[] = [];
    let struck = '';
    const run = await gp([...args, '--report', report], {
      timeoutMs: 900_000, label: `deploy run ${n} (${kind} kill)`,
      onSpawn: (child: ChildProcess) => {
        let buf = '';
        let armed = after === 0;
        // the strike must land: a qemu not found yet (between appliances) is looked for again
        const strike = () => setTimeout(function tryStrike(tries = 0) {
          if (kind === 'qemu-mid') {
            const qemu = qemuProcessesWith(out);
            if (!qemu.length && tries < 240 && child.exitCode === null) { setTimeout(() => tryStrike(tries + 1), 250); return; }
            for (const pid of qemu) process.kill(pid, 'SIGKILL');
            killedQemu.push(...qemu);
            struck = `killed qemu ${qemu.join(',') || '(none found)'} after ${done.length} clone(s)`;
          } else {
            struck = child.exitCode === null && child.kill('SIGKILL') ? `killed ghostprep after ${done.length} clone(s)` : '';
          }
        }, delay);
        if (armed) strike();
        child.stdout!.on('data', (d: Buffer) => {
          buf += d.toString();
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            try {
              const e = JSON.parse(line) as DeployEvent;
              events.push(e);
              if (e.event === 'apply' && e.status === 'ok' && !before.has(e.machine)) done.push(e.machine);
            } catch { /* not JSON */ }
            if (!armed && done.length >= after) { armed = true; strike(); }
          }
        });
      },
    });
    expect(run.timedOut, show(run)).to.equal(false);
    const finished = doneBeforeStrike(kind, events, before);
    console.log(`      run ${n}: ${struck || `ended before the strike (${done.length} clone(s) done)`}; exit ${run.status ?? run.signal}, ${finished.length} done before`);
    if (run.status !== null && run.status !== 0 && run.status !== 3) console.log(`      (its stderr ends: ${run.stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 600)})`);
    // the kill landed: a run that ended before the strike proves nothing about interruptions
    expect(struck, `run ${n}: the run ended before the strike (${done.length} clone(s) done)\n${show(run)}`).to.not.equal('');
    return { run, done: finished, events, struck, killedQemu };
  }

  /**
   * The clones this run finished before the strike, from the order of its events, not from
   * when they were read: a clone's event written just before the kill may be read after it.
   * A killed ghostprep wrote every event before it died. After the appliance's death
   * ghostprep goes on: the clones finished before it are those whose events come before the
   * first failure (the clone in progress), not those the relaunched appliance does.
   */
  function doneBeforeStrike(kind: Kind, events: readonly DeployEvent[], before: ReadonlySet<string>): string[] {
    const failure = events.findIndex((e) => e.event === 'apply' && e.status !== 'ok');
    const upTo = kind === 'qemu-mid' && failure >= 0 ? events.slice(0, failure) : events;
    return upTo.filter((e) => e.event === 'apply' && e.status === 'ok' && !before.has(e.machine)).map((e) => e.machine);
  }

  /** What every kill must leave: no appliance process outliving a killed ghostprep, the base unchanged. */
  async function afterKill(): Promise<void> {
    const orphans = await reapOrphans(out);
    expect(orphans, 'appliance processes outliving a killed ghostprep by 90 s').to.deep.equal([]);
    expect(await sha256File(base), 'base checksum after the kill').to.equal(baseSha);
  }

  /**
   * A resumed run never takes an interrupted clone as done: in its events, each
   * clone not done before is restored afresh, or reused and customized with changes.
   */
  function neverTakenAsDone(events: readonly DeployEvent[], interrupted: readonly string[], what: string): void {
    const reused = new Set(events.filter((e) => e.event === 'restore' && e.action === 'reused').map((e) => e.machine));
    for (const e of events.filter((x) => x.event === 'apply' && interrupted.includes(x.machine))) {
      if (reused.has(e.machine)) expect(e.changes, `${e.machine} was interrupted (${what}): reused, it must be redone`).to.be.above(0);
    }
  }

  /** The report of a completed resumed run: the interrupted clones redone or restored (the one cut short possibly complete), the done ones already done. */
  function checkResumeReport(file: string, run: RunResult, interrupted: readonly string[], cutShort: string | undefined): DeployReport {
    recordFile(file);
    addStateSecrets(state);
    const rep = JSON.parse(readFileSync(file, 'utf8')) as DeployReport;
    expect(rep.base.sha256).to.equal(baseSha);
    expect(rep.base.sha256After).to.equal(baseSha);
    const res = rep.resume;
    expect(res.reused + res.restored, JSON.stringify(res)).to.equal(N);
    expect([...res.redone, ...res.alreadyDone].length).to.equal(res.reused);
    for (const n of doneSoFar) expect(res.alreadyDone, `${n} was done before the kill`).to.include(n);
    // the interrupted clones were redone (reused, still needing changes) or restored afresh (neither reused list): never taken as done
    const restoredNames = names.filter((n) => !res.redone.includes(n) && !res.alreadyDone.includes(n));
    expect(restoredNames.length).to.equal(res.restored);
    // A clone not yet started at the kill is never already done. The one cut short may be: when
    // the kill fell after its last write and before its event, its writes are all there and the
    // resumed run, which plans it against what it reads, finds nothing to change (and verifies it).
    for (const n of interrupted.filter((x) => x !== cutShort)) expect(res.alreadyDone, `${n} was interrupted: the report must list it as redone or restored`).to.not.include(n);
    if (cutShort) {
      expect([...res.redone, ...res.alreadyDone], `${cutShort} was cut short mid-customization: redone, or found complete`).to.include(cutShort);
      expect(rep.machines.find((m) => m.name === cutShort)?.status, `${cutShort} after the resume`).to.equal('ok');
      if (res.alreadyDone.includes(cutShort)) console.log(`      ${cutShort}: its writes were complete at the kill (nothing left to change)`);
    }
    if (res.reused) expect(run.stderr).to.match(/deploy resumed: \d+ existing clone\(s\) reused/);
    console.log(`      resumed: ${res.reused} reused (${res.redone.length} redone: ${res.redone.join(' ') || '-'}), ${res.restored} restored`);
    return rep;
  }

  let run2: Struck;
  let run3: Struck;

  it('run 1: ghostprep killed early (restore, launch): it dies of the SIGKILL, nothing outlives it, the base is unchanged', async () => {
    const r = await runAndStrike(1, 'ghostprep-early', 0, 300 + Math.floor(rand() * 6000), path.join(work, 'run1.json'));
    expect(r.run.signal, `run 1: ghostprep died of the SIGKILL\n${show(r.run)}`).to.equal('SIGKILL');
    expect(names.filter((n) => !r.done.includes(n)).length, 'clones left to do at the kill').to.be.above(0);
    for (const n of r.done) doneSoFar.add(n);
    await afterKill();
    count('interruptionRounds');
    passed.add('run 1');
  });

  it('run 2: the resume, ghostprep killed mid-customization: no clone interrupted by run 1 taken as done; dies of the SIGKILL', async () => {
    needs('run 1');
    const interrupted = names.filter((n) => !doneSoFar.has(n));
    run2 = await runAndStrike(2, 'ghostprep-mid', 1 + Math.floor(rand() * 3), Math.floor(rand() * 1500), path.join(work, 'run2.json'));
    expect(run2.run.signal, `run 2: ghostprep died of the SIGKILL\n${show(run2.run)}`).to.equal('SIGKILL');
    // every clone's restore event comes before the first customization (one batch): all of run 1's interrupted clones are seen
    expect(run2.events.filter((e) => e.event === 'restore').map((e) => e.machine).sort(), 'restore events of run 2').to.deep.equal(names);
    neverTakenAsDone(run2.events, interrupted, 'run 1 killed early');
    for (const e of run2.events.filter((x) => x.event === 'restore' && x.action === 'reused')) {
      expect(doneSoFar.has(e.machine) || interrupted.includes(e.machine)).to.equal(true);
    }
    for (const n of run2.done) doneSoFar.add(n);
    expect(names.filter((n) => !doneSoFar.has(n)).length, 'clones left to do at the kill').to.be.above(0);
    inProgress.push(names.find((n) => !doneSoFar.has(n) && !run2.done.includes(n))!);
    await afterKill();
    count('interruptionRounds');
    passed.add('run 2');
  });

  it('run 3: the resume, the appliance killed mid-customization: exactly the clone in progress fails, a new appliance does the rest; run 2\'s interrupted clones redone', async () => {
    needs('run 2');
    const interrupted = names.filter((n) => !doneSoFar.has(n));
    const file = path.join(work, 'run3.json');
    const pendingBefore = names.filter((n) => !doneSoFar.has(n));
    run3 = await runAndStrike(3, 'qemu-mid', 1 + Math.floor(rand() * 3), Math.floor(rand() * 1500), file);
    expect(run3.killedQemu.length, 'run 3: no qemu process of this deploy found to kill').to.be.above(0);
    // ghostprep itself survives the appliance's death: the clone in progress fails (exit 3), a new appliance takes the rest
    expect(run3.run.status, show(run3.run)).to.equal(3);
    const rep = checkResumeReport(file, run3.run, interrupted, inProgress[0]);
    const failed = rep.machines.filter((m) => m.status !== 'ok');
    expect(failed.map((m) => `${m.name}: ${m.error}`), 'exactly the clone in progress fails').to.have.length(1);
    // the clone in progress at the kill: the first of the clones this run customized that was not done before the strike
    const customizedInOrder = pendingBefore.filter((n) => !run3.done.includes(n));
    expect(failed[0]!.name, 'the clone in progress at the kill').to.equal(customizedInOrder[0]);
    expect(rep.summary).to.deep.equal({ ...rep.summary, ok: N - 1, failed: 1 });
    // the kill landed mid-batch: clones after the one in progress were left for the relaunched appliance, which did them
    const leftToRelaunch = customizedInOrder.slice(1);
    expect(leftToRelaunch, 'clones left after the one in progress at the kill').to.not.deep.equal([]);
    for (const n of leftToRelaunch) expect(rep.machines.find((m) => m.name === n)?.status, `${n}, done by the relaunched appliance`).to.equal('ok');
    for (const m of rep.machines) if (m.status === 'ok') doneSoFar.add(m.name);
    inProgress.push(failed[0]!.name);
    await afterKill();
    count('interruptionRounds');
    passed.add('run 3');
  });

  it(`run 4: the resume ends with ${N} correct clones (each verified by reading back) and says what it redid`, async () => {
    needs('run 3');
    const interrupted = names.filter((n) => !doneSoFar.has(n));
    expect(interrupted, 'the clone run 3 failed').to.have.length(1);
    const file = path.join(work, 'run4.json');
    const again = await gp([...args, '--report', file], { timeoutMs: 900_000, label: 'deploy run 4 (resumed)' });
    expect(again.timedOut, show(again)).to.equal(false);
    expect(again.status, show(again)).to.equal(0);
    const rep = checkResumeReport(file, again, interrupted, interrupted[0]);
    expect(rep.summary).to.deep.equal({ ...rep.summary, ok: N, failed: 0 });
    expect(rep.resume.reused, 'every clone exists by now').to.equal(N);
    expect(await sha256File(base), 'base checksum after the resumed run').to.equal(baseSha);
    passed.add('run 4');
  });

  it('audit: all clones have unique identities', async () => {
    needs('run 4');
    const r = await gp(['audit', '--target', path.join(out, '*.qcow2'), '--json', '--jobs', '1'], { timeoutMs: 900_000 });
    expect(r.timedOut, show(r)).to.equal(false);
    // no storage.newUuids: only the base's filesystem UUID and GPT GUIDs are shared (exit 5 names them)
    expectOnlyBaseDiskShared(r.status, r.stdout, N);
    const a = JSON.parse(r.stdout) as { identities: Array<{ identity: { machineId: string | null; sshHostKeys: unknown[] } }> };
    for (const i of a.identities) {
      expect(i.identity.machineId).to.match(/^[0-9a-f]{32}$/);
      expect(i.identity.sshHostKeys).to.have.length(2);
    }
  });

  it('no half-written file or temp file in the clones that were in progress at the kills', async () => {
    needs('run 4');
    expect(inProgress, 'the clones cut short by runs 2 and 3').to.have.length(2);
    const images = [...new Set(inProgress)].map((n) => path.join(out, `${n}.qcow2`));
    const s = await GuestfsSession.open({ drives: images.map((p) => ({ path: p, format: 'qcow2', readonly: true })) });
    try {
      for (const [i, img] of images.entries()) {
        await s.command('mount-ro', [`${driveDevice(i)}1`, '/']);
        const leftovers: string[] = [];
        for (const dir of ['/etc', '/etc/ssh', '/etc/netplan', '/var/lib/dbus', '/etc/systemd/network']) {
          if (!(await s.bool('is-dir', [dir]))) continue;
          leftovers.push(...(await s.lines('ls', [dir])).filter((n) => n.includes('.ghostprep-')).map((n) => `${dir}/${n}`));
        }
        expect(leftovers, img).to.deep.equal([]);
        expect((await s.text('cat', ['/etc/machine-id'])).trim(), img).to.match(/^[0-9a-f]{32}$/);
        await s.command('umount-all');
      }
    } finally {
      await s.close();
    }
  });
});
