/**
 * A restore killed mid-build leaves `.NAME.qcow2.ghostprep-PID-RANDOM` next to
 * the clone; the next restore of that clone removes it when PID is gone, and
 * never touches a live run's temp file. Real qemu-img, no appliance.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import fs from 'node:fs/promises';
import path from 'node:path';
import { restore } from '../../src/image/restore.js';
import { processAlive } from '../../src/util/process.js';
import { tempDir } from '../helpers/images.js';

describe('restore: temp files of killed runs', () => {
  let dir: string;
  before(async () => { dir = await tempDir(); });
  after(async () => { if (dir) await fs.rm(dir, { recursive: true, force: true }); });

  it('removes dead runs\' temp files of the clone it builds, keeps live and foreign ones', async () => {
    const base = path.join(dir, 'base.qcow2');
    await execa('qemu-img', ['create', '-q', '-f', 'qcow2', base, '16M']);
    // a pid that is not running: a finished child's
    const child = execa('true');
    const gone = child.pid!;
    await child;
    expect(processAlive(gone)).to.equal(false);
    const names = {
      dead: `.c1.qcow2.ghostprep-${gone}-0a1b2c3d4e5f`,
      live: `.c1.qcow2.ghostprep-${process.pid}-0a1b2c3d4e5f`,
      legacyOld: '.c1.qcow2.ghostprep-a1b2c3d4e5f6',
      legacyNew: '.c1.qcow2.ghostprep-b1b2c3d4e5f6',
      otherClone: `.c2.qcow2.ghostprep-${gone}-0a1b2c3d4e5f`,
    };
    for (const n of Object.values(names)) await fs.writeFile(path.join(dir, n), 'partial');
    const old = new Date(Date.now() - 2 * 3600_000);
    await fs.utimes(path.join(dir, names.legacyOld), old, old);

    const r = await restore({ base, to: path.join(dir, 'c1.qcow2'), mode: 'overlay', sha256Cache: path.join(dir, 'sha.json') });
    expect(r.path).to.equal(path.join(dir, 'c1.qcow2'));
    const left = (await fs.readdir(dir)).filter((n) => n.includes('.ghostprep-')).sort();
    expect(left).to.deep.equal([names.legacyNew, names.live, names.otherClone].sort());
  });
});
