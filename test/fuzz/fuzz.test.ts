/**
 * The fuzzer's fixed-seed budget: ~300 generated fleets (profiles with
 * hostile keys, private keys, special source files, bad paths, owners,
 * modes, users, templates, addresses, YAML bombs, broken extends; root
 * trees with links out, loops, FIFOs, sockets, wrong file types, immutable
 * and read-only files) through validate, plan and apply, every invariant of
 * test/fuzz/invariants.ts checked on each. Violations of the classes in
 * test/fuzz/known-open.ts are listed, not failures. Longer runs:
 * `npm run fuzz -- --runs 10000`; another seed: FUZZ_SEED=N.
 */
import { expect } from 'chai';
import { formatSummary, fuzz } from './runner.js';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20261207;
const RUNS = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : 300;

describe(`fuzz: the whole pipeline on ${RUNS} generated fleets (seed ${SEED})`, function () {
  this.timeout(15 * 60_000);

  it('keeps every invariant on every case (known-open classes listed)', async () => {
    const summary = await fuzz({ runs: RUNS, seed: SEED, shrinkBudget: 40 });
    console.log(formatSummary(summary).split('\n').map((l) => `      ${l}`).join('\n'));
    expect(summary.failure, summary.failure && formatSummary(summary)).to.equal(undefined);
    // the fleet generator is not so hostile that nothing is ever applied
    expect(summary.machinesOk).to.be.greaterThan(RUNS / 10);
  });
});
