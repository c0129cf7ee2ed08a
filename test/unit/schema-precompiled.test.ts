/**
 * The precompiled validators (scripts/compile-schemas.mjs, run by `npm run
 * build`: ajv standalone code in dist/src/schema/validators.precompiled.mjs)
 * must answer exactly as the validators ajv compiles at run time: the same
 * valid flag and the same errors array (every key, in the same order, with
 * verbose's schema, parentSchema and data), hence the same diagnostics. Inputs:
 * every YAML/JSON file of the bad-input corpus, the profiles, the network
 * golden cases, a generated inventory, a report, and seeded mutations of them.
 * And: a schema file whose hash differs from the one compiled is compiled at
 * run time; the fast path does not load ajv.
 */
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ValidateFunction } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { makeInventory } from '../../bench/make-inventory.js';
import { SCHEMA_DIR, usePrecompiledForTests, validateAgainst, validator, type SchemaName } from '../../src/schema/validate-schema.js';
import { same } from '../helpers/same.js';
import { parseSource } from '../../src/profile/source.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const VALIDATE_JS = path.join(REPO, 'dist', 'src', 'schema', 'validate-schema.js');
const MODULE = path.join(REPO, 'dist', 'src', 'schema', 'validators.precompiled.mjs');
const NAMES: SchemaName[] = ['profile', 'inventory', 'report', 'network-v2'];

interface Precompiled { validators: Record<SchemaName, ValidateFunction>; sha256: Record<SchemaName, string> }

// ---- inputs ---------------------------------------------------------------

interface Input { label: string; data: unknown }

function readDoc(file: string): unknown {
  const text = readFileSync(file, 'utf8');
  if (file.endsWith('.json')) { try { return JSON.parse(text); } catch { return undefined; } }
  // loaded as ghostprep loads it: a document it refuses (an alias into itself, nesting beyond the limit) is no input here
  const { source, diagnostics } = parseSource(file, text);
  return diagnostics.some((d) => d.severity === 'error') ? undefined : source.data;
}

function docsUnder(dir: string, keep: (file: string) => boolean): Input[] {
  if (!existsSync(dir)) return [];
  const out: Input[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const file = path.join(e.parentPath, e.name);
    if (!e.isFile() || !/\.(ya?ml|json)$/.test(e.name) || !keep(file)) continue;
    const data = readDoc(file);
    if (data !== undefined) out.push({ label: path.relative(REPO, file), data });
  }
  return out.sort((x, y) => x.label.localeCompare(y.label));
}

const REPORT = {
  version: 1, command: 'deploy',
  base: { path: '/srv/base.qcow2', sha256: 'a'.repeat(64), sha256After: 'b'.repeat(64) },
  resume: { reused: 1, restored: 0, failed: 0, redone: ['n1'], alreadyDone: [] },
  started: '2026-11-29T15:08:00.123Z', finished: '2026-11-29T15:09:01+01:00',
  summary: { ok: 1, failed: 1, durationMs: 61000 },
  machines: [
    { name: 'n1', target: 'rootfs:/srv/n1', status: 'ok', error: null, distro: { id: 'debian', versionId: '12', family: 'debian' },
      identity: { hostname: 'n1', fqdn: 'n1.lab', machineId: '0'.repeat(32), sshHostKeys: [{ type: 'ed25519', sha256: 'SHA256:abc' }], addresses: ['10.0.0.1/24'] },
      changes: [{ op: 'write', path: '/etc/hostname', mode: '0644', sha256: 'c'.repeat(64) }, { op: 'delete', path: '/etc/machine-id', mode: null, sha256: null }], durationMs: 12 },
    { name: 'n2', target: 'rootfs:/srv/n2', status: 'failed', error: 'boom', distro: null, identity: null, changes: [], durationMs: 3 },
  ],
};

function networksOf(inputs: readonly Input[]): Input[] {
  const out: Input[] = [];
  for (const { label, data } of inputs) {
    const d = data as { network?: unknown; machines?: Array<{ network?: unknown }> } | null;
    if (d && typeof d === 'object' && d.network !== undefined) out.push({ label: `${label}#/network`, data: d.network });
    if (d && typeof d === 'object' && Array.isArray(d.machines)) {
      d.machines.forEach((m, i) => { if (m && typeof m === 'object' && m.network !== undefined) out.push({ label: `${label}#/machines/${i}/network`, data: m.network }); });
    }
  }
  return out;
}

