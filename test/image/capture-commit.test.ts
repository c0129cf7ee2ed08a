/**
 * The last step of a capture (check the name, rename the image into place,
 * record its entry) is one locked step: real node processes race it, on one
 * name and on different names, and the catalog must then describe the files
 * that are really there. Also: capture and decrypt without qemu-img exit 4
 * with install advice, not "spawn ENOENT". No appliance, no qemu-img needed.
 */
import { expect } from 'chai';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { capture } from '../../src/image/capture.js';
import { removeDeadHostTemps } from '../../src/image/host-temps.js';
import { decryptCopy } from '../../src/image/decrypt.js';
import { sha256File } from '../../src/image/checksum.js';
import { readLibrary } from '../../src/image/library.js';
import { MissingToolError } from '../../src/util/errors.js';
import { tempDir } from '../helpers/rootfs.js';

const LIBRARY_MODULE = new URL('../../src/image/library.js', import.meta.url).href;
const CHECKSUM_MODULE = new URL('../../src/image/checksum.js', import.meta.url).href;

/**
 * One racer: for each round, writes its own image under the capture's temp
 * name, says "ready" and waits for the go file, then commits it. Prints one
 * JSON line per round: {ok, sha256} or {ok: false, error}.
 */
const RACER = `
import { existsSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
const { commitCapture } = await import(process.env.LIB_MODULE);
const { sha256File } = await import(process.env.SUM_MODULE);
const [lib, name, replace, rounds, go] = process.argv.slice(1);
for (let round = 0; round < Number(rounds); round++) {
  const file = name + '.qcow2';
  const tmp = path.join(lib, '.' + file + '.capture-' + process.pid);
  writeFileSync(tmp, randomBytes(256 * 1024));
  const sha256 = await sha256File(tmp);
  if (round === 0) {
    process.stdout.write('ready\\n');
    while (!existsSync(go)) await new Promise((r) => setTimeout(r, 2));
  }
  const entry = { name, file, format: 'qcow2', virtualSize: 1, sha256, compression: 'none', encrypted: false,
    created: new Date().toISOString(), sealed: true, source: 'pid ' + process.pid + ' round ' + round, notes: '' };
  try {
    await commitCapture(lib, tmp, entry, { replace: replace === 'replace' });
    process.stdout.write(JSON.stringify({ ok: true, sha256 }) + '\\n');
  } catch (err) {
    (await import('node:fs')).rmSync(tmp, { force: true });
    process.stdout.write(JSON.stringify({ ok: false, error: err.message }) + '\\n');
  }
}
`;

interface Outcome { ok: boolean; sha256?: string; error?: string }

/** Start every racer, wait until all are ready, let them go at once; their outcomes. */
async function race(lib: string, racers: Array<{ name: string; replace: boolean; rounds: number }>): Promise<Outcome[][]> {
  const go = path.join(lib, `.go-${randomBytes(4).toString('hex')}`);
  const children = racers.map((r) => spawn(process.execPath, ['--input-type=module', '-e', RACER, lib, r.name, r.replace ? 'replace' : 'keep', String(r.rounds), go], {
    env: { ...process.env, LIB_MODULE: LIBRARY_MODULE, SUM_MODULE: CHECKSUM_MODULE }, stdio: ['ignore', 'pipe', 'pipe'],
  }));
  const outputs = children.map((c) => {
    let out = '';
    let err = '';
    const ready = new Promise<void>((resolve) => c.stdout.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('ready\n')) resolve(); }));
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const done = new Promise<Outcome[]>((resolve, reject) => c.on('close', (code) => (code === 0
      ? resolve(out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Outcome))
      : reject(new Error(`racer exited ${code}: ${err}`)))));
    return { ready, done };
  });
  await Promise.all(outputs.map((o) => o.ready));
  writeFileSync(go, '');
  return Promise.all(outputs.map((o) => o.done));
}

