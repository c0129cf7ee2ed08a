import { expect } from 'chai';
import { MemoryGuest } from '../../src/backends/memory.js';
import { RENDERER_NAMES, interpret, planNetwork } from '../../src/network/index.js';
import { RendererTable, RENDERERS } from '../../src/network/renderers/index.js';
import type { FileChange, WriteChange } from '../../src/core/file-change.js';
import { DISTROS } from './helpers.js';

const config = { version: 2, ethernets: { lan: { match: { macaddress: '52:54:00:aa:bb:01' }, 'set-name': 'lan', addresses: ['10.0.0.11/24'], routes: [{ to: 'default', via: '10.0.0.1' }], nameservers: { addresses: ['10.0.0.2'] } } } };
const wants = (unit: string) => ({ [`/etc/systemd/system/multi-user.target.wants/${unit}`]: { symlink: `/lib/systemd/system/${unit}` } });

/** Apply a plan to a MemoryGuest the way plan/apply would. */
async function apply(g: MemoryGuest, changes: FileChange[]): Promise<void> {
  for (const c of changes) {
    if (c.op === 'write') await g.writeFile(c.path, c.content, c);
    else if (c.op === 'delete') await g.remove(c.path);
  }
}

describe('planNetwork', () => {
  it('netplan guest: writes 50-ghostprep.yaml 0600 root with the reason, removes the master file', async () => {
    const g = new MemoryGuest({ '/etc/os-release': 'ID=ubuntu\n', '/usr/sbin/netplan': '', '/etc/netplan/50-cloud-init.yaml': 'network:\n  version: 2\n  ethernets:\n    eth0: {dhcp4: true, match: {macaddress: "52:54:00:12:34:56"}}\n' });
    const plan = await planNetwork({ config, distro: DISTROS.ubuntu, reader: g });
    expect(plan.renderer).to.equal('netplan');
    expect(plan.reason).to.equal('/usr/sbin/netplan present');
    const w = plan.changes[0] as WriteChange;
    expect(w).to.include({ op: 'write', path: '/etc/netplan/50-ghostprep.yaml', mode: 0o600, uid: 0, gid: 0, source: 'network', reason: 'renderer netplan: /usr/sbin/netplan present' });
    expect(Buffer.isBuffer(w.content)).to.equal(true);
    expect(plan.changes.map((c) => `${c.op} ${c.path}`)).to.deep.equal(['write /etc/netplan/50-ghostprep.yaml', 'delete /etc/netplan/50-cloud-init.yaml']);
  });
  it('ENI guest: adds the source line and removes the master stanzas in ONE rewrite of /etc/network/interfaces', async () => {
    const g = new MemoryGuest({ '/etc/network/interfaces': 'auto lo\niface lo inet loopback\n\nauto lan\niface lan inet dhcp\n', '/sbin/ifup': '', '/etc/resolv.conf': { symlink: '../run/resolvconf/resolv.conf' } });
    const plan = await planNetwork({ config, distro: DISTROS.debian, reader: g });
    expect(plan.renderer).to.equal('eni');
    const main = plan.changes.filter((c) => c.path === '/etc/network/interfaces');
    expect(main).to.have.length(1);
    expect((main[0] as WriteChange).content.toString()).to.equal('auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n');
    expect(plan.changes.map((c) => c.path)).to.not.include('/etc/resolv.conf');
  });
  it('is idempotent: after apply, a new plan writes identical bytes and deletes nothing', async () => {
    for (const [distro, extra] of [[DISTROS.rocky9, wants('NetworkManager.service')], [DISTROS.sles15, wants('wicked.service')], [DISTROS.debian, { '/etc/network/interfaces': 'auto lo\niface lo inet loopback\n', '/sbin/ifup': '' }], [DISTROS.arch, wants('systemd-networkd.service')]] as const) {
      const g = new MemoryGuest({ ...extra, '/etc/udev/rules.d/70-persistent-net.rules': 'x\n', '/etc/sysconfig/network/config': 'NETCONFIG_DNS_POLICY="auto"\nNETCONFIG_DNS_STATIC_SERVERS=""\n' });
      await apply(g, (await planNetwork({ config, distro, reader: g })).changes);
      const again = await planNetwork({ config, distro, reader: g });
      for (const c of again.changes) {
        expect(c.op, `${distro.id} ${c.path}`).to.equal('write');
        expect((c as WriteChange).content.toString(), `${distro.id} ${c.path}`).to.equal(g.text(c.path));
      }
    }
  });
  it('deletes files of a previous run with another renderer', async () => {
    const g = new MemoryGuest({ ...wants('systemd-networkd.service') });
    await apply(g, (await planNetwork({ config, distro: DISTROS.arch, reader: g })).changes);
    const plan = await planNetwork({ config, distro: DISTROS.arch, reader: g, renderer: 'network-manager' });
    expect(plan.changes.filter((c) => c.op === 'delete').map((c) => c.path)).to.deep.equal(['/etc/systemd/network/10-ghostprep-lan.network']);
  });
  it('refuses what a renderer cannot express, naming the interface and the fix', async () => {
    const macOnly = { version: 2, ethernets: { up: { match: { macaddress: '52:54:00:12:34:56' }, dhcp4: true } } };
    try { await planNetwork({ config: macOnly, distro: DISTROS.debian, reader: new MemoryGuest({}), renderer: 'eni' }); expect.fail('should throw'); } catch (err) {
      expect((err as Error).message).to.contain('ethernets/up: renderer eni needs a kernel interface name').and.contain('add set-name');
    }
  });
});

