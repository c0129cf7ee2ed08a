/**
 * `extends`: one resolution for every way a parent is found (given with -p,
 * or NAME.yaml next to the file that names it), recursive, with missing
 * parents, cycles and over-long chains reported at the entry that names them.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, resolveProfile } from '../../src/profile/config.js';
import { originOf } from '../../src/profile/profile-merge.js';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import { REPO, tempDir } from '../helpers/rootfs.js';

function files(spec: Record<string, string>): string {
  const dir = tempDir('ghostprep-extends-');
  for (const [p, text] of Object.entries(spec)) {
    mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    writeFileSync(path.join(dir, p), text);
  }
  return dir;
}

const errors = (ds: ReturnType<typeof loadConfig>['diagnostics']): string[] =>
  ds.filter((d) => d.severity === 'error').map((d) => `${path.basename(d.file ?? '-')}:${d.line}:${d.col}: ${d.path}: ${d.message}`);

describe('extends: parents found next to a profile', () => {
  it('-p profiles/gpu.yaml alone gets base.yaml settings through compute.yaml', () => {
    const config = loadConfig([path.join(REPO, 'profiles/gpu.yaml')]);
    expect(errors(config.diagnostics)).to.deep.equal([]);
    expect([...config.profiles.keys()]).to.deep.equal(['gpu', 'compute', 'base']);
    const gpu = resolveProfile(config.profiles, 'gpu');
    expect((gpu.value.site as Record<string, unknown>).domain).to.equal('lab.example.org');
    expect(gpu.value.machineId).to.equal('generate');
    expect(path.basename(originOf(gpu.origins, '/site/domain')!.source.file)).to.equal('base.yaml');
  });

  it('-p profiles/gpu.yaml with the example inventory: compute, named by the inventory, is found through gpu.yaml', () => {
    const { diagnostics, machines } = validateFleet([path.join(REPO, 'profiles/gpu.yaml')], path.join(REPO, 'examples/inventory.yaml'));
    expect(errors(diagnostics)).to.deep.equal([]);
    expect(machines.map((m) => m.profileName)).to.deep.equal(['compute', 'compute', 'compute', 'gpu']);
  });

  it('resolves alike whether the parents are given with -p or found by name', () => {
    const alone = resolveProfile(loadConfig([path.join(REPO, 'profiles/gpu.yaml')]).profiles, 'gpu').value;
    const all = resolveProfile(loadConfig([path.join(REPO, 'profiles')]).profiles, 'gpu').value;
    expect(JSON.stringify(alone)).to.equal(JSON.stringify(all));
  });

  it('a grandparent missing next to the parent is reported at the parent\'s extends entry', () => {
    const dir = files({
      'node.yaml': 'profile: node\nextends: mid\n',
      'mid.yaml': 'profile: mid\nmachineId: keep\nextends: [site, nowhere]\n',
      'site.yaml': 'profile: site\n',
    });
    expect(errors(loadConfig([path.join(dir, 'node.yaml')]).diagnostics)).to.deep.equal([
      `mid.yaml:3:17: /extends/1: profile "nowhere" not found (searched -p files and ${dir}/nowhere.yaml)`,
    ]);
  });

  it('a cycle among profiles found by name is reported once, at the entry of the first one loaded', () => {
    const dir = files({
      'node.yaml': 'profile: node\nextends: a\n',
      'a.yaml': 'profile: a\nextends: b\n',
      'b.yaml': 'profile: b\nextends:\n  - a\n',
      'inv.yaml': 'machines: [{name: n1, profile: node}]\n',
    });
    const { diagnostics } = validateFleet([path.join(dir, 'node.yaml')], path.join(dir, 'inv.yaml'));
    expect(errors(diagnostics)).to.deep.equal(['a.yaml:2:10: /extends: extends cycle: a -> b -> a']);
  });

  it('a cycle entered from the inventory names the same members the same way', () => {
    const dir = files({
      'a.yaml': 'profile: a\nextends: [b]\n',
      'b.yaml': 'profile: b\nextends: [c]\n',
      'c.yaml': 'profile: c\nextends: [a]\n',
      'inv.yaml': 'machines: [{name: n1, profile: c}]\n',
    });
    const { diagnostics } = validateFleet([path.join(dir, 'a.yaml')], path.join(dir, 'inv.yaml'));
    expect(errors(diagnostics)).to.deep.equal(['a.yaml:2:11: /extends/0: extends cycle: a -> b -> c -> a']);
  });

  it('a file found by name that defines another profile says so', () => {
    const dir = files({ 'node.yaml': 'profile: node\nextends: base\n', 'base.yaml': 'profile: site\n' });
    expect(errors(loadConfig([path.join(dir, 'node.yaml')]).diagnostics)).to.deep.equal([
      `node.yaml:2:10: /extends: profile "base" not found (${dir}/base.yaml defines profile "site")`,
    ]);
  });

  it('a FIFO as the parent file is refused at once, at the entry that names it', function () {
    const dir = files({ 'node.yaml': 'profile: node\nextends: base\n' });
    try { execFileSync('mkfifo', [path.join(dir, 'base.yaml')]); } catch { this.skip(); }
    const errs = errors(loadConfig([path.join(dir, 'node.yaml')]).diagnostics);
    expect(errs).to.include(`node.yaml:2:10: /extends: profile "base": cannot read ${dir}/base.yaml: profile is a FIFO (named pipe), not a regular file`);
  });

  it('a chain longer than the limit is reported, and resolution stays bounded', () => {
    const spec: Record<string, string> = {};
    for (let i = 0; i < 40; i++) spec[`p${i}.yaml`] = `profile: p${i}\n${i < 39 ? `extends: [p${i + 1}]\n` : ''}`;
    const dir = files(spec);
    const config = loadConfig([path.join(dir, 'p0.yaml')]);
    expect(errors(config.diagnostics)).to.have.length(1);
    expect(errors(config.diagnostics)[0]).to.match(/^p31\.yaml:2:11: \/extends\/0: extends chain longer than 32 profiles/);
    expect(resolveProfile(config.profiles, 'p0').value.profile).to.equal('p0');
  });

  it('a wide diamond of extends is merged once per profile (no exponential walk)', () => {
    const spec: Record<string, string> = {};
    for (let i = 0; i < 30; i++) spec[`d${i}.yaml`] = `profile: d${i}\n${i < 29 ? `extends: [d${i + 1}, e${i + 1}]\n` : ''}`;
    for (let i = 1; i < 30; i++) spec[`e${i}.yaml`] = `profile: e${i}\n${i < 29 ? `extends: [d${i + 1}]\n` : ''}vars: {e${i}: ${i}}\n`;
    const dir = files(spec);
    const config = loadConfig([path.join(dir, 'd0.yaml')]);
    expect(errors(config.diagnostics)).to.deep.equal([]);
    const started = Date.now();
    const r = resolveProfile(config.profiles, 'd0');
    expect(Date.now() - started).to.be.lessThan(2000);
    expect(Object.keys(r.value.vars as object)).to.have.length(29);
  });
});
