/** report merge of deploy shards: base and resume kept, shards of different bases refused, big inventories in O(n). */
import { expect } from 'chai';
import { mergeReports, type DeployReport } from '../../src/fleet/merge-reports.js';

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

function shard(names: string[], sha = SHA_A, redone: string[] = []): DeployReport {
  return {
    version: 1, command: 'deploy', started: '2026-11-29T10:00:00.000Z', finished: '2026-11-29T10:05:00.000Z',
    summary: { ok: names.length, failed: 0, durationMs: 300_000 },
    base: { path: '/images/base.qcow2', sha256: sha, sha256After: sha },
    resume: { reused: redone.length, restored: names.length - redone.length, failed: 0, redone, alreadyDone: [] },
    machines: names.map((name) => ({ name, target: `out/${name}.qcow2`, status: 'ok', error: null, distro: null, identity: null, changes: [], durationMs: 1 })),
  } as DeployReport;
}

describe('report merge (deploy shards)', () => {
  it('keeps the shared base and sums what the shards redid', () => {
    const merged = mergeReports([{ file: 'r0.json', report: shard(['a', 'c'], SHA_A, ['c']) }, { file: 'r1.json', report: shard(['b']) }], ['a', 'b', 'c']);
    expect(merged.base).to.deep.equal({ path: '/images/base.qcow2', sha256: SHA_A, sha256After: SHA_A });
    expect(merged.resume).to.deep.equal({ reused: 1, restored: 2, failed: 0, redone: ['c'], alreadyDone: [] });
    expect(merged.machines.map((m) => m.name)).to.deep.equal(['a', 'b', 'c']);
  });

  it('refuses shards deployed from different base images, naming both files', () => {
    expect(() => mergeReports([{ file: 'r0.json', report: shard(['a']) }, { file: 'r1.json', report: shard(['b'], SHA_B) }]))
      .to.throw(/r0\.json and r1\.json were deployed from different base images/);
  });

  it('has no base or resume when the shards are not deploys', () => {
    const plain = (names: string[]): DeployReport => { const r = shard(names); delete r.base; delete r.resume; return r; };
    const merged = mergeReports([{ file: 'r0.json', report: plain(['a']) }, { file: 'r1.json', report: plain(['b']) }]);
    expect(merged).to.not.have.property('base');
    expect(merged).to.not.have.property('resume');
  });

  it('checks 20,000 machines against the inventory without a quadratic scan', () => {
    const names = Array.from({ length: 20_000 }, (_, i) => `n${i}`);
    const merged = mergeReports([{ file: 'r0.json', report: shard(names.slice(0, 10_000)) }, { file: 'r1.json', report: shard(names.slice(10_000)) }], names);
    expect(merged.summary.ok).to.equal(20_000);
  });
});
