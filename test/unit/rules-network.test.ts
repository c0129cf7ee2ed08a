/**
 * Network sense: host addresses are not their subnet's network or broadcast
 * address (except in /31 and /32, RFC 3021), gateways are hosts, MACs are
 * unicast card addresses, interface names are what the kernel accepts.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import { checkNetwork } from '../../src/network/index.js';
import { dottedQuad, ifnameProblem, macProblem, parseCidr, reservedInSubnet } from '../../src/network/ip.js';

const v4 = fc.nat({ max: 2 ** 32 - 1 }).map(dottedQuad);

describe('reserved addresses of a subnet', () => {
  it('IPv4: exactly the network and broadcast address are reserved, none in a /31 or /32', () => {
    fc.assert(fc.property(v4, fc.integer({ min: 0, max: 32 }), (ip, prefix) => {
      const a = parseCidr(`${ip}/${prefix}`)!;
      const value = ip.split('.').reduce((v, o) => v * 256 + Number(o), 0);
      const size = 2 ** (32 - prefix);
      const expected = prefix >= 31 ? undefined : value % size === 0 ? 'network' : value % size === size - 1 ? 'broadcast' : undefined;
      expect(reservedInSubnet(a)).to.equal(expected);
    }));
  });
  it('a gateway is checked against the machine\'s subnet', () => {
    const net = parseCidr('10.0.0.11/24')!;
    expect(reservedInSubnet(net, '10.0.0.0')).to.equal('network');
    expect(reservedInSubnet(net, '10.0.0.255')).to.equal('broadcast');
    expect(reservedInSubnet(net, '10.0.0.1')).to.equal(undefined);
    expect(reservedInSubnet(net, '10.0.1.0')).to.equal(undefined); // outside: another rule's business
    expect(reservedInSubnet(parseCidr('2001:db8::/64')!)).to.equal('network');
    expect(reservedInSubnet(parseCidr('2001:db8::/127')!)).to.equal(undefined);
  });
});

describe('MAC addresses and interface names', () => {
  const octet = fc.nat({ max: 255 }).map((n) => n.toString(16).padStart(2, '0'));
  it('a MAC is refused exactly when it is all-zero or has the I/G bit set', () => {
    fc.assert(fc.property(fc.array(octet, { minLength: 6, maxLength: 6 }), (o) => {
      const mac = o.join(':');
      const bad = mac === '00:00:00:00:00:00' || (parseInt(o[0]!, 16) & 1) === 1;
      expect(macProblem(mac) !== undefined, mac).to.equal(bad);
      expect(macProblem(mac.toUpperCase()) !== undefined).to.equal(bad);
    }));
    expect(macProblem('ff:ff:ff:ff:ff:ff')).to.match(/broadcast/);
  });
  it('an interface name is 1-15 bytes without "/", ":", white space, and not "." or ".."', () => {
    fc.assert(fc.property(fc.string({ maxLength: 20 }), (name) => {
      const ok = Buffer.byteLength(name) >= 1 && Buffer.byteLength(name) <= 15 && name !== '.' && name !== '..' && !/[/:\s\0-\x1f\x7f]/.test(name);
      expect(ifnameProblem(name) === undefined, JSON.stringify(name)).to.equal(ok);
    }));
  });
});

describe('checkNetwork: network sense', () => {
  const eth = (cfg: Record<string, unknown>) => ({ version: 2, ethernets: { lan: cfg } });
  const messages = (config: unknown) => checkNetwork(config).map((p) => `${p.path}: ${p.message}`);
  it('refuses an address that is its own gateway, and gateways at the network or broadcast address', () => {
    expect(messages(eth({ addresses: ['10.0.0.1/24'], routes: [{ to: 'default', via: '10.0.0.1' }] }))).to.deep.equal([
      '/ethernets/lan/addresses/0: "10.0.0.1/24" is also the gateway of routes/0: a machine cannot route through itself',
    ]);
    expect(messages(eth({ addresses: ['10.0.0.11/24'], routes: [{ to: 'default', via: '10.0.0.255' }, { to: '10.9.0.0/16', via: '10.0.0.0' }] }))).to.deep.equal([
      '/ethernets/lan/routes/0/via: gateway 10.0.0.255 is the broadcast address of 10.0.0.0/24, not a host that can route',
      '/ethernets/lan/routes/1/via: gateway 10.0.0.0 is the network address of 10.0.0.0/24, not a host that can route',
    ]);
  });
  it('accepts both addresses of a /31 and the gateway of a /31 link', () => {
    expect(messages(eth({ addresses: ['10.0.0.0/31'], routes: [{ to: 'default', via: '10.0.0.1' }] }))).to.deep.equal([]);
    expect(messages(eth({ addresses: ['10.0.0.1/31'], routes: [{ to: 'default', via: '10.0.0.0' }] }))).to.deep.equal([]);
    expect(messages(eth({ addresses: ['10.0.0.7/32'], routes: [{ to: 'default', via: '10.0.0.1', 'on-link': true }] }))).to.deep.equal([]);
  });
  it('refuses all-zero, broadcast and multicast MACs in match and macaddress, and bad set-names', () => {
    expect(messages(eth({ match: { macaddress: '00:00:00:00:00:00' }, 'set-name': '..' }))).to.deep.equal([
      '/ethernets/lan/match/macaddress: "00:00:00:00:00:00" is the all-zero MAC address; no network card has it',
      '/ethernets/lan/set-name: set-name ".." is not a valid interface name ("." and ".." are not allowed)',
    ]);
    expect(messages(eth({ match: { name: 'en*' }, macaddress: 'ff:ff:ff:ff:ff:ff', 'set-name': 'lanéééééééé9' }))).to.deep.equal([
      '/ethernets/lan/macaddress: "ff:ff:ff:ff:ff:ff" is the broadcast MAC address; no network card has it',
      '/ethernets/lan/set-name: set-name "lanéééééééé9" is 20 bytes long; interface names are 1-15 bytes',
    ]);
  });
});
