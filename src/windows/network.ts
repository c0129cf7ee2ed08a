/**
 * Network settings for unattend.xml (Microsoft-Windows-TCPIP and
 * Microsoft-Windows-DNS-Client, specialize pass), from one of two sources:
 *
 * - windows.network.interfaces, when the profile has it: Windows-only
 *   settings, kept as before; it overrides the profile's `network:` for
 *   Windows guests (one Windows profile can then extend a Linux one);
 * - else the profile's `network:` (netplan v2), through the one network
 *   model every Linux renderer reads (src/core/network.ts). Windows
 *   identifies an adapter by MAC (or by its connection name, which a clone
 *   cannot know offline), so every ethernet needs match.macaddress; bonds,
 *   bridges and VLANs have no unattend settings and are refused.
 *
 * IPv4 and IPv6 both: Ipv4Settings/Ipv6Settings carry DhcpEnabled per
 * family, UnicastIpAddresses holds addresses of both families, a default
 * route is Prefix 0.0.0.0/0 or ::/0 by its gateway's family.
 */
import { interpret } from '../network/interpret.js';
import { parseCidr, parseIp } from '../network/ip.js';
import type { Iface, NetworkModel } from '../core/network.js';
import { SECTION_OF } from '../core/network.js';
import { GhostprepError } from '../util/errors.js';
import type { WindowsInterface } from './settings.js';

/** One Interface of the TCPIP and DNS-Client components, in the shape the template reads. */
export interface UnattendInterface {
  /** MAC as unattend wants it: 52-54-00-AA-BB-01. */
  readonly identifier: string;
  /** Ipv4Settings DhcpEnabled. */
  readonly dhcp: boolean;
  /** Ipv6Settings, when the interface has any IPv6 (address, route or DHCPv6); null: left to Windows' defaults. */
  readonly ipv6: { readonly dhcp: boolean } | null;
  /** UnicastIpAddresses, both families, key 1.. */
  readonly addresses: ReadonlyArray<{ readonly key: number; readonly cidr: string; readonly family: 4 | 6 }>;
  /** Routes, Identifier 1..; prefix 0.0.0.0/0 or ::/0 for a default route; nextHop '' for an on-link route. */
  readonly routes: ReadonlyArray<{ readonly id: number; readonly prefix: string; readonly nextHop: string; readonly metric: number | null }>;
  /** The IPv4 default gateway ('' for none): what templates before routes read. */
  readonly gateway: string;
  /** DNSServerSearchOrder, key 1.. */
  readonly dns: ReadonlyArray<{ readonly key: number; readonly ip: string }>;
  /** Search domains of this interface (all interfaces' go to the global DNSSuffixSearchOrder). */
  readonly search: readonly string[];
}

/** unattend.xml wants MACs as 52-54-00-AA-BB-01. */
export function unattendMac(mac: string): string {
  return mac.replace(/[:.]/g, '-').toUpperCase();
}

const DEFAULT_PREFIX = { 4: '0.0.0.0/0', 6: '::/0' } as const;

function numbered<T, U>(items: readonly T[], f: (item: T, n: number) => U): U[] {
  return items.map((item, i) => f(item, i + 1));
}

/** windows.network.interfaces entry -> unattend interface (IPv6 addresses and gateways go where IPv6 belongs). */
export function fromWindowsInterface(i: WindowsInterface): UnattendInterface {
  const addrs = (i.addresses ?? []).map((text) => parseCidr(text) ?? { cidr: text, family: 4 as const });
  const gw = i.gateway ? parseIp(i.gateway) : null;
  const family = gw?.family ?? 4;
  const has6 = addrs.some((a) => a.family === 6) || family === 6;
  return {
    identifier: unattendMac(i.mac),
    dhcp: i.dhcp ?? !addrs.some((a) => a.family === 4),
    ipv6: has6 ? { dhcp: false } : null,
    addresses: numbered(addrs, (a, key) => ({ key, cidr: a.cidr, family: a.family })),
    routes: i.gateway ? [{ id: 1, prefix: DEFAULT_PREFIX[family], nextHop: gw?.canonical ?? i.gateway, metric: null }] : [],
    gateway: i.gateway && family === 4 ? i.gateway : '',
    dns: numbered(i.dns ?? [], (ip, key) => ({ key, ip })),
    search: [],
  };
}

/** A model interface -> unattend interface; throws naming the v2 path when Windows cannot express it. */
export function fromModelInterface(iface: Iface): UnattendInterface {
  const at = `network: ${SECTION_OF[iface.kind]}/${iface.id}`;
  if (iface.kind !== 'ethernet') {
    throw new GhostprepError(`${at}: Windows unattend.xml has no settings for a ${iface.kind}; configure it inside Windows, or give Windows guests windows.network`);
  }
  const mac = iface.match?.macaddress;
  if (!mac) {
    throw new GhostprepError(`${at}: Windows identifies adapters by MAC address in unattend.xml; add match: {macaddress: ...} (a kernel name like ${iface.name ?? iface.id} means nothing to Windows)`);
  }
  const defaultV4 = iface.routes.find((r) => r.isDefault && r.family === 4 && r.via);
  return {
    identifier: unattendMac(mac),
    dhcp: iface.dhcp4,
    ipv6: iface.dhcp6 || iface.addresses.some((a) => a.family === 6) || iface.routes.some((r) => r.family === 6) ? { dhcp: iface.dhcp6 } : null,
    addresses: numbered(iface.addresses, (a, key) => ({ key, cidr: a.cidr, family: a.family })),
    // an on-link route (no via) is a Prefix alone, which unattend allows for a prefix written as a string
    routes: numbered(iface.routes, (r, id) => ({ id, prefix: r.isDefault ? DEFAULT_PREFIX[r.family] : r.to, nextHop: r.via ?? '', metric: r.metric ?? null })),
    gateway: defaultV4?.via ?? '',
    dns: numbered(iface.nameservers, (ip, key) => ({ key, ip })),
    search: iface.search,
  };
}

/** The unattend interfaces of a profile: windows.network when given, else its `network:` (v2). */
export function unattendInterfaces(windowsNetwork: { interfaces: WindowsInterface[] } | undefined, network: unknown): UnattendInterface[] {
  if (windowsNetwork) return (windowsNetwork.interfaces ?? []).map(fromWindowsInterface);
  if (network === undefined || network === null) return [];
  const model: NetworkModel = interpret(network);
  return model.interfaces.map(fromModelInterface);
}
