/**
 * Guest roots on LUKS: a plain LUKS root and LVM on LUKS (the Debian
 * installer's "encrypted LVM"), opened with --luks-key-file through the real
 * CLI and libguestfs; apply re-keys each clone (storage.luks: its own
 * passphrase, the master's slot removed, a new UUID), and the clones then
 * open with their own keys, the master's not given. Each LUKS guest gets an
 * appliance of its own, and the key files are the same for every target of
 * a run, so these checks cannot share appliances: one for the wrong key,
 * two for apply, two for the inspect that reads the clones back (5
 * launches; a missing key, or a missing key file, starts none: the LUKS
 * header is seen on the host before any appliance).
 */
import { expect } from 'chai';
import { existsSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { LUKS_PASSPHRASE, LUKS_UUID, overlayOf, tempDir, testImages } from '../../helpers/images.js';
import { ghostprep } from '../../helpers/cli.js';
import { luksKeyFilesFromEnv, mapperName, parseCrypttab, readLuksKeys } from '../../../src/backends/guestfs/luks.js';
import { parseLuksUuid, conflictKeys } from '../../../src/backends/guestfs/lvm-probe.js';
import { cryptAliases } from '../../../src/backends/guestfs/os-inspect.js';
import { parseLuksHeader } from '../../../src/backends/guestfs/luks-identity.js';
import { readPartitionTable } from '../../../src/backends/guestfs/lvm-probe.js';
import { imageReader } from '../../../src/audit/headers.js';

const CLONE_KEY = 'luks clone passphrase 2b9d';
const vol = (device: string, type: string, uuid = '') => ({ device, type, uuid, label: '', partUuid: '', partLabel: '' });

describe('guestfs: LUKS helpers (pure)', () => {
  it('reads the passphrase from the first line of a key file and names bad files', async () => {
    const dir = await tempDir();
    writeFileSync(path.join(dir, 'k1'), 'first line\nsecond\n');
    writeFileSync(path.join(dir, 'k2'), 'crlf\r\n');
    writeFileSync(path.join(dir, 'empty'), '\nnot this\n');
    expect(await readLuksKeys([path.join(dir, 'k1'), path.join(dir, 'k2')])).to.deep.equal(['first line', 'crlf']);
    await readLuksKeys([path.join(dir, 'empty')]).then(() => expect.fail('should throw'), (e: Error) => expect(e.message).to.equal(`LUKS key file ${path.join(dir, 'empty')}: the first line (the passphrase) is empty`));
    await readLuksKeys([path.join(dir, 'nope')]).then(() => expect.fail('should throw'), (e: Error) => expect(e.message).to.match(/LUKS key file .*nope: not found/));
  });

  it('splits GHOSTPREP_LUKS_KEY_FILE like PATH', () => {
    expect(luksKeyFilesFromEnv({ GHOSTPREP_LUKS_KEY_FILE: '/a/k:/b/k' })).to.deep.equal(['/a/k', '/b/k']);
    expect(luksKeyFilesFromEnv({})).to.deep.equal([]);
  });

  it('finds the LUKS magic and UUID in a partition header, and keeps LUKS guests in appliances of their own', () => {
    const b = Buffer.alloc(2048);
    b.write('LUKS\xba\xbe', 0, 'latin1');
    b.write(LUKS_UUID, 168, 'latin1');
    expect(parseLuksUuid(b)).to.equal(LUKS_UUID);
    expect(parseLuksUuid(Buffer.alloc(2048))).to.equal(undefined);
    expect(conflictKeys('/x', { pvUuids: [], vgNames: [], vgUuids: [], luksUuids: [LUKS_UUID] })).to.deep.equal(['file:/x', 'luks']);
  });

  it('maps crypttab names to the mappers opened for the same volume', () => {
    const volumes = [vol('/dev/sda1', 'crypto_LUKS', LUKS_UUID), vol('/dev/sda2', 'ext4', 'b00t')];
    const opened = [{ source: '/dev/sda1', mapper: `/dev/mapper/${mapperName(0, '/dev/sda1')}` }];
    const crypttab = `# comment\ncryptroot UUID=${LUKS_UUID} none luks\nother /dev/sdz9 none\n`;
    expect(parseCrypttab(crypttab)).to.deep.equal(new Map([['cryptroot', `UUID=${LUKS_UUID}`], ['other', '/dev/sdz9']]));
    expect(cryptAliases(crypttab, volumes, opened)).to.deep.equal(new Map([['/dev/mapper/cryptroot', '/dev/mapper/gpluks_0_1']]));
  });
});

describe('guestfs: guest roots on LUKS (real images)', function () {
  this.timeout(1_200_000);
  let dir: string;
  let plain: string;
  let lvm: string;
  let key: string;
  let wrong: string;
  const outputs: string[] = [];
  const run = (args: string[]) => {
    const r = ghostprep(args);
    outputs.push(r.stdout, r.stderr);
    return r;
  };

  before(async () => {
    dir = await tempDir('ghostprep-luks-');
    // built together when not cached yet: one appliance for both
    const images = await testImages(['luks', 'luks-lvm']);
    plain = await overlayOf(images.luks!, dir, 'plain');
    lvm = await overlayOf(images['luks-lvm']!, dir, 'lvm');
    key = path.join(dir, 'root.key');
    wrong = path.join(dir, 'wrong.key');
    writeFileSync(key, LUKS_PASSPHRASE + '\n', { mode: 0o600 });
    writeFileSync(wrong, 'not the passphrase\n', { mode: 0o600 });
    // each clone re-keyed (storage.luks): its own passphrase, the master's slot removed, a new LUKS UUID
    for (const n of ['plain', 'lvm']) writeFileSync(path.join(dir, `${n}.clone.key`), `${CLONE_KEY} ${n}\n`, { mode: 0o600 });
    writeFileSync(path.join(dir, 'p.yaml'), `profile: sec\nsite: {domain: sec.example.org}\nstorage:\n  luks: {key: {file: "${dir}/{{machine.name}}.clone.key"}, removeMasterKeys: true}\n`);
    writeFileSync(path.join(dir, 'inv.yaml'), 'defaults: {profile: sec}\nmachines:\n  - {name: plain}\n  - {name: lvm}\n');
  });

  it('without a key: the machine fails before any appliance starts, with a message naming the LUKS volume and the option', () => {
    // every guestfish command of the run would be traced here: none is sent
    const trace = path.join(dir, 'no-key.trace');
    process.env.GHOSTPREP_TRACE = trace;
    let r: ReturnType<typeof run>;
    try { r = run(['inspect', '--target', plain]); } finally { delete process.env.GHOSTPREP_TRACE; }
    expect(r.status).to.equal(1);
    expect(r.stdout + r.stderr).to.contain(`${plain}: a volume on its disk is encrypted with LUKS (LUKS UUID ${LUKS_UUID}): give its passphrase with --luks-key-file FILE (or GHOSTPREP_LUKS_KEY_FILE=FILE); no appliance was started for it`);
    expect(existsSync(trace), 'a guestfish command was sent').to.equal(false);
  });

  it('with a wrong key: says so, and the passphrases appear nowhere', () => {
    const r = run(['--luks-key-file', wrong, 'inspect', '--target', lvm]);
    expect(r.status).to.equal(1);
    expect(r.stdout + r.stderr).to.contain(`${lvm}: cannot open the LUKS volume /dev/sda1: the key file given does not open it (wrong passphrase)`);
  });

  it('a missing key file fails before any appliance starts', () => {
    const r = run(['--luks-key-file', path.join(dir, 'missing.key'), 'inspect', '--target', lvm]);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.contain(`LUKS key file ${path.join(dir, 'missing.key')}: not found`);
  });

  it('apply customizes a LUKS root and LVM on LUKS (keys tried in order), re-keys each clone, and inspect reads them back with the clones\' keys', async () => {
    const common = ['-p', path.join(dir, 'p.yaml'), '-i', path.join(dir, 'inv.yaml'), '--state', path.join(dir, 'state')];
    const a = run(['--luks-key-file', wrong, '--luks-key-file', key, 'apply', ...common, '--target', path.join(dir, '{name}.qcow2'), '--report', path.join(dir, 'report.json')]);
    expect(a.status, a.stderr).to.equal(0);
    const report = JSON.parse(await fs.readFile(path.join(dir, 'report.json'), 'utf8')) as { machines: { name: string; status: string }[] };
    expect(report.machines.map((m) => [m.name, m.status])).to.deep.equal([['plain', 'ok'], ['lvm', 'ok']]);
    // re-keyed: on the disk, each LUKS header has one key slot (not the master's slot 0) and a UUID of its own
    const headers = await Promise.all([plain, lvm].map(async (image) => {
      const r = imageReader(image, 'qcow2');
      try {
        const part = (await readPartitionTable(r.read)).entries[0]!;
        return parseLuksHeader(await r.read(part.offset, 16 * 1024 * 1024))!;
      } finally { await r.close(); }
    }));
    for (const h of headers) {
      expect(h.activeSlots).to.have.length(1);
      expect(h.activeSlots).not.to.include(0);
      expect(h.uuid).not.to.equal(LUKS_UUID);
    }
    expect(headers[0]!.uuid).not.to.equal(headers[1]!.uuid);
    // the clones open with their own keys, the master's not given
    const i = run(['--luks-key-file', path.join(dir, 'plain.clone.key'), '--luks-key-file', path.join(dir, 'lvm.clone.key'), 'inspect', '--json', '--target', plain, '--target', lvm]);
    expect(i.status, i.stderr).to.equal(0);
    const seen = JSON.parse(i.stdout) as { target: string; identity: { hostname: string; machineId: string } }[];
    expect(seen.map((s) => [s.target, s.identity.hostname])).to.deep.equal([[plain, 'plain'], [lvm, 'lvm']]);
    expect(new Set(seen.map((s) => s.identity.machineId)).size).to.equal(2);
  });

  after(() => {
    for (const out of outputs) expect(out).to.not.contain(LUKS_PASSPHRASE).and.not.contain('not the passphrase').and.not.contain(CLONE_KEY);
  });
});
