/** DHCP identities: known answers from SipHash's reference and from systemd's own DUID check. */
import { expect } from 'chai';
import fc from 'fast-check';
import { parseDhclientDuids, parseNetworkdDuidConfig, siphash24, systemdClientId, systemdDhcpIdentity, systemdDuidEn, systemdDuidUuid, systemdIaid } from '../../src/audit/dhcp.js';

const seq = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i));

describe('audit: DHCP identities', () => {
  it('SipHash-2-4 matches the reference vectors of the SipHash paper', () => {
    // key 00..0f; the paper's appendix: message 00..0e -> a129ca6149be45e5; empty -> 726fdb47dd0e0e31
    expect(siphash24(seq(15), seq(16)).toString(16)).to.equal('a129ca6149be45e5');
    expect(siphash24(seq(0), seq(16)).toString(16)).to.equal('726fdb47dd0e0e31');
    expect(siphash24(seq(8), seq(16)).toString(16)).to.equal('93f5f5799a932462');
  });

  it('DUID-EN of machine-id 0102…10 is the one systemd asserts in its test mode', () => {
    // systemd src/libsystemd-network/dhcp-duid.c (test_mode): 00 02 00 00 ab 11 61 77 40 de 13 42 c3 a2
    expect(systemdDuidEn('0102030405060708090a0b0c0d0e0f10').toString('hex')).to.equal('00020000ab11617740de1342c3a2');
    expect(systemdDhcpIdentity('0102030405060708090a0b0c0d0e0f10', null)).to.deep.equal({ duid: '00:02:00:00:ab:11:61:77:40:de:13:42:c3:a2', source: 'machine-id (DUID-EN)' });
  });

  it('property: one machine-id gives one DUID, two give two; the client id is ff + IAID + DUID', () => {
    const mid = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b).toString('hex'));
    fc.assert(fc.property(mid, mid, fc.stringMatching(/^[a-z][a-z0-9]{1,14}$/), (a, b, ifname) => {
      expect(systemdDuidEn(a).equals(systemdDuidEn(a))).to.equal(true);
      expect(systemdDuidEn(a).equals(systemdDuidEn(b))).to.equal(a === b);
      const uuid = systemdDuidUuid(a);
      expect(uuid.length).to.equal(18);
      expect(uuid[8]! >> 4).to.equal(4); // a v4 UUID after the type
      const cid = systemdClientId(systemdDuidEn(a), ifname);
      expect(cid).to.equal(['ff', ...systemdIaid(ifname).toString('hex').match(/../g)!, ...systemdDuidEn(a).toString('hex').match(/../g)!].join(':'));
    }));
  });

  it('networkd.conf: DUIDType and DUIDRawData override the machine-id', () => {
    const conf = '[Network]\nSpeedMeter=no\n[DHCPv4]\nDUIDType=vendor\nDUIDRawData=00:00:ab:11:f9:2a:c2:77:29:f9:5c:00\n';
    expect(parseNetworkdDuidConfig(conf)).to.deep.equal({ type: 'vendor', raw: '00:00:ab:11:f9:2a:c2:77:29:f9:5c:00' });
    expect(systemdDhcpIdentity('0102030405060708090a0b0c0d0e0f10', conf)?.source).to.equal('networkd.conf DUIDRawData');
    expect(systemdDhcpIdentity('0102030405060708090a0b0c0d0e0f10', '[DHCPv6]\nDUIDType=link-layer\n')).to.deep.equal({ duid: null, source: 'MAC address' });
    expect(systemdDhcpIdentity('0102030405060708090a0b0c0d0e0f10', '[DHCPv4]\nDUIDType=uuid\n')?.duid).to.match(/^00:04(:[0-9a-f]{2}){16}$/);
    expect(systemdDhcpIdentity(null, null)).to.equal(null);
  });

  it('dhclient lease files: default-duid with octal escapes', () => {
    const leases = 'default-duid "\\000\\001\\000\\001\\036\\2103XRT\\000\\026>\\021\\"\\003";\nlease {\n  interface "eth0";\n}\n';
    expect(parseDhclientDuids(leases)).to.deep.equal(['00:01:00:01:1e:88:33:58:52:54:00:16:3e:11:22:03']);
    expect(parseDhclientDuids('lease {}\n')).to.deep.equal([]);
  });
});
