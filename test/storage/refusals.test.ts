/** storage.newUuids where there are no block devices: refused before anything is written. No appliance. */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ghostprep, treeDigest } from '../helpers/cli.js';
import { copyFixture, tempDir } from '../helpers/rootfs.js';

describe('storage.newUuids refusals', () => {
  it('a rootfs target is refused at plan and at apply, naming the key, and the tree is untouched', () => {
    const work = tempDir('ghostprep-newuuids-rootfs-');
    const tree = copyFixture('debian12', path.join(work, 'm1'));
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\nstorage: {newUuids: true}\n');
    writeFileSync(path.join(work, 'i.yaml'), 'defaults: {profile: p}\nmachines: [{name: m1}]\n');
    const before = treeDigest(tree);
    for (const cmd of ['plan', 'apply']) {
      const r = ghostprep([cmd, '-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml'), '--state', path.join(work, 'state'), '--target', `rootfs:${work}/{name}`]);
      expect(r.status, cmd).to.equal(1);
      expect(r.stdout + r.stderr, cmd).to.contain('storage.newUuids needs a disk image or device target');
    }
    expect(treeDigest(tree)).to.equal(before);
  });

  it('the schema refuses a value that is not a boolean and an unknown key under storage, with the location', () => {
    const work = tempDir('ghostprep-newuuids-schema-');
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\nstorage:\n  newUuids: yes please\n  fsUuids: true\n');
    writeFileSync(path.join(work, 'i.yaml'), 'defaults: {profile: p}\nmachines: [{name: m1}]\n');
    const r = ghostprep(['validate', '-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml')]);
    expect(r.status).to.not.equal(0);
    expect(r.stdout + r.stderr).to.match(/p\.yaml:3:\d+.*newUuids|newUuids[\s\S]*p\.yaml:3/);
    expect(r.stdout + r.stderr).to.contain('fsUuids');
  });
});
