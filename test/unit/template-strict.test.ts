/**
 * The template instance reaches own properties of its data only, writes text
 * only and cannot print: for generated template strings (every path form,
 * helper argument and block subject, at a generated line), a name a value
 * inherits is an unknown-variable error naming the template, line and
 * variable; a map or list written out is an error; `log` does not exist.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { machineData } from '../../src/template/context.js';
import { renderTemplate, renderValue, TemplateError } from '../../src/template/render.js';

function context(): Record<string, unknown> {
  const entry = { name: 'node01', mac: '52:54:00:aa:bb:01', ip: '10.0.0.11/24', vars: { rack: 'r9' } };
  return {
    machine: machineData(entry, { name: 'node01', hostname: 'node01', fqdn: 'node01.lab', machineId: 'ab'.repeat(16), sshHostKeys: { ed25519: 'ssh-ed25519 AAAA' } }),
    site: { domain: 'lab', dns: ['10.0.0.2', '10.0.0.3'], ntp: { server: 'ntp.lab' } },
    profile: { name: 'compute' },
    distro: { id: 'debian', versionId: '12', family: 'debian', name: 'Debian' },
    vars: { rack: 'r1', list: ['a', 'b'], nested: { k: 'v' }, n: 3 },
  };
}

/** What a render does: its text, or the TemplateError it throws (anything else fails the test). */
function outcome(text: string): { text?: string; error?: TemplateError } {
  try {
    return { text: renderTemplate(text, context(), 'gen.hbs') };
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(TemplateError);
    return { error: err as TemplateError };
  }
}

/** Nothing written to stdout or stderr, by any means, while `fn` runs. */
function silently<T>(fn: () => T): T {
  const writes: string[] = [];
  const saved = { out: process.stdout.write, err: process.stderr.write, log: console.log, error: console.error, warn: console.warn, info: console.info, debug: console.debug };
  const capture = (s: unknown) => { writes.push(String(s)); return true; };
  process.stdout.write = capture as typeof process.stdout.write;
  process.stderr.write = capture as typeof process.stderr.write;
  console.log = console.error = console.warn = console.info = console.debug = (...a: unknown[]) => { writes.push(a.join(' ')); };
  try {
    return fn();
  } finally {
    process.stdout.write = saved.out; process.stderr.write = saved.err;
    console.log = saved.log; console.error = saved.error; console.warn = saved.warn; console.info = saved.info; console.debug = saved.debug;
    expect(writes, 'output while rendering').to.deep.equal([]);
  }
}

// names every value inherits (Object.prototype's), in every spelling a template may use
const INHERITED = Object.getOwnPropertyNames(Object.prototype);
const ROOTS = ['machine', 'site', 'vars', 'profile', 'distro', 'machine.name', 'site.dns', 'site.ntp', 'vars.list', 'vars.nested', 'vars.n', 'machine.sshHostKeys'];

/** One expression that reaches `root` + `name`, and the variable the error must name. */
const FORMS: ReadonlyArray<(root: string, name: string) => { text: string; variable: string }> = [
  (r, n) => ({ text: `{{${r}.${n}}}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{ ${r}.[${n}] }}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{this.${r}.${n}}}`, variable: `this.${r}.${n}` }),
  (r, n) => ({ text: `{{@root.${r}.${n}}}`, variable: `@root.${r}.${n}` }),
  (r, n) => ({ text: `{{{${r}.${n}}}}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{${r}.${n}.name}}`, variable: `${r}.${n}.name` }),
  (r, n) => ({ text: `{{lookup ${r} "${n}"}}`, variable: n }),
  (r, n) => ({ text: `{{lookup ${r} '${n}'}}`, variable: n }),
  (r, n) => ({ text: `{{default (lookup ${r} "${n}") "x"}}`, variable: n }),
  (r, n) => ({ text: `{{#with ${r}.${n}}}x{{/with}}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{#if ${r}.${n}}}x{{/if}}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{#unless ${r}.${n}}}x{{/unless}}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{#each ${r}.${n}}}x{{/each}}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{#${r}.${n}}}x{{/${r}.${n}}}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{upper ${r}.${n}}}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{json ${r}.${n}}}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{default ${r}.${n} "x"}}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{#if (eq ${r}.${n} 1)}}x{{/if}}`, variable: `${r}.${n}` }),
  (r, n) => ({ text: `{{#with ${r}}}{{${n}}}{{/with}}`, variable: n }),
  (r, n) => ({ text: `{{#with ${r}}}{{this.${n}}}{{/with}}`, variable: `this.${n}` }),
  (r, n) => ({ text: `{{#with ${r} as |x|}}{{x.${n}}}{{/with}}`, variable: `x.${n}` }),
  (r, n) => ({ text: `{{#with ${r}}}{{#if ${n}}}x{{/if}}{{/with}}`, variable: n }),
  (r, n) => ({ text: `{{#each vars.list}}{{lookup ../${r} "${n}"}}{{/each}}`, variable: n }),
];

