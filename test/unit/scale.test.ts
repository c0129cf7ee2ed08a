/**
 * The fast path for big inventories must give the same results as the plain
 * one: the direct "all additions" diff, renders shared between validate and
 * plan, and profile trees shared between machines without overrides.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { createTwoFilesPatch } from 'diff';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/profile/config.js';
import { prepareFleet, renderMachine } from '../../src/fleet/prepare.js';
import { detectDistro } from '../../src/distro/detect.js';
import { additionsPatch, appendPatch } from '../../src/plan/diff.js';
import { independentOfIdentity } from '../../src/template/render.js';
import { tempDir } from '../helpers/rootfs.js';

function files(spec: Record<string, string>): string {
  const dir = tempDir('ghostprep-unit-scale-');
  for (const [p, text] of Object.entries(spec)) {
    mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    writeFileSync(path.join(dir, p), text);
  }
  return dir;
}

const library = (a: string, b: string, text: string): string =>
  createTwoFilesPatch(a, b, '', text, undefined, undefined, { context: 3 }).split('\n').filter((l, i) => !(i === 0 && l.startsWith('===='))).join('\n');

describe('diff of a new file', () => {
  it('is what the diff library gives for an empty old text', () => {
    for (const t of ['', '\n', 'a', 'a\n', 'a\nb', 'a\nb\n', '\n\n', 'x\r\ny\r\n', 'a\rb\n', 'ü\n']) {
      expect(additionsPatch('/dev/null', 'b/etc/x', t), JSON.stringify(t)).to.equal(library('/dev/null', 'b/etc/x', t));
    }
    fc.assert(fc.property(fc.array(fc.constantFrom('a', 'b ', '\n', '\r', '\r\n', 'é', '+', '-', ' ', '\\'), { maxLength: 40 }), (parts) => {
      const t = parts.join('');
      expect(additionsPatch('a/p', 'b/p', t)).to.equal(library('a/p', 'b/p', t));
    }), { numRuns: 500 });
  });
});

describe('rendering a machine once per run', () => {
  const dir = files({
    'p.yaml': 'profile: p\nsite: {domain: x.org}\nhostname: "{{machine.name}}"\nfiles: [{path: /etc/a, content: "{{machine.machineId}}"}]\n',
    'q.yaml': 'profile: q\nhostname: "{{machine.name}}-{{distro.id}}"\nmachineId: generate\nvars: {id: "{{machine.machineId}}"}\n',
    'inv.yaml': 'machines:\n  - {name: n1, profile: p}\n  - {name: n2, profile: p}\n  - {name: n3, profile: p, hostname: other}\n  - {name: n4, profile: q}\n',
  });
  const config = loadConfig([path.join(dir, 'p.yaml'), path.join(dir, 'q.yaml')], path.join(dir, 'inv.yaml'));
  const { machines } = prepareFleet(config);
  const [n1, n2, n3, n4] = machines;
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('shares the resolved profile tree between machines without overrides', () => {
    expect(config.diagnostics).to.deep.equal([]);
    expect(n1!.traced).to.equal(n2!.traced);
    expect(n3!.traced).to.not.equal(n1!.traced);
    expect(n3!.traced.value.hostname).to.equal('other');
    expect(n1!.traced.value.hostname).to.equal('{{machine.name}}');
  });

  it('reuses a render that read no identity and no distro, with a context carrying the new identity', () => {
    const first = renderMachine(n1!);
    const again = renderMachine(n1!, { machineId: 'ab'.repeat(16), sshHostKeys: { ed25519: 'ssh-ed25519 AAAA' } }, detectDistro('ID=debian\n'));
    expect(again.profile).to.equal(first.profile);
    expect(again.hostname).to.equal('n1');
    expect(again.fqdn).to.equal('n1.x.org');
    // files are rendered later, from the context: it must carry this call's identity and distro
    expect(again.context.machine.machineId).to.equal('ab'.repeat(16));
    expect(again.context.distro.id).to.equal('debian');
    expect(first.context.machine.machineId).to.equal('');
  });

  it('renders again when the first render read what changed', () => {
    const first = renderMachine(n4!);
    expect(first.hostname).to.equal('n4-unknown');
    const withDistro = renderMachine(n4!, undefined, detectDistro('ID=rocky\n'));
    expect(withDistro.hostname).to.equal('n4-rocky');
    const withId = renderMachine(n4!, { machineId: 'cd'.repeat(16), sshHostKeys: {} }, detectDistro('ID=rocky\n'));
    expect(withId.profile).to.not.equal(withDistro.profile);
    expect((withId.profile as { vars?: { id?: string } }).vars?.id).to.equal('cd'.repeat(16));
    expect(withId.context.machine.machineId).to.equal('cd'.repeat(16));
  });
});

describe('diff of lines appended to a file', () => {
  const lib = (o: string, n: string): string =>
    createTwoFilesPatch('a/p', 'b/p', o, n, undefined, undefined, { context: 3 }).split('\n').filter((l, i) => !(i === 0 && l.startsWith('===='))).join('\n');
  it('is what the diff library gives', () => {
    expect(appendPatch('a/p', 'b/p', 'root:x:0:\n', 'root:x:0:\nops:x:1001:\n')).to.equal(lib('root:x:0:\n', 'root:x:0:\nops:x:1001:\n'));
    const line = fc.array(fc.constantFrom('a', 'b', ' ', '\r', 'é', '+'), { maxLength: 4 }).map((p) => p.join(''));
    fc.assert(fc.property(fc.array(line, { minLength: 1, maxLength: 8 }), fc.array(line, { minLength: 1, maxLength: 5 }), fc.boolean(), (before, after, eol) => {
      const o = before.join('\n') + '\n';
      const n = o + after.join('\n') + (eol ? '\n' : '');
      if (n === o) return;
      expect(appendPatch('a/p', 'b/p', o, n)).to.equal(lib(o, n));
    }), { numRuns: 1000 });
  });
});

describe('templates that cannot see the identity', () => {
  it('are told apart from those that can (conservatively)', () => {
    for (const t of ['plain', 'rack={{vars.rack}} {{machine.name}} {{machine.fqdn}}', '{{#each site.dns}}{{@index}}{{/each}}', '{{join site.dns " "}}', '{{@root.machine.name}}']) {
      expect(independentOfIdentity(t), t).to.equal(true);
    }
    for (const t of ['{{machine.machineId}}', '{{machine.sshHostKeys.ed25519}}', '{{distro.family}}', '{{#if (eq distro.id "x")}}y{{/if}}', '{{json machine}}',
      '{{#with machine}}{{machineId}}{{/with}}', '{{lookup machine "machineId"}}', '{{json @root}}', '{{#each vars}}{{this}}{{/each}}', '{{#with vars}}{{../machine.name}}{{/with}}', '{{@root.machine}}', '{{> part}}', '{{#if}}']) {
      expect(independentOfIdentity(t), t).to.equal(false);
    }
  });
});