/** Every catalog entry's checksum is that of its file, and no temp file is left. */
async function expectCatalogMatchesFiles(lib: string): Promise<void> {
  for (const e of readLibrary(lib).images) {
    expect(await sha256File(path.join(lib, e.file)), `${e.name}: file vs catalog`).to.equal(e.sha256);
  }
  expect(readdirSync(lib).filter((f) => f.includes('.capture-'))).to.deep.equal([]);
}

describe('capture: committing an image to the library is one locked step', function () {
  this.timeout(120_000);

  it('many captures of one name with --force: one entry, whose checksum is the file\'s', async () => {
    const lib = tempDir('ghostprep-commit-');
    const outcomes = await race(lib, Array.from({ length: 6 }, () => ({ name: 'same', replace: true, rounds: 4 })));
    expect(outcomes.flat().every((o) => o.ok), JSON.stringify(outcomes)).to.equal(true);
    const images = readLibrary(lib).images;
    expect(images.map((e) => e.name)).to.deep.equal(['same']);
    // the entry is one of the racers' images, and the file is that same image
    expect(outcomes.flat().map((o) => o.sha256)).to.include(images[0]!.sha256);
    await expectCatalogMatchesFiles(lib);
  });

  it('captures of one name without --force: exactly one wins, the others fail and leave nothing', async () => {
    const lib = tempDir('ghostprep-commit-');
    const outcomes = (await race(lib, Array.from({ length: 6 }, () => ({ name: 'once', replace: false, rounds: 1 })))).flat();
    const won = outcomes.filter((o) => o.ok);
    expect(won, JSON.stringify(outcomes)).to.have.length(1);
    for (const o of outcomes.filter((x) => !x.ok)) expect(o.error).to.match(/already has an image "once" \(use --force to replace it\)/);
    expect(readLibrary(lib).images.map((e) => e.sha256)).to.deep.equal([won[0]!.sha256]);
    await expectCatalogMatchesFiles(lib);
  });

  it('captures of different names at once: every entry is kept, each with its own file\'s checksum', async () => {
    const lib = tempDir('ghostprep-commit-');
    const names = Array.from({ length: 6 }, (_, i) => `img${i}`);
    const outcomes = await race(lib, names.map((name) => ({ name, replace: false, rounds: 1 })));
    expect(outcomes.flat().every((o) => o.ok), JSON.stringify(outcomes)).to.equal(true);
    const images = readLibrary(lib).images;
    expect(images.map((e) => e.name)).to.deep.equal(names);
    expect(images.map((e) => e.sha256).sort()).to.deep.equal(outcomes.flat().map((o) => o.sha256).sort());
    await expectCatalogMatchesFiles(lib);
  });
});

