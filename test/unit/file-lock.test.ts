/**
 * A lock file that names no holder yet: its creator is between creating it and
 * writing its pid (microseconds), or was killed in that instant. A young one
 * is respected (refused, or waited for); one that has named nobody for seconds
 * is taken over. Real files, no mocks.
 */
import { expect } from 'chai';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lockOrRefuse, withFileLock } from '../../src/util/file-lock.js';
import { tempDir } from '../helpers/rootfs.js';

describe('locks whose file names no holder', () => {
  const dir = tempDir('ghostprep-lockfile-');
  const unnamed = (name: string, ageSeconds: number) => {
    const file = path.join(dir, name);
    writeFileSync(file, '');
    const t = Date.now() / 1000 - ageSeconds;
    utimesSync(file, t, t);
    return file;
  };

  it('a fresh one is being written by another run: lockOrRefuse refuses and leaves it', () => {
    const file = unnamed('fresh.lock', 0);
    expect(() => lockOrRefuse(file, 'target t')).to.throw(`target t is being changed by another ghostprep run (an unknown process, lock ${file})`);
    expect(readFileSync(file, 'utf8')).to.equal('');
  });

  it('one that named nobody for seconds was left by a killed run: taken over, and released', () => {
    const file = unnamed('old.lock', 60);
    const release = lockOrRefuse(file, 'target t');
    expect(readFileSync(file, 'utf8')).to.equal(`${process.pid} ${os.hostname()}\n`);
    release();
    expect(existsSync(file)).to.equal(false);
  });

  it('withFileLock waits for a fresh one and takes an old one at once', async () => {
    const fresh = unnamed('fresh-wait.lock', 0);
    const waited = await withFileLock(fresh, 'known_hosts', () => 'ran', 300).then(() => 'ran', (e: Error) => e.message);
    expect(waited).to.equal(`known_hosts is locked by an unknown process (${fresh})`);
    const old = unnamed('old-wait.lock', 60);
    expect(await withFileLock(old, 'known_hosts', () => 'ran', 300)).to.equal('ran');
    expect(existsSync(old)).to.equal(false);
  });
});
