/**
 * Profiles and inventories load into prototype-free data: the reserved keys
 * (__proto__, constructor, prototype) are located errors at any depth, in
 * both parse paths (the fast reader for big files and the yaml library), and
 * the merge refuses them whatever it is given. Checked on generated trees.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, resolveProfile } from '../../src/profile/config.js';
import { fastYaml } from '../../src/profile/fast-yaml.js';
import { cloneData, ForbiddenKeyError, mergeInto, overlay } from '../../src/profile/profile-merge.js';
import { type Traced } from '../../src/core/machine.js';
import { parseSource } from '../../src/profile/source.js';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import { tempDir } from '../helpers/rootfs.js';

const RESERVED = ['__proto__', 'constructor', 'prototype'];

/** A tree as a list of entries, so that any key (even __proto__) can be written without touching a prototype. */
type Tree = { kind: 'map'; entries: Array<[string, Tree]> } | { kind: 'leaf'; value: string | number | boolean };

const leaf: fc.Arbitrary<Tree> = fc.oneof(
  fc.constantFrom('x', 'a b', '/srv', 'r1').map((value) => ({ kind: 'leaf' as const, value })),
  fc.integer({ min: 0, max: 999 }).map((value) => ({ kind: 'leaf' as const, value })),
);
const key = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('vars', 'site', 'target', 'rack', 'a', 'b', 'hostname') }, { weight: 1, arbitrary: fc.constantFrom(...RESERVED) });
const tree: fc.Arbitrary<Tree> = fc.letrec<{ map: Tree; node: Tree }>((tie) => ({
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('map')),
  map: fc.uniqueArray(fc.tuple(key, tie('node')), { minLength: 1, maxLength: 4, selector: ([k]) => k })
    .map((entries) => ({ kind: 'map' as const, entries })),
})).map;

function hasReserved(t: Tree): boolean {
  return t.kind === 'map' && t.entries.some(([k, v]) => RESERVED.includes(k) || hasReserved(v));
}

const scalarText = (v: string | number | boolean): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));

/** Block YAML, keys plain or quoted. */
function block(t: Tree, indent = 0, quote = false): string[] {
  if (t.kind === 'leaf') return [];
  return t.entries.flatMap(([k, v], i) => {
    const name = quote && i % 2 ? JSON.stringify(k) : k;
    return v.kind === 'leaf' ? [`${' '.repeat(indent)}${name}: ${scalarText(v.value)}`] : [`${' '.repeat(indent)}${name}:`, ...block(v, indent + 2, quote)];
  });
}

/** JSON (a flow style YAML): every key quoted. */
function json(t: Tree): string {
  return t.kind === 'leaf' ? scalarText(t.value) : `{${t.entries.map(([k, v]) => `${JSON.stringify(k)}: ${json(v)}`).join(', ')}}`;
}

/** What Object.prototype holds now (to see that nothing was added or changed). */
function prototypeState(): string {
  return Object.getOwnPropertyNames(Object.prototype).sort().map((k) => `${k}:${typeof (Object.prototype as Record<string, unknown>)[k]}`).join(',');
}

function offsetOf(text: string, line: number, col: number): number {
  let at = 0;
  for (let l = 1; l < line; l++) at = text.indexOf('\n', at) + 1;
  return at + col - 1;
}

function hasNoPrototypes(v: unknown): boolean {
  if (Array.isArray(v)) return v.every(hasNoPrototypes);
  if (v && typeof v === 'object') return Object.getPrototypeOf(v) === null && Object.values(v).every(hasNoPrototypes);
  return true;
}