describe('capture and decrypt without qemu-img', () => {
  let savedPath: string | undefined;
  beforeEach(() => { savedPath = process.env.PATH; process.env.PATH = tempDir('ghostprep-nopath-'); });
  afterEach(() => { process.env.PATH = savedPath; });

  it('capture fails with MissingToolError (exit code 4) naming how to install qemu-img, and writes nothing', async () => {
    const dir = tempDir('ghostprep-notool-');
    const source = path.join(dir, 'master.qcow2');
    writeFileSync(source, '');
    const lib = path.join(dir, 'lib');
    const err = await capture({ source, library: lib, name: 'x', compress: 'zstd', sealed: true }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(MissingToolError);
    expect((err as MissingToolError).exitCode).to.equal(4);
    expect((err as Error).message).to.match(/^qemu-img not found: install it: apt-get install qemu-utils/);
    expect(existsSync(lib)).to.equal(false);
  });

  it('decrypting an encrypted image fails the same way (after removing the temp copy of a killed decrypt)', async () => {
    const dir = tempDir('ghostprep-notool-');
    writeFileSync(path.join(dir, `.clear.qcow2.decrypt-${hostname()}-${await deadPid()}`), 'x');
    const err = await decryptCopy(path.join(dir, 'enc.qcow2'), path.join(dir, 'clear.qcow2'), { file: path.join(dir, 'key') }).then(() => undefined, (e: unknown) => e);
    expect(err).to.be.instanceOf(MissingToolError);
    expect((err as MissingToolError).exitCode).to.equal(4);
    expect(readdirSync(dir)).to.deep.equal([]);
  });
});

/** The pid of a process that has exited. */
function deadPid(): Promise<number> {
  return new Promise((resolve) => { const c = spawn(process.execPath, ['-e', '']); c.on('exit', () => resolve(c.pid!)); });
}

describe('temp images of killed captures and decrypts', () => {
  it('removes the temp images of dead runs of that step on this host, never a live one, another host\'s or another step\'s', async () => {
    const dir = tempDir('ghostprep-capture-stale-');
    const dead = await deadPid();
    const names = {
      dead: `.a.qcow2.capture-${hostname()}-${dead}`,
      live: `.b.qcow2.capture-${hostname()}-${process.pid}`,
      otherHost: `.c.qcow2.capture-some-other-host-${dead}`,
      otherStep: `.d.qcow2.decrypt-${hostname()}-${dead}`,
      image: 'a.qcow2',
    };
    for (const n of Object.values(names)) writeFileSync(path.join(dir, n), 'x');
    expect(await removeDeadHostTemps(dir, 'capture')).to.deep.equal([names.dead]);
    expect(readdirSync(dir).sort()).to.deep.equal([names.live, names.otherHost, names.otherStep, names.image].sort());
    expect(await removeDeadHostTemps(dir, 'decrypt')).to.deep.equal([names.otherStep]);
  });
});

describe('an encrypted capture that qemu-img\'s PBKDF2 timing refuses', () => {
  let savedPath: string | undefined;
  const real = ['/usr/bin/qemu-img', '/usr/local/bin/qemu-img'].find((p) => existsSync(p));
  afterEach(() => { if (savedPath !== undefined) process.env.PATH = savedPath; });

  it('is tried again until qemu-img can time it (each try fails at once), and the image is a real encrypted one', async function () {
    if (!real) this.skip();
    const dir = tempDir('ghostprep-cputiming-');
    // a qemu-img that fails as qemu 7 does when the first PBKDF2 round ends within one clock tick, 5 times, then is the real one
    const bin = path.join(dir, 'bin');
    const counter = path.join(dir, 'tries');
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'qemu-img'), `#!/bin/sh
if [ "$1" = convert ]; then
  n=$(cat ${counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${counter}
  if [ $n -le 5 ]; then echo "qemu-img: $(eval echo \\\${$#}): Unable to get accurate CPU usage" >&2; exit 1; fi
fi
exec ${real} "$@"
`, { mode: 0o755 });
    const source = path.join(dir, 'master.qcow2');
    execFileSync(real!, ['create', '-q', '-f', 'qcow2', source, '4M']);
    writeFileSync(path.join(dir, 'key'), 'capture key 1f2e', { mode: 0o600 });
    savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath}`;
    const entry = await capture({ source, library: path.join(dir, 'lib'), name: 'enc', compress: 'zstd', sealed: true, key: { file: path.join(dir, 'key') } });
    // the 5 made-up failures, then the real qemu-img, which may itself fail that way a time or two
    expect(Number(readFileSync(counter, 'utf8'))).to.be.within(6, 20);
    expect(entry.encrypted).to.equal(true);
    const info = JSON.parse(execFileSync(real!, ['info', '--output=json', path.join(dir, 'lib', 'enc.qcow2')], { encoding: 'utf8' })) as { encrypted?: boolean };
    expect(info.encrypted).to.equal(true);
    expect(readdirSync(path.join(dir, 'lib')).filter((n) => n.startsWith('.'))).to.deep.equal([]);
  });
});
