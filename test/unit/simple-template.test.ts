/**
 * Templates that are text around `{{a.b}}` paths are rendered without Handlebars'
 * runtime (simpleTemplate); every result and every error must be those of the strict
 * instance (compileStrict), for generated templates and contexts.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { compileStrict, simpleTemplate } from '../../src/template/render.js';

const outcome = (fn: () => string): string => { try { return 'ok:' + fn(); } catch (e) { return 'error:' + (e as Error).message; } };

describe('simple templates (no Handlebars runtime)', () => {
  it('render and fail exactly like Handlebars, for generated templates and contexts', () => {
    const seg = fc.constantFrom('machine', 'name', 'ip', 'site', 'dns', 'vars', 'x-y', 'length', 'constructor', 'toString', '__proto__', 'nope', 'this', 'a1', '_', 'true', 'false', 'null', 'undefined', 'else');
    const pathText = fc.array(seg, { minLength: 1, maxLength: 4 }).map((s) => s.join('.'));
    const mustache = fc.tuple(fc.constantFrom('', ' ', '  '), pathText, fc.constantFrom('', ' ', '\t'), fc.constantFrom('{{', '{{{', '{{~', '\\{{', '{{!'), fc.constantFrom('}}', '}}}', '~}}', ' }}'))
      .map(([a, p, b, open, close]) => `${open}${a}${p}${b}${close}`);
    const literal = fc.oneof(fc.stringMatching(/^[a-z .:\n{}\\-]{0,6}$/), fc.constantFrom('', 'rack=', '\n', '}', '{', '\\', 'x\0y'));
    const template = fc.array(fc.tuple(literal, mustache), { maxLength: 4 }).chain((parts) => literal.map((tail) => parts.map(([l, m]) => l + m).join('') + tail));
    const leaf = fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.constantFrom(0, -0, 1.5, true, false, null, undefined, NaN), fc.array(fc.oneof(fc.string({ maxLength: 3 }), fc.integer(), fc.constantFrom(null, undefined, true), fc.array(fc.string({ maxLength: 2 }), { maxLength: 2 }), fc.constant({ k: 1 })), { maxLength: 3 }));
    const ctx = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, leaf, tie('map')),
      map: fc.dictionary(seg, tie('node'), { maxKeys: 5 }),
    })).map as fc.Arbitrary<Record<string, unknown>>;
    fc.assert(fc.property(template, ctx, (text, context) => {
      const fast = simpleTemplate(text);
      if (!fast) return;
      const expected = outcome(() => compileStrict(text)(context));
      expect(outcome(() => fast(context)), JSON.stringify(text)).to.equal(expected);
    }), { numRuns: 5000 });
  });

  it('takes the common profile strings and leaves the rest to Handlebars', () => {
    expect(simpleTemplate('rack={{vars.rack}}\nnode={{machine.name}}\n')).to.be.a('function');
    expect(simpleTemplate('{{ site.dns }}')).to.be.a('function');
    for (const t of ['{{name}}', '{{#if a.b}}x{{/if}}', '{{{a.b}}}', '\\{{a.b}}', '{{~a.b}}', '{{join site.dns " "}}', '{{this.a}}', '{{a.this}}', '{{vars.true}}', '{{a.null}}', '{{else.a}}', '{{a.[b]}}', '{{../a.b}}', '{{@root.a}}', 'x\0{{a.b}}', '{{a.b}'])
      expect(simpleTemplate(t), t).to.equal(undefined);
    expect(simpleTemplate('{{machine.name}}.{{site.domain}}')!({ machine: { name: 'n1' }, site: { domain: 'lab' } })).to.equal('n1.lab');
  });
});
