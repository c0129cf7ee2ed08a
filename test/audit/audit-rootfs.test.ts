/**
 * audit, inspect's DHCP identity and seal --check on rootfs trees (no
 * appliance): the CLI end to end, and the seal check as a property over
 * identity files planted into a sealed master.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { ghostprep } from '../helpers/cli.js';
import { copyFixture, tempDir } from '../helpers/rootfs.js';
import { systemdDuidEn, formatDuid } from '../../src/audit/dhcp.js';
import { checkSealTargets } from '../../src/fleet/seal-check.js';

const MID_A = '0123456789abcdef0123456789abcdef';
const MID_B = 'fedcba9876543210fedcba9876543210';

function put(root: string, p: string, content: string): void {
  fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
  fs.writeFileSync(path.join(root, p), content);
}

describe('audit on rootfs trees: every file identity, collisions per kind', function () {
  this.timeout(120_000);
  let dir: string;
  before(() => { dir = tempDir('ghostprep-audit-'); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('two clones of one master collide on every identity they share, and only those', () => {
    const a = copyFixture('rocky9', path.join(dir, 'a'));
    const b = copyFixture('rocky9', path.join(dir, 'b'));
    for (const root of [a, b]) {
      put(root, 'var/lib/cloud/data/instance-id', 'iid-master\n');
      put(root, 'var/lib/cloud/seed/nocloud/meta-data', 'instance-id: iid-seed-1\nlocal-hostname: master\n');
      put(root, 'etc/iscsi/initiatorname.iscsi', 'InitiatorName=iqn.1994-05.com.redhat:master01\n');
      put(root, 'var/lib/NetworkManager/secret_key', 'not a real secret, test only');
    }
    put(b, 'etc/machine-id', `${MID_B}\n`);
    put(a, 'etc/machine-id', `${MID_A}\n`);
    put(b, 'etc/hostname', 'node-b\n');
    put(a, 'etc/hostname', 'node-a\n');
    const r = ghostprep(['audit', '--target', `rootfs:${dir}/*`, '--json']);
    expect(r.status, r.stderr).to.equal(5);
    const j = JSON.parse(r.stdout) as { duplicates: Array<{ kind: string; value: string; targets: string[] }>; identities: Array<{ target: string; identity: { files: { dhcp: { systemd: { duid: string } } } } }> };
    const kinds = new Set(j.duplicates.map((d) => d.kind));
    for (const k of ['nm-connection-uuid', 'iscsi-initiator-name', 'cloud-init-instance-id', 'nm-secret-key', 'ssh-host-key']) expect(kinds, k).to.include(k);
    for (const k of ['machine-id', 'hostname', 'dhcp-duid']) expect(kinds, k).to.not.include(k);
    for (const d of j.duplicates) expect(d.targets).to.deep.equal([`rootfs:${a}`, `rootfs:${b}`]);
    expect(j.duplicates.find((d) => d.kind === 'cloud-init-instance-id' && d.value === 'iid-seed-1')).to.not.equal(undefined);
    expect(j.duplicates.find((d) => d.kind === 'nm-secret-key')!.value).to.match(/^sha256:/).and.not.include('secret');
    // the DUID each clone will send is systemd's, from its own machine-id
    const duid = (t: string) => j.identities.find((i) => i.target === `rootfs:${t}`)!.identity.files.dhcp.systemd.duid;
    expect(duid(a)).to.equal(formatDuid(systemdDuidEn(MID_A)));
    expect(duid(b)).to.equal(formatDuid(systemdDuidEn(MID_B)));
    // text output names each collision and its clones
    const t = ghostprep(['audit', '--target', `rootfs:${dir}/*`]);
    expect(t.status).to.equal(5);
    expect(t.stdout).to.match(/iscsi-initiator-name iqn\.1994-05\.com\.redhat:master01 shared by 2: rootfs:\S+\/a, rootfs:\S+\/b/);
  });

  it('a dhclient default-duid shared by two clones is a collision even with different machine-ids', () => {
    const root = path.join(dir, 'dh');
    const a = copyFixture('debian12', path.join(root, 'a'));
    const b = copyFixture('debian12', path.join(root, 'b'));
    put(a, 'etc/machine-id', `${MID_A}\n`);
    put(b, 'etc/machine-id', `${MID_B}\n`);
    for (const x of [a, b]) { put(x, 'var/lib/dhcp/dhclient6.leases', 'default-duid "\\000\\001\\000\\001\\036\\2103XRT\\000\\026>\\021\\"\\003";\n'); }
    const r = ghostprep(['audit', '--target', `rootfs:${root}/a`, '--target', `rootfs:${root}/b`, '--json']);
    const j = JSON.parse(r.stdout) as { duplicates: Array<{ kind: string; value: string }> };
    expect(j.duplicates.filter((d) => d.kind === 'dhcp-duid').map((d) => d.value)).to.deep.equal(['00:01:00:01:1e:88:33:58:52:54:00:16:3e:11:22:03']);
    const i = ghostprep(['inspect', '--target', `rootfs:${a}`]);
    expect(i.stdout).to.include(`dhcp duid:   ${formatDuid(systemdDuidEn(MID_A))} (systemd-networkd, machine-id (DUID-EN))`);
    expect(i.stdout).to.match(/dhcp files:  .*\/var\/lib\/dhcp\/dhclient6\.leases.*\(a clone should have none\)/);
  });
});

describe('seal --check: a master that clones would inherit identity from is refused, item by item', function () {
  this.timeout(300_000);
  let dir: string;
  let sealed: string;
  before(() => {
    dir = tempDir('ghostprep-sealcheck-');
    sealed = copyFixture('debian12', path.join(dir, 'sealed'));
    const s = ghostprep(['seal', '--target', `rootfs:${sealed}`]);
    expect(s.status, s.stderr).to.equal(0);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('an unsealed master: exit 5, each item with the seal op that removes it; sealed: exit 0', () => {
    const m = copyFixture('debian12', path.join(dir, 'm'));
    const r = ghostprep(['seal', '--check', '--target', `rootfs:${m}`, '--json']);
    expect(r.status, r.stderr).to.equal(5);
    const [res] = JSON.parse(r.stdout) as Array<{ findings: Array<{ item: string; path: string; operation: string | null }> }>;
    const byPath = new Map(res!.findings.map((f) => [f.path, f.operation]));
    expect(byPath.get('/etc/machine-id')).to.equal('machine-id');
    expect(byPath.get('/etc/ssh/ssh_host_ed25519_key')).to.equal('ssh-host-keys');
    expect(byPath.get('/etc/iscsi/initiatorname.iscsi')).to.equal('iscsi-initiator');
    expect(byPath.get('/var/lib/dhcp/dhclient.leases')).to.equal('dhcp');
    expect(byPath.get('/var/lib/systemd/random-seed')).to.equal('random-seed');
    const text = ghostprep(['seal', '--check', '--target', `rootfs:${m}`]);
    expect(text.stdout).to.match(/machine-id: \/etc\/machine-id {2}\(seal op machine-id: /);
    const ok = ghostprep(['seal', '--check', '--target', `rootfs:${sealed}`]);
    expect(ok.status, ok.stdout + ok.stderr).to.equal(0);
    expect(ok.stdout).to.include('sealed (no identity a clone would inherit)');
    expect(ghostprep(['seal', '--check', '--dry-run', '--target', `rootfs:${m}`]).status).to.equal(1);
  });

  it('property: identity files planted into a sealed master are exactly what the check lists, with their seal op (or none)', async () => {
    // `listed`: what the check names when the seal operation removes a whole directory
    const plantable: Array<{ path: string; content: string; op: string | null; listed?: string }> = [
      { path: '/etc/machine-id', content: `${MID_A}\n`, op: 'machine-id' },
      { path: '/var/lib/dbus/machine-id', content: `${MID_A}\n`, op: 'dbus-machine-id' },
      { path: '/etc/ssh/ssh_host_ed25519_key.pub', content: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEnZsvB3wTWHjYn7LdEkZl0/nUvx8kQxh8PZ0o3xYgRb root@master\n', op: 'ssh-host-keys' },
      { path: '/var/lib/dhcp/dhclient.eth0.leases', content: 'lease {}\n', op: 'dhcp' },
      { path: '/var/lib/NetworkManager/secret_key', content: 'not a real secret, test only', op: 'network-manager' },
      { path: '/var/lib/cloud/data/instance-id', content: 'iid-master\n', op: 'cloud-init', listed: '/var/lib/cloud/data' },
      { path: '/etc/iscsi/initiatorname.iscsi', content: 'InitiatorName=iqn.1993-08.org.debian:01:abcdef\n', op: 'iscsi-initiator' },
      { path: '/var/lib/systemd/random-seed', content: 'seed', op: 'random-seed' },
      { path: '/var/lib/systemd/credential.secret', content: 'not a real secret', op: 'credential-secret' },
      { path: '/etc/NetworkManager/system-connections/lan.nmconnection', content: '[connection]\nid=lan\nuuid=5b7c4a8e-2f3d-4e1a-9c6b-0d8e7f6a5b4c\ntype=ethernet\n', op: null },
      { path: '/var/lib/cloud/seed/nocloud/meta-data', content: 'instance-id: iid-seed\n', op: null },
    ];
    let n = 0;
    await fc.assert(fc.asyncProperty(fc.subarray(plantable), async (chosen) => {
      const root = path.join(dir, `p${n++}`);
      fs.cpSync(sealed, root, { recursive: true, verbatimSymlinks: true });
      for (const c of chosen) put(root, c.path.slice(1), c.content);
      const [res] = await checkSealTargets([{ kind: 'rootfs', path: root }]);
      expect(res!.error).to.equal(null);
      const got = res!.findings.map((f) => `${f.path} ${f.operation}`).sort();
      expect(got).to.deep.equal(chosen.map((c) => `${c.listed ?? c.path} ${c.op}`).sort());
      fs.rmSync(root, { recursive: true, force: true });
    }), { numRuns: 12 });
  });
});