describe('renderer table', () => {
  it('lists the five renderers sorted', () => {
    expect(RENDERER_NAMES).to.deep.equal(['eni', 'ifcfg', 'netplan', 'network-manager', 'networkd']);
    for (const r of RENDERERS.all()) expect(r.description).to.be.a('string').and.not.equal('');
  });
  it('refuses duplicate names', () => {
    const r = RENDERERS.get('eni')!;
    expect(() => new RendererTable([r, r])).to.throw('duplicate network renderer name: eni');
  });
  it('writes the DESIGN paths and modes (golden files carry no modes)', () => {
    const expected: [string, typeof DISTROS.debian, RegExp, number][] = [
      ['netplan', DISTROS.ubuntu, /^\/etc\/netplan\/50-ghostprep\.yaml$/, 0o600],
      ['networkd', DISTROS.arch, /^\/etc\/systemd\/network\/10-ghostprep-[^/]+\.(network|netdev|link)$/, 0o644],
      ['network-manager', DISTROS.rocky9, /^\/etc\/NetworkManager\/system-connections\/ghostprep-[^/]+\.nmconnection$/, 0o600],
      ['ifcfg', DISTROS.centos7, /^\/etc\/sysconfig\/network-scripts\/(ifcfg|route|route6)-[^/]+$/, 0o644],
      ['ifcfg', DISTROS.sles15, /^\/etc\/sysconfig\/network\/(ifcfg|ifroute)-[^/]+$/, 0o644],
      ['eni', DISTROS.debian, /^\/etc\/network\/interfaces\.d\/50-ghostprep$/, 0o644],
    ];
    const model = interpret({ version: 2, ethernets: { eth0: { addresses: ['10.0.0.5/24'], routes: [{ to: '10.1.0.0/16', via: '10.0.0.1' }] } }, bonds: { bond0: { interfaces: [] } } });
    for (const [name, distro, re, mode] of expected) {
      const files = RENDERERS.get(name)!.render(model, distro).filter((f) => f.kind === 'file');
      expect(files.length, name).to.be.greaterThan(0);
      for (const f of files) {
        expect(f.path, name).to.match(re);
        expect(f.mode, f.path).to.equal(mode);
      }
    }
  });
});
