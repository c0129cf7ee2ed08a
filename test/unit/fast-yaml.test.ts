/**
 * fastYaml (the reader for big inventories) must load exactly what the yaml
 * library path loads (parseDocument, then documentData: prototype-free maps), and answer only for texts the library reads without an error
 * or a warning; everything else it leaves to the library (undefined).
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { LineCounter, parseDocument } from 'yaml';
import { makeInventory } from '../../bench/make-inventory.js';
import { fastYaml } from '../../src/profile/fast-yaml.js';
import { parseSource } from '../../src/profile/source.js';
import { documentData } from '../../src/profile/yaml-data.js';
import { same } from '../helpers/same.js';

const OPTIONS = { uniqueKeys: true, prettyErrors: false, strict: true } as const;

function library(text: string): { ok: boolean; data?: unknown; lineStarts: number[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, ...OPTIONS });
  if (doc.errors.length || doc.warnings.length) return { ok: false, lineStarts: lines.lineStarts };
  const { data, problems } = documentData(doc);
  if (problems.length) return { ok: false, lineStarts: lines.lineStarts };
  return { ok: true, data, lineStarts: lines.lineStarts };
}

describe('fast YAML reader (big inventories)', () => {
  it('loads a generated 2,000-machine inventory as the library does', () => {
    const text = makeInventory(2000);
    const fast = fastYaml(text);
    expect(fast).to.not.equal(undefined);
    expect(same(fast, library(text).data)).to.equal(true);
  });

  it('loads what the library loads, or leaves the text to it, for generated near-YAML', () => {
    let answered = 0;
    const word = fc.constantFrom('node01', 'a b', 'x-y', 'r1', '10.0.0.2/8', '52:54:00:00:00:01', 'true', 'False', 'null', '~', 'NULL', '0', '007', '-3', '+4', '1.5', '0x1f', '0o7', '.inf', '1e3',
      'yes', 'on', '-', '- a', '?', '&a', '*a', '!t', '|', '>', '%', '@', '`', "it's", 'a:b', 'a: b', 'a #c', 'a#b', '#', '', ' ', 'ü', 'é x', '{', '}', '[', ']', ',', '"', "'", '\\', '\t', '\r', '__proto__');
    const key = fc.oneof(fc.constantFrom('name', 'mac', 'ip', 'vars', 'profile', 'rack', 'true', 'null', '1', 'a b', 'x-y', '_k', '__proto__', 'on', 'name'), fc.stringMatching(/^[a-z]{1,3}$/));
    const scalar = fc.oneof(
      word,
      word.map((w) => `"${w}"`),
      word.map((w) => `'${w}'`),
      fc.stringMatching(/^[a-z0-9 .:/-]{0,8}$/),
      fc.integer().map(String),
    );
    const flow = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, scalar, tie('map'), tie('seq')),
      map: fc.array(fc.tuple(key, fc.constantFrom(': ', ':  ', ':', ' : '), tie('node')), { maxLength: 3 }).chain((es) => fc.constantFrom(', ', ',', ' , ', ',,').map((sep) => `{${es.map(([k, c, v]) => `${k}${c}${v}`).join(sep)}}`)),
      seq: fc.array(tie('node'), { maxLength: 3 }).map((xs) => `[${xs.join(', ')}]`),
    })).node as fc.Arbitrary<string>;
    const value = fc.oneof(scalar, flow, flow.map((f) => `${f} # note`), scalar.map((s) => `${s}   `));
    // block structure: lines "INDENT key: value", "INDENT key:", "INDENT- value", "INDENT- key: value", comments, blank lines
    const line = fc.tuple(fc.constantFrom(0, 0, 2, 2, 4, 6, 1, 3), fc.oneof(
      fc.tuple(key, value).map(([k, v]) => `${k}: ${v}`),
      key.map((k) => `${k}:`),
      value.map((v) => `- ${v}`),
      fc.tuple(key, value).map(([k, v]) => `- ${k}: ${v}`),
      fc.tuple(key, value).map(([k, v]) => `-   ${k}: ${v}`),
      fc.constantFrom('# comment', '', '---', '...', '-', 'key: |', '  ', 'a: &x 1', 'b: *x', '%YAML 1.2', 'k: v\r'),
    )).map(([n, l]) => ' '.repeat(n) + l);
    const random = fc.array(line, { minLength: 1, maxLength: 8 }).chain((ls) => fc.boolean().map((nl) => ls.join('\n') + (nl ? '\n' : '')));
    // well-formed block structure (maps, lists, lists at the column of their key, maps in list items) with the same values
    const pad = (n: number): string => ' '.repeat(n);
    type Emit = (n: number) => string[];
    const seqOf: fc.Arbitrary<Emit> = fc.array(fc.oneof(value.map((v) => (n: number) => [`${pad(n)}- ${v}`]), fc.tuple(key, value, key, value).map(([k1, v1, k2, v2]) => (n: number) => [`${pad(n)}- ${k1}: ${v1}`, `${pad(n + 2)}${k2}: ${v2}`])), { minLength: 1, maxLength: 3 })
      .map((items) => (n: number) => items.flatMap((f) => f(n)));
    const mapOf = (depth: number): fc.Arbitrary<Emit> => {
      const nested: fc.Arbitrary<{ v: string } | { kid: Emit; at: number }> = depth > 0
        ? fc.oneof(value.map((v) => ({ v })), fc.tuple(fc.oneof(mapOf(depth - 1), seqOf), fc.constantFrom(0, 1, 2, 3)).map(([kid, at]) => ({ kid, at })))
        : value.map((v) => ({ v }));
      return fc.array(fc.tuple(key, nested), { minLength: 1, maxLength: 3 })
        .map((es) => (n: number) => es.flatMap(([k, e]) => ('v' in e ? [`${pad(n)}${k}: ${e.v}`] : [`${pad(n)}${k}:`, ...e.kid(n + e.at)])));
    };
    const block = { map: mapOf(3) };
    const structured = fc.tuple(block.map, fc.constantFrom('\n', '\n\n# c\n', '')).map(([f, tail]) => f(0).join('\n') + tail);
    const doc = fc.oneof(random, structured, structured);
    fc.assert(fc.property(doc, (text) => {
      const fast = fastYaml(text);
      if (fast === undefined) return;
      answered++;
      const lib = library(text);
      expect(lib.ok, `the library does not load it cleanly:\n${text}`).to.equal(true);
      expect(same(fast, lib.data), `${text}\nfast: ${JSON.stringify(fast)}\nlib:  ${JSON.stringify(lib.data)}`).to.equal(true);
    }), { numRuns: 8000 });
    expect(answered, 'texts the fast reader answered').to.be.greaterThan(800);
  });

  it('gives a big source the positions the library gives it', () => {
    const text = makeInventory(1500).replace('machines:\n', 'machines:\n\n# a comment\n  \n');
    const fast = parseSource('inv.yaml', text);
    const lines = new LineCounter();
    parseDocument(text, { lineCounter: lines, ...OPTIONS });
    expect(fast.source.lines.lineStarts).to.deep.equal(lines.lineStarts);
    expect(fast.diagnostics).to.deep.equal([]);
    expect(same(fast.source.data, library(text).data)).to.equal(true);
  });
});
