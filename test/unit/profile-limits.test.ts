/**
 * Resource limits of the loading stage: alias expansion, nesting depth, map
 * sizes, string and key lengths, file sizes and kinds. Each is a located
 * error (file, line, column), never a stack overflow or a read without end.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import { loadConfig } from '../../src/profile/config.js';
import { fastYaml } from '../../src/profile/fast-yaml.js';
import { LIMITS } from '../../src/profile/limits.js';
import { loadSource, parseSource } from '../../src/profile/source.js';
import { validateAgainst } from '../../src/schema/validate-schema.js';
import { tempDir } from '../helpers/rootfs.js';

function only(text: string, file = 'p.yaml'): { line?: number; col?: number; message: string; path: string } {
  const { diagnostics, source } = parseSource(file, text);
  const errs = diagnostics.filter((d) => d.severity === 'error');
  expect(errs, JSON.stringify(diagnostics)).to.have.length(1);
  expect(source.data).to.equal(undefined);
  expect(errs[0]!.file).to.equal(file);
  expect(errs[0]!.message).to.not.match(/call stack/i);
  return errs[0]!;
}

describe('loading limits', () => {
  it('an alias bomb is refused at the alias that goes over the budget', () => {
    const levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]'];
    for (let i = 1; i < 9; i++) levels.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`);
    const started = Date.now();
    const d = only(levels.join('\n') + '\n');
    expect(Date.now() - started).to.be.lessThan(5000);
    expect(d.message).to.include(`aliases here expand to more than ${LIMITS.aliasValues} values`);
    expect(d.line).to.be.within(2, 9);
    expect(d.col).to.be.greaterThan(1);
  });

  it('an alias inside the collection it names is refused at the alias', () => {
    const d = only('a: &x [1, *x]\n');
    expect(d).to.include({ line: 1, col: 11 });
    expect(d.message).to.include('inside the map or list it names');
  });

  for (const [name, make] of [
    ['flow lists', (n: number) => `a: ${'['.repeat(n)}${']'.repeat(n)}\n`],
    ['flow maps', (n: number) => `a: ${'{a: '.repeat(n)}1${'}'.repeat(n)}\n`],
    ['block maps', (n: number) => Array.from({ length: n }, (_, i) => `${' '.repeat(i)}k:`).join('\n') + ' 1\n'],
    ['block lists', (n: number) => `a:\n${'- '.repeat(n)}x\n`],
  ] as const) {
    for (const n of [LIMITS.depth + 1, 5000, 100_000]) {
      if (name === 'block maps' && n > 5000) continue; // n² bytes of indentation
      it(`${name} nested ${n} deep: a located error at the level beyond the limit, in both parse paths`, () => {
        const text = make(n);
        const d = only(text);
        expect(d.message).to.include(`nested more than ${LIMITS.depth} levels deep`);
        expect(d.line).to.be.a('number');
        expect(d.line! > 1 || d.col! > 1).to.equal(true);
        const big = only(`# ${'-'.repeat(70_000)}\n${text}`);
        expect(big.message).to.include('nested more than');
        expect(big.line).to.equal(d.line! + 1);
        expect(fastYaml(text)).to.equal(undefined);
      });
    }
  }

  it('of two places nested too deeply, the first in the text is reported', () => {
    const deep = `${'['.repeat(LIMITS.depth)}${']'.repeat(LIMITS.depth)}`;
    expect(only(`a: 1\nb: ${deep}\nc: ${deep}\n`)).to.include({ line: 2, path: `/b${'/0'.repeat(LIMITS.depth - 1)}` });
  });

  it('nesting up to the limit loads', () => {
    const n = LIMITS.depth - 1; // the root map is the first level
    const { diagnostics, source } = parseSource('p.yaml', `a: ${'['.repeat(n)}${']'.repeat(n)}\n`);
    expect(diagnostics).to.deep.equal([]);
    expect(source.data).to.not.equal(undefined);
  });

  it('nesting through aliases counts too', () => {
    const inner = `${'['.repeat(40)}1${']'.repeat(40)}`;
    const d = only(`a: &a ${inner}\nb: ${'['.repeat(30)}*a${']'.repeat(30)}\n`);
    expect(d.message).to.include('nested more than');
    expect(d).to.include({ line: 2, col: 34 });
  });

  it('too long strings and keys, and too many keys in a map, are located', () => {
    const long = 'x'.repeat(LIMITS.stringLength + 1);
    expect(only(`a: 1\nb: "${long}"\n`)).to.include({ line: 2, col: 4, path: '/b' });
    expect(only(`a: 1\n? ${'k'.repeat(LIMITS.keyLength + 1)}\n: 1\n`)).to.include({ line: 2, col: 3, message: `key of ${LIMITS.keyLength + 1} characters, more than the limit of ${LIMITS.keyLength}` });
    const keys = Array.from({ length: LIMITS.mapKeys + 1 }, (_, i) => `  k${i}: 1`).join('\n');
    const d = only(`a: 1\nvars:\n${keys}\n`);
    expect(d).to.include({ line: 3, col: 3, path: '/vars' });
    expect(d.message).to.include(`more than the limit of ${LIMITS.mapKeys}`);
  });

  it('keys that are maps or lists are refused at the key', () => {
    expect(only('a: 1\n? [x]\n: 1\n')).to.include({ line: 2, col: 3 });
  });

  it('the schema check of data at the depth limit does not overflow', () => {
    let deep: unknown = 1;
    for (let i = 0; i < LIMITS.depth - 2; i++) deep = { a: deep };
    expect(() => validateAgainst('profile', { profile: 'p', vars: deep, network: deep, site: deep })).to.not.throw();
  });
});

describe('loading limits: files', () => {
  it('a file above the size limit is refused by size, not read', () => {
    const dir = tempDir('ghostprep-size-');
    const file = path.join(dir, 'p.yaml');
    writeFileSync(file, `profile: p\n# ${'x'.repeat(LIMITS.profileBytes)}\n`);
    const { diagnostics } = loadSource(file, 'profile');
    expect(diagnostics).to.have.length(1);
    expect(diagnostics[0]).to.include({ file });
    expect(diagnostics[0]!.message).to.match(/^cannot read: profile is \d+ bytes, more than the limit of 4194304/);
  });

  it('/dev/zero as an inventory is refused at once', () => {
    const { diagnostics } = loadConfig([], '/dev/zero');
    expect(diagnostics.map((d) => `${d.file}: ${d.message}`)).to.deep.equal(['/dev/zero: cannot read: inventory is a character device, not a regular file']);
  });

  it('a FIFO given with -p is refused without waiting for a writer', function () {
    const dir = tempDir('ghostprep-fifo-');
    const fifo = path.join(dir, 'p.yaml');
    try { execFileSync('mkfifo', [fifo]); } catch { this.skip(); }
    const { diagnostics } = validateFleet([fifo], undefined);
    expect(diagnostics.map((d) => `${d.file}: ${d.message}`)).to.include(`${fifo}: cannot read: profile is a FIFO (named pipe), not a regular file`);
  });

  it('a profile found by name that is a link to /dev/zero is refused at the extends entry', () => {
    const dir = tempDir('ghostprep-zero-');
    writeFileSync(path.join(dir, 'node.yaml'), 'profile: node\nextends: base\n');
    symlinkSync('/dev/zero', path.join(dir, 'base.yaml'));
    const { diagnostics } = loadConfig([path.join(dir, 'node.yaml')]);
    expect(diagnostics.find((d) => d.line !== undefined)).to.include({ file: path.join(dir, 'node.yaml'), line: 2, col: 10, path: '/extends' });
  });
});
