/**
 * Golden files: fixtures/network/cases/<case>/input.yaml rendered by every
 * renderer must equal expected/<variant>/<guest path> byte for byte (an
 * expected/<variant>/ERROR file holds the message when the renderer must
 * refuse the case). Adding a case is adding files. UPDATE_GOLDEN=1 rewrites
 * the expected trees.
 */
import { expect } from 'chai';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { checkNetwork } from '../../src/network/index.js';
import { CASES_DIR, VARIANTS, caseNames, loadCase, renderTree } from './helpers.js';

const UPDATE = process.env.UPDATE_GOLDEN === '1';

function walk(dir: string, base = dir): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? walk(p, base) : ['/' + path.relative(base, p)];
  }).sort();
}

function actualTree(config: unknown, renderer: string, distro: (typeof VARIANTS)[number]['distro']): Map<string, string> {
  try {
    return new Map([...renderTree(config, renderer, distro)].map(([p, f]) => [p, f.text]));
  } catch (err) {
    return new Map([['/ERROR', `${(err as Error).message}\n`]]);
  }
}

function writeTree(dir: string, tree: Map<string, string>): void {
  rmSync(dir, { recursive: true, force: true });
  for (const [p, text] of tree) {
    mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
    writeFileSync(path.join(dir, p), text);
  }
}

describe('network golden files', () => {
  const cases = caseNames();
  it('has cases', () => expect(cases.length).to.be.greaterThan(5));
  for (const name of cases) {
    describe(name, () => {
      const config = loadCase(name);
      it('passes the semantic checks', () => expect(checkNetwork(config)).to.deep.equal([]));
      for (const v of VARIANTS) {
        it(`renders ${v.dir} as expected`, () => {
          const dir = path.join(CASES_DIR, name, 'expected', v.dir);
          const actual = actualTree(config, v.renderer, v.distro);
          const again = actualTree(config, v.renderer, v.distro);
          expect([...again]).to.deep.equal([...actual], 'rendering is not deterministic');
          if (UPDATE) writeTree(dir, actual);
          const expectedPaths = walk(dir);
          expect([...actual.keys()].sort()).to.deep.equal(expectedPaths, `file set differs; run with UPDATE_GOLDEN=1 to accept`);
          for (const p of expectedPaths) {
            expect(actual.get(p), `${v.dir}${p}`).to.equal(readFileSync(path.join(dir, p), 'utf8'));
          }
        });
      }
    });
  }
});
