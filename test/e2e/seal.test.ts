import { expect } from 'chai';
import { presetLines } from '../../src/operations/seal/systemd-presets.js';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { selectSealOperations } from '../../src/fleet/seal.js';
import { copyFixture, ROOTFS_FIXTURES, tempDir } from '../helpers/rootfs.js';
import { ghostprep, treeDigest } from '../helpers/cli.js';

describe('seal: --ops selection', () => {
  const names = (l?: string) => selectSealOperations(l).map((o) => o.name);
  it('defaults to the operations marked on', () => {
    expect(names()).to.include('machine-id').and.not.include('package-cache').and.not.include('user-accounts');
  });
  it('adds and removes with +name and -name, or takes an explicit list', () => {
    expect(names('+package-cache,-logs')).to.include('package-cache').and.not.include('logs');
    expect(names('machine-id,ssh-host-keys')).to.deep.equal(['machine-id', 'ssh-host-keys']);
    expect(() => names('machine-idd')).to.throw(/unknown seal operation "machine-idd"/);
  });
});

describe('seal --list', () => {
  it('lists every seal operation with its description, default ones marked *', () => {
    const text = ghostprep(['seal', '--list']);
    expect(text.status, text.stderr).to.equal(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines).to.have.length(selectSealOperations('+package-cache,+user-accounts').length);
    expect(lines.find((l) => l.startsWith('lvm-devices '))).to.match(/^lvm-devices\s+\* remove \/etc\/lvm\/devices\/system\.devices/);
    expect(lines.find((l) => l.startsWith('package-cache '))).to.match(/^package-cache\s+ \S/);
    const json = JSON.parse(ghostprep(['seal', '--list', '--json']).stdout) as Array<{ name: string; description: string; defaultEnabled: boolean }>;
    expect(json.map((o) => o.name)).to.deep.equal(lines.map((l) => l.split(/\s+/)[0]));
    expect(json.find((o) => o.name === 'machine-id')).to.include({ defaultEnabled: true });
    expect(json.find((o) => o.name === 'user-accounts')).to.include({ defaultEnabled: false });
  });
});

