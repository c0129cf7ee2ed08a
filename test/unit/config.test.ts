import { expect } from 'chai';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, resolveProfile } from '../../src/profile/config.js';
import { locate, parseSource } from '../../src/profile/source.js';
import { originOf } from '../../src/profile/profile-merge.js';
import { renderTemplate, renderValue } from '../../src/template/render.js';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import { REPO, tempDir } from '../helpers/rootfs.js';

function files(spec: Record<string, string>): string {
  const dir = tempDir('ghostprep-cfg-');
  for (const [p, text] of Object.entries(spec)) {
    mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    writeFileSync(path.join(dir, p), text);
  }
  return dir;
}

describe('YAML sources with positions', () => {
  it('locates values and keys by JSON pointer', () => {
    const { source } = parseSource('x.yaml', 'a:\n  b:\n    - 1\n    - "two"\nc: 3\n');
    expect(locate(source, '/a/b/1')).to.deep.equal({ line: 4, col: 7 });
    expect(locate(source, '/c', { key: true })).to.deep.equal({ line: 5, col: 1 });
    expect(locate(source, '/a/zzz/deep')).to.deep.equal({ line: 2, col: 3 });
  });
  it('reports duplicate keys and syntax errors with positions', () => {
    const dup = parseSource('x.yaml', 'a: 1\nb: 2\na: 3\n').diagnostics;
    expect(dup[0]).to.include({ line: 3, col: 1 });
    expect(dup[0]!.message).to.match(/duplicate key/i);
    const bad = parseSource('x.yaml', 'a: [1, 2\n').diagnostics;
    expect(bad.length).to.be.greaterThan(0);
    expect(bad[0]!.line).to.be.a('number');
  });
});

describe('profile inheritance', () => {
  it('merges maps deeply and replaces lists and scalars, in extends order, keeping origins', () => {
    const dir = files({
      'a.yaml': 'profile: a\nsite: {domain: a.org, dns: [1.1.1.1]}\nmachineId: generate\n',
      'b.yaml': 'profile: b\nsite: {timezone: UTC}\nmachineId: keep\n',
      'c.yaml': 'profile: c\nextends: [a, b]\nsite: {dns: [9.9.9.9]}\n',
    });
    const config = loadConfig([path.join(dir, 'c.yaml')]);
    expect(config.diagnostics).to.deep.equal([]);
    const r = resolveProfile(config.profiles, 'c');
    expect(r.value).to.deep.include({ profile: 'c', machineId: 'keep' });
    expect(r.value.site).to.deep.equal({ domain: 'a.org', dns: ['9.9.9.9'], timezone: 'UTC' });
    expect(path.basename(originOf(r.origins, '/site/domain')!.source.file)).to.equal('a.yaml');
    expect(path.basename(originOf(r.origins, '/site/dns/0')!.source.file)).to.equal('c.yaml');
    expect(path.basename(originOf(r.origins, '/machineId')!.source.file)).to.equal('b.yaml');
  });
  it('names an extends cycle', () => {
    const dir = files({ 'a.yaml': 'profile: a\nextends: b\n', 'b.yaml': 'profile: b\nextends: a\n', 'inv.yaml': 'machines: [{name: n1, profile: a}]\n' });
    const { diagnostics } = validateFleet([path.join(dir, 'a.yaml')], path.join(dir, 'inv.yaml'));
    expect(diagnostics.map((d) => d.message)).to.include('extends cycle: a -> b -> a');
  });
});

describe('templates', () => {
  it('is strict: an unknown variable names the template, line and full variable', () => {
    expect(() => renderTemplate('ok\n{{machine.nope}}', { machine: {} }, 'motd.hbs')).to.throw('motd.hbs:2:1: unknown variable "machine.nope"');
  });
  it('does not HTML-escape', () => {
    expect(renderTemplate('{{v}}', { v: '<a & "b">' }, 't')).to.equal('<a & "b">');
  });
  it('keeps the type of a whole-value expression', () => {
    expect(renderValue('{{site.dns}}', { site: { dns: ['a', 'b'] } }, 't')).to.deep.equal(['a', 'b']);
    expect(renderValue('x {{site.n}}', { site: { n: 3 } }, 't')).to.equal('x 3');
  });
  it('offers the documented helpers', () => {
    expect(renderTemplate('{{join l " "}}|{{ipAddress c}}|{{ipPrefix c}}|{{upper s}}|{{default (lookup v "x") "d"}}', { l: [1, 2], c: '10.0.0.1/24', s: 'ab', v: {} }, 't')).to.equal('1 2|10.0.0.1|24|AB|d');
  });
});

describe('validate on the bundled example', () => {
  it('accepts profiles/ with examples/inventory.yaml', () => {
    const { diagnostics, machines } = validateFleet([path.join(REPO, 'profiles')], path.join(REPO, 'examples/inventory.yaml'));
    expect(diagnostics.filter((d) => d.severity === 'error')).to.deep.equal([]);
    expect(machines.map((m) => m.name)).to.deep.equal(['node01', 'node02', 'node03', 'gpu01']);
  });
  it('reports every error of a file at once, located', () => {
    const dir = files({
      'p.yaml': 'profile: p\nhostnme: x\nsite: {domain: 3}\nmachineId: random\n',
      'inv.yaml': 'machines:\n  - {name: n1, profile: p, mac: "zz"}\n  - {name: n1, profile: p, ip: 10.0.0.300/24}\n',
    });
    const { diagnostics } = validateFleet([path.join(dir, 'p.yaml')], path.join(dir, 'inv.yaml'));
    const text = diagnostics.map((d) => `${path.basename(d.file!)}:${d.line}:${d.col}: ${d.path}: ${d.message}`);
    expect(text).to.include('p.yaml:2:1: /hostnme: unknown key "hostnme" (did you mean "hostname"?)');
    expect(text.some((t) => t.startsWith('p.yaml:3:16: /site/domain: must be a string'))).to.equal(true);
    expect(text.some((t) => t.startsWith('p.yaml:4:12: /machineId: "random" is not one of'))).to.equal(true);
    expect(text.some((t) => t.startsWith('inv.yaml:2:33: /machines/0/mac: "zz" is not a MAC address'))).to.equal(true);
    expect(text.some((t) => /inv\.yaml:3:\d+: \/machines\/1\/name: duplicate machine name "n1"/.test(t))).to.equal(true);
    expect(text.some((t) => t.includes('"10.0.0.300/24" is not an IPv4/IPv6 CIDR address'))).to.equal(true);
  });
});
