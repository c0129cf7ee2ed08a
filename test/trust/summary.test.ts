/**
 * The trust suite's counts, printed once at the end of the run, after the
 * secrets scan, by a root-level hook (helpers/trust-counts.ts atEndOfRun;
 * whatever trust files ran, in this process or, under `npm test`, in the
 * other trust groups): bad inputs tried, hostile fixtures,
 * interruption rounds, property runs, outputs scanned for secrets. Also runs
 * the bad-input corpus (fixtures/bad) once more through validateFleet to
 * count it: every case must be rejected with at least one error, none may
 * throw, and no message may echo a password hash.
 */
import { expect } from 'chai';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import { REPO } from '../helpers/rootfs.js';
import { atEndOfRun, count, mergeSharedTrustRecords, outputsPerGroup, trustCounts } from '../helpers/trust-counts.js';
import { recordOutput } from '../helpers/trust-run.js';

describe('trust: bad-input corpus', () => {
  it('rejects every case of fixtures/bad with an error, without throwing', () => {
    const corpus = path.join(REPO, 'fixtures/bad');
    const cases = readdirSync(corpus).filter((d) => existsSync(path.join(corpus, d, 'expected.yaml')));
    const problems: string[] = [];
    for (const c of cases) {
      const dir = path.join(corpus, c);
      const e = parse(readFileSync(path.join(dir, 'expected.yaml'), 'utf8')) as { pending?: string; args: { profiles: string[]; inventory?: string } };
      if (e.pending) continue;
      try {
        const { diagnostics } = validateFleet(e.args.profiles.map((p) => path.join(dir, p)), e.args.inventory && path.join(dir, e.args.inventory));
        const errors = diagnostics.filter((d) => d.severity === 'error');
        if (!errors.length) problems.push(`${c}: accepted`);
        recordOutput(`validate ${c}`, errors.map((d) => d.message).join('\n'));
      } catch (err) {
        problems.push(`${c}: threw ${(err as Error).message}`);
      }
      count('badInputs');
    }
    expect(problems, problems.join('\n')).to.deep.equal([]);
    expect(trustCounts.badInputs).to.be.at.least(80);
  });
});

// after the secrets scan, whichever file mocha loaded first
atEndOfRun('summary', () => {
  const from = mergeSharedTrustRecords(); // the trust files npm test ran in other processes (no-op in one process)
  const c = trustCounts;
  console.log(`\n  trust summary${from.length ? ` (with groups ${from.join(', ')})` : ''}: ${c.badInputs} bad inputs rejected, ${c.hostileRootfs} hostile rootfs trees + ${c.hostileImages} hostile qcow2 images, ` +
    `${c.interruptionRounds} kill -9 rounds resumed, ${c.propertyRuns} property runs, ${c.outputsScanned} outputs scanned for ${c.secretsChecked} secrets` +
    `${outputsPerGroup.size ? ` (outputs per group: ${[...outputsPerGroup].sort((a, b) => a[0].localeCompare(b[0])).map(([g, n]) => `${g} ${n}`).join(', ')})` : ''}\n`);
});