describe('profile data: prototype-free, reserved keys refused with a location', () => {
  const before = prototypeState();
  afterEach(() => {
    expect(prototypeState()).to.equal(before);
    expect(({} as Record<string, unknown>).target).to.equal(undefined);
  });

  it('loads maps without a prototype, in both parse paths', () => {
    const small = parseSource('p.yaml', 'a: {b: [1, {c: 2}]}\n');
    expect(hasNoPrototypes(small.source.data)).to.equal(true);
    const big = parseSource('inv.yaml', `# ${'x'.repeat(70_000)}\nmachines:\n  - {name: n1, vars: {rack: r1}}\n`);
    expect(big.diagnostics).to.deep.equal([]);
    expect(hasNoPrototypes(big.source.data)).to.equal(true);
  });

  for (const k of RESERVED) {
    it(`refuses "${k}" as a key, at its line and column, and loads no data`, () => {
      const { source, diagnostics } = parseSource('p.yaml', `profile: p\nvars:\n  ok: 1\n  ${k}:\n    target: /\n`);
      expect(source.data).to.equal(undefined);
      expect(diagnostics).to.have.length(1);
      expect(diagnostics[0]).to.include({ severity: 'error', file: 'p.yaml', line: 4, col: 3, path: `/vars/${k}` });
      expect(diagnostics[0]!.message).to.include(`key "${k}" is not allowed`);
    });
  }

  it('refuses a reserved key reached through an alias, at the key', () => {
    const { diagnostics } = parseSource('p.yaml', 'base: &b {"__proto__": {target: /}}\nvars: *b\n');
    expect(diagnostics.map((d) => [d.line, d.col])).to.deep.equal([[1, 11]]);
  });

  it('the fast reader leaves reserved keys to the library path (which refuses them)', () => {
    for (const k of RESERVED) {
      expect(fastYaml(`machines:\n  - name: n1\n    vars: {${k}: {target: x}}\n`)).to.equal(undefined);
      expect(fastYaml(`machines:\n  - name: n1\n    ${k}: 1\n`)).to.equal(undefined);
    }
  });

  it('generated trees: either loaded without a prototype, or refused at every reserved key (block, quoted and flow YAML, small and big files)', () => {
    fc.assert(fc.property(tree, fc.constantFrom('block', 'quoted', 'json'), fc.boolean(), (t, style, big) => {
      const body = style === 'json' ? `${json(t)}\n` : `${block(t, 0, style === 'quoted').join('\n')}\n`;
      // a long comment line makes the file big enough for the fast reader
      const text = big ? `# ${'-'.repeat(70_000)}\n${body}` : body;
      const { source, diagnostics } = parseSource('t.yaml', text);
      expect(prototypeState()).to.equal(before);
      if (!hasReserved(t)) {
        expect(diagnostics.filter((d) => d.severity === 'error'), text).to.deep.equal([]);
        expect(hasNoPrototypes(source.data)).to.equal(true);
        return;
      }
      expect(source.data).to.equal(undefined);
      const refused = diagnostics.filter((d) => d.message.includes('is not allowed'));
      expect(refused.length, text).to.be.greaterThan(0);
      for (const d of refused) {
        expect(d.file).to.equal('t.yaml');
        const at = text.slice(offsetOf(text, d.line!, d.col!));
        expect(RESERVED.some((k) => at.startsWith(k) || at.startsWith(JSON.stringify(k))), `${d.line}:${d.col} ${d.message}\n${text}`).to.equal(true);
        expect(RESERVED.some((k) => d.path.endsWith(`/${k}`))).to.equal(true);
      }
    }), { numRuns: 400 });
  });

  it('the merge refuses reserved keys whatever it is given, and never writes a prototype', () => {
    const src = parseSource('x.yaml', 'a: 1\n').source;
    fc.assert(fc.property(tree, tree, (a, b) => {
      // JSON.parse makes own "__proto__" properties, as a careless reader would
      const base = JSON.parse(json(a)) as Record<string, unknown>;
      const over = JSON.parse(json(b)) as Record<string, unknown>;
      const t: Traced<Record<string, unknown>> = { value: {}, origins: new Map() };
      let refused = false;
      for (const o of [base, over]) {
        try { mergeInto(t, o, src); } catch (err) {
          expect(err).to.be.instanceOf(ForbiddenKeyError);
          refused = true;
        }
      }
      expect(prototypeState()).to.equal(before);
      expect(({} as Record<string, unknown>).target).to.equal(undefined);
      if (!hasReserved(a) && !hasReserved(b)) expect(refused).to.equal(false);
      else expect(refused).to.equal(true);
    }), { numRuns: 400 });
  });

  it('cloneData refuses reserved keys and makes prototype-free copies', () => {
    expect(() => cloneData(JSON.parse('{"a": {"constructor": {"prototype": 1}}}'))).to.throw(ForbiddenKeyError, '/a/constructor');
    expect(hasNoPrototypes(cloneData({ a: [{ b: 1 }] }))).to.equal(true);
  });
});

