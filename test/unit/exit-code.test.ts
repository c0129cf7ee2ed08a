/**
 * One rule for the commands that work on several machines or targets:
 * none failed 0, all failed 1, some failed 3 (fleetExitCode), written once.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fleetExitCode } from '../../src/cli/common.js';
import { ghostprep } from '../helpers/cli.js';
import { copyFixture, REPO, tempDir } from '../helpers/rootfs.js';

describe('fleetExitCode', () => {
  it('0 when none failed, 1 when all failed, 3 when some did', () => {
    expect(fleetExitCode({ ok: 4, failed: 0 })).to.equal(0);
    expect(fleetExitCode({ ok: 0, failed: 0 })).to.equal(0);
    expect(fleetExitCode({ ok: 0, failed: 4 })).to.equal(1);
    expect(fleetExitCode({ ok: 3, failed: 1 })).to.equal(3);
  });
  it('for any counts: 0 exactly when nothing failed, 1 exactly when something failed and nothing succeeded, else 3', () => {
    fc.assert(fc.property(fc.nat(1000), fc.nat(1000), (ok, failed) => {
      expect(fleetExitCode({ ok, failed })).to.equal(failed === 0 ? 0 : ok === 0 ? 1 : 3);
    }));
  });

  it('the rule is written once: no command under src/cli computes "some failed" itself', () => {
    const dir = path.join(REPO, 'src/cli');
    const files = [...readdirSync(dir), ...readdirSync(path.join(dir, 'commands')).map((n) => `commands/${n}`)].filter((n) => n.endsWith('.ts'));
    const partial = files.filter((f) => readFileSync(path.join(dir, f), 'utf8').includes('ExitCode.partial'));
    // common.ts states the rule; audit has one of its own (3 when targets could not be read, even when none
    // could); apply.ts's exitFor maps a run report
    const allowed = ['common.ts', 'commands/audit.ts'];
    expect(partial.filter((f) => !allowed.includes(f))).to.deep.equal([]);
  });
});

describe('seal and inspect over several targets', function () {
  this.timeout(60_000);
  const dir = tempDir('ghostprep-exit-');
  const good = `rootfs:${copyFixture('debian12', path.join(dir, 'good'))}`;
  const missing = `rootfs:${path.join(dir, 'missing')}`;
  const run = (cmd: string[], targets: string[]) => ghostprep([...cmd, ...targets.flatMap((t) => ['--target', t])]).status;
  for (const cmd of [['seal', '--dry-run'], ['inspect']]) {
    it(`${cmd[0]}: 0 all read, 3 some failed, 1 all failed`, () => {
      expect([run(cmd, [good]), run(cmd, [good, missing]), run(cmd, [missing])]).to.deep.equal([0, 3, 1]);
    });
  }
});
