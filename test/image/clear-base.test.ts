/**
 * The clear copy of an encrypted library image that deploy backs its clones
 * with (OUT/.bases): decrypted again when `capture --force` replaced the image,
 * the old copy left for the overlays backed by it, and nothing left behind
 * when the key is wrong. restore of an encrypted image honours --sha256
 * (--size, which needs an appliance to grow, is in e2e/images).
 * Real qemu-img (LUKS qcow2), no appliance.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { resolveBase } from '../../src/image/base.js';
import { capture } from '../../src/image/capture.js';
import { findImage } from '../../src/image/library.js';
import { restoreDecrypted } from '../../src/image/restore.js';
import { tempDir } from '../helpers/rootfs.js';

/** Are two images the same guest-visible content? (qemu-img compare: exit 0 identical, 1 different) */
async function sameContent(a: string, aFormat: string, b: string, bFormat: string): Promise<boolean> {
  const r = await execa('qemu-img', ['compare', '-q', '-f', aFormat, '-F', bFormat, a, b], { reject: false });
  if (r.exitCode !== 0 && r.exitCode !== 1) throw new Error(`qemu-img compare: ${r.stderr}`);
  return r.exitCode === 0;
}

describe('encrypted library images: the clear copy deploy uses, and restore', function () {
  this.timeout(300_000);
  const work = tempDir('ghostprep-clear-');
  const lib = path.join(work, 'lib');
  const key = path.join(work, 'image.key');
  const wrong = path.join(work, 'wrong.key');
  const raw = (n: string) => path.join(work, `${n}.raw`);

  before(async () => {
    writeFileSync(key, 'correct horse battery staple', { mode: 0o600 });
    writeFileSync(wrong, 'nope', { mode: 0o600 });
    for (const n of ['a', 'b']) writeFileSync(raw(n), Buffer.concat([randomBytes(64 * 1024), Buffer.alloc(1024 * 1024 - 64 * 1024)]));
    await capture({ source: raw('a'), library: lib, name: 'enc', compress: 'zstd', key: { file: key }, sealed: true });
  });

  let first: string;
  it('decrypts once into OUT/.bases and reuses that copy while the image is unchanged', async () => {
    const clearDir = path.join(work, 'out', '.bases');
    first = (await resolveBase('library:enc', { library: lib, key: { file: key }, clearDir })).path;
    expect(path.dirname(first)).to.equal(clearDir);
    expect(await sameContent(first, 'qcow2', raw('a'), 'raw')).to.equal(true);
    expect(statSync(clearDir).mode & 0o777).to.equal(0o700);
    const mtime = statSync(first).mtimeMs;
    expect((await resolveBase('library:enc', { library: lib, key: { file: key }, clearDir })).path).to.equal(first);
    expect(statSync(first).mtimeMs).to.equal(mtime);
  });

  it('after capture --force replaced the image, decrypts the new content; the old copy stays for clones backed by it', async () => {
    const oldSha = findImage(lib, 'enc').sha256;
    await capture({ source: raw('b'), library: lib, name: 'enc', compress: 'zstd', key: { file: key }, sealed: true, force: true });
    expect(findImage(lib, 'enc').sha256).to.not.equal(oldSha);
    const second = (await resolveBase('library:enc', { library: lib, key: { file: key }, clearDir: path.join(work, 'out', '.bases') })).path;
    expect(second).to.not.equal(first);
    expect(await sameContent(second, 'qcow2', raw('b'), 'raw')).to.equal(true);
    expect(await sameContent(first, 'qcow2', raw('a'), 'raw')).to.equal(true);
  });

  it('a wrong key fails clearly and leaves neither the copy nor the directories made for it', async () => {
    const out = path.join(work, 'out-wrong');
    const err = await resolveBase('library:enc', { library: lib, key: { file: wrong }, clearDir: path.join(out, '.bases') }).then(() => undefined, (e: unknown) => e);
    expect((err as Error).message).to.match(/enc\.qcow2: the key does not unlock this encrypted image \(nothing was written\)/);
    expect(existsSync(out)).to.equal(false);
    // into an OUT that exists: OUT stays, .bases does not
    const existing = path.join(work, 'out-existing');
    await execa('mkdir', [existing]);
    await resolveBase('library:enc', { library: lib, key: { file: wrong }, clearDir: path.join(existing, '.bases') }).catch(() => undefined);
    expect(readdirSync(existing)).to.deep.equal([]);
  });

  it('a key from a variable (--key-env) leaves the environment when read: processes started later do not inherit it', async () => {
    process.env.GP_CLEAR_TEST_KEY = 'correct horse battery staple';
    try {
      const clear = (await resolveBase('library:enc', { library: lib, key: { env: 'GP_CLEAR_TEST_KEY' }, clearDir: path.join(work, 'out-env', '.bases') })).path;
      expect(await sameContent(clear, 'qcow2', raw('b'), 'raw')).to.equal(true);
      expect(process.env.GP_CLEAR_TEST_KEY).to.equal(undefined);
      expect((await execa('env')).stdout).to.not.include('correct horse');
      // read again (a second decrypt in the same run) it is still known
      const again = (await resolveBase('library:enc', { library: lib, key: { env: 'GP_CLEAR_TEST_KEY' }, clearDir: path.join(work, 'out-env2', '.bases') })).path;
      expect(await sameContent(again, 'qcow2', raw('b'), 'raw')).to.equal(true);
    } finally {
      delete process.env.GP_CLEAR_TEST_KEY;
    }
  });

  it('restore of an encrypted image refuses a --sha256 that is not the image\'s, and writes nothing', async () => {
    const to = path.join(work, 'restored', 'r.qcow2');
    await execa('mkdir', [path.dirname(to)]);
    const err = await restoreDecrypted({ base: path.join(lib, 'enc.qcow2'), to, mode: 'copy', key: { file: key }, expectedSha256: '0'.repeat(64) }).then(() => undefined, (e: unknown) => e);
    expect((err as Error).message).to.match(/checksum mismatch: expected sha256 0{64}/);
    expect(readdirSync(path.dirname(to))).to.deep.equal([]);
    const ok = await restoreDecrypted({ base: path.join(lib, 'enc.qcow2'), to, mode: 'copy', key: { file: key }, expectedSha256: findImage(lib, 'enc').sha256 });
    expect(ok).to.include({ path: to, mode: 'copy', format: 'qcow2', baseSha256: findImage(lib, 'enc').sha256 });
    expect(ok.virtualSize).to.equal(1024 * 1024);
    expect(await sameContent(to, 'qcow2', raw('b'), 'raw')).to.equal(true);
  });
});