describe('profile data: vars with __proto__ over a parent with vars', () => {
  it('is refused at the key before any merge, and Object.prototype stays as it was', () => {
    const dir = tempDir('ghostprep-proto-');
    writeFileSync(path.join(dir, 'base.yaml'), 'profile: base\nmachineId: generate\nvars: {rack: r1}\n');
    writeFileSync(path.join(dir, 'node.yaml'), 'profile: node\nextends: base\nvars:\n  __proto__:\n    target: /\n');
    writeFileSync(path.join(dir, 'inv.yaml'), 'machines:\n  - {name: n1, profile: node, target: "rootfs:{{vars.target}}"}\n');
    const { diagnostics } = validateFleet([path.join(dir, 'node.yaml')], path.join(dir, 'inv.yaml'));
    expect(({} as Record<string, unknown>).target).to.equal(undefined);
    const d = diagnostics.find((x) => x.message.includes('"__proto__" is not allowed'));
    expect(d, JSON.stringify(diagnostics)).to.include({ file: path.join(dir, 'node.yaml'), line: 4, col: 3, path: '/vars/__proto__' });
  });

  it('a resolved profile is deeply frozen and prototype-free', () => {
    const dir = tempDir('ghostprep-frozen-');
    writeFileSync(path.join(dir, 'base.yaml'), 'profile: base\nmachineId: generate\nvars: {rack: r1, list: [{a: 1}]}\n');
    writeFileSync(path.join(dir, 'node.yaml'), 'profile: node\nextends: base\nvars: {row: 2}\n');
    const config = loadConfig([path.join(dir, 'node.yaml')]);
    expect(config.diagnostics).to.deep.equal([]);
    const r = resolveProfile(config.profiles, 'node');
    expect(hasNoPrototypes(r.value)).to.equal(true);
    const vars = r.value.vars as Record<string, unknown>;
    expect(vars).to.deep.equal({ rack: 'r1', list: [{ a: 1 }], row: 2 });
    expect(Object.isFrozen(r.value) && Object.isFrozen(vars) && Object.isFrozen((vars.list as object[])[0])).to.equal(true);
    expect(() => { vars.rack = 'r9'; }).to.throw(TypeError);
  });

  it('overlay leaves the shared tree as it was and freezes the new one', () => {
    const src = parseSource('x.yaml', 'a: 1\n').source;
    const base: Traced<Record<string, unknown>> = { value: cloneData({ site: { a: 1 }, l: [1] }), origins: new Map() };
    const t = overlay(base, { site: { b: 2 } }, src, ['machines', '0']);
    expect(t.value).to.deep.equal({ site: { a: 1, b: 2 }, l: [1] });
    expect(base.value).to.deep.equal({ site: { a: 1 }, l: [1] });
    expect(Object.isFrozen(t.value.site) && Object.isFrozen(t.value.l)).to.equal(true);
    expect(hasNoPrototypes(t.value)).to.equal(true);
  });
});

describe('profile data: generated extends chains through files', () => {
  const before = prototypeState();
  it('loading and resolving never changes Object.prototype; reserved keys are refused in the file that holds them', () => {
    const root = tempDir('ghostprep-gen-extends-');
    let n = 0;
    fc.assert(fc.property(tree, tree, tree, fc.boolean(), (a, b, inv, parentByName) => {
      const dir = path.join(root, String(n++));
      mkdirSync(dir);
      // each tree goes under vars of a profile, or of the inventory
      writeFileSync(path.join(dir, 'base.yaml'), `profile: base\nmachineId: generate\nvars: ${json(a)}\n`);
      writeFileSync(path.join(dir, 'node.yaml'), `profile: node\nextends: base\nvars:\n${block(b, 2).join('\n')}\n`);
      writeFileSync(path.join(dir, 'inv.yaml'), `machines:\n  - name: n1\n    profile: node\n    vars: ${json(inv)}\n`);
      const args = parentByName ? [path.join(dir, 'node.yaml')] : [path.join(dir, 'node.yaml'), path.join(dir, 'base.yaml')];
      const config = loadConfig(args, path.join(dir, 'inv.yaml'));
      expect(prototypeState()).to.equal(before);
      const refused = config.diagnostics.filter((d) => d.message.includes('is not allowed'));
      // base.yaml found by name is read only when node.yaml (which names it) loads
      const baseRead = !parentByName || !hasReserved(b);
      const expectIn = [...(baseRead ? [[a, 'base.yaml']] as const : []), [b, 'node.yaml'], [inv, 'inv.yaml']] as const;
      for (const [t, file] of expectIn) {
        const here = refused.filter((d) => path.basename(d.file!) === file);
        if (t.kind === 'map' && hasReserved(t)) {
          expect(here.length, file).to.be.greaterThan(0);
          for (const d of here) expect(d.line).to.be.a('number');
        } else expect(here, file).to.deep.equal([]);
      }
      if (!refused.length && config.profiles.has('node')) {
        const r = resolveProfile(config.profiles, 'node');
        expect(hasNoPrototypes(r.value)).to.equal(true);
        expect(Object.isFrozen(r.value.vars)).to.equal(true);
      }
      expect(prototypeState()).to.equal(before);
    }), { numRuns: 150 });
  });
});
