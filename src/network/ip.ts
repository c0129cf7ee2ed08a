/**
 * Strict IP parsing on top of ipaddr.js. ipaddr.js alone accepts forms no
 * network tool should see in a config file ("10", "0x0a.0.0.1", "fe80::1%eth0"),
 * so IPv4 must be four decimal parts and IPv6 must carry no zone.
 */
import ipaddr from 'ipaddr.js';
import type { Address, IpFamily } from '../core/network.js';

export type Ip = ipaddr.IPv4 | ipaddr.IPv6;

/** Parse a plain address (no prefix); null when not strictly valid. */
export function parseIp(text: string): { family: IpFamily; ip: Ip; canonical: string } | null {
  if (/^\d+\.\d+\.\d+\.\d+$/.test(text)) {
    // what ipaddr's isValidFourPartDecimal accepts: no leading zeros, each part 0-255; then
    // its canonical form is the text itself (the ipaddr object is made when asked for)
    if (ipv4Value(text) === undefined) return null;
    return new ParsedV4(text);
  }
  if (!text.includes(':') || text.includes('%') || !ipaddr.IPv6.isValid(text)) return null;
  const ip = ipaddr.IPv6.parse(text);
  return { family: 6, ip, canonical: ip.toRFC5952String() };
}

const V4 = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/** The 32-bit value of a strict dotted-quad IPv4 address; undefined when it is not one. */
export function ipv4Value(text: string): number | undefined {
  const m = V4.exec(text);
  if (!m) return undefined;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const part = Number(m[i]);
    if (part > 255) return undefined;
    v = v * 256 + part;
  }
  return v;
}

class ParsedV4 {
  readonly family = 4 as const;
  #ip: ipaddr.IPv4 | undefined;
  constructor(readonly canonical: string) {}
  get ip(): ipaddr.IPv4 { return (this.#ip ??= ipaddr.IPv4.parse(this.canonical)); }
}

/**
 * Parse "ip/prefix"; null when not a valid IPv4/IPv6 CIDR. A prefix with a leading
 * zero is refused like an octet with one: iproute2 reads "/024" as octal (20).
 */
export function parseCidr(text: string): Address | null {
  const m = /^([^/\s]+)\/(0|[1-9]\d{0,2})$/.exec(text);
  if (!m) return null;
  const parsed = parseIp(m[1]!);
  const prefix = Number(m[2]);
  if (!parsed || prefix > (parsed.family === 4 ? 32 : 128)) return null;
  return { family: parsed.family, ip: parsed.canonical, prefix, cidr: `${parsed.canonical}/${prefix}` };
}

/** The network address of a CIDR in canonical form (10.1.0.0/16). */
export function networkOf(addr: Address): string {
  const v = addr.family === 4 ? ipv4Value(addr.ip) : undefined;
  // IPv4 in integer arithmetic: ipaddr.js parsed the text again for every address of every machine
  if (v !== undefined) return `${dottedQuad(addr.prefix === 0 ? 0 : v - (v % 2 ** (32 - addr.prefix)))}/${addr.prefix}`;
  const net = addr.family === 4 ? ipaddr.IPv4.networkAddressFromCIDR(addr.cidr) : ipaddr.IPv6.networkAddressFromCIDR(addr.cidr);
  const text = net instanceof ipaddr.IPv6 ? net.toRFC5952String() : net.toString();
  return `${text}/${addr.prefix}`;
}

/** The broadcast address of an IPv4 CIDR (10.1.255.255 for 10.1.2.3/16). */
export function broadcastOf(addr: Address): string {
  const v = ipv4Value(addr.ip)!;
  const size = 2 ** (32 - addr.prefix);
  return dottedQuad(v - (v % size) + size - 1);
}

/** A 32-bit value as a dotted quad. */
export function dottedQuad(v: number): string {
  return `${Math.floor(v / 16777216) % 256}.${Math.floor(v / 65536) % 256}.${Math.floor(v / 256) % 256}.${v % 256}`;
}

/** Whether plain address `ip` lies inside `net`. */
export function contains(net: Address, ip: string): boolean {
  if (net.family === 4) {
    const a = ipv4Value(ip);
    const b = ipv4Value(net.ip);
    if (a !== undefined && b !== undefined) return net.prefix === 0 || Math.floor(a / 2 ** (32 - net.prefix)) === Math.floor(b / 2 ** (32 - net.prefix));
  }
  const parsed = parseIp(ip);
  if (!parsed || parsed.family !== net.family) return false;
  const base = parseIp(net.ip)!.ip;
  return (parsed.ip as ipaddr.IPv4).match(base as ipaddr.IPv4, net.prefix);
}

/** Dotted netmask of an IPv4 prefix (ifcfg/ENI users still read these). */
export function netmaskOf(prefix: number): string {
  return ipaddr.IPv4.subnetMaskFromPrefixLength(prefix).toString();
}

export const MAC_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** Why a well-formed MAC cannot be a card's address, or undefined: all-zero, broadcast, or multicast (I/G bit set). */
export function macProblem(mac: string): string | undefined {
  const m = mac.toLowerCase();
  if (m === '00:00:00:00:00:00') return 'is the all-zero MAC address; no network card has it';
  if (m === 'ff:ff:ff:ff:ff:ff') return 'is the broadcast MAC address; no network card has it';
  if (parseInt(m.slice(0, 2), 16) & 1) return 'is a multicast MAC address (the lowest bit of the first byte is set); no network card has it';
  return undefined;
}

/**
 * Why an address cannot be a host's address in its subnet, or undefined: the
 * network address (IPv4, and IPv6's subnet-router anycast) or the IPv4
 * broadcast address. A /31 (RFC 3021) and /32, and IPv6 /127 and /128, have no
 * such reserved addresses.
 */
export function reservedInSubnet(addr: Address, ip = addr.ip): 'network' | 'broadcast' | undefined {
  const hostBits = addr.family === 4 ? 32 - addr.prefix : 128 - addr.prefix;
  if (hostBits < 2) return undefined;
  const host = parseCidr(`${ip}/${addr.prefix}`);
  if (!host || host.family !== addr.family || !contains(addr, ip)) return undefined;
  if (networkOf(host) === host.cidr) return 'network';
  if (addr.family === 4 && broadcastOf(host) === host.ip) return 'broadcast';
  return undefined;
}

/**
 * Whether a name is a valid Linux interface name (dev_valid_name): 1..15
 * bytes, no "/", ":" or white space, not "." or "..".
 */
export function ifnameProblem(name: string): string | undefined {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes < 1 || bytes > 15) return `is ${bytes} bytes long; interface names are 1-15 bytes`;
  if (name === '.' || name === '..') return 'is not a valid interface name ("." and ".." are not allowed)';
  if (/[/:\s\0-\x1f\x7f]/.test(name)) return 'is not a valid interface name (no "/", ":", spaces or control characters)';
  return undefined;
}
