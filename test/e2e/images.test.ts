/**
 * The ghost-imaging loop on real qcow2 images through the CLI: seal a
 * master, capture it (plain and encrypted), verify the library, deploy 5
 * clones from it, audit, plan again, deploy again, deploy from the
 * encrypted image.
 *
 * The seal check of capture, and the second seal (nothing left to change),
 * read the master host-side: no appliance. The first seal's changes are
 * checked against what the refused capture named. The audit reads the
 * clones host-side too (the zstd base's blocks once for all of them). Six
 * appliances: the seal, the restore's grow, the deploy of the clones, their
 * plan, the deploy again of 2, the encrypted deploy. The plan and the
 * deploy again stay two runs: a deploy again of every clone in their place
 * would test plan on the clones only through apply.
 *
 * Five clones: a fleet of one base, each with its own name, MAC and
 * address, deployed, audited and planned in one appliance per run; a
 * shared identity, a clone left with changes to plan or one deployed wrong
 * shows on any of them, so more clones repeat the same checks (the
 * throughput of large fleets is the benchmark's, bench/).
 *
 * The runs on several clones (deploy, audit, plan, deploy again of 2)
 * take --jobs 1: one appliance instead of the default one per core, the
 * same drives for one launch less each; the test suite runs two groups side
 * by side, so a second appliance finds no idle core anyway. --jobs 2 is
 * e2e/pipeline's.
 */
import { expect } from 'chai';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import { testImage } from '../helpers/images.js';
import { ghostprep } from '../helpers/cli.js';
import { tempDir } from '../helpers/rootfs.js';
import { sha256File } from '../../src/image/checksum.js';

const N = 5;
const PROFILE = `
profile: img
site: {domain: img.example.org, gateway: 10.2.0.1, dns: [10.2.0.2]}
ssh: {hostKeys: [ed25519, ecdsa]}
storage: {newUuids: true}
network:
  version: 2
  ethernets:
    lan:
      match: {macaddress: "{{machine.mac}}"}
      set-name: lan
      addresses: ["{{machine.ip}}"]
      routes: [{to: default, via: "{{site.gateway}}"}]
`;

