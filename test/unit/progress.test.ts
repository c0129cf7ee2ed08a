/** The progress display's pure parts: durations, rates, ETA, stage lines, fleet stage counting. */
import { expect } from 'chai';
import { eta, formatDuration, formatLine, formatRate, formatStage, Progress, progressWanted, rate } from '../../src/cli/progress.js';
import { FleetStages, stage, tick } from '../../src/fleet/fleet-stages.js';

describe('progress display', () => {
  it('formats durations', () => {
    expect(formatDuration(0)).to.equal('0s');
    expect(formatDuration(4_400)).to.equal('4s');
    expect(formatDuration(59_600)).to.equal('1m00s');
    expect(formatDuration(65_000)).to.equal('1m05s');
    expect(formatDuration(3_600_000 + 3 * 60_000)).to.equal('1h03m');
    expect(formatDuration(-5)).to.equal('0s');
  });

  it('formats rates per second, or per minute when slow', () => {
    expect(formatRate(12.4)).to.equal('12/s');
    expect(formatRate(0.714)).to.equal('0.71/s');
    expect(formatRate(0.03)).to.equal('1.8/min');
  });

  it('rate and ETA come from the average since the stage started', () => {
    const s = stage('customize', 100);
    expect(rate(s, 1000)).to.equal(undefined);
    expect(eta(s, 1000)).to.equal(undefined);
    s.startedAt = 0;
    expect(rate(s, 10_000)).to.equal(undefined); // nothing finished yet: no rate
    s.done = 20;
    expect(rate(s, 10_000)).to.equal(2);
    expect(eta(s, 10_000)).to.equal(40_000);
    s.done = 100;
    expect(eta(s, 50_000)).to.equal(0);
  });

  it('tick starts the clock, counts failures and stops the clock at the total', () => {
    const s = stage('restore', 2);
    tick(s, true, 100);
    expect(s).to.include({ startedAt: 100, done: 1, failed: 0 });
    tick(s, false, 300);
    expect(s).to.include({ done: 2, failed: 1, finishedAt: 300 });
    expect(rate(s, 10_000)).to.equal(10); // frozen at the finish
  });

  it('formats a stage: not started, running, finished, with failures', () => {
    const s = stage('verify', 10);
    expect(formatStage(s, 0)).to.equal('verify 0/10');
    s.startedAt = 0;
    expect(formatStage(s, 5_000)).to.equal('verify 0/10 …');
    s.done = 4;
    s.failed = 1;
    expect(formatStage(s, 8_000)).to.equal('verify 4/10 (1 failed) 0.50/s ETA 12s');
    s.done = 10;
    s.finishedAt = 20_000;
    expect(formatStage(s, 30_000)).to.equal('verify 10/10 (1 failed) in 20s');
  });

  it('joins the stages on one line with the elapsed time, cut to the terminal width', () => {
    const a = stage('restore', 5);
    const b = stage('customize', 5);
    a.startedAt = 0; a.done = 5; a.finishedAt = 2_000;
    expect(formatLine([a, b], 65_000, 0, 200)).to.equal('[1m05s] restore 5/5 in 2s | customize 0/5');
    const cut = formatLine([a, b], 65_000, 0, 30);
    expect(cut).to.have.length(29);
    expect(cut.endsWith('…')).to.equal(true);
  });

  it('is wanted only on a TTY, without --json, -q or --no-progress', () => {
    expect(progressWanted({}, { isTTY: true })).to.equal(true);
    expect(progressWanted({}, { isTTY: false })).to.equal(false);
    expect(progressWanted({}, {})).to.equal(false);
    expect(progressWanted({ json: true }, { isTTY: true })).to.equal(false);
    expect(progressWanted({ quiet: true }, { isTTY: true })).to.equal(false);
    expect(progressWanted({ progress: false }, { isTTY: true })).to.equal(false);
  });

  it('fleet stages: a machine that fails a stage leaves the later totals, so every stage ends complete', () => {
    let t = 0;
    const f = new FleetStages(true, () => t);
    f.planned(4);
    for (const m of ['a', 'b', 'c']) f.restored(m, true);
    f.restored('d', false);
    expect(f.customize.total).to.equal(3);
    f.machineDone('d', false); // deploy reports the failed restore as a failed machine too: counted once
    t = 1000;
    f.customizeStarted();
    f.machineApplied('a');
    f.machineDone('a', true);
    f.machineApplied('b');
    f.machineDone('b', false); // verification failed
    f.machineDone('c', false); // failed before writing (inspect)
    expect(f.restore).to.include({ done: 4, failed: 1, total: 4 });
    expect(f.customize).to.include({ done: 3, failed: 1, total: 3 });
    expect(f.verify).to.include({ done: 2, failed: 1, total: 2 });
    for (const s of f.all) expect(s.finishedAt, s.name).to.not.equal(undefined);
  });

  it('the live display redraws in place and prints log lines above the status line', () => {
    const out: string[] = [];
    let t = 0;
    const s = stage('customize', 2);
    const p = new Progress([s], { write: (x: string) => out.push(x) > 0, columns: 100 }, () => t, 250);
    p.start('customize');
    t = 1000;
    p.tick('customize');
    p.log('[1/2] a: ok');
    t = 2000;
    p.tick('customize');
    p.stop();
    const text = out.join('');
    expect(text).to.include('\r\x1b[K[0s] customize 0/2');
    expect(text).to.include('\r\x1b[K[1s] customize 1/2 1.00/s ETA 1s');
    expect(text).to.include('\r\x1b[K[1s] customize 1/2 1.00/s ETA 1s\r\x1b[K[1/2] a: ok\n');
    expect(text).to.include('customize 2/2 in 2s');
    expect(out.at(-1)).to.equal('\r\x1b[K');
  });
});
