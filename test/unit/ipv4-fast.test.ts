/**
 * IPv4 addresses are checked and compared without ipaddr.js objects (validate
 * parses a few per machine, 10,000 machines): the answers must be ipaddr's.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { contains, ipv4Value, parseCidr, parseIp } from '../../src/network/ip.js';

const quad = fc.oneof(fc.ipV4(), fc.ipV4Extended(), fc.stringMatching(/^[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}\.[0-9]{1,4}$/), fc.string({ maxLength: 16 }));

describe('IPv4 without ipaddr objects', () => {
  it('accepts what ipaddr accepts as four-part decimal, with its canonical text and value', () => {
    fc.assert(fc.property(quad, (t) => {
      const strict = /^\d+\.\d+\.\d+\.\d+$/.test(t) && ipaddr.IPv4.isValidFourPartDecimal(t);
      expect(ipv4Value(t) !== undefined, t).to.equal(strict);
      const p = parseIp(t);
      if (strict) {
        const ip = ipaddr.IPv4.parse(t);
        expect(p?.canonical).to.equal(ip.toString());
        expect(p?.ip.toString()).to.equal(ip.toString());
        expect(ipv4Value(t)).to.equal(ip.toByteArray().reduce((v, b) => v * 256 + b, 0));
      } else if (/^\d+\.\d+\.\d+\.\d+$/.test(t)) expect(p).to.equal(null);
    }), { numRuns: 5000 });
  });

  it('contains() answers as ipaddr match() does', () => {
    fc.assert(fc.property(fc.ipV4(), quad, fc.integer({ min: 0, max: 32 }), (a, b, prefix) => {
      const net = parseCidr(`${a}/${prefix}`)!;
      const other = parseIp(b);
      const expected = other?.family === 4 && ipaddr.IPv4.parse(b).match(ipaddr.IPv4.parse(a), prefix);
      expect(contains(net, b), `${a}/${prefix} ∋ ${b}`).to.equal(Boolean(expected));
    }), { numRuns: 5000 });
  });
});
