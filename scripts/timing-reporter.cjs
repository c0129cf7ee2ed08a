/**
 * Mocha reporter: spec output, then a table of the wall time each test file
 * took (its suites, tests and hooks, in run order), so that a slow suite
 * shows where the time goes. Wired in .mocharc.json; scripts/test.mjs names
 * each lane with GHOSTPREP_TEST_LANE and, with GHOSTPREP_TEST_TIMINGS=FILE,
 * each lane also writes its rows there as JSON lines (merged into one table
 * at the end of `npm test`).
 *
 * A file's time runs from its first top-level suite's start to its last
 * one's end; the root-level hooks of a file (before/after outside any
 * describe) count in the file that holds them only when they run inside
 * that span, so the rows add up to a bit less than the lane's wall time.
 */
'use strict';
const path = require('node:path');
const fs = require('node:fs');
const Mocha = require('mocha');

const { EVENT_SUITE_BEGIN, EVENT_SUITE_END, EVENT_TEST_PASS, EVENT_TEST_FAIL, EVENT_TEST_PENDING, EVENT_RUN_BEGIN, EVENT_RUN_END } = Mocha.Runner.constants;

function fmt(ms) {
  const s = ms / 1000;
  return s >= 60 ? `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${s.toFixed(1)}s`;
}

class TimingReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    const files = new Map(); // file -> {start, end, pass, fail, pending}
    const row = (file) => {
      let r = files.get(file);
      if (!r) files.set(file, (r = { start: Date.now(), end: Date.now(), pass: 0, fail: 0, pending: 0 }));
      return r;
    };
    const fileOf = (runnable) => {
      for (let s = runnable; s; s = s.parent) if (s.file) return s.file;
      return '(root hooks)';
    };
    let runStart = Date.now();
    runner.once(EVENT_RUN_BEGIN, () => { runStart = Date.now(); });
    runner.on(EVENT_SUITE_BEGIN, (suite) => {
      if (!suite.file) return;
      row(suite.file);
      // the launch count (test/helpers/launch-log.ts) names the spec that started each process
      if (process.env.GHOSTPREP_LAUNCH_LOG) process.env.GHOSTPREP_SPEC_FILE = path.relative(process.cwd(), suite.file);
    });
    runner.on(EVENT_SUITE_END, (suite) => { if (suite.file) row(suite.file).end = Date.now(); });
    runner.on(EVENT_TEST_PASS, (t) => { row(fileOf(t)).pass++; });
    runner.on(EVENT_TEST_FAIL, (t) => { row(fileOf(t)).fail++; });
    runner.on(EVENT_TEST_PENDING, (t) => { row(fileOf(t)).pending++; });
    runner.once(EVENT_RUN_END, () => {
      const wall = Date.now() - runStart;
      const lane = process.env.GHOSTPREP_TEST_LANE ?? 'mocha';
      const rows = [...files].map(([file, r]) => ({
        lane,
        file: path.relative(process.cwd(), file),
        ms: r.end - r.start,
        tests: r.pass + r.fail + r.pending,
        failed: r.fail,
        pending: r.pending,
      }));
      const out = process.env.GHOSTPREP_TEST_TIMINGS;
      if (out) fs.appendFileSync(out, rows.map((r) => JSON.stringify(r) + '\n').join('') + JSON.stringify({ lane, wall }) + '\n');
      // printed after spec's epilogue (mocha calls the reporter's done/epilogue on the same event)
      process.nextTick(() => console.log(table(rows, `per-file time, lane ${lane}, ${fmt(wall)} wall`)));
    });
  }
}

function table(rows, title) {
  const w = Math.max(4, ...rows.map((r) => r.file.length));
  const lines = [`\n  ${title}`, `  ${'file'.padEnd(w)}  ${'time'.padStart(7)}  tests`];
  for (const r of rows) {
    const extra = [r.failed ? `${r.failed} failed` : '', r.pending ? `${r.pending} pending` : ''].filter(Boolean).join(', ');
    lines.push(`  ${r.file.padEnd(w)}  ${fmt(r.ms).padStart(7)}  ${String(r.tests).padStart(5)}${extra ? `  (${extra})` : ''}`);
  }
  return lines.join('\n') + '\n';
}

TimingReporter.table = table;
TimingReporter.fmt = fmt;
module.exports = TimingReporter;
