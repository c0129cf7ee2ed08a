/**
 * --state where others could plant or read private keys is refused through
 * the CLI, before anything is created or written: a world-writable state dir,
 * one owned by another user, a new one under a world-writable parent without
 * the sticky bit. A /tmp-style (sticky) parent is accepted for a dir of ours.
 */
import { expect } from 'chai';
import { chmodSync, chownSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { copyFixture, tempDir } from '../helpers/rootfs.js';
import { ghostprep } from '../helpers/cli.js';
import { recordOutput } from '../helpers/trust-run.js';

describe('trust: --state on a path others can write is refused', function () {
  this.timeout(120_000);
  const work = tempDir('ghostprep-trust-state-');
  let args: (state: string) => string[];

  before(() => {
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\n');
    writeFileSync(path.join(work, 'i.yaml'), 'defaults: {profile: p}\nmachines: [{name: a}]\n');
    copyFixture('alpine319', path.join(work, 'trees', 'a'));
    args = (state) => ['apply', '-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml'), '--target', `rootfs:${work}/trees/{name}`, '--state', state];
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  const run = (state: string) => {
    const r = ghostprep(args(state));
    recordOutput(`ghostprep apply --state ${state}: stdout`, r.stdout);
    recordOutput(`ghostprep apply --state ${state}: stderr`, r.stderr);
    return r;
  };

  it('refuses a world-writable state dir (exit 1, naming it)', () => {
    const state = path.join(work, 'ww-state');
    mkdirSync(state, { mode: 0o700 });
    chmodSync(state, 0o777);
    const r = run(state);
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.include(`state dir ${state} is world-writable; refusing to keep private keys there (chmod 700 it)`);
    expect(existsSync(path.join(state, 'a'))).to.equal(false);
  });

  it('refuses a state dir owned by another user', function () {
    if (process.getuid?.() !== 0) { console.log('      (not root: cannot give a directory to another user here)'); this.skip(); }
    const state = path.join(work, 'theirs');
    mkdirSync(state, { mode: 0o700 });
    chownSync(state, 1000, 1000);
    const r = run(state);
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.include(`state dir ${state} is owned by uid 1000, not by you (uid 0) or root; refusing to keep private keys there`);
    expect(existsSync(path.join(state, 'a'))).to.equal(false);
  });

  it('refuses a new state dir under a world-writable parent without the sticky bit, creating nothing', () => {
    const parent = path.join(work, 'open-parent');
    mkdirSync(parent);
    chmodSync(parent, 0o777);
    const state = path.join(parent, 'newdir');
    const r = run(state);
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.include(`state dir ${state}: its parent ${parent} is world-writable without the sticky bit, so anyone could replace the state dir`);
    expect(existsSync(state), 'nothing created').to.equal(false);
    // deeper: the chain to create hangs from the open directory
    const deep = run(path.join(parent, 'x', 'y'));
    expect(deep.status, deep.stderr).to.equal(1);
    expect(deep.stderr).to.include(`its parent ${parent} is world-writable without the sticky bit`);
    expect(existsSync(path.join(parent, 'x'))).to.equal(false);
    // an existing dir of ours under it is refused as well
    mkdirSync(state, { mode: 0o700 });
    expect(run(state).status).to.equal(1);
  });

  it('accepts a dir of ours under a /tmp-style (sticky, world-writable) parent, created 0700', () => {
    const parent = path.join(work, 'sticky-parent');
    mkdirSync(parent);
    chmodSync(parent, 0o1777);
    const state = path.join(parent, 'mine');
    const r = run(state);
    expect(r.status, r.stderr).to.equal(0);
    expect(statSync(state).mode & 0o777).to.equal(0o700);
    expect(statSync(path.join(state, 'a')).mode & 0o777).to.equal(0o700);
    expect(statSync(path.join(state, 'a', 'machine-id')).mode & 0o777).to.equal(0o600);
  });
});
