import { expect } from 'chai';
import { addressesOf, checkNetwork } from '../../src/network/index.js';

const eth = (cfg: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ version: 2, ethernets: { lan: cfg }, ...extra });
const messages = (config: unknown) => checkNetwork(config).map((p) => `${p.path}: ${p.message}`);

describe('checkNetwork', () => {
  it('accepts a correct config', () => {
    expect(checkNetwork(eth({ addresses: ['10.0.0.11/24', '2001:db8::11/64'], routes: [{ to: 'default', via: '10.0.0.1' }] }))).to.deep.equal([]);
  });
  it('rejects an invalid CIDR with the DESIGN message and a relative path', () => {
    expect(checkNetwork(eth({ addresses: ['10.0.0.300/24'] }))).to.deep.equal([{ path: '/ethernets/lan/addresses/0', message: '"10.0.0.300/24" is not an IPv4/IPv6 CIDR address' }]);
  });
  it('rejects addresses without prefix, bad IPv6, zone ids and oversize prefixes', () => {
    const bad = ['10.0.0.1', '2001:db8::zz/64', 'fe80::1%eth0/64', '10.0.0.1/33', '2001:db8::1/129', '0x0a.0.0.1/8'];
    expect(checkNetwork(eth({ addresses: bad })).map((p) => p.path)).to.deep.equal(bad.map((_, i) => `/ethernets/lan/addresses/${i}`));
  });
  it('rejects network and broadcast addresses used as host addresses', () => {
    expect(messages(eth({ addresses: ['10.0.0.0/24', '10.0.0.255/24'] }))).to.deep.equal([
      '/ethernets/lan/addresses/0: "10.0.0.0/24" is the network address of its subnet, not a host address',
      '/ethernets/lan/addresses/1: "10.0.0.255/24" is the broadcast address of its subnet, not a host address',
    ]);
  });
  it('requires the gateway inside a subnet of the interface', () => {
    expect(messages(eth({ addresses: ['10.0.0.11/24'], routes: [{ to: 'default', via: '10.0.1.1' }] }))).to.deep.equal([
      '/ethernets/lan/routes/0/via: gateway 10.0.1.1 is not inside any subnet of ethernets/lan (10.0.0.11/24); fix the address or gateway, or set on-link: true',
    ]);
  });
  it('accepts an on-link gateway, a gateway behind a device route, or DHCP', () => {
    expect(checkNetwork(eth({ addresses: ['10.0.0.11/24'], routes: [{ to: 'default', via: '10.9.9.1', 'on-link': true }] }))).to.deep.equal([]);
    expect(checkNetwork(eth({ addresses: ['10.0.0.11/24'], routes: [{ to: '10.9.9.0/24' }, { to: 'default', via: '10.9.9.1' }] }))).to.deep.equal([]);
    expect(checkNetwork(eth({ dhcp4: true, routes: [{ to: '10.5.0.0/16', via: '10.9.9.1' }] }))).to.deep.equal([]);
  });
  it('checks IPv6 gateways too', () => {
    expect(messages(eth({ addresses: ['2001:db8::11/64'], routes: [{ to: '::/0', via: '2001:db9::1' }] }))[0]).to.match(/gateway 2001:db9::1 is not inside/);
    expect(checkNetwork(eth({ addresses: ['2001:db8::11/64'], routes: [{ to: '::/0', via: 'fe80::1' }] }))).to.deep.equal([]);
  });
  it('rejects mixed families, host bits in destinations, bad destinations', () => {
    expect(messages(eth({ addresses: ['10.0.0.11/24'], routes: [{ to: '10.1.0.5/16', via: '10.0.0.1' }, { to: '2001:db8::/32', via: '10.0.0.1' }, { to: 'nowhere', via: '10.0.0.1' }] }))).to.deep.equal([
      '/ethernets/lan/routes/0/to: "10.1.0.5/16" has host bits set; did you mean "10.1.0.0/16"?',
      '/ethernets/lan/routes/1/via: gateway "10.0.0.1" is IPv4 but destination "2001:db8::/32" is IPv6',
      '/ethernets/lan/routes/2/to: "nowhere" is not an IPv4/IPv6 CIDR destination or "default"',
    ]);
  });
  it('checks MAC format and multicast MACs', () => {
    expect(messages(eth({ match: { macaddress: '52:54:00:12:34' }, 'set-name': 'lan' }))[0]).to.match(/^\/ethernets\/lan\/match\/macaddress: "52:54:00:12:34" is not a MAC address/);
    expect(messages(eth({ match: { macaddress: '01:00:5e:00:00:01' }, 'set-name': 'lan' }))[0]).to.match(/multicast/);
  });
  it('checks MTU range, the IPv6 minimum and VLAN vs link MTU', () => {
    expect(messages(eth({ mtu: 67 }))).to.deep.equal(['/ethernets/lan/mtu: MTU 67 is outside 68..9216']);
    expect(messages(eth({ mtu: 90000 }))).to.deep.equal(['/ethernets/lan/mtu: MTU 90000 is outside 68..9216']);
    expect(messages(eth({ mtu: 1000, dhcp6: true }))).to.deep.equal(['/ethernets/lan/mtu: MTU 1000 is below 1280, the minimum for an interface with IPv6']);
    expect(messages(eth({ mtu: '1500' }, { vlans: { 'vlan5': { id: 5, link: 'lan', mtu: 9000 } } }))).to.deep.equal(['/vlans/vlan5/mtu: MTU 9000 is larger than the MTU 1500 of its link ethernets/lan']);
  });
  it('checks VLAN ids and links', () => {
    expect(messages({ version: 2, ethernets: { lan: {} }, vlans: { v0: { id: 0, link: 'lan' }, v1: { id: 4095, link: 'lan' }, v2: { id: 2, link: 'nope' } } })).to.deep.equal([
      '/vlans/v0/id: VLAN id 0 is outside 1..4094',
      '/vlans/v1/id: VLAN id 4095 is outside 1..4094',
      '/vlans/v2/link: vlan link "nope" is not defined under ethernets, bonds or bridges',
    ]);
  });
  it('checks bond and bridge members exist, and belong to one master only', () => {
    const config = { version: 2, ethernets: { a: {}, b: {} }, bonds: { bond0: { interfaces: ['a', 'ghost'] } }, bridges: { br0: { interfaces: ['a', 'b'] } } };
    expect(messages(config)).to.deep.equal([
      '/bonds/bond0/interfaces/1: bond member "ghost" is not defined under ethernets',
      '/bridges/br0/interfaces/0: "a" is already a member of bonds/bond0; an interface can belong to one bond or bridge only',
    ]);
  });
  it('rejects bond members of the wrong kind and members with their own addresses', () => {
    const config = { version: 2, ethernets: { a: { dhcp4: true } }, bonds: { b1: { interfaces: ['a'] }, b2: { interfaces: ['b1'] } } };
    expect(messages(config)).to.deep.equal([
      '/ethernets/a: dhcp4 on a member of bonds/b1 would be ignored; configure them on b1',
      '/bonds/b2/interfaces/0: bond member "b1" is a bond; bond members must be defined under ethernets',
    ]);
  });
  it('checks bond primary, arp targets, set-name without match, IDs, names and MACs unique', () => {
    expect(messages({ version: 2, ethernets: { a: {} }, bonds: { b: { interfaces: ['a'], parameters: { primary: 'x', 'arp-ip-targets': ['::1'] } } } })).to.deep.equal([
      '/bonds/b/parameters/primary: primary "x" is not one of the bond\'s interfaces (a)',
      '/bonds/b/parameters/arp-ip-targets/0: "::1" is not an IPv4 address',
    ]);
    expect(messages(eth({ 'set-name': 'x' }))).to.deep.equal(['/ethernets/lan/set-name: set-name needs a match (macaddress, driver or name) to say which card to rename']);
    const mac = { macaddress: '52:54:00:00:00:01' };
    expect(messages({ version: 2, ethernets: { a: { match: mac, 'set-name': 'x' }, b: { match: mac, 'set-name': 'x' } }, bonds: { a: { interfaces: [] } } })).to.deep.equal([
      '/ethernets/b: interface name "x" is also used by ethernets/a',
      '/ethernets/b/match/macaddress: MAC 52:54:00:00:00:01 is also matched by ethernets/a',
      '/bonds/a: "a" is also defined as ethernets/a; interface IDs must be unique across sections',
    ]);
    expect(messages(eth({}, { bonds: { 'a-very-long-bond-name': { interfaces: [] } } }))[0]).to.match(/not a valid interface name/);
  });
  it('checks nameservers and search domains, including the single-string form', () => {
    expect(messages(eth({ nameservers: { addresses: '10.0.0.2, 10.0.0.x', search: ['ok.example', 'bad domain'] } }))).to.deep.equal([
      '/ethernets/lan/nameservers/addresses: "10.0.0.x" is not an IPv4/IPv6 address',
      '/ethernets/lan/nameservers/search/1: "bad domain" is not a valid DNS domain',
    ]);
  });
  it('escapes JSON pointer segments', () => {
    expect(checkNetwork({ version: 2, ethernets: { 'a/b': { addresses: ['x'] } } }).map((p) => p.path)).to.deep.equal(['/ethernets/a~1b', '/ethernets/a~1b/addresses/0']);
  });
  it('skips shapes the schema rejects instead of throwing', () => {
    expect(() => checkNetwork({ version: 2, ethernets: 'nope', bonds: { b: 5 }, vlans: { v: { id: 'x', routes: 'no' } } })).not.to.throw();
    expect(checkNetwork(null)).to.deep.equal([]);
  });
});

describe('addressesOf', () => {
  it('lists static addresses without prefix, canonical', () => {
    expect(addressesOf({ version: 2, ethernets: { a: { addresses: ['10.0.0.11/24', '2001:DB8:0::11/64', 'junk'] } }, vlans: { v: { id: 2, link: 'a', addresses: ['10.2.0.1/24'] } } })).to.deep.equal(['10.0.0.11', '2001:db8::11', '10.2.0.1']);
  });
});

describe('checkNetwork duplicate addresses', () => {
  it('rejects one address on two interfaces', () => {
    expect(messages({ version: 2, ethernets: { a: { addresses: ['10.0.0.5/24'] }, b: { addresses: ['10.0.0.5/16'] } } })).to.deep.equal(['/ethernets/b/addresses/0: address 10.0.0.5 is also assigned at /ethernets/a/addresses/0']);
  });
});
