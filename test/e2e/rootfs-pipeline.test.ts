/**
 * The whole pipeline through the real CLI on fresh copies of every fixture
 * tree: validate -> plan (changes) -> apply -> plan (none) -> audit.
 */
import { expect } from 'chai';
import { cpSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { validateAgainst } from '../../src/schema/validate-schema.js';
import { copyFixture, ROOTFS_FIXTURES, tempDir } from '../helpers/rootfs.js';
import { ghostprep, treeDigest } from '../helpers/cli.js';

const PROFILE = `
profile: e2e
site: {domain: e2e.example.org, timezone: Europe/Berlin, gateway: 10.1.0.1, dns: [10.1.0.2]}
machineId: generate
ssh:
  hostKeys: [ed25519, ecdsa]
  authorizedKeys: {root: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEwq1bhOmRG6CDIGM8nxhTzXxOSqMGsnLY0VoTzOKPBe admin@e2e"]}
users: [{name: ops, uid: 1501, groups: ["@admin"], shell: /bin/sh, passwordHash: "$6$salt$hash"}]
timezone: "{{site.timezone}}"
network:
  version: 2
  ethernets:
    lan:
      match: {macaddress: "{{machine.mac}}"}
      set-name: lan
      addresses: ["{{machine.ip}}"]
      routes: [{to: default, via: "{{site.gateway}}"}]
      nameservers: {addresses: "{{site.dns}}"}
files:
  - {path: /etc/ghostprep-node, content: "{{machine.fqdn}} {{distro.family}}\\n", mode: "0640"}
delete: [/home/master/.bash_history]
firstboot: [{name: hello, run: "echo hello"}]
`;

describe('e2e: rootfs pipeline on every fixture family', function () {
  this.timeout(300_000);
  const work = tempDir('ghostprep-e2e-');
  const trees = path.join(work, 'trees');
  const untouched = path.join(work, 'untouched');
  const state = path.join(work, 'state');
  const names = ROOTFS_FIXTURES.map((f) => `n-${f}`);
  const common = ['-p', path.join(work, 'e2e.yaml'), '-i', path.join(work, 'inv.yaml'), '--target', `rootfs:${trees}/{name}`, '--state', state];

  before(() => {
    writeFileSync(path.join(work, 'e2e.yaml'), PROFILE);
    writeFileSync(path.join(work, 'inv.yaml'), 'defaults: {profile: e2e}\nmachines:\n' + ROOTFS_FIXTURES.map((f, i) =>
      `  - {name: n-${f}, mac: "52:54:00:e2:e0:${String(i + 10).padStart(2, '0')}", ip: 10.1.0.${i + 10}/24}\n`).join(''));
    for (const f of ROOTFS_FIXTURES) {
      copyFixture(f, path.join(trees, `n-${f}`));
      copyFixture(f, path.join(untouched, `n-${f}`));
    }
  });

  it('validates', () => {
    const r = ghostprep(['validate', '-p', path.join(work, 'e2e.yaml'), '-i', path.join(work, 'inv.yaml')]);
    expect(r.stderr).to.equal('');
    expect(r.status).to.equal(0);
  });

  it('audit of the untouched copies exits 5 naming the shared master identity', () => {
    const r = ghostprep(['audit', '--target', `rootfs:${untouched}/*`, '--json']);
    expect(r.status).to.equal(5);
    const out = JSON.parse(r.stdout);
    const mid = out.duplicates.find((d: { kind: string }) => d.kind === 'machine-id');
    expect(mid.value).to.equal('f43282a3158b244229296e838e50ddbd');
    expect(mid.targets).to.have.length(3);
    expect(out.duplicates.some((d: { kind: string; value: string }) => d.kind === 'ssh-host-key' && d.value.includes('gTlALRrurwPqDUmCJ9DEPJIzPksNoo1MUjPQtyHPkyg'))).to.equal(true);
  });

  it('plan shows changes (exit 2), writes nothing, never shows private keys', () => {
    const before = treeDigest(trees);
    const r = ghostprep(['plan', ...common, '--detailed-exitcode']);
    expect(r.status, r.stderr).to.equal(2);
    expect(treeDigest(trees)).to.equal(before);
    for (const n of names) expect(r.stdout).to.match(new RegExp(`=== ${n} \\(rootfs:[^)]*\\): \\d+ change`));
    expect(r.stdout).to.include('+n-debian12');
    expect(r.stdout).to.not.match(/PRIVATE KEY/);
    expect(r.stdout).to.not.include('$6$salt$hash');
  });

  it('plan --json gives every machine with its diff', () => {
    const r = ghostprep(['plan', ...common, '--json', '--machine', 'n-arch']);
    expect(r.status).to.equal(0);
    const out = JSON.parse(r.stdout);
    expect(out.machines).to.have.length(1);
    expect(out.machines[0].diff).to.include('/etc/hostname');
  });

  let report: { machines: Array<{ name: string; status: string; identity: { machineId: string; sshHostKeys: Array<{ sha256: string }> } }> };
  it('apply succeeds on all, verified, with a schema-valid report and known_hosts', () => {
    const r = ghostprep(['apply', ...common, '--report', path.join(work, 'report.json'), '--known-hosts', path.join(work, 'known_hosts')]);
    expect(r.status, r.stdout + r.stderr).to.equal(0);
    report = JSON.parse(readFileSync(path.join(work, 'report.json'), 'utf8'));
    expect(validateAgainst('report', report)).to.deep.equal([]);
    expect(report.machines.map((m) => m.status)).to.deep.equal(names.map(() => 'ok'));
    const kh = readFileSync(path.join(work, 'known_hosts'), 'utf8');
    expect(kh).to.include('n-rocky9.e2e.example.org,n-rocky9,10.1.0.12 ssh-ed25519 ');
    expect(kh.trim().split('\n')).to.have.length(names.length * 2);
    const text = readFileSync(path.join(work, 'report.json'), 'utf8');
    expect(text).to.not.match(/PRIVATE KEY|\$6\$salt/);
  });

  it('plan after apply shows no changes (exit 0) and apply again changes nothing', () => {
    expect(ghostprep(['plan', ...common, '--detailed-exitcode']).status).to.equal(0);
    const before = treeDigest(trees);
    const again = ghostprep(['apply', ...common, '--json']);
    expect(again.status).to.equal(0);
    const rep = JSON.parse(again.stdout);
    expect(rep.machines.every((m: { changes: unknown[] }) => m.changes.length === 0)).to.equal(true);
    expect(rep.machines.map((m: { identity: { machineId: string } }) => m.identity.machineId)).to.deep.equal(report.machines.map((m) => m.identity.machineId));
    expect(treeDigest(trees)).to.equal(before);
  });

  it('audit after apply: every identity unique (exit 0)', () => {
    const r = ghostprep(['audit', '--target', `rootfs:${trees}/*`]);
    expect(r.status, r.stdout).to.equal(0);
    expect(r.stdout).to.include(`audit: ${names.length} target(s), every identity unique`);
  });

  it('wrote identity files per family as each distribution expects', () => {
    const t = (n: string, p: string) => path.join(trees, `n-${n}`, p);
    const read = (n: string, p: string) => readFileSync(t(n, p), 'utf8');
    for (const [i, f] of ROOTFS_FIXTURES.entries()) {
      expect(read(f, 'etc/hostname')).to.equal(`n-${f}\n`);
      expect(read(f, 'etc/machine-id')).to.equal(report.machines[i]!.identity.machineId + '\n');
      expect(read(f, 'etc/ssh/ssh_host_ed25519_key.pub')).to.match(new RegExp(`^ssh-ed25519 \\S+ root@n-${f}\\.e2e\\.example\\.org\\n$`));
      expect(() => statSync(t(f, 'etc/ssh/ssh_host_rsa_key'))).to.throw(/ENOENT/); // stale type removed
      expect(read(f, 'etc/ghostprep-node')).to.match(/^n-\S+\.e2e\.example\.org (debian|rhel|suse|arch|alpine)\n$/);
      expect(statSync(t(f, 'etc/ghostprep-node')).mode & 0o777).to.equal(0o640);
      expect(read(f, 'etc/passwd')).to.include('ops:x:1501:');
      expect(read(f, 'etc/passwd')).to.include('master:x:1000:'); // other lines kept
      expect(read(f, 'root/.ssh/authorized_keys')).to.equal('ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEwq1bhOmRG6CDIGM8nxhTzXxOSqMGsnLY0VoTzOKPBe admin@e2e\n');
      expect(() => lstatSync(t(f, 'home/master/.bash_history'))).to.throw(/ENOENT/);
    }
    expect(read('debian12', 'etc/hosts')).to.include('127.0.1.1\tn-debian12.e2e.example.org n-debian12\n');
    expect(read('debian12', 'var/lib/dbus/machine-id')).to.equal(read('debian12', 'etc/machine-id'));
    expect(lstatSync(t('ubuntu2204', 'var/lib/dbus/machine-id')).isSymbolicLink()).to.equal(true);
    expect(readlinkSync(t('debian12', 'etc/localtime'))).to.equal('../usr/share/zoneinfo/Europe/Berlin');
    expect(read('alpine319', 'etc/timezone')).to.equal('Europe/Berlin\n');
    expect(read('debian12', 'etc/group')).to.match(/^sudo:x:27:.*ops/m);
    expect(read('rocky9', 'etc/group')).to.match(/^wheel:x:10:.*ops/m);
    expect(read('opensuse155', 'etc/HOSTNAME')).to.equal('n-opensuse155.e2e.example.org\n');
    expect(statSync(t('alpine319', 'etc/local.d/ghostprep-firstboot.start')).mode & 0o111).to.not.equal(0);
    expect(readlinkSync(t('debian12', 'etc/systemd/system/multi-user.target.wants/ghostprep-firstboot.service'))).to.equal('/etc/systemd/system/ghostprep-firstboot.service');
    expect(() => lstatSync(t('rocky9', 'var/lib/NetworkManager/secret_key'))).to.throw(/ENOENT/);
    expect(read('rocky9', 'etc/iscsi/initiatorname.iscsi')).to.match(/^InitiatorName=iqn\.[^:]+:[0-9a-f]{12}\n$/);
    if (process.getuid?.() === 0) {
      const key = statSync(t('rocky8', 'etc/ssh/ssh_host_ed25519_key'));
      expect([key.mode & 0o777, key.gid]).to.deep.equal([0o640, 995]);
      expect(statSync(t('debian12', 'etc/ssh/ssh_host_ed25519_key')).mode & 0o777).to.equal(0o600);
      expect(statSync(t('debian12', 'etc/shadow')).gid).to.equal(42);
    }
  });

  it('wrote each family\'s network files and removed the master\'s conflicting ones', () => {
    const has = (f: string, p: string) => existsSync(path.join(trees, `n-${f}`, p));
    const expected: Record<string, { ours: string; stale?: string }> = {
      debian12: { ours: 'etc/network/interfaces.d/50-ghostprep' },
      ubuntu2204: { ours: 'etc/netplan/50-ghostprep.yaml', stale: 'etc/netplan/00-installer-config.yaml' },
      rocky9: { ours: 'etc/NetworkManager/system-connections/ghostprep-lan.nmconnection', stale: 'etc/NetworkManager/system-connections/ens3.nmconnection' },
      rocky8: { ours: 'etc/NetworkManager/system-connections/ghostprep-lan.nmconnection', stale: 'etc/sysconfig/network-scripts/ifcfg-eth0' },
      fedora40: { ours: 'etc/NetworkManager/system-connections/ghostprep-lan.nmconnection' },
      opensuse155: { ours: 'etc/sysconfig/network/ifcfg-lan', stale: 'etc/sysconfig/network/ifcfg-eth0' },
      arch: { ours: 'etc/systemd/network/10-ghostprep-lan.network', stale: 'etc/systemd/network/20-wired.network' },
      alpine319: { ours: 'etc/network/interfaces.d/50-ghostprep' },
    };
    for (const [f, e] of Object.entries(expected)) {
      expect(has(f, e.ours), `${f}: ${e.ours}`).to.equal(true);
      if (e.stale) expect(has(f, e.stale), `${f}: ${e.stale} removed`).to.equal(false);
    }
    const nm = readFileSync(path.join(trees, 'n-rocky9/etc/NetworkManager/system-connections/ghostprep-lan.nmconnection'), 'utf8');
    expect(nm).to.include('10.1.0.12/24');
    expect(statSync(path.join(trees, 'n-ubuntu2204/etc/netplan/50-ghostprep.yaml')).mode & 0o777).to.equal(0o600);
  });

  it('keeps the identity in a private state dir', () => {
    expect(statSync(state).mode & 0o777).to.equal(0o700);
    expect(statSync(path.join(state, 'n-arch/ssh/ssh_host_ed25519_key')).mode & 0o777).to.equal(0o600);
    expect(readFileSync(path.join(state, 'n-arch/ssh/ssh_host_ed25519_key'), 'utf8')).to.include('PRIVATE KEY');
  });

  it('inspect reads the new identity back', () => {
    const r = ghostprep(['inspect', '--target', `rootfs:${trees}/n-fedora40`, '--json']);
    expect(r.status).to.equal(0);
    const out = JSON.parse(r.stdout);
    expect(out.identity).to.deep.include({ hostname: 'n-fedora40', machineId: report.machines[4]!.identity.machineId });
    expect(out.identity.sshHostKeys.map((k: { sha256: string }) => k.sha256)).to.include(report.machines[4]!.identity.sshHostKeys[0]!.sha256);
  });

  it('a machine whose target is broken fails alone (exit 3)', () => {
    const inv = path.join(work, 'inv2.yaml');
    writeFileSync(inv, 'defaults: {profile: e2e}\nmachines:\n  - {name: n-arch, mac: "52:54:00:e2:e0:16", ip: 10.1.0.16/24}\n  - {name: ghost, mac: "52:54:00:e2:e0:99", ip: 10.1.0.99/24}\n');
    const r = ghostprep(['apply', '-p', path.join(work, 'e2e.yaml'), '-i', inv, '--target', `rootfs:${trees}/{name}`, '--state', state, '--json']);
    expect(r.status).to.equal(3);
    const rep = JSON.parse(r.stdout);
    expect(rep.machines.map((m: { status: string }) => m.status)).to.deep.equal(['ok', 'failed']);
    expect(rep.machines[1].error).to.match(/does not exist/);
  });

  it('invalid input stops everything before any write (exit 1)', () => {
    const bad = path.join(work, 'bad.yaml');
    writeFileSync(bad, PROFILE.replace('machineId: generate', 'machineId: generate\nhostnme: x'));
    const before = treeDigest(trees);
    const r = ghostprep(['apply', '-p', bad, '-i', path.join(work, 'inv.yaml'), '--target', `rootfs:${trees}/{name}`, '--state', state]);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/bad\.yaml:\d+:1: error: \/hostnme: unknown key "hostnme" \(did you mean "hostname"\?\)/);
    expect(treeDigest(trees)).to.equal(before);
  });
});

