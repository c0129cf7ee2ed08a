import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { copyFixture, tempDir } from '../helpers/rootfs.js';
import { ghostprep } from '../helpers/cli.js';

describe('e2e: concurrent runs on one machine are refused', function () {
  this.timeout(120_000);
  it('fails a machine locked by a live run or by another host, takes over a stale lock of this host, and releases its own', async () => {
    const work = tempDir('ghostprep-lock-');
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\n');
    writeFileSync(path.join(work, 'i.yaml'), 'defaults: {profile: p}\nmachines: [{name: a}, {name: b}, {name: c}, {name: d}]\n');
    for (const n of ['a', 'b', 'c', 'd']) copyFixture('alpine319', path.join(work, 'trees', n));
    const state = path.join(work, 'state');
    const holder = spawn('sleep', ['60']);
    try {
      mkdirSync(path.join(state, 'a'), { recursive: true, mode: 0o700 });
      writeFileSync(path.join(state, 'a/.lock'), `${holder.pid}\n`);
      mkdirSync(path.join(state, 'b'), { recursive: true, mode: 0o700 });
      writeFileSync(path.join(state, 'b/.lock'), '999999\n'); // no such process: stale
      // a state dir shared by several hosts (Slurm shards): a pid of another host means nothing here
      mkdirSync(path.join(state, 'c'), { recursive: true, mode: 0o700 });
      writeFileSync(path.join(state, 'c/.lock'), '999999 other-node.example\n');
      mkdirSync(path.join(state, 'd'), { recursive: true, mode: 0o700 });
      writeFileSync(path.join(state, 'd/.lock'), `999999 ${os.hostname()}\n`); // this host, gone: stale
      const args = ['apply', '-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml'), '--target', `rootfs:${work}/trees/{name}`, '--state', state, '--json'];
      const r = ghostprep(args);
      expect(r.status).to.equal(3);
      const rep = JSON.parse(r.stdout);
      expect(rep.machines[0].error).to.match(/being changed by another ghostprep run \(pid \d+/);
      expect(rep.machines[1].status).to.equal('ok');
      expect(existsSync(path.join(state, 'b/.lock'))).to.equal(false);
      expect(rep.machines[2].error).to.match(/being changed by another ghostprep run \(pid 999999 on host other-node\.example, lock .*c\/\.lock; remove it if that run is over\)/);
      expect(existsSync(path.join(state, 'c/.lock')), 'another host\'s lock is left alone').to.equal(true);
      expect(rep.machines[3].status).to.equal('ok');
      expect(existsSync(path.join(state, 'd/.lock'))).to.equal(false);
    } finally {
      holder.kill();
    }
  });
});
