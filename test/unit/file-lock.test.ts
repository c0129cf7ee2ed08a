/**
 * A lock file that names no holder yet: its creator is between creating it and
 * writing its pid (microseconds), or was killed in that instant. A young one
 * is respected (refused, or waited for); one that has named nobody for seconds
 * is taken over. Real files, no mocks.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, renameSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { lockOrRefuse, readLock, takeOver, withFileLock } from '../../src/util/file-lock.js';
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

/**
 * A lock whose holder died, found by several runs at once: exactly one takes
 * it over. Real node processes, started together on the same stale lock,
 * round after round; each tries once (lockOrRefuse) and keeps what it got.
 */
describe('taking over a dead holder\'s lock', function () {
  this.timeout(120_000);
  const dir = tempDir('ghostprep-lock-takeover-');
  const host = os.hostname();
  const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;
  const moduleUrl = pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/util/file-lock.js')).href;
  const childCode = `
    import { lockOrRefuse } from ${JSON.stringify(moduleUrl)};
    import { createInterface } from 'node:readline';
    process.stdout.write('ready\\n');
    for await (const line of createInterface({ input: process.stdin })) {
      const [file, at] = line.split('\\t');
      while (Date.now() < Number(at)) { /* start together */ }
      let result;
      try { lockOrRefuse(file, 'target t'); result = 'won'; } catch (err) { result = 'refused: ' + err.message; }
      process.stdout.write(JSON.stringify({ pid: process.pid, file, result }) + '\\n');
    }`;

  interface Reply { pid: number; file: string; result: string }
  function start(): { child: ChildProcess; next: () => Promise<string> } {
    const child = spawn(process.execPath, ['--input-type=module', '-e', childCode], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    return { child, next: async () => (await lines.next()).value as string };
  }

  it('several processes at once, many rounds: exactly one wins each round, the others name it', async () => {
    const workers = Array.from({ length: 6 }, start);
    try {
      for (const w of workers) expect(await w.next()).to.equal('ready');
      for (let round = 0; round < 50; round++) {
        const file = path.join(dir, `round${round}.lock`);
        writeFileSync(file, `${deadPid()} ${host}\n`);
        const at = Date.now() + 40;
        for (const w of workers) w.child.stdin!.write(`${file}\t${at}\n`);
        const replies = await Promise.all(workers.map(async (w) => JSON.parse(await w.next()) as Reply));
        const winners = replies.filter((r) => r.result === 'won');
        expect(winners.map((r) => r.pid), `round ${round}: ${JSON.stringify(replies)}`).to.have.length(1);
        const winner = winners[0]!.pid;
        expect(readFileSync(file, 'utf8')).to.equal(`${winner} ${host}\n`);
        for (const r of replies.filter((x) => x.result !== 'won')) {
          expect(r.result).to.match(new RegExp(`^refused: target t is being changed by another ghostprep run \\((pid ${winner}|an unknown process), lock ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)$`));
        }
      }
      // no claim or temp file is left behind: only the locks, each held by its round's winner
      expect(readdirSync(dir).filter((n) => !/^round\d+\.lock$/.test(n))).to.deep.equal([]);
    } finally {
      for (const w of workers) w.child.kill();
    }
  });

  it('a claim left by a taker that died is passed over; the claims go with the takeover', () => {
    const file = path.join(dir, 'claimed-dead.lock');
    writeFileSync(file, `${deadPid()} ${host}\n`);
    const claim = `${file}.takeover-${statSync(file).ino}-0`;
    writeFileSync(claim, `${deadPid()} ${host}\n`);
    const release = lockOrRefuse(file, 'target t');
    expect(readFileSync(file, 'utf8')).to.equal(`${process.pid} ${host}\n`);
    expect(existsSync(claim)).to.equal(false);
    release();
  });

  it('a claim of a live run means that run is taking the lock over: refused, naming it, lock left alone', () => {
    const file = path.join(dir, 'claimed-live.lock');
    const stale = `${deadPid()} ${host}\n`;
    writeFileSync(file, stale);
    const claim = `${file}.takeover-${statSync(file).ino}-0`;
    writeFileSync(claim, `${process.ppid} ${host}\n`);
    expect(() => lockOrRefuse(file, 'target t')).to.throw(`target t is being changed by another ghostprep run (pid ${process.ppid}, lock ${file})`);
    expect(readFileSync(file, 'utf8')).to.equal(stale);
    expect(existsSync(claim)).to.equal(true);
  });

  it('a live claim on a lock already taken over by another run: the lock changed, so its holder is named, not the claim\'s', () => {
    // a run that read the dead lock late claims after the winner's claims went; a third run meets its claim
    const file = path.join(dir, 'claimed-late.lock');
    writeFileSync(file, `${deadPid()} ${host}\n`);
    const seen = readLock(file)!;
    const winner = `${file}.winner`;
    writeFileSync(winner, `${process.ppid} ${host}\n`);
    renameSync(winner, file);
    const claim = `${file}.takeover-${seen.ino}-0`;
    writeFileSync(claim, `${process.pid} ${host}\n`);
    expect(takeOver(file, seen, 0o600)).to.equal('changed');
    expect(readFileSync(file, 'utf8')).to.equal(`${process.ppid} ${host}\n`);
    expect(() => lockOrRefuse(file, 'target t')).to.throw(`target t is being changed by another ghostprep run (pid ${process.ppid}, lock ${file})`);
  });

  it('another user\'s lock that this run cannot read is respected: refused at once, not read in a loop', function () {
    if (process.getuid?.() !== 0) this.skip(); // needs a second user: root runs the attempt as nobody
    const shared = tempDir('ghostprep-lock-users-');
    chmodSync(shared, 0o1777);
    const file = path.join(shared, 'theirs.lock');
    writeFileSync(file, `${process.pid} ${host}\n`, { mode: 0o600 });
    const code = `import { lockOrRefuse } from ${JSON.stringify(moduleUrl)};
      try { lockOrRefuse(${JSON.stringify(file)}, 'target t'); console.log('won'); } catch (err) { console.log(err.message); }`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 20_000 });
    expect(r.stdout.trim(), r.stderr).to.equal(`target t is being changed by another ghostprep run (an unknown process, lock ${file})`);
    expect(readFileSync(file, 'utf8')).to.equal(`${process.pid} ${host}\n`);
  });

  it('another host\'s lock is never taken over', () => {
    const file = path.join(dir, 'elsewhere.lock');
    writeFileSync(file, `${deadPid()} not-${host}\n`);
    expect(() => lockOrRefuse(file, 'target t')).to.throw(/^target t is being changed by another ghostprep run \(pid \d+ on host not-.*; remove it if that run is over\)$/);
  });
});