const filler = fc.stringMatching(/^[a-z =:#\n]{0,12}$/);

describe('templates reach own properties only', () => {
  it('an inherited name is an unknown variable naming the template, line and variable, in every form', () => {
    fc.assert(fc.property(filler, fc.constantFrom(...ROOTS), fc.constantFrom(...INHERITED), fc.integer({ min: 0, max: FORMS.length - 1 }), filler, (before, root, name, form, after) => {
      const { text: expr, variable } = FORMS[form]!(root, name);
      const text = `${before}${expr}${after}`;
      const { text: out, error } = silently(() => outcome(text));
      expect(out, `${JSON.stringify(text)} rendered`).to.equal(undefined);
      expect(error!.template).to.equal('gen.hbs');
      expect(error!.detail, JSON.stringify(text)).to.match(/^unknown variable "/);
      expect(error!.detail, JSON.stringify(text)).to.include(`"${variable}"`);
      expect(error!.line, JSON.stringify(text)).to.equal(before.split('\n').length);
    }), { numRuns: 2000 });
  });

  it('a whole-value template cannot hand a prototype to the profile', () => {
    for (const root of ROOTS) for (const name of INHERITED) {
      expect(() => renderValue(`{{${root}.${name}}}`, context(), '/x'), `${root}.${name}`).to.throw(TemplateError, 'unknown variable');
    }
  });

  it('own data still renders: paths, lookup, blocks, each, helpers', () => {
    const cases: Array<[string, string]> = [
      ['{{machine.name}}.{{site.domain}}', 'node01.lab'],
      ['{{lookup vars "rack"}} {{default (lookup vars "nope") "r0"}}', 'r1 r0'],
      ['{{#if vars.gpu}}gpu{{else}}cpu{{/if}}', 'cpu'],
      ['{{#each site.dns}}{{@index}}={{this}};{{/each}}', '0=10.0.0.2;1=10.0.0.3;'],
      ['{{#each vars.nested}}{{@key}}:{{this}}{{/each}}', 'k:v'],
      ['{{#with site.ntp}}{{server}}{{/with}}', 'ntp.lab'],
      ['{{join site.dns " "}} {{upper machine.name}} {{ipAddress machine.ip}}/{{ipPrefix machine.ip}}', '10.0.0.2 10.0.0.3 NODE01 10.0.0.11/24'],
      ['{{site.dns.length}} {{machine.name.length}} {{vars.n}}', '2 6 3'],
      ['{{json vars.nested}}', '{"k":"v"}'],
      ['{{machine.sshHostKeys.ed25519}}', 'ssh-ed25519 AAAA'],
    ];
    for (const [text, expected] of cases) expect(silently(() => renderTemplate(text, context(), 't')), text).to.equal(expected);
  });
});

describe('generated templates of every shape', () => {
  // own names of the data, inherited names, and names of functions' and arrays' prototypes
  const SEGS = ['name', 'ip', 'dns', 'rack', 'list', 'nested', 'k', 'ntp', 'server', '0', '1', 'length', ...INHERITED, 'prototype', 'call', 'apply', 'bind', 'map', 'push', 'caller', 'arguments'];
  const HELPER_NAMES = ['lookup', 'default', 'json', 'upper', 'eq', 'join', 'indent', 'log', 'with', 'each', 'nope', 'constructor', 'helperMissing', 'blockHelperMissing'];
  const tree = fc.letrec((tie) => ({
    path: fc.tuple(fc.constantFrom('machine', 'site', 'vars', 'this', '@root', '../vars', 'x', '.', 'constructor', '@index', '@key'), fc.array(fc.constantFrom(...SEGS), { maxLength: 3 }))
      .map(([root, segs]) => [root, ...segs].join(root === '.' ? '/' : '.').replace(/^\.\//, './')),
    expr: fc.oneof({ depthSize: 'small' }, tie('path'), fc.constantFrom('"constructor"', '"__proto__"', '"rack"', '1', 'true', 'null'),
      fc.tuple(fc.constantFrom(...HELPER_NAMES), fc.array(tie('expr'), { minLength: 1, maxLength: 2 })).map(([h, args]) => `(${h} ${(args as string[]).join(' ')})`)),
    stmt: fc.oneof({ depthSize: 'small' },
      fc.stringMatching(/^[a-z \n]{0,4}$/),
      tie('path').map((p) => `{{${p}}}`),
      tie('path').map((p) => `{{{${p}}}}`),
      fc.tuple(fc.constantFrom(...HELPER_NAMES), fc.array(tie('expr'), { minLength: 1, maxLength: 2 })).map(([h, args]) => `{{${h} ${(args as string[]).join(' ')}}}`),
      fc.tuple(fc.constantFrom('with', 'each', 'if', 'unless'), tie('expr'), fc.array(tie('stmt'), { maxLength: 3 }), fc.boolean())
        .map(([b, e, body, asParam]) => `{{#${b} ${e}${asParam && (b === 'with' || b === 'each') ? ' as |x|' : ''}}}${(body as string[]).join('')}{{/${b}}}`),
    ),
  }));
  const template = fc.array(tree.stmt as fc.Arbitrary<string>, { minLength: 1, maxLength: 4 }).map((parts) => parts.join(''));

  it('render text made of the data, or fail with a located TemplateError; never a function, a prototype or a print', () => {
    fc.assert(fc.property(template, (text) => {
      const { text: out, error } = silently(() => outcome(text));
      if (error) {
        expect(error.line, text).to.be.at.least(1);
        expect(error.col, text).to.be.at.least(1);
        expect(error.detail, text).to.not.match(/Cannot read|Cannot use 'in'|is not a function|undefined \(reading/);
        return;
      }
      expect(out, text).to.be.a('string');
      expect(out, text).to.not.match(/\[object |function|native code|=>|\bclass\b/);
    }), { numRuns: Number(process.env.TEMPLATE_RUNS ?? 3000) });
  });
});

describe('templates write text only', () => {
  const VALUES: ReadonlyArray<[string, 'map' | 'list']> = [['machine', 'map'], ['site', 'map'], ['vars', 'map'], ['site.dns', 'list'], ['vars.list', 'list'], ['vars.nested', 'map'], ['this', 'map'], ['@root', 'map'], ['machine.sshHostKeys', 'map']];
  const WRITES: ReadonlyArray<(v: string) => string> = [
    (v) => `{{${v}}}`, (v) => `{{{${v}}}}`, (v) => `{{~${v}~}}`, (v) => `{{default ${v} "x"}}`, (v) => `{{#with vars}}{{../${v}}}{{/with}}`.replace('../this', '..').replace('../@root', '@root'),
    (v) => `{{#each vars.list}}{{lookup @root "${v.split('.')[0]}"}}{{/each}}`,
  ];

  it('a map or a list written out is an error at its {{…}}, never [object Object] or a,b', () => {
    fc.assert(fc.property(filler, fc.constantFrom(...VALUES), fc.integer({ min: 0, max: WRITES.length - 1 }), (before, [value, kind], w) => {
      if (w === 5 && (value === 'this' || value === '@root')) return;
      const text = before + WRITES[w]!(value);
      const { text: out, error } = silently(() => outcome(text));
      expect(out, `${JSON.stringify(text)} rendered`).to.equal(undefined);
      const expectedKind = w === 5 ? 'a map' : `a ${kind}`;
      expect(error!.detail, JSON.stringify(text)).to.include(`is ${expectedKind}, where text is needed`);
      expect(error!.line, JSON.stringify(text)).to.equal(before.split('\n').length);
    }), { numRuns: 1000 });
  });

  it('helpers that need text refuse a map or a list, at the call', () => {
    for (const text of ['{{upper machine}}', '{{lower site.dns}}', '{{ipAddress vars.nested}}', '{{ipPrefix vars.list}}', '{{indent 2 site}}', '{{join vars.nested}}', 'x\n{{join site.dns}} {{join (lookup vars "nested")}}']) {
      const { text: out, error } = silently(() => outcome(text));
      expect(out, text).to.equal(undefined);
      expect(error!.detail, text).to.match(/is given a (map|list) where text is needed/);
      expect(error!.line, text).to.equal(text.split('\n').length);
    }
  });
});

describe('templates cannot print', () => {
  for (const text of ['{{log machine}}', '{{log "x" level="error"}}', 'a\n  {{#if vars.rack}}{{log vars}}{{/if}}']) {
    it(`${JSON.stringify(text)} is an unknown helper, located`, () => {
      const { text: out, error } = silently(() => outcome(text));
      expect(out).to.equal(undefined);
      expect(error!.detail).to.equal('unknown helper "log" (templates cannot print)');
      expect(error!.line).to.equal(text.split('\n').length);
    });
  }

  it('partials and decorators are refused (no table of names to reach through)', () => {
    for (const text of ['{{> constructor}}', '{{> (lookup vars "rack")}}', '{{#*inline "x"}}y{{/inline}}']) {
      const { error } = silently(() => outcome(text));
      expect(error?.detail, text).to.match(/^syntax error: (partials|decorators)/);
    }
  });
});