const bad = docsUnder(path.join(REPO, 'fixtures', 'bad'), (f) => path.basename(f) !== 'expected.yaml');
const profiles = docsUnder(path.join(REPO, 'profiles'), () => true);
const netCases = docsUnder(path.join(REPO, 'fixtures', 'network', 'cases'), (f) => path.basename(f).startsWith('input.'));
const generated: Input[] = [
  { label: 'makeInventory(40)', data: parseYaml(makeInventory(40)) },
  { label: 'report', data: REPORT },
  { label: 'report with bad dates', data: { ...REPORT, started: '2026-02-30T10:00:00Z', finished: '29 Nov 2026' } }, // format date-time (ajv-formats)
  { label: 'empty map', data: {} }, { label: 'null', data: null }, { label: 'list', data: [] }, { label: 'string', data: 'x' },
];
const corpus = [...bad, ...profiles, ...netCases, ...generated];
const all = [...corpus, ...networksOf(corpus)];

/** Seeded mutations (replace, delete, add a key, duplicate an item) of documents that are nearly right. */
function mutations(seeds: readonly Input[], perSeed: number, seed: number): Input[] {
  let s = seed >>> 0;
  const rand = (n: number) => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return (((t ^ (t >>> 14)) >>> 0) % n); };
  const values: unknown[] = [null, true, false, 0, -0, -1, 1.5, 2, '2', 4294967295, 1e21, '', 'x', 'a\nb', 'Ünï😀', '{{machine.name}}', '../x', '/etc/x', '0644',
    '2026-11-29T15:08:00Z', '2026-13-45T99:00:00Z', 'not a date', 'f'.repeat(64), 'SHA256:x', '10.0.0.300/24', [], ['a'], ['a', 'a'], [1, { x: 1 }], {}, { bogus: 1 }, { version: 2 },
    'node-01', 'a_b.c', '-a', 'root', '@admin', '$6$salt$hash', '!', '52:54:00:aa:bb:01', 'eth0', '10.0.0.1/24', 'fd00::1/64', '1500', 'ed25519', 'derive', 'W. Europe Standard Time'];
  // string edits that cross the schemas' patterns (a name with a hyphen, a leading hyphen, a colon, a newline, ...)
  const edits = [(t: string) => `${t}-1`, (t: string) => `-${t}`, (t: string) => t.toUpperCase(), (t: string) => `${t}:`, (t: string) => `${t}\n`,
    (t: string) => t.slice(1), (t: string) => `${t} `, (t: string) => `${t}é`, (t: string) => `${t}_$`, (t: string) => `{{${t}}}`, (t: string) => `0${t}`];
  const out: Input[] = [];
  for (const { label, data } of seeds) {
    for (let k = 0; k < perSeed; k++) {
      const copy = structuredClone(data) as unknown;
      const nodes: Array<{ parent: Record<string, unknown> | unknown[]; key: string | number; at: string }> = [];
      const walk = (v: unknown, at: string) => {
        if (Array.isArray(v)) v.forEach((x, i) => { nodes.push({ parent: v, key: i, at: `${at}/${i}` }); walk(x, `${at}/${i}`); });
        else if (v && typeof v === 'object') for (const [key, x] of Object.entries(v)) { nodes.push({ parent: v as Record<string, unknown>, key, at: `${at}/${key}` }); walk(x, `${at}/${key}`); }
      };
      walk(copy, '');
      if (!nodes.length) continue;
      const n = nodes[rand(nodes.length)]!;
      const p = n.parent as Record<string | number, unknown>;
      let what: string;
      const cur = p[n.key];
      switch (typeof cur === 'string' && rand(2) ? -1 : rand(4)) {
        case -1: { const v = edits[rand(edits.length)]!(cur as string); p[n.key] = v; what = `${n.at} = ${JSON.stringify(v)}`; break; }
        case 0: { const v = values[rand(values.length)]; p[n.key] = structuredClone(v); what = `${n.at} = ${JSON.stringify(v)}`; break; }
        case 1:
          if (Array.isArray(p)) p.splice(n.key as number, 1); else delete p[n.key];
          what = `delete ${n.at}`; break;
        case 2: {
          const target = p[n.key];
          if (target && typeof target === 'object' && !Array.isArray(target)) { (target as Record<string, unknown>)['hostnme'] = 'x'; what = `${n.at}/hostnme = "x"`; }
          else { (p as Record<string, unknown>)['nmae'] = 1; what = `add nmae beside ${n.at}`; }
          break;
        }
        default:
          if (Array.isArray(p)) { p.push(structuredClone(p[n.key as number])); what = `duplicate ${n.at}`; }
          else { p[n.key] = [p[n.key]]; what = `${n.at} wrapped in a list`; }
      }
      out.push({ label: `${label} with ${what}`, data: copy });
    }
  }
  return out;
}

function looksLike(name: SchemaName, d: unknown): boolean {
  if (!d || typeof d !== 'object' || Array.isArray(d)) return false;
  const o = d as Record<string, unknown>;
  switch (name) {
    case 'profile': return 'profile' in o;
    case 'inventory': return 'machines' in o;
    case 'network-v2': return 'version' in o && ('ethernets' in o || 'bonds' in o || 'bridges' in o || 'vlans' in o);
    case 'report': return 'summary' in o;
  }
}

// ---- tests ----------------------------------------------------------------

