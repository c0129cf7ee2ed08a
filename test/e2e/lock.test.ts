import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { copyFixture, tempDir } from '../helpers/rootfs.js';
import { ghostprep } from '../helpers/cli.js';

describe('e2e: concurrent runs on one machine are refused', function () {
  this.timeout(120_000);
  it('fails a machine locked by a live run, takes over a stale lock, and releases its own', async () => {
    const work = tempDir('ghostprep-lock-');
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\n');
    writeFileSync(path.join(work, 'i.yaml'), 'defaults: {profile: p}\nmachines: [{name: a}, {name: b}]\n');
    for (const n of ['a', 'b']) copyFixture('alpine319', path.join(work, 'trees', n));
    const state = path.join(work, 'state');
    const holder = spawn('sleep', ['60']);
    try {
      mkdirSync(path.join(state, 'a'), { recursive: true, mode: 0o700 });
      writeFileSync(path.join(state, 'a/.lock'), `${holder.pid}\n`);
      mkdirSync(path.join(state, 'b'), { recursive: true, mode: 0o700 });
      writeFileSync(path.join(state, 'b/.lock'), '999999\n'); // no such process: stale
      const args = ['apply', '-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml'), '--target', `rootfs:${work}/trees/{name}`, '--state', state, '--json'];
      const r = ghostprep(args);
      expect(r.status).to.equal(3);
      const rep = JSON.parse(r.stdout);
      expect(rep.machines[0].error).to.match(/being changed by another ghostprep run \(pid \d+/);
      expect(rep.machines[1].status).to.equal('ok');
      expect(existsSync(path.join(state, 'b/.lock'))).to.equal(false);
    } finally {
      holder.kill();
    }
  });
});
