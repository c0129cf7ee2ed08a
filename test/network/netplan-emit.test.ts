/**
 * The netplan renderer writes its YAML directly (netplanBody) instead of through
 * the yaml library's Document; the text must be what the library writes with the
 * same options, for the golden cases and for any tree of maps, lists and scalars.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { interpret } from '../../src/network/interpret.js';
import { netplanBody, renderNetplanYaml } from '../../src/network/renderers/netplan.js';
import { caseNames, loadCase } from './helpers.js';

const OPTIONS = { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN', lineWidth: 0 } as const;
const viaLibrary = (doc: Record<string, unknown>): string => stringify(doc, OPTIONS);

describe('netplan YAML emitter', () => {
  it('writes what the yaml library writes, for every golden case', () => {
    for (const name of caseNames()) {
      const text = renderNetplanYaml(interpret(loadCase(name)));
      const body = text.slice(text.indexOf('\n') + 1);
      // the tree read back from the text is the tree that was written (strings, integers, booleans)
      expect(body, name).to.equal(viaLibrary(parse(body) as Record<string, unknown>));
    }
  });

  it('writes what the yaml library writes, for generated trees (fast path and fallback)', () => {
    const key = fc.oneof(
      fc.constantFrom('lan', 'set-name', 'dhcp4', 'match', 'addresses', 'to', 'via', 'true', 'null', 'x_1', '0a', 'a b', 'on-link', 'k:'),
      fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_-]{0,6}$/),
    );
    const str = fc.oneof(
      fc.stringMatching(/^[ -~]{0,12}$/),
      fc.constantFrom('52:54:00:aa:bb:01', '10.0.0.2/8', 'fe80::1', '', ' lead', 'trail ', 'a"b', 'back\\slash', 'tab\there', 'nl\nx', 'ü', '#c', '- x', 'yes'),
    );
    const scalar = fc.oneof(str, fc.integer({ min: -100000, max: 100000 }), fc.boolean(), fc.constantFrom(1.5, -0, 2 ** 60));
    const tree = fc.letrec<{ node: unknown; map: Record<string, unknown> }>((tie) => ({
      node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, tie('map'), fc.array(fc.oneof(scalar, tie('map'), fc.array(scalar, { maxLength: 2 })), { maxLength: 3 })),
      map: fc.dictionary(key, tie('node'), { maxKeys: 4 }),
    })).map;
    fc.assert(fc.property(tree, (doc) => {
      expect(netplanBody(doc as Record<string, unknown>)).to.equal(viaLibrary(doc as Record<string, unknown>));
    }), { numRuns: 2000 });
  });
});
