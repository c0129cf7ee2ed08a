/**
 * The ghost-imaging loop on real qcow2 images through the CLI: seal a
 * master, capture it (plain and encrypted), verify the library, deploy 20
 * clones from it, audit, plan again, deploy again.
 *
 * The runs on several clones (deploy, audit, plan of 20, deploy again of 2)
 * take --jobs 1: one appliance instead of the default one per core (two of
 * 10, two of 1), the same drives for one launch less each; the test suite
 * runs two groups side by side, so a second appliance finds no idle core
 * anyway. --jobs 2 is e2e/pipeline's.
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

const N = 20;
const PROFILE = `
profile: img
site: {domain: img.example.org, gateway: 10.2.0.1, dns: [10.2.0.2]}
ssh: {hostKeys: [ed25519, ecdsa]}
network:
  version: 2
  ethernets:
    lan:
      match: {macaddress: "{{machine.mac}}"}
      set-name: lan
      addresses: ["{{machine.ip}}"]
      routes: [{to: default, via: "{{site.gateway}}"}]
`;

describe('e2e: seal, capture, library, deploy 20 clones on qcow2 images', function () {
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

  it('refuses to capture an unsealed master, naming what identifies it', () => {
    const r = ghostprep(['capture', '--target', master, '--library', lib, '--name', 'deb']);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/is not sealed; still identifying:[\s\S]*\/etc\/machine-id \(machine-id\)/);
    expect(existsSync(path.join(lib, 'deb.qcow2'))).to.equal(false);
  });

  it('seals the master image, then captures it compressed and encrypted', () => {
    expect(ghostprep(['seal', '--target', master]).status).to.equal(0);
    const plain = ghostprep(['capture', '--target', master, '--library', lib, '--name', 'deb', '--json']);
    expect(plain.status, plain.stderr).to.equal(0);
    expect(JSON.parse(plain.stdout)).to.include({ name: 'deb', compression: 'zstd', encrypted: false, sealed: true });
    const enc = ghostprep(['capture', '--target', master, '--library', lib, '--name', 'deb-enc', '--encrypt-key-file', key]);
    expect(enc.status, enc.stderr).to.equal(0);
    expect(execFileSync('qemu-img', ['info', path.join(lib, 'deb-enc.qcow2')], { encoding: 'utf8' })).to.match(/encrypted: yes/);
    const catalog = parse(readFileSync(path.join(lib, 'library.yaml'), 'utf8'));
    expect(catalog.images.map((e: { name: string }) => e.name)).to.deep.equal(['deb', 'deb-enc']);
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

  it('an encrypted image does not restore with a wrong key and leaves nothing behind', () => {
    const wrong = path.join(work, 'wrong.key');
    writeFileSync(wrong, 'nope', { mode: 0o600 });
    const r = ghostprep(['restore', '--base', 'library:deb-enc', '--library', lib, '--to', path.join(work, 'x.qcow2'), '--mode', 'copy', '--key-file', wrong]);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/key does not unlock/);
    expect(readdirSync(work).filter((f) => f.includes('x.qcow2'))).to.deep.equal([]);
    expect(r.stderr + r.stdout).to.not.include('nope');
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

  it('audit of the clones is clean and plan on every clone shows no changes', () => {
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
    const r = ghostprep(['deploy', ...common, '--base', 'library:deb-enc', '--library', lib, '--key-file', key, '--out', path.join(work, 'enc-clones'), '--machine', 'c05', '--json']);
    expect(r.status, r.stderr).to.equal(0);
    expect(execFileSync('qemu-img', ['info', path.join(work, 'enc-clones', 'c05.qcow2')], { encoding: 'utf8' })).to.not.match(/encrypted: yes/);
  });
});
