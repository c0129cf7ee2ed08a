/**
 * An error about an inventory value is reported where the value is written: a
 * rendered value that is exactly one substitution (`via: "{{vars.gw}}"`) goes to
 * the inventory line of the value it copies, through every inventory layer of
 * `vars` and through site and hostname templates; a profile value, or a value
 * that mixes text and templates, stays at its template.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument, LineCounter } from 'yaml';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import type { Diagnostic } from '../../src/core/diagnostic.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const PROFILE = readFileSync(path.join(REPO, 'fixtures', 'bad', 'bad-cidr', 'profile.yaml'), 'utf8');
const VIA = 'via: "{{site.gateway}}"';

/** Line and column (1-based) of the value at `pointer` in a YAML text. */
function position(text: string, pointer: string[]): { line: number; col: number } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const node = doc.getIn(pointer, true) as { range: [number, number, number] };
  const p = lines.linePos(node.range[0]);
  return { line: p.line, col: p.col };
}

describe('errors located where the value is written', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-locate-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function validate(profile: string, inventory: string): Diagnostic[] {
    writeFileSync(path.join(dir, 'profile.yaml'), profile);
    writeFileSync(path.join(dir, 'inventory.yaml'), inventory);
    return validateFleet([path.join(dir, 'profile.yaml')], path.join(dir, 'inventory.yaml')).diagnostics.filter((d) => d.severity === 'error');
  }

  type Layer = 'machine' | 'inventory' | 'defaults' | 'profile';
  const LAYERS: Layer[] = ['machine', 'inventory', 'defaults', 'profile'];

  it('a var rendered whole into a network value: the error is at the inventory layer that sets it (a profile var: at the template)', () => {
    const key = fc.stringMatching(/^[a-z][a-z0-9_]{0,7}$/).filter((k) => k !== 'rack');
    const bad = fc.constantFrom('10.0.0.x', '10.0.0.256', 'gateway', '10.0.0.1/24', '::g');
    fc.assert(fc.property(key, bad, fc.subarray(LAYERS, { minLength: 1 }), fc.constantFrom(0, 1), (k, value, layers, machine) => {
      // the value is bad at the highest layer, good (10.0.0.1) at the others
      const top = LAYERS.find((l) => layers.includes(l))!;
      const v = (l: Layer) => (l === top ? JSON.stringify(value) : '10.0.0.1');
      const profile = PROFILE.replace(VIA, `via: "{{vars.${k}}}"`) + (layers.includes('profile') ? `vars: {${k}: ${v('profile')}}\n` : '');
      const mvars = layers.includes('machine') ? `, vars: {${k}: ${v('machine')}}` : '';
      const inventory = [
        `defaults: {profile: compute${layers.includes('defaults') ? `, vars: {${k}: ${v('defaults')}}` : ''}}`,
        `vars: {rack: r1${layers.includes('inventory') ? `, ${k}: ${v('inventory')}` : ''}}`,
        'machines:',
        `  - {name: node01, mac: "52:54:00:aa:bb:01", ip: 10.0.0.11/24${machine === 0 ? mvars : ''}}`,
        `  - {name: node02, mac: "52:54:00:aa:bb:02", ip: 10.0.0.12/24${machine === 1 ? mvars : ''}}`,
        '',
      ].join('\n');
      const diags = validate(profile, inventory);
      const VIA_AT = ['network', 'ethernets', 'lan', 'routes', '0', 'via'];
      if (top === 'profile') {
        // a profile value is reported where the profile uses it
        const at = position(profile, VIA_AT);
        const hit = diags.find((d) => d.path === '/' + VIA_AT.join('/'));
        expect(hit, JSON.stringify(diags)).to.not.equal(undefined);
        expect([path.basename(hit!.file!), hit!.line, hit!.col]).to.deep.equal(['profile.yaml', at.line, at.col]);
        return;
      }
      const where: { file: string; text: string; pointer: string[] } =
        top === 'machine' ? { file: 'inventory.yaml', text: inventory, pointer: ['machines', String(machine), 'vars', k] }
          : top === 'inventory' ? { file: 'inventory.yaml', text: inventory, pointer: ['vars', k] }
            : { file: 'inventory.yaml', text: inventory, pointer: ['defaults', 'vars', k] };
      const at = position(where.text, where.pointer);
      const hit = diags.find((d) => d.message.includes(`(used as {{vars.${k}}} at `));
      expect(hit, JSON.stringify(diags)).to.not.equal(undefined);
      expect({ file: path.basename(hit!.file!), line: hit!.line, col: hit!.col, path: hit!.path }).to.deep.equal({ file: where.file, ...at, path: '/' + where.pointer.join('/') });
      // the template that used it is named, at its own place
      const via = position(profile, ['network', 'ethernets', 'lan', 'routes', '0', 'via']);
      expect(hit!.message).to.include(`profile.yaml:${via.line}:${via.col}, /network/ethernets/lan/routes/0/via)`);
    }), { numRuns: 40 });
  });

  it('inventory ip, mac and name rendered whole: at the inventory entry', () => {
    const inventory = 'defaults: {profile: compute}\nvars: {rack: r1}\nmachines:\n  - {name: node01, mac: "52:54:00:aa:bb:01", ip: 10.0.0.11/24}\n  - {name: node02, mac: "52:54:00:aa:bb:02", ip: 10.0.0.12/24}\n';
    for (const [expr, key] of [['{{machine.ip}}', 'ip'], ['{{machine.mac}}', 'mac'], ['{{machine.name}}', 'name'], ['{{machine.hostname}}', 'name']] as const) {
      const diags = validate(PROFILE.replace(VIA, `via: "${expr}"`), inventory);
      for (const m of [0, 1]) {
        const at = position(inventory, ['machines', String(m), key]);
        expect(diags.some((d) => d.file!.endsWith('inventory.yaml') && d.line === at.line && d.col === at.col && d.path === `/machines/${m}/${key}`), `${expr} machine ${m}: ${JSON.stringify(diags)}`).to.equal(true);
      }
    }
  });

  it('through site: site.gateway: "{{vars.gw}}" used by the network is placed at the var', () => {
    const inventory = 'defaults: {profile: compute}\nvars: {rack: r1, gw: 10.0.0.999}\nmachines:\n  - {name: node01, mac: "52:54:00:aa:bb:01", ip: 10.0.0.11/24}\n';
    const diags = validate(PROFILE.replace('  gateway: 10.0.0.1', '  gateway: "{{vars.gw}}"'), inventory);
    const at = position(inventory, ['vars', 'gw']);
    expect(diags.map((d) => `${path.basename(d.file!)}:${d.line}:${d.col}: ${d.path}`)).to.include(`inventory.yaml:${at.line}:${at.col}: /vars/gw`);
  });

  it('a value that mixes text and a template stays at the template', () => {
    const inventory = 'defaults: {profile: compute}\nvars: {rack: r1, gw: "1"}\nmachines:\n  - {name: node01, mac: "52:54:00:aa:bb:01", ip: 10.0.0.11/24}\n';
    const profile = PROFILE.replace(VIA, 'via: "10.0.0.{{vars.gw}}x"');
    const diags = validate(profile, inventory);
    const at = position(profile, ['network', 'ethernets', 'lan', 'routes', '0', 'via']);
    const hit = diags.find((d) => d.path === '/network/ethernets/lan/routes/0/via');
    expect(hit, JSON.stringify(diags)).to.not.equal(undefined);
    expect([path.basename(hit!.file!), hit!.line, hit!.col]).to.deep.equal(['profile.yaml', at.line, at.col]);
    expect(hit!.message).to.not.include('used as');
  });

  it('a template error is always at the template, even for a whole-value template', () => {
    const inventory = 'defaults: {profile: compute}\nvars: {rack: r1}\nmachines:\n  - {name: node01, mac: "52:54:00:aa:bb:01", ip: 10.0.0.11/24}\n';
    const profile = PROFILE.replace(VIA, 'via: "{{vars.constructor}}"');
    const hit = validate(profile, inventory).find((d) => d.message.includes('unknown variable "vars.constructor"'));
    const at = position(profile, ['network', 'ethernets', 'lan', 'routes', '0', 'via']);
    expect([path.basename(hit!.file!), hit!.line, hit!.col, hit!.path]).to.deep.equal(['profile.yaml', at.line, at.col, '/network/ethernets/lan/routes/0/via']);
  });
});
