import { expect } from 'chai';
import { MemoryGuest } from '../../src/backends/memory.js';
import { selectRenderer } from '../../src/network/index.js';
import { DISTROS } from './helpers.js';

const wants = (unit: string) => ({ [`/etc/systemd/system/multi-user.target.wants/${unit}`]: { symlink: `/lib/systemd/system/${unit}` } });

describe('selectRenderer', () => {
  it('netplan when the netplan binary is present', async () => {
    const g = new MemoryGuest({ '/usr/sbin/netplan': '', ...wants('NetworkManager.service') });
    expect(await selectRenderer(g, DISTROS.debian)).to.deep.equal({ name: 'netplan', reason: '/usr/sbin/netplan present' });
  });
  it('does not take /etc/netplan without netplan for netplan', async () => {
    const g = new MemoryGuest({ '/etc/netplan/01.yaml': 'network: {version: 2}\n', '/etc/network/interfaces': '', '/sbin/ifup': '' });
    expect((await selectRenderer(g, DISTROS.debian)).name).to.equal('eni');
  });
  it('NetworkManager when enabled', async () => {
    const g = new MemoryGuest({ ...wants('NetworkManager.service'), ...wants('systemd-networkd.service') });
    expect(await selectRenderer(g, DISTROS.rocky9)).to.deep.equal({ name: 'network-manager', reason: 'NetworkManager enabled (/etc/systemd/system/multi-user.target.wants/NetworkManager.service)' });
  });
  it('NetworkManager on SUSE when enabled, instead of wicked', async () => {
    const g = new MemoryGuest({ ...wants('NetworkManager.service') });
    expect((await selectRenderer(g, DISTROS.sles15)).name).to.equal('network-manager');
  });
  it('networkd when enabled', async () => {
    const g = new MemoryGuest({ ...wants('systemd-networkd.service') });
    expect((await selectRenderer(g, DISTROS.debian)).name).to.equal('networkd');
  });
  it('ifcfg when wicked is enabled', async () => {
    const g = new MemoryGuest({ ...wants('wicked.service') });
    expect(await selectRenderer(g, DISTROS.sles15)).to.deep.equal({ name: 'ifcfg', reason: 'wicked enabled (/etc/systemd/system/multi-user.target.wants/wicked.service)' });
  });
  it('eni with /etc/network/interfaces and ifup', async () => {
    const g = new MemoryGuest({ '/etc/network/interfaces': 'auto lo\n', '/sbin/ifup': '' });
    expect(await selectRenderer(g, DISTROS.debian)).to.deep.equal({ name: 'eni', reason: 'ifupdown present (/etc/network/interfaces and /sbin/ifup)' });
  });
  it('NetworkManager enabled through OpenRC on Alpine', async () => {
    const g = new MemoryGuest({ '/etc/runlevels/default/networkmanager': { symlink: '/etc/init.d/networkmanager' } });
    expect((await selectRenderer(g, DISTROS.alpine)).name).to.equal('network-manager');
  });
  describe('family defaults', () => {
    const cases: [keyof typeof DISTROS, string][] = [['rocky9', 'network-manager'], ['centos7', 'ifcfg'], ['sles15', 'ifcfg'], ['arch', 'networkd'], ['alpine', 'eni'], ['ubuntu', 'netplan'], ['debian', 'eni']];
    for (const [distro, name] of cases) {
      it(`${distro} -> ${name}`, async () => {
        const sel = await selectRenderer(new MemoryGuest({}), DISTROS[distro]);
        expect(sel.name).to.equal(name);
        expect(sel.reason).to.match(/^family default for /);
      });
    }
  });
  it('fails naming what it searched', async () => {
    try {
      await selectRenderer(new MemoryGuest({}), DISTROS.unknown);
      expect.fail('should throw');
    } catch (err) {
      const msg = (err as Error).message;
      expect(msg).to.contain('/usr/sbin/netplan').and.contain('NetworkManager.service').and.contain('/etc/network/interfaces').and.contain('networkRenderer');
    }
  });
  it('honours a forced renderer and refuses unknown ones', async () => {
    expect(await selectRenderer(new MemoryGuest({ '/usr/sbin/netplan': '' }), DISTROS.debian, 'eni')).to.deep.equal({ name: 'eni', reason: 'forced by the profile (networkRenderer: eni)' });
    try {
      await selectRenderer(new MemoryGuest({}), DISTROS.debian, 'wicked');
      expect.fail('should throw');
    } catch (err) {
      expect((err as Error).message).to.equal('unknown network renderer "wicked" (networkRenderer); known: eni, ifcfg, netplan, network-manager, networkd');
    }
  });
});
