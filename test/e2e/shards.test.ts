import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { copyFixture, tempDir } from '../helpers/rootfs.js';
import { ghostprep } from '../helpers/cli.js';

describe('e2e: shards and report merge', function () {
  this.timeout(300_000);
  const work = tempDir('ghostprep-shards-');
  const names = Array.from({ length: 6 }, (_, i) => `s${i}`);
  const inv = path.join(work, 'inv.yaml');
  before(() => {
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\nssh: {hostKeys: [ed25519]}\n');
    writeFileSync(inv, 'defaults: {profile: p}\nmachines:\n' + names.map((n) => `  - {name: ${n}}\n`).join(''));
    for (const n of names) copyFixture('arch', path.join(work, 'trees', n));
  });
  const apply = (shard: string) => ghostprep(['apply', '-p', path.join(work, 'p.yaml'), '-i', inv, '--target', `rootfs:${work}/trees/{name}`, '--state', path.join(work, 'state'), '--shard', shard, '--report', path.join(work, `r${shard[0]}.json`)]);

  it('two shards cover the inventory exactly once and merge into one report', () => {
    expect(apply('0/2').status).to.equal(0);
    expect(apply('1/2').status).to.equal(0);
    const a = JSON.parse(readFileSync(path.join(work, 'r0.json'), 'utf8')).machines.map((m: { name: string }) => m.name);
    const b = JSON.parse(readFileSync(path.join(work, 'r1.json'), 'utf8')).machines.map((m: { name: string }) => m.name);
    expect([...a, ...b].sort()).to.deep.equal(names);
    const r = ghostprep(['report', 'merge', path.join(work, 'r0.json'), path.join(work, 'r1.json'), '-i', inv, '-o', path.join(work, 'merged.json')]);
    expect(r.status, r.stderr).to.equal(0);
    const merged = JSON.parse(readFileSync(path.join(work, 'merged.json'), 'utf8'));
    expect(merged.summary.ok).to.equal(names.length);
    expect(merged.machines.map((m: { name: string }) => m.name)).to.deep.equal(names);
  });
  it('rejects overlapping reports and gaps', () => {
    const overlap = ghostprep(['report', 'merge', path.join(work, 'r0.json'), path.join(work, 'r0.json')]);
    expect(overlap.status).to.equal(1);
    expect(overlap.stderr).to.match(/is in both .* \(overlapping shards\)/);
    const gap = ghostprep(['report', 'merge', path.join(work, 'r0.json'), '-i', inv]);
    expect(gap.status).to.equal(1);
    expect(gap.stderr).to.match(/are in no report \(a shard missing\?\)/);
  });
});