describe('precompiled schema validators (ajv standalone)', () => {
  let mod: Precompiled;

  before(async function () {
    if (!existsSync(MODULE)) throw new Error(`${path.relative(REPO, MODULE)} is missing: build with \`npm run build\` (tsc and scripts/compile-schemas.mjs)`);
    mod = await import(pathToFileURL(MODULE).href) as Precompiled;
  });
  afterEach(() => usePrecompiledForTests());

  it('are what validator() hands out while the schema files are as compiled', () => {
    usePrecompiledForTests();
    for (const name of NAMES) {
      const hash = createHash('sha256').update(readFileSync(path.join(SCHEMA_DIR, `${name}.schema.json`))).digest('hex');
      expect(mod.sha256[name], `${name}: hash in the module (stale build?)`).to.equal(hash);
      expect(validator(name), name).to.equal(mod.validators[name]);
    }
  });

  it('has inputs of every kind', () => {
    expect(bad.length, 'fixtures/bad files').to.be.at.least(80);
    expect(profiles.length, 'profiles/').to.be.at.least(2);
    expect(netCases.length, 'network cases').to.be.at.least(5);
    for (const name of NAMES) expect(all.filter((i) => looksLike(name, i.data)).length, name).to.be.at.least(1);
  });

  for (const name of NAMES) {
    it(`${name}: same valid flag, errors and diagnostics as the run-time compile`, () => {
      usePrecompiledForTests(null);
      const runtime = validator(name);
      expect(runtime, 'run-time validator').to.have.property('schemaEnv'); // compiled by ajv here
      const pre = mod.validators[name];
      expect(pre).to.not.equal(runtime);
      const inputs = [...all, ...mutations(all.filter((i) => looksLike(name, i.data)), 40, 0x5eed + name.length)];
      let invalid = 0;
      for (const { label, data } of inputs) {
        const a = { valid: pre(data), errors: pre.errors };
        const b = { valid: runtime(data), errors: runtime.errors };
        if (!a.valid) invalid++;
        if (!same(a, b)) expect(a, `${name} on ${label}`).to.deep.equal(b); // a readable difference
      }
      expect(invalid, 'inputs with errors').to.be.greaterThan(inputs.length / 4);
      // the diagnostics people see, through each path
      const diags = () => inputs.map((i) => validateAgainst(name, i.data, '/x'));
      const atRuntime = diags();
      usePrecompiledForTests();
      expect(validator(name)).to.equal(pre);
      const precompiled = diags();
      for (let i = 0; i < inputs.length; i++) expect(precompiled[i], inputs[i]!.label).to.deep.equal(atRuntime[i]);
    });
  }

  it('compiles every schema at run time when one file no longer has the compiled hash (schemas may reference each other)', () => {
    const edited: Precompiled = { validators: mod.validators, sha256: { ...mod.sha256, profile: createHash('sha256').update('an edited schema').digest('hex') } };
    usePrecompiledForTests(edited);
    const fn = validator('profile');
    expect(fn).to.not.equal(mod.validators.profile);
    expect(fn).to.have.property('schemaEnv');
    expect(validator('inventory')).to.not.equal(mod.validators.inventory);
    expect(validator('inventory')).to.have.property('schemaEnv');
    expect(validateAgainst('profile', { profile: 'p', hostnme: 'x' }).map((d) => d.message)).to.deep.equal(['unknown key "hostnme" (did you mean "hostname"?)']);
  });

  it('does not load ajv (or ajv-formats) on the fast path; the run-time path does', function () {
    this.timeout(60_000);
    const script = (runtime: boolean) => `
      import { createRequire } from 'node:module';
      const m = await import(${JSON.stringify(pathToFileURL(VALIDATE_JS).href)});
      ${runtime ? 'm.usePrecompiledForTests(null);' : ''}
      for (const n of ${JSON.stringify(NAMES)}) m.validator(n);
      const loaded = Object.keys(createRequire(${JSON.stringify(VALIDATE_JS)}).cache);
      console.log(JSON.stringify(loaded.filter((f) => /node_modules[\\\\/]ajv(-formats)?[\\\\/]/.test(f)).map((f) => f.replace(/.*node_modules[\\\\/]/, ''))));`;
    const run = (runtime: boolean) => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script(runtime)], { encoding: 'utf8' });
      expect(r.status, r.stderr).to.equal(0);
      return JSON.parse(r.stdout) as string[];
    };
    const fast = run(false);
    expect(fast.filter((f) => !/^ajv[\\/]dist[\\/]runtime[\\/]|^ajv-formats[\\/]dist[\\/]formats\.js$/.test(f)), 'ajv modules loaded besides its runtime helpers').to.deep.equal([]);
    expect(run(true), 'run-time compile').to.include.members([path.join('ajv', 'dist', '2020.js'), path.join('ajv-formats', 'dist', 'index.js')]);
  });
});
