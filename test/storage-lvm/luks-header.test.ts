/**
 * LUKS header editing on the host (src/backends/guestfs/luks-identity.ts):
 * headers made by the host's cryptsetup (LUKS1 and LUKS2), the UUID set by
 * withUuid in every copy, then checked by cryptsetup itself (luksDump
 * verifies LUKS2 checksums; luksUUID reads the field; the passphrase still
 * opens). Also the key slot list and the reference rewrites.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { execa } from 'execa';
import { parseLuksHeader, withUuid } from '../../src/backends/guestfs/luks-identity.js';
import { rewriteLuksUuids, rewritePvids } from '../../src/storage/luks-refs.js';
import { deviceIdentityOf, LUKS_KEY_STATE_FILE } from '../../src/storage/luks-keys.js';
import { storageProblems } from '../../src/storage/lvm-rules.js';
import { StateDir } from '../../src/identity/state.js';
import { tempDir } from '../helpers/images.js';

const MiB = 1024 * 1024;
const KEY = 'header test passphrase';

async function header(dir: string, type: 'luks1' | 'luks2', name: string): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, '');
  await fs.truncate(file, 16 * MiB);
  await fs.writeFile(path.join(dir, 'key'), KEY, { mode: 0o600 });
  await execa('cryptsetup', ['luksFormat', '--batch-mode', '--type', type, '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000', '--key-file', path.join(dir, 'key'), file]);
  return file;
}

/** What setLuksUuid writes, done on a host file: every copy through withUuid. */
async function setUuidInFile(file: string, uuid: string): Promise<void> {
  const buf = await fs.readFile(file);
  const h = parseLuksHeader(buf)!;
  const primary = withUuid(buf.subarray(0, h.hdrSize), uuid);
  primary.copy(buf, 0);
  if (h.version === 2) {
    const second = Buffer.from(buf.subarray(h.hdrSize, 2 * h.hdrSize));
    const asPrimary = Buffer.concat([Buffer.from('LUKS\xba\xbe', 'latin1'), second.subarray(6)]);
    const changed = withUuid(asPrimary, uuid);
    Buffer.from('SKUL\xba\xbe', 'latin1').copy(changed, 0);
    // the backend recomputes the secondary checksum over the copy with its own magic
    const { luks2Checksum } = await import('../../src/backends/guestfs/luks-identity.js');
    luks2Checksum(changed.subarray(0, h.hdrSize), h.checksumAlg).copy(changed, 448);
    changed.copy(buf, h.hdrSize);
  }
  await fs.writeFile(file, buf);
}

