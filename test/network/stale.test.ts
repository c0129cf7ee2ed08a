import { expect } from 'chai';
import { MemoryGuest } from '../../src/backends/memory.js';
import { findStale, interpret } from '../../src/network/index.js';
import fc from 'fast-check';
import { eniPatternTakes, pruneEni } from '../../src/network/renderers/eni.js';
import type { FileChange } from '../../src/core/file-change.js';

const model = interpret({ version: 2, ethernets: { lan: { match: { macaddress: '52:54:00:aa:bb:01' }, 'set-name': 'lan', dhcp4: true } } });
const summary = (changes: FileChange[]) => changes.map((c) => `${c.op} ${c.path}: ${c.reason}`);

describe('findStale', () => {
  it('removes NetworkManager connections bound to a MAC, for our interface, or for any Ethernet', async () => {
    const g = new MemoryGuest({
      '/etc/NetworkManager/system-connections/Wired.nmconnection': '[connection]\nid=Wired\ntype=ethernet\n[ethernet]\nmac-address=52:54:00:12:34:56\n',
      '/etc/NetworkManager/system-connections/lan.nmconnection': '[connection]\nid=lan\ntype=ethernet\ninterface-name=lan\n',
      '/etc/NetworkManager/system-connections/any.nmconnection': '[connection]\nid=any\ntype=ethernet\n',
      '/etc/NetworkManager/system-connections/wifi.nmconnection': '[connection]\nid=home\ntype=wifi\ninterface-name=wlan0\n',
    });
    expect(summary(await findStale(g, model, []))).to.deep.equal([
      'delete /etc/NetworkManager/system-connections/Wired.nmconnection: master connection bound to MAC 52:54:00:12:34:56',
      'delete /etc/NetworkManager/system-connections/any.nmconnection: master Ethernet connection not bound to any interface (it would compete for every card)',
      'delete /etc/NetworkManager/system-connections/lan.nmconnection: master connection for interface lan',
    ]);
  });
  it('removes ifcfg files with HWADDR or our DEVICE, with their route files; keeps lo and our own', async () => {
    const g = new MemoryGuest({
      '/etc/sysconfig/network-scripts/ifcfg-eth0': 'DEVICE=eth0\nHWADDR="52:54:00:12:34:56"\nBOOTPROTO=dhcp\n',
      '/etc/sysconfig/network-scripts/route-eth0': '10.1.0.0/16 via 10.0.0.1\n',
      '/etc/sysconfig/network-scripts/ifcfg-lo': 'DEVICE=lo\n',
      '/etc/sysconfig/network-scripts/ifcfg-lan': 'DEVICE=lan\n',
      '/etc/sysconfig/network/ifcfg-eth1': "BOOTPROTO='dhcp'\n",
    });
    expect(summary(await findStale(g, model, ['/etc/sysconfig/network-scripts/ifcfg-lan']))).to.deep.equal([
      'delete /etc/sysconfig/network-scripts/ifcfg-eth0: master ifcfg bound to MAC 52:54:00:12:34:56',
      'delete /etc/sysconfig/network-scripts/route-eth0: routes of /etc/sysconfig/network-scripts/ifcfg-eth0, which is removed (master ifcfg bound to MAC 52:54:00:12:34:56)',
    ]);
  });
  it('rewrites netplan files without conflicting definitions, deletes them when nothing is left', async () => {
    const g = new MemoryGuest({
      '/etc/netplan/50-cloud-init.yaml': { content: 'network:\n  version: 2\n  ethernets:\n    eth0:\n      match: {macaddress: "52:54:00:12:34:56"}\n      set-name: eth0\n      dhcp4: true\n', mode: 0o600 },
      '/etc/netplan/60-mixed.yaml': 'network:\n  version: 2\n  ethernets:\n    lan: {dhcp4: true}\n    eth9: {dhcp4: true}  # keep me\n',
      '/etc/netplan/01-nm.yaml': 'network:\n  version: 2\n  renderer: NetworkManager\n',
    });
    const changes = await findStale(g, model, []);
    expect(summary(changes)).to.deep.equal([
      'delete /etc/netplan/50-cloud-init.yaml: master netplan ethernets/eth0 bound to MAC 52:54:00:12:34:56',
      'write /etc/netplan/60-mixed.yaml: master netplan ethernets/lan same ID as interface lan (netplan merges definitions with one ID) (other definitions kept)',
    ]);
    const mixed = changes[1]!;
    expect(mixed.op === 'write' && mixed.content.toString()).to.equal('network:\n  version: 2\n  ethernets:\n    eth9: { dhcp4: true } # keep me\n');
  });
  it('refuses an unparsable netplan file with its path', async () => {
    const g = new MemoryGuest({ '/etc/netplan/bad.yaml': 'network: [\n' });
    try { await findStale(g, model, []); expect.fail('should throw'); } catch (err) { expect((err as Error).message).to.match(/^cannot parse \/etc\/netplan\/bad.yaml/); }
  });
  it('removes networkd files bound to a MAC or our name; keeps later globs', async () => {
    const g = new MemoryGuest({
      '/etc/systemd/network/05-any.network': '[Match]\nName=l*\n[Network]\nDHCP=yes\n',
      '/etc/systemd/network/20-wired.network': '[Match]\nName=en*\n[Network]\nDHCP=yes\n',
      '/etc/systemd/network/50-mac.network': '[Match]\nMACAddress=52:54:00:12:34:56\n',
      '/etc/systemd/network/70-lan.link': '[Match]\nPath=pci-0000:00:03.0\n[Link]\nName=lan\n',
    });
    expect(summary(await findStale(g, model, []))).to.deep.equal([
      'delete /etc/systemd/network/05-any.network: master network file matching l* takes precedence over ours for lan',
      'delete /etc/systemd/network/50-mac.network: master network file bound to MAC 52:54:00:12:34:56',
      'delete /etc/systemd/network/70-lan.link: master link file also creates or names lan',
    ]);
  });
  it('rewrites /etc/network/interfaces without our stanzas, keeping lo and the rest', async () => {
    const g = new MemoryGuest({ '/etc/network/interfaces': 'auto lo lan\niface lo inet loopback\n\n# the uplink\nallow-hotplug lan\niface lan inet dhcp\n    hwaddress 52:54:00:12:34:56\n\n# storage\nauto eth1\niface eth1 inet static\n  address 10.9.0.1/24\n' });
    const [c] = await findStale(g, model, []);
    expect(c!.reason).to.equal('master ifupdown stanzas for lan removed, the rest kept');
    expect(c!.op === 'write' && c!.content.toString()).to.equal('auto lo\niface lo inet loopback\n\n# the uplink\n\n# storage\nauto eth1\niface eth1 inet static\n  address 10.9.0.1/24\n');
  });
  it('removes the master\'s kernel-named DHCP stanza when our config renames that NIC by MAC', async () => {
    const g = new MemoryGuest({ '/etc/network/interfaces': 'source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n\nallow-hotplug ens3\niface ens3 inet dhcp\n' });
    const [c] = await findStale(g, model, []);
    expect(c!.reason).to.equal('master ifupdown stanzas for ens3 removed, the rest kept');
    expect(c!.op === 'write' && c!.content.toString()).to.equal('source /etc/network/interfaces.d/*\nauto lo\niface lo inet loopback\n');
  });
  it('keeps kernel-named stanzas when the master configures more NICs than we rename', async () => {
    const g = new MemoryGuest({ '/etc/network/interfaces': 'auto lo\niface lo inet loopback\nallow-hotplug ens3\niface ens3 inet dhcp\nauto ens4\niface ens4 inet static\n  address 10.9.0.1/24\n' });
    expect(await findStale(g, model, [])).to.deep.equal([]);
  });
  it('drops an auto/allow- pattern that would take one of our NICs (ifup expands it to every matching card); keeps the others', async () => {
    const bond = interpret({ version: 2, ethernets: { a: { match: { name: 'ens6' } }, b: { match: { macaddress: '52:54:00:aa:bb:07' }, 'set-name': 'uplink' } }, bonds: { bond1: { interfaces: ['a'] } } });
    const text = 'auto lo\niface lo inet loopback\n\nallow-hotplug /en*=wired /wl*\niface wired inet dhcp\nauto mac/52:54:00:aa:bb:0?/1=m /eth9 address/52:54:00:aa:bb:07\n';
    const [c] = await findStale(new MemoryGuest({ '/etc/network/interfaces': text }), bond, []);
    expect(c!.reason).to.equal('master ifupdown stanzas for pattern /en*=wired, pattern mac/52:54:00:aa:bb:0?/1=m removed, the rest kept');
    // a sysfs-attribute pattern cannot be judged offline and stays; so does the logical stanza
    expect(c!.op === 'write' && c!.content.toString()).to.equal('auto lo\niface lo inet loopback\n\nallow-hotplug /wl*\niface wired inet dhcp\nauto /eth9 address/52:54:00:aa:bb:07\n');
  });
  it('eniPatternTakes reads [VARIABLE]/VALUE[/[OPTIONS]][=LOGICAL]', () => {
    const names = new Set(['ens6', 'bond1']);
    const macs = new Set(['52:54:00:aa:bb:07']);
    expect(eniPatternTakes('/en*', names, macs)).to.deep.equal(['ens6']);
    expect(eniPatternTakes('/*/2=x', names, macs)).to.deep.equal(['bond1', 'ens6']);
    expect(eniPatternTakes('/ens6', names, macs)).to.deep.equal(['ens6']);
    expect(eniPatternTakes('mac/52:54:00:AA:BB:*', names, macs)).to.deep.equal(['52:54:00:aa:bb:07']);
    for (const notOne of ['ens6', '/dev/en*', 'address/52:54:*', '/wl*', 'en*', '/en*/x']) expect(eniPatternTakes(notOne, names, macs), notOne).to.deep.equal([]);
  });
  it('property: after pruneEni no auto/allow- name or name pattern left takes a claimed name; comments outside stanzas stay', () => {
    const word = fc.stringMatching(/^[a-z][a-z0-9]{0,3}$/);
    const pat = fc.stringMatching(/^[a-z?*][a-z0-9?*]{0,3}$/);
    const arg = fc.oneof(word, pat.map((p) => `/${p}`), fc.tuple(pat, word).map(([p, l]) => `/${p}=${l}`));
    const line = fc.oneof(
      fc.tuple(fc.constantFrom('auto', 'allow-hotplug'), fc.array(arg, { minLength: 1, maxLength: 4 })).map(([w, a]) => `${w} ${a.join(' ')}`),
      word.map((w) => `iface ${w} inet dhcp`),
      fc.constant('    mtu 1500'),
      fc.constant('# a comment'),
    );
    // an independent reading of fnmatch for these patterns: * any run, ? one character
    const re = (p: string) => new RegExp(`^${p.replace(/[*?]/g, (c) => (c === '*' ? '.*' : '.'))}$`);
    fc.assert(fc.property(fc.array(line, { maxLength: 12 }), fc.uniqueArray(word, { minLength: 1, maxLength: 3 }), (lines, claimed) => {
      const names = new Set(claimed);
      const out = pruneEni(lines.join('\n') + '\n', names).text.split('\n');
      for (const l of out) {
        const [w, ...args] = l.trim().split(/\s+/);
        if (w !== 'auto' && !w!.startsWith('allow-')) continue;
        for (const a of args) {
          const value = a.startsWith('/') ? a.slice(1).split('=')[0]! : a.split(/[:=]/)[0]!;
          for (const n of names) if (n !== 'lo') expect(re(value).test(n), `${l} takes ${n}`).to.equal(false);
        }
      }
      // comments before the first stanza belong to no interface: kept (after a removed stanza, its own go with it)
      const firstIface = lines.findIndex((l) => l.startsWith('iface'));
      for (const l of firstIface < 0 ? lines : lines.slice(0, firstIface)) if (l.startsWith('#')) expect(out).to.include(l);
    }), { numRuns: 500 });
  });
  it('pruneEni leaves unrelated files untouched', () => {
    const text = 'auto eth1\niface eth1 inet dhcp\n';
    expect(pruneEni(text, new Set(['lan']))).to.deep.equal({ text, removed: [] });
  });
  it('removes udev persistent-net rules and files of an earlier run; guards cloud-init', async () => {
    const g = new MemoryGuest({
      '/etc/udev/rules.d/70-persistent-net.rules': 'SUBSYSTEM=="net", ATTR{address}=="52:54:00:12:34:56", NAME="eth0"\n',
      '/etc/systemd/network/10-ghostprep-old.network': "# Written by ghostprep from the profile's network configuration; local changes are overwritten on the next apply.\n[Match]\nName=old\n",
      '/etc/cloud/cloud.cfg': 'datasource_list: [NoCloud]\n',
    });
    expect(summary(await findStale(g, model, []))).to.deep.equal([
      'write /etc/cloud/cloud.cfg.d/99-ghostprep-network.cfg: cloud-init is installed and would regenerate the network configuration on the clone\'s first boot',
      'delete /etc/systemd/network/10-ghostprep-old.network: written by an earlier ghostprep run; the current network configuration no longer produces it',
      'delete /etc/udev/rules.d/70-persistent-net.rules: udev persistent-net rules bind interface names to the master\'s MAC addresses',
    ]);
  });
  it('every change is attributed to the network source', async () => {
    const g = new MemoryGuest({ '/etc/udev/rules.d/70-persistent-net.rules': '' });
    for (const c of await findStale(g, model, [])) expect(c.source).to.equal('network');
  });
});

describe('findStale route files', () => {
  it('removes master route files of an interface we configure, even when its ifcfg is replaced', async () => {
    const g = new MemoryGuest({
      '/etc/sysconfig/network-scripts/ifcfg-lan': 'DEVICE=lan\n',
      '/etc/sysconfig/network-scripts/route-lan': '10.1.0.0/16 via 10.0.0.1\n',
      '/etc/sysconfig/network/ifroute-lan': 'default 10.0.0.1 - lan\n',
    });
    expect(summary(await findStale(g, model, ['/etc/sysconfig/network-scripts/ifcfg-lan']))).to.deep.equal([
      'delete /etc/sysconfig/network-scripts/route-lan: master routes for interface lan',
      'delete /etc/sysconfig/network/ifroute-lan: master routes for interface lan',
    ]);
  });
});