describe(`e2e: seal, capture, library, deploy ${N} clones on qcow2 images`, function () {
  this.timeout(1_200_000);
  const work = tempDir('ghostprep-images-');
  const lib = path.join(work, 'lib');
  const master = path.join(work, 'master.qcow2');
  const key = path.join(work, 'image.key');
  const common = ['-p', path.join(work, 'img.yaml'), '-i', path.join(work, 'inv.yaml'), '--state', path.join(work, 'state')];

  before(async () => {
    copyFileSync(await testImage('ext4-gpt'), master);
    writeFileSync(key, 'correct horse battery staple', { mode: 0o600 });
    writeFileSync(path.join(work, 'img.yaml'), PROFILE);
    writeFileSync(path.join(work, 'inv.yaml'), 'defaults: {profile: img}\nmachines:\n' + Array.from({ length: N }, (_, i) =>
      `  - {name: c${String(i).padStart(2, '0')}, mac: "52:54:00:10:00:${String(i + 10).padStart(2, '0')}", ip: 10.2.0.${i + 10}/24}\n`).join(''));
  });

  // what the refused capture named that a seal operation removes, each as "path (operation)"
  let identifying: string[] = [];
  it('refuses to capture an unsealed master, naming what identifies it', () => {
    const r = ghostprep(['capture', '--target', master, '--library', lib, '--name', 'deb']);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/is not sealed; still identifying:[\s\S]*\/etc\/machine-id \(machine-id\)/);
    expect(existsSync(path.join(lib, 'deb.qcow2'))).to.equal(false);
    identifying = r.stderr.split('\n').filter((l) => /^ {2}\/\S+ \((?!no seal op)/.test(l)).map((l) => l.trim());
    expect(identifying).to.include('/etc/machine-id (machine-id)');
  });

  it('seals the master image (a second seal changes nothing), then captures it compressed and encrypted (key from a variable)', () => {
    // the seal writes in an appliance; the capture above read the master host-side: each identity it named is one the seal removed or reset
    const first = ghostprep(['seal', '--target', master, '--json']);
    expect(first.status, first.stderr).to.equal(0);
    const sealed = (JSON.parse(first.stdout) as Array<{ changes: Array<{ action: string; path: string; operation: string }> }>)[0]!.changes;
    const removed = sealed.filter((c) => c.action === 'modify' || c.action === 'delete').map((c) => `${c.path} (${c.operation})`);
    expect(removed).to.include.members(identifying);
    const again = ghostprep(['seal', '--target', master, '--json']);
    expect(again.status, again.stderr).to.equal(0);
    expect(JSON.parse(again.stdout).map((r: { status: string; changes: unknown[] }) => [r.status, r.changes.length])).to.deep.equal([['ok', 0]]);
    const plain = ghostprep(['capture', '--target', master, '--library', lib, '--name', 'deb', '--json']);
    expect(plain.status, plain.stderr).to.equal(0);
    expect(JSON.parse(plain.stdout)).to.include({ name: 'deb', compression: 'zstd', encrypted: false, sealed: true });
    process.env.GHOSTPREP_TEST_IMAGE_KEY = readFileSync(key, 'utf8');
    let enc;
    try {
      enc = ghostprep(['capture', '--target', master, '--library', lib, '--name', 'deb-enc', '--encrypt-key-env', 'GHOSTPREP_TEST_IMAGE_KEY']);
    } finally {
      delete process.env.GHOSTPREP_TEST_IMAGE_KEY;
    }
    expect(enc.status, enc.stderr).to.equal(0);
    expect(enc.stdout).to.match(/^captured deb-enc: .*deb-enc\.qcow2 sha256 [0-9a-f]{64} \(encrypted\)$/m);
    expect(execFileSync('qemu-img', ['info', path.join(lib, 'deb-enc.qcow2')], { encoding: 'utf8' })).to.match(/encrypted: yes/);
    const catalog = parse(readFileSync(path.join(lib, 'library.yaml'), 'utf8'));
    expect(catalog.images.map((e: { name: string }) => e.name)).to.deep.equal(['deb', 'deb-enc']);
    // no capture temp file is left in the library
    expect(readdirSync(lib).filter((f) => !f.startsWith('.')).sort()).to.deep.equal(['deb-enc.qcow2', 'deb.qcow2', 'library.yaml']);
  });

  it('images list and images show, as text and as --json', async () => {
    const catalog = parse(readFileSync(path.join(lib, 'library.yaml'), 'utf8')).images as Array<Record<string, unknown>>;
    const list = ghostprep(['images', 'list', '--library', lib]);
    expect(list.status, list.stderr).to.equal(0);
    const rows = list.stdout.trim().split('\n');
    expect(rows).to.have.length(2);
    const debSha = await sha256File(path.join(lib, 'deb.qcow2'));
    expect(rows[0]).to.match(new RegExp(`^deb\\s+0\\.3 GiB  zstd\\s+sealed\\s+\\d{4}-\\d\\d-\\d\\d  ${debSha.slice(0, 12)}$`));
    expect(rows[1]).to.match(/^deb-enc\s+0\.3 GiB  encrypted  sealed\s+\d{4}-\d\d-\d\d  [0-9a-f]{12}$/);
    const listJson = ghostprep(['images', 'list', '--library', lib, '--json']);
    expect(listJson.status, listJson.stderr).to.equal(0);
    expect(JSON.parse(listJson.stdout)).to.deep.equal(catalog);
    const show = ghostprep(['images', 'show', 'deb-enc', '--library', lib]);
    expect(show.status, show.stderr).to.equal(0);
    const fields = Object.fromEntries(show.stdout.trim().split('\n').map((l) => [l.slice(0, 12).trim(), l.slice(13)]));
    expect(fields).to.include({ name: 'deb-enc', file: 'deb-enc.qcow2', encrypted: 'true', compression: 'none', sealed: 'true', path: path.join(lib, 'deb-enc.qcow2'), source: master });
    const showJson = JSON.parse(ghostprep(['images', 'show', 'deb', '--library', lib, '--json']).stdout);
    expect(showJson).to.deep.equal({ ...catalog.find((e) => e.name === 'deb'), path: path.join(lib, 'deb.qcow2') });
    expect(showJson.sha256).to.equal(debSha);
    const missing = ghostprep(['images', 'show', 'nope', '--library', lib]);
    expect(missing.status).to.equal(1);
    expect(missing.stderr).to.match(/no image "nope" \(have: deb, deb-enc\)/);
  });

  it('images verify passes, and fails (exit 1) on a tampered copy', () => {
    expect(ghostprep(['images', 'verify', '--library', lib]).status).to.equal(0);
    const bad = path.join(work, 'badlib');
    execFileSync('cp', ['-a', lib, bad]);
    execFileSync('qemu-img', ['resize', path.join(bad, 'deb.qcow2'), '+1M']);
    const r = ghostprep(['images', 'verify', '--library', bad, '--json']);
    expect(r.status).to.equal(1);
    expect(JSON.parse(r.stdout).find((x: { name: string }) => x.name === 'deb').problem).to.match(/sha256 .* != catalog/);
  });

  it('an encrypted image does not restore or deploy with a wrong key and leaves nothing behind', () => {
    const wrong = path.join(work, 'wrong.key');
    writeFileSync(wrong, 'nope', { mode: 0o600 });
    const r = ghostprep(['restore', '--base', 'library:deb-enc', '--library', lib, '--to', path.join(work, 'x.qcow2'), '--mode', 'copy', '--key-file', wrong]);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/key does not unlock/);
    expect(readdirSync(work).filter((f) => f.includes('x.qcow2'))).to.deep.equal([]);
    expect(r.stderr + r.stdout).to.not.include('nope');
    const out = path.join(work, 'wrong-out');
    const d = ghostprep(['deploy', ...common.slice(0, -1), path.join(work, 'wrong-state'), '--base', 'library:deb-enc', '--library', lib, '--key-file', wrong, '--out', out]);
    expect(d.status, d.stderr).to.equal(1);
    expect(d.stderr).to.match(/deb-enc\.qcow2: the key does not unlock this encrypted image \(nothing was written\)/);
    expect(existsSync(out), 'OUT').to.equal(false);
    expect(existsSync(path.join(work, 'wrong-state')), 'state dir').to.equal(false);
  });

  it('restore of an encrypted image checks --sha256 and grows the decrypted copy to --size', () => {
    const to = path.join(work, 'restored-enc.qcow2');
    const base = ['restore', '--base', 'library:deb-enc', '--library', lib, '--to', to, '--mode', 'copy', '--key-file', key];
    const bad = ghostprep([...base, '--sha256', '0'.repeat(64)]);
    expect(bad.status).to.equal(1);
    expect(bad.stderr).to.match(/checksum mismatch: expected sha256 0{64}/);
    expect(readdirSync(work).filter((f) => f.includes('restored-enc'))).to.deep.equal([]);
    const r = ghostprep([...base, '--size', '512M', '--json']);
    expect(r.status, r.stderr).to.equal(0);
    const result = JSON.parse(r.stdout);
    expect(result).to.include({ path: to, mode: 'copy', decrypted: true, virtualSize: 512 * 2 ** 20 });
    expect(result.grown).to.include({ filesystem: 'ext4' });
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', to], { encoding: 'utf8' }));
    expect(info['virtual-size']).to.equal(512 * 2 ** 20);
    expect(info.encrypted ?? false).to.equal(false);
  });

  let baseSha: string;
  it(`deploys ${N} clones from library:deb with distinct identities, base unchanged`, async () => {
    baseSha = await sha256File(path.join(lib, 'deb.qcow2'));
    const r = ghostprep(['deploy', ...common, '--base', 'library:deb', '--library', lib, '--out', path.join(work, 'clones'), '--jobs', '1', '--report', path.join(work, 'report.json')]);
    expect(r.status, r.stdout + r.stderr).to.equal(0);
    const report = JSON.parse(readFileSync(path.join(work, 'report.json'), 'utf8'));
    expect(report.summary).to.include({ ok: N, failed: 0 });
    const ids = new Set(report.machines.map((m: { identity: { machineId: string } }) => m.identity.machineId));
    expect(ids.size).to.equal(N);
    expect(await sha256File(path.join(lib, 'deb.qcow2'))).to.equal(baseSha);
    expect(report.base.sha256).to.equal(baseSha);
  });

  it('audit of the clones (storage.newUuids) finds no shared identity of any kind, and plan on every clone shows no changes', () => {
    const audit = ghostprep(['audit', '--target', path.join(work, 'clones', '*.qcow2'), '--json', '--jobs', '1']);
    expect(audit.status, audit.stderr).to.equal(0);
    expect(JSON.parse(audit.stdout).targets).to.equal(N);
    const plan = ghostprep(['plan', ...common, '--target', path.join(work, 'clones', '{name}.qcow2'), '--jobs', '1', '--detailed-exitcode']);
    expect(plan.status, plan.stdout.slice(0, 2000) + plan.stderr).to.equal(0);
  });

  it('deploying again reuses the clones and changes nothing', async () => {
    const r = ghostprep(['deploy', ...common, '--base', 'library:deb', '--library', lib, '--out', path.join(work, 'clones'), '--machine', 'c00', '--machine', 'c01', '--jobs', '1', '--json']);
    expect(r.status, r.stderr).to.equal(0);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === 'restore').map((e) => e.action)).to.deep.equal(['reused', 'reused']);
    expect(events.filter((e) => e.event === 'apply').map((e) => e.changes)).to.deep.equal([0, 0]);
    expect(await sha256File(path.join(lib, 'deb.qcow2'))).to.equal(baseSha);
  });

  it('deploys from the encrypted library image with its key', () => {
    const r = ghostprep(['deploy', ...common, '--base', 'library:deb-enc', '--library', lib, '--key-file', key, '--out', path.join(work, 'enc-clones'), '--machine', 'c04', '--json']);
    expect(r.status, r.stderr).to.equal(0);
    expect(execFileSync('qemu-img', ['info', path.join(work, 'enc-clones', 'c04.qcow2')], { encoding: 'utf8' })).to.not.match(/encrypted: yes/);
  });
});
