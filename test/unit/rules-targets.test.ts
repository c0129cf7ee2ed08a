/**
 * One machine per target: however a path is spelt (./, //, a trailing
 * slash, x/.., {name}), two inventory entries naming one tree or image are
 * refused at the second entry's `target`, and so is a rootfs tree inside
 * another machine's tree.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateFleet } from '../../src/fleet/validate-fleet.js';
import { targetPath } from '../../src/fleet/rules-targets.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const PROFILE = path.join(REPO, 'fixtures/bad/rules-target-duplicate/profile.yaml');

const segment = fc.stringMatching(/^[a-z0-9_-]{1,8}$/);
const relPath = fc.array(segment, { minLength: 1, maxLength: 4 });

/** Another spelling of the same relative path. */
const respell = (segs: string[], how: number): string => {
  switch (how % 5) {
    case 0: return './' + segs.join('/');
    case 1: return segs.join('/') + '/';
    case 2: return segs.join('//');
    case 3: return ['zz', '..', ...segs].join('/');
    default: return segs.map((s, i) => (i === 0 ? s : `./${s}`)).join('/');
  }
};

describe('inventory targets are unique and do not nest', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-targets-'));
    copyFileSync(PROFILE, path.join(dir, 'profile.yaml'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const validate = (t1: string, t2: string) => {
    const inv = path.join(dir, 'inventory.yaml');
    writeFileSync(inv, `defaults: {profile: compute}\nmachines:\n  - {name: node01, target: ${JSON.stringify(t1)}}\n  - {name: node02, target: ${JSON.stringify(t2)}}\n`);
    return validateFleet([path.join(dir, 'profile.yaml')], inv).diagnostics.filter((d) => d.path.endsWith('/target'));
  };

  it('every spelling of one path is the same target', () => {
    fc.assert(fc.property(relPath, fc.nat(), (segs, how) => {
      expect(targetPath(`rootfs:${respell(segs, how)}`, 'm').path).to.equal(targetPath(`rootfs:${segs.join('/')}`, 'm').path);
      expect(targetPath(`${respell(segs, how).replace(/\/$/, '')}.qcow2`, 'm').path).to.equal(targetPath(`${segs.join('/')}.qcow2`, 'm').path);
    }));
  });

  it('validate reports the second of two machines with one rootfs target, at its target, naming the first', () => {
    fc.assert(fc.property(relPath, fc.nat(), (segs, how) => {
      const found = validate(`rootfs:${segs.join('/')}`, `rootfs:${respell(segs, how)}`);
      expect(found, JSON.stringify(found)).to.have.length(1);
      expect(found[0]).to.include({ path: '/machines/1/target', line: 4 });
      expect(found[0]!.message).to.include('also the target of machine "node01"');
    }), { numRuns: 40 });
  });

  it('validate reports a rootfs nested in another, in either order, and accepts siblings', () => {
    fc.assert(fc.property(relPath, segment, (segs, child) => {
      const outer = `rootfs:${segs.join('/')}`;
      const inner = `rootfs:${segs.join('/')}/${child}`;
      expect(validate(outer, inner).map((d) => d.message).join()).to.include('lies inside the rootfs target of machine "node01"');
      expect(validate(inner, outer).map((d) => d.message).join()).to.include('contains the target of machine "node01"');
      expect(validate(inner, `${outer}-${child}`)).to.deep.equal([]);
    }), { numRuns: 30 });
  });

  it('expands {name} before comparing', () => {
    expect(validate('rootfs:trees/node02', 'rootfs:trees/{name}')[0]?.message).to.include('also the target of machine "node01"');
    expect(validate('rootfs:trees/{name}', 'rootfs:trees/{name}')).to.deep.equal([]);
  });
});