describe('e2e: apply on a hostile tree never touches the host', function () {
  this.timeout(120_000);
  it('writes inside the root although /etc/hostname, /etc/ssh and /root point outside', () => {
    const work = tempDir('ghostprep-hostile-e2e-');
    const root = copyFixture('debian12', path.join(work, 'trees', 'evil'));
    const outside = path.join(work, 'outside');
    mkdirSync(outside);
    writeFileSync(path.join(outside, 'hostname'), 'HOST FILE\n');
    cpSync(path.join(root, 'etc/ssh'), path.join(outside, 'ssh'), { recursive: true });
    // /etc/hostname -> an absolute host path; /etc/ssh -> a ".." chain to the host; /root -> /
    unlinkSync(path.join(root, 'etc/hostname'));
    symlinkSync(path.join(outside, 'hostname'), path.join(root, 'etc/hostname'));
    renameSync(path.join(root, 'etc/ssh'), path.join(root, 'etc/ssh.orig'));
    symlinkSync('../../../../../../../../..' + path.join(outside, 'ssh'), path.join(root, 'etc/ssh'));
    const before = treeDigest(outside);
    writeFileSync(path.join(work, 'e2e.yaml'), PROFILE);
    writeFileSync(path.join(work, 'inv.yaml'), 'defaults: {profile: e2e}\nmachines: [{name: evil, mac: "52:54:00:e2:e0:50", ip: 10.1.0.50/24}]\n');
    const r = ghostprep(['apply', '-p', path.join(work, 'e2e.yaml'), '-i', path.join(work, 'inv.yaml'), '--target', `rootfs:${path.join(work, 'trees')}/{name}`, '--state', path.join(work, 'state')]);
    expect(r.status, r.stdout + r.stderr).to.equal(0);
    expect(treeDigest(outside)).to.equal(before);
    // the links resolved inside the root: the host paths re-rooted under the tree got the files
    expect(readFileSync(path.join(root, 'etc/hostname'), 'utf8')).to.equal('evil\n');
    expect(readFileSync(path.join(root, outside.slice(1), 'ssh/ssh_host_ed25519_key.pub'), 'utf8')).to.include('root@evil.e2e.example.org');
  });
});