describe('e2e: seal on every fixture family', function () {
  this.timeout(300_000);
  const work = tempDir('ghostprep-seal-');
  before(() => { for (const f of ROOTFS_FIXTURES) copyFixture(f, path.join(work, f)); });

  it('--dry-run lists what it would remove and changes nothing', () => {
    const before = treeDigest(work);
    const r = ghostprep(['seal', '--target', `rootfs:${work}/*`, '--dry-run', '--json']);
    expect(r.status, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout) as Array<{ target: string; changes: Array<{ path: string; operation: string }> }>;
    expect(out).to.have.length(ROOTFS_FIXTURES.length);
    const deb = out.find((x) => x.target.endsWith('debian12'))!;
    expect(deb.changes.map((c) => c.path)).to.include.members(['/etc/machine-id', '/etc/ssh/ssh_host_ed25519_key', '/var/lib/systemd/random-seed', '/var/lib/dhcp/dhclient.leases', '/home/master/.bash_history']);
    const rocky = out.find((x) => x.target.endsWith('rocky9'))!;
    expect(rocky.changes.filter((c) => c.operation === 'lvm-devices').map((c) => c.path)).to.deep.equal(['/etc/lvm/devices/system.devices']);
    expect(treeDigest(work)).to.equal(before);
  });

  it('seals, and sealing twice changes nothing the second time', () => {
    expect(ghostprep(['seal', '--target', `rootfs:${work}/*`]).status).to.equal(0);
    const before = treeDigest(work);
    const again = ghostprep(['seal', '--target', `rootfs:${work}/*`, '--json']);
    expect(again.status).to.equal(0);
    expect(JSON.parse(again.stdout).every((r: { changes: unknown[] }) => r.changes.length === 0)).to.equal(true);
    expect(treeDigest(work)).to.equal(before);
  });

  it('leaves systemd\'s first-boot marker, no host keys and a key generator unit', () => {
    for (const f of ROOTFS_FIXTURES.filter((x) => x !== 'alpine319')) {
      const root = path.join(work, f);
      expect(readFileSync(path.join(root, 'etc/machine-id'), 'utf8'), f).to.equal('uninitialized\n');
      expect(existsSync(path.join(root, 'etc/ssh/ssh_host_ed25519_key')), f).to.equal(false);
      expect(readlinkSync(path.join(root, 'etc/systemd/system/multi-user.target.wants/ghostprep-ssh-keygen.service'))).to.equal('/etc/systemd/system/ghostprep-ssh-keygen.service');
      expect(readFileSync(path.join(root, 'etc/systemd/system/ghostprep-ssh-keygen.service'), 'utf8')).to.include('ExecStart=/usr/bin/ssh-keygen -A');
    }
    expect(existsSync(path.join(work, 'alpine319/etc/machine-id'))).to.equal(false);
    expect(existsSync(path.join(work, 'rocky9/var/lib/NetworkManager/secret_key'))).to.equal(false);
    expect(existsSync(path.join(work, 'rocky9/etc/NetworkManager/system-connections/ens3.nmconnection'))).to.equal(false);
    expect(existsSync(path.join(work, 'rocky8/etc/udev/rules.d/70-persistent-net.rules'))).to.equal(false);
    expect(existsSync(path.join(work, 'rocky9/etc/lvm/devices/system.devices'))).to.equal(false);
    expect(readFileSync(path.join(work, 'debian12/etc/iscsi/initiatorname.iscsi'), 'utf8')).to.include('GenerateName=yes');
    expect(lstatSync(path.join(work, 'ubuntu2204/var/lib/dbus/machine-id')).isSymbolicLink()).to.equal(true);
    expect(existsSync(path.join(work, 'debian12/var/lib/dbus/machine-id'))).to.equal(false);
    expect(existsSync(path.join(work, 'ubuntu2204/var/lib/cloud/instance'))).to.equal(false);
    expect(readFileSync(path.join(work, 'debian12/etc/passwd'), 'utf8')).to.include('master:x:1000'); // user-accounts is off by default
  });

  it('keeps the master\'s enabled units at first boot with a preset file (enabled units, then disable *)', () => {
    const preset = readFileSync(path.join(work, 'debian12/etc/systemd/system-preset/00-ghostprep-sealed.preset'), 'utf8');
    expect(preset.split('\n').filter((l) => l && !l.startsWith('#'))).to.deep.equal([
      'enable ghostprep-ssh-keygen.service', 'enable networking.service', 'enable ssh.service', 'disable *',
    ]);
    expect(existsSync(path.join(work, 'alpine319/etc/systemd/system-preset'))).to.equal(false);
    expect(presetLines(['getty@tty1.service', 'getty@tty2.service', 'a.timer', 'a.timer', 'bad name\n.service'])).to.deep.equal([
      'enable a.timer', 'enable getty@.service tty1 tty2',
    ]);
  });

  it('inspect says sealed, or what still identifies the master', () => {
    const sealed = JSON.parse(ghostprep(['inspect', '--target', `rootfs:${work}/debian12`, '--json']).stdout);
    expect(sealed.seal).to.deep.equal({ sealed: true, identifying: [] });
    const fresh = copyFixture('debian12', path.join(tempDir(), 'm'));
    const unsealed = JSON.parse(ghostprep(['inspect', '--target', `rootfs:${fresh}`, '--json']).stdout);
    expect(unsealed.seal.sealed).to.equal(false);
    expect(unsealed.seal.identifying.map((i: { path: string }) => i.path)).to.include('/etc/machine-id');
  });

  it('a clone of a sealed master gets its identity from apply', () => {
    const clones = path.join(work, 'clones');
    mkdirSync(clones);
    copyFixture('debian12', path.join(clones, 'c1'));
    ghostprep(['seal', '--target', `rootfs:${clones}/c1`]);
    writeFileSync(path.join(work, 'p.yaml'), 'profile: p\nssh: {hostKeys: [ed25519]}\n');
    writeFileSync(path.join(work, 'i.yaml'), 'machines: [{name: c1, profile: p}]\n');
    const r = ghostprep(['apply', '-p', path.join(work, 'p.yaml'), '-i', path.join(work, 'i.yaml'), '--target', `rootfs:${clones}/{name}`, '--state', path.join(work, 'state')]);
    expect(r.status, r.stderr).to.equal(0);
    expect(readFileSync(path.join(clones, 'c1/etc/machine-id'), 'utf8')).to.match(/^[0-9a-f]{32}\n$/);
    expect(existsSync(path.join(clones, 'c1/etc/ssh/ssh_host_ed25519_key'))).to.equal(true);
    expect(existsSync(path.join(clones, 'c1/etc/systemd/system/ghostprep-ssh-keygen.service'))).to.equal(false);
  });

  it('apply removes the seal\'s first-boot ssh-keygen unit, so a clone keeps only the key types of its profile (shown in plan)', () => {
    const clones = path.join(work, 'rsa-clones');
    mkdirSync(clones);
    copyFixture('rocky9', path.join(clones, 'r1'));
    expect(ghostprep(['seal', '--target', `rootfs:${clones}/r1`]).status).to.equal(0);
    const unit = '/etc/systemd/system/ghostprep-ssh-keygen.service';
    const link = '/etc/systemd/system/multi-user.target.wants/ghostprep-ssh-keygen.service';
    // a second enablement link, as `systemctl enable` would make from WantedBy=sshd.service
    mkdirSync(path.join(clones, 'r1/etc/systemd/system/sshd.service.wants'));
    symlinkSync(unit, path.join(clones, 'r1/etc/systemd/system/sshd.service.wants/ghostprep-ssh-keygen.service'));
    writeFileSync(path.join(work, 'rsa.yaml'), 'profile: rsa\nssh: {hostKeys: [rsa]}\n');
    writeFileSync(path.join(work, 'rsa-inv.yaml'), 'machines: [{name: r1, profile: rsa}]\n');
    const args = ['-p', path.join(work, 'rsa.yaml'), '-i', path.join(work, 'rsa-inv.yaml'), '--target', `rootfs:${clones}/{name}`, '--state', path.join(work, 'rsa-state')];
    const plan = ghostprep(['plan', ...args, '--json']);
    expect(plan.status, plan.stderr).to.equal(0);
    const deletes = (JSON.parse(plan.stdout).machines[0].diff as string).split('\n')
      .map((l) => /^# delete (\S+) \(ssh-host-keys: /.exec(l)?.[1]).filter(Boolean);
    expect(deletes).to.have.members([unit, link, '/etc/systemd/system/sshd.service.wants/ghostprep-ssh-keygen.service']);
    const r = ghostprep(['apply', ...args]);
    expect(r.status, r.stderr).to.equal(0);
    const root = path.join(clones, 'r1');
    for (const p of [unit, link, '/etc/systemd/system/sshd.service.wants/ghostprep-ssh-keygen.service']) expect(() => lstatSync(path.join(root, p)), p).to.throw(/ENOENT/);
    expect(readdirSync(path.join(root, 'etc/ssh')).filter((f) => f.startsWith('ssh_host_')).sort()).to.deep.equal(['ssh_host_rsa_key', 'ssh_host_rsa_key.pub']);
    expect(ghostprep(['plan', ...args, '--detailed-exitcode']).status).to.equal(0);
  });
});