describe('LUKS headers and references (luks-identity, luks-refs)', function () {
  this.timeout(120_000);
  let dir: string;
  before(async () => { dir = await tempDir('ghostprep-luks-hdr-'); });
  after(async () => { await fs.rm(dir, { recursive: true, force: true }); });

  for (const type of ['luks1', 'luks2'] as const) {
    it(`${type}: a new UUID that cryptsetup accepts, the passphrase still opening`, async () => {
      const file = await header(dir, type, `${type}.img`);
      const h = parseLuksHeader(await fs.readFile(file))!;
      expect(h.version).to.equal(type === 'luks1' ? 1 : 2);
      expect(h.activeSlots).to.deep.equal([0]);
      const uuid = randomUUID();
      await setUuidInFile(file, uuid);
      expect((await execa('cryptsetup', ['luksUUID', file])).stdout).to.equal(uuid);
      const dump = await execa('cryptsetup', ['luksDump', file]);
      expect(dump.stdout).to.include(uuid);
      await execa('cryptsetup', ['open', '--test-passphrase', '--key-file', path.join(dir, 'key'), file]);
      if (type === 'luks2') {
        // a damaged primary checksum is noticed by cryptsetup, so the check above means something
        const buf = await fs.readFile(file);
        buf[448] ^= 0xff;
        await fs.writeFile(path.join(dir, 'bad.img'), buf);
        const r = await execa('cryptsetup', ['luksDump', '--debug', path.join(dir, 'bad.img')], { reject: false });
        expect(`${r.stdout}${r.stderr}`).to.match(/[Cc]hecksum/);
      }
    });
  }

  it('property: a UUID rewrite replaces exactly the old UUID, in any case, and nothing else', () => {
    const uuid = fc.uuid();
    fc.assert(fc.property(uuid, uuid, fc.array(fc.oneof(fc.constantFrom(' ', 'UUID=', 'luks-', '\n', 'rd.luks.uuid=', '/dev/disk/by-uuid/'), fc.string({ unit: fc.constantFrom(...'0123456789abcdef'.split('')), maxLength: 4 })), { maxLength: 12 }), fc.boolean(), (from, to, parts, upper) => {
      fc.pre(from !== to);
      const text = parts.join(from) + (parts.length ? '' : from);
      const shown = upper ? text.replace(new RegExp(from, 'g'), from.toUpperCase()) : text;
      const out = rewriteLuksUuids(shown, new Map([[from, to]]));
      // occurrences glued to other hex digits are another identifier, not this UUID
      const expected = text.replace(new RegExp(`(?<![0-9a-fA-F])${from}(?![0-9a-fA-F])`, 'g'), to);
      expect(out.toLowerCase()).to.equal(expected.toLowerCase());
      expect(rewriteLuksUuids(out, new Map([[from, to]]))).to.equal(out);
    }), { numRuns: 200 });
  });

  it('rewrites PVIDs of the LVM devices file', () => {
    const from = 'neKg7b-n1pY-U3fT-VOjG-k7vc-n4kM-gssgGI';
    const to = 'RJMKJl-qcyi-18oi-wpv2-RWkk-ft88-skdBrU';
    const text = 'VERSION=1.1.2\nIDTYPE=devname IDNAME=/dev/sda2 DEVNAME=/dev/sda2 PVID=neKg7bn1pYU3fTVOjGk7vcn4kMgssgGI PART=2\n';
    expect(rewritePvids(text, new Map([[from, to]]))).to.equal(text.replace('neKg7bn1pYU3fTVOjGk7vcn4kMgssgGI', 'RJMKJlqcyi18oiwpv2RWkkft88skdBrU'));
  });

  it('keys: a generated passphrase is kept 0600 in the state dir and reused; a plan creates none', async () => {
    const state = new StateDir(path.join(dir, 'state'));
    state.ensure();
    const storage = { luks: { key: { generate: true as const }, removeMasterKeys: true } };
    expect(deviceIdentityOf(storage, 'n1', state, false)!.luks).to.deep.equal({ newUuid: true, removeMasterKeys: false });
    expect(state.read('n1', LUKS_KEY_STATE_FILE)).to.equal(undefined);
    const first = deviceIdentityOf(storage, 'n1', state, true)!.luks!;
    expect(first.newKey).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(first.removeMasterKeys).to.equal(true);
    const st = await fs.stat(path.join(dir, 'state', 'n1', LUKS_KEY_STATE_FILE));
    expect(st.mode & 0o777).to.equal(0o600);
    expect(deviceIdentityOf(storage, 'n1', state, true)!.luks!.newKey).to.equal(first.newKey);
    expect(deviceIdentityOf(storage, 'n2', state, true)!.luks!.newKey).not.to.equal(first.newKey);
    await fs.writeFile(path.join(dir, 'n3.key'), 'per machine key\nsecond line\n', { mode: 0o600 });
    expect(deviceIdentityOf({ luks: { key: { file: path.join(dir, 'n3.key') } } }, 'n3', state, true)!.luks!.newKey).to.equal('per machine key');
    expect(deviceIdentityOf({ lvm: { vgName: 'vg-n3' } }, 'n3', state, true)).to.deep.equal({ lvm: { newUuids: true, vgName: 'vg-n3' } });
    // an error about a key file names the file, never a passphrase
    await fs.writeFile(path.join(dir, 'empty.key'), '\nnot the first line\n');
    expect(() => deviceIdentityOf({ luks: { key: { file: path.join(dir, 'empty.key') } } }, 'n4', state, true)).to.throw(/empty.key: the first line/);
  });

  it('rules: a bad VG name, reencrypt or removeMasterKeys without a key, a missing key file', () => {
    expect(storageProblems({ lvm: { vgName: 'vg-node01' } })).to.deep.equal([]);
    expect(storageProblems({ lvm: { vgName: 'bad name' } }).map((p) => p.pointer)).to.deep.equal(['/storage/lvm/vgName']);
    expect(storageProblems({ luks: { reencrypt: true, removeMasterKeys: true, key: { file: '/nonexistent/k' } } }).map((p) => p.pointer)).to.deep.equal(['/storage/luks/key/file']);
    expect(storageProblems({ luks: { reencrypt: true, key: { generate: true } } })).to.deep.equal([]);
    expect(storageProblems({ luks: { reencrypt: true } }).map((p) => p.pointer)).to.deep.equal(['/storage/luks/reencrypt']);
    expect(storageProblems({ luks: { removeMasterKeys: true } }).map((p) => p.pointer)).to.deep.equal(['/storage/luks/removeMasterKeys']);
  });

  it('keys: reencrypt reaches the backend with the clone\'s key, and is refused without one', async () => {
    const state = new StateDir(path.join(dir, 'state-re'));
    state.ensure();
    const luks = deviceIdentityOf({ luks: { key: { generate: true }, reencrypt: true } }, 'r1', state, true)!.luks!;
    expect(luks.reencrypt).to.equal(true);
    expect(luks.newKey).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(deviceIdentityOf({ luks: { key: { generate: true } } }, 'r1', state, true)!.luks!.reencrypt).to.equal(undefined);
    expect(() => deviceIdentityOf({ luks: { reencrypt: true } }, 'r2', state, true)).to.throw(/r2: storage\.luks\.reencrypt needs storage\.luks\.key/);
  });

  it('a LUKS2 header in re-encryption: its reencrypt keyslot is not a passphrase slot, and the header says so', async () => {
    const file = await header(dir, 'luks2', 'reenc.img');
    expect(parseLuksHeader(await fs.readFile(file))!.reencrypting).to.equal(false);
    // the host's cryptsetup marks the volume (a header file of its own: no device, nothing re-encrypted)
    const hdr = path.join(dir, 'reenc.hdr');
    await fs.truncate(file, 20 * MiB);
    await execa('cryptsetup', ['luksHeaderBackup', file, '--header-backup-file', hdr]);
    await execa('cryptsetup', ['reencrypt', '--init-only', '--batch-mode', '--header', hdr, '--key-slot', '0', '--key-file', path.join(dir, 'key'), '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000', file]);
    const h = parseLuksHeader(await fs.readFile(hdr))!;
    expect(h.reencrypting).to.equal(true);
    const dump = (await execa('cryptsetup', ['luksDump', hdr])).stdout;
    const slots = [...dump.matchAll(/^\s+(\d+): (luks2|reencrypt)/gm)].map((m) => [Number(m[1]), m[2]]);
    expect(slots.some(([, t]) => t === 'reencrypt')).to.equal(true);
    expect(h.activeSlots).to.deep.equal(slots.filter(([, t]) => t === 'luks2').map(([n]) => n));
  });
});
