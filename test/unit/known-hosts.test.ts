/**
 * known_hosts output (apply/deploy --known-hosts): other hosts' lines are kept,
 * a machine's lines are replaced, and processes updating one file at once (the
 * shards of a deploy sharing it) lose nothing: real processes race on a real file.
 * Lock files name their host: another host's lock is waited for, never taken over.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { updateKnownHosts } from '../../src/report/report.js';
import { withFileLock } from '../../src/util/file-lock.js';

const REPORT_MODULE = fileURLToPath(new URL('../../src/report/report.js', import.meta.url));
const key = (i: number): string => `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${String(i).padStart(43, 'A')} root@x`;

describe('known_hosts updates', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(path.join(os.tmpdir(), 'ghostprep-known-hosts-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps other hosts, replaces the machine\'s own lines, writes only type and key', async () => {
    const file = path.join(dir, 'known_hosts');
    writeFileSync(file, `other.example.org ssh-rsa AAAAother\nn1.lab,n1,10.0.0.5 ssh-ed25519 AAAAold\n`);
    await updateKnownHosts(file, [{ names: ['n1.lab', 'n1', '10.0.0.5'], publicKeys: [key(1)] }]);
    expect(readFileSync(file, 'utf8')).to.equal(`other.example.org ssh-rsa AAAAother\nn1.lab,n1,10.0.0.5 ${key(1).split(' ').slice(0, 2).join(' ')}\n`);
    expect(existsSync(`${file}.lock`), 'the lock is released').to.equal(false);
  });

  it('takes over a lock left by a process gone from this host, waits for one of another host', async () => {
    const file = path.join(dir, 'known_hosts');
    writeFileSync(`${file}.lock`, `999999 ${os.hostname()}\n`);
    await updateKnownHosts(file, [{ names: ['n1'], publicKeys: [key(1)] }]);
    expect(readFileSync(file, 'utf8')).to.include('n1 ssh-ed25519');
    writeFileSync(`${file}.lock`, '999999 other-node.example\n');
    let err: unknown;
    try { await withFileLock(`${file}.lock`, `known_hosts file ${file}`, () => undefined, 300); } catch (e) { err = e; }
    expect(String(err)).to.match(/known_hosts file .* is locked by pid 999999 on host other-node\.example \(.*\.lock; remove it if that run is over\)/);
    expect(readFileSync(`${file}.lock`, 'utf8'), 'left alone').to.equal('999999 other-node.example\n');
  });

  it('loses no update when processes rewrite one file at once', async function () {
    this.timeout(60_000);
    const file = path.join(dir, 'known_hosts');
    const writers = 4;
    const perWriter = 25;
    // each process adds its hosts one call at a time: 100 read-modify-write cycles racing
    const script = `import { updateKnownHosts } from ${JSON.stringify(REPORT_MODULE)};
const [w, n, file] = process.argv.slice(2).map((a, i) => (i < 2 ? Number(a) : a));
for (let i = 0; i < n; i++) {
  const id = w * 1000 + i;
  await updateKnownHosts(file, [{ names: ['h' + id + '.lab', '10.1.' + w + '.' + i], publicKeys: ['ssh-ed25519 KEY' + id] }]);
}`;
    const runner = path.join(dir, 'writer.mjs');
    writeFileSync(runner, script);
    const exits = await Promise.all(Array.from({ length: writers }, (_, w) => new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [runner, String(w), String(perWriter), file], { stdio: 'inherit' });
      child.on('exit', resolve);
    })));
    expect(exits).to.deep.equal(Array(writers).fill(0));
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const expected = Array.from({ length: writers }, (_, w) => Array.from({ length: perWriter }, (_, i) => `h${w * 1000 + i}.lab,10.1.${w}.${i} ssh-ed25519 KEY${w * 1000 + i}`)).flat();
    expect(lines.slice().sort()).to.deep.equal(expected.slice().sort());
    expect(existsSync(`${file}.lock`)).to.equal(false);
  });
});
