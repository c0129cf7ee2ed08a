/**
 * Semantic checks of a v2 network config, after the schema. Each rule is a
 * small function adding problems with a JSON pointer relative to the network
 * object ("/ethernets/lan/addresses/0"); the caller prefixes "/network" and
 * maps pointers to file:line:col. All problems are reported, not the first.
 *
 * Shapes the schema rejects (a string where a mapping belongs) are skipped
 * here rather than reported twice.
 *
 * MTU range: 68 (the IPv4 minimum, RFC 791) to 9216 (the largest jumbo frame
 * mainstream NICs and switches accept; larger values are almost always a
 * typo such as 90000). An interface with IPv6 (static or dhcp6) needs at
 * least 1280, the IPv6 minimum link MTU (RFC 8200). A VLAN cannot have a
 * larger MTU than its link, nor a bond member a smaller one than its bond.
 */
import { isObj, toBool, toList } from './interpret.js';
import { MAC_RE, contains, ifnameProblem, macProblem, networkOf, parseCidr, parseIp, reservedInSubnet } from './ip.js';
import type { Address, IfaceKind } from '../core/network.js';
import { KIND_ORDER, SECTION_OF } from '../core/network.js';

export interface NetworkProblem {
  readonly path: string;
  readonly message: string;
}

export const MTU_MIN = 68;
export const MTU_MIN_IPV6 = 1280;
export const MTU_MAX = 9216;

type Obj = Record<string, unknown>;

interface Entry {
  readonly id: string;
  readonly kind: IfaceKind;
  readonly cfg: Obj;
  readonly path: string;
}

type Report = (path: string, message: string) => void;

/** JSON pointer segment escaping (RFC 6901). */
export function ptr(...segments: (string | number)[]): string {
  return segments.map((s) => '/' + String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

function entries(config: Obj): Entry[] {
  const out: Entry[] = [];
  for (const kind of KIND_ORDER) {
    const section = config[SECTION_OF[kind]];
    if (!isObj(section)) continue;
    for (const [id, cfg] of Object.entries(section)) {
      if (isObj(cfg)) out.push({ id, kind, cfg, path: ptr(SECTION_OF[kind], id) });
    }
  }
  return out;
}

function safeBool(v: unknown): boolean {
  try { return toBool(v, '') ?? false; } catch { return false; }
}

function safeInt(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^\d+$/.test(v)) return Number(v);
  return undefined;
}

/** The interface's valid static addresses (invalid ones are reported by checkAddresses). */
function addressesOfEntry(e: Entry): Address[] {
  return Array.isArray(e.cfg.addresses) ? e.cfg.addresses.map((a) => (typeof a === 'string' ? parseCidr(a) : null)).filter((a): a is Address => a !== null) : [];
}

function checkAddresses(e: Entry, report: Report): void {
  if (!Array.isArray(e.cfg.addresses)) return;
  const gateways = new Map<string, number>();
  if (Array.isArray(e.cfg.routes)) e.cfg.routes.forEach((r, i) => {
    const via = isObj(r) && typeof r.via === 'string' ? parseIp(r.via) : null;
    if (via && !gateways.has(via.canonical)) gateways.set(via.canonical, i);
  });
  e.cfg.addresses.forEach((text, i) => {
    const path = `${e.path}/addresses/${i}`;
    const addr = typeof text === 'string' ? parseCidr(text) : null;
    if (!addr) return report(path, `${JSON.stringify(text)} is not an IPv4/IPv6 CIDR address`);
    const reserved = reservedInSubnet(addr);
    if (reserved) report(path, `"${text}" is the ${reserved} address of its subnet, not a host address`);
    const route = gateways.get(addr.ip);
    if (route !== undefined) report(path, `"${text}" is also the gateway of routes/${route}: a machine cannot route through itself`);
  });
}

interface ParsedRoute { to: Address | null; isDefault: boolean; via?: ReturnType<typeof parseIp>; onLink: boolean }

function parseRouteLoose(r: Obj): ParsedRoute {
  const via = typeof r.via === 'string' ? parseIp(r.via) : undefined;
  const isDefault = r.to === 'default';
  const to = typeof r.to === 'string' && !isDefault ? parseCidr(r.to) : null;
  return { to, isDefault: isDefault || to?.prefix === 0, ...(via !== undefined ? { via } : {}), onLink: safeBool(r['on-link']) };
}

function checkRoutes(e: Entry, report: Report): void {
  if (!Array.isArray(e.cfg.routes)) return;
  const routes = e.cfg.routes.map((r) => (isObj(r) ? parseRouteLoose(r) : null));
  const addrs = addressesOfEntry(e);
  e.cfg.routes.forEach((r, i) => {
    const route = routes[i];
    if (!isObj(r) || !route) return;
    checkRouteShape(r, route, `${e.path}/routes/${i}`, report);
    if (route.via) checkGateway(e, route, addrs, routes, `${e.path}/routes/${i}/via`, report);
  });
}

function checkRouteShape(r: Obj, route: ParsedRoute, path: string, report: Report): void {
  if (typeof r.to === 'string' && r.to !== 'default' && !route.to) report(`${path}/to`, `"${r.to}" is not an IPv4/IPv6 CIDR destination or "default"`);
  if (route.to && networkOf(route.to) !== route.to.cidr) report(`${path}/to`, `"${r.to}" has host bits set; did you mean "${networkOf(route.to)}"?`);
  if (typeof r.via === 'string' && !route.via) report(`${path}/via`, `"${r.via}" is not an IPv4/IPv6 address`);
  if (r.to === 'default' && r.via === undefined) report(path, 'a default route needs "via"');
  if (route.to && route.via && route.to.family !== route.via.family) report(`${path}/via`, `gateway "${r.via}" is IPv${route.via.family} but destination "${r.to}" is IPv${route.to.family}`);
}

/**
 * The gateway must be reachable: inside a static subnet of the interface, or
 * the route is on-link, or another route of the interface without a gateway
 * covers it. With DHCP on for that family the subnet is only known at run
 * time, so the check is skipped.
 */
function checkGateway(e: Entry, route: ParsedRoute, addrs: Address[], routes: (ParsedRoute | null)[], path: string, report: Report): void {
  const via = route.via!;
  if (route.onLink) return;
  if (safeBool(via.family === 4 ? e.cfg.dhcp4 : e.cfg.dhcp6)) return;
  if (via.family === 6 && via.ip.range() === 'linkLocal') return;
  const inside = addrs.filter((a) => contains(a, via.canonical));
  // IPv4 only: IPv6 has no broadcast, and its subnet-router anycast address does reach a router
  for (const a of via.family === 4 ? inside : []) {
    const reserved = reservedInSubnet(a, via.canonical);
    if (reserved) return report(path, `gateway ${via.canonical} is the ${reserved} address of ${networkOf(a)}, not a host that can route`);
  }
  if (inside.length) return;
  if (routes.some((r) => r && !r.via && r.to && contains(r.to, via.canonical))) return;
  const subnets = addrs.filter((a) => a.family === via.family).map((a) => a.cidr);
  const where = subnets.length ? `any subnet of ${SECTION_OF[e.kind]}/${e.id} (${subnets.join(', ')})` : `a subnet of ${SECTION_OF[e.kind]}/${e.id}, which has no static IPv${via.family} address`;
  report(path, `gateway ${via.canonical} is not inside ${where}; fix the address or gateway, or set on-link: true`);
}

function checkNameservers(e: Entry, report: Report): void {
  const ns = e.cfg.nameservers;
  if (!isObj(ns)) return;
  const single = typeof ns.addresses === 'string';
  toList(ns.addresses).forEach((a, i) => {
    if (!parseIp(a)) report(`${e.path}/nameservers/addresses${single ? '' : `/${i}`}`, `"${a}" is not an IPv4/IPv6 address`);
  });
  const singleSearch = typeof ns.search === 'string';
  toList(ns.search).forEach((d, i) => {
    if (!DOMAIN_RE.test(d) || d.length > 253) report(`${e.path}/nameservers/search${singleSearch ? '' : `/${i}`}`, `"${d}" is not a valid DNS domain`);
  });
}

const DOMAIN_RE = /^(?=.{1,253}$)([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)*\.?$/;

function checkMatch(e: Entry, report: Report): void {
  const match = e.cfg.match;
  const setName = e.cfg['set-name'];
  if (isObj(match) && typeof match.macaddress === 'string') checkMac(match.macaddress, `${e.path}/match/macaddress`, report);
  if (typeof e.cfg.macaddress === 'string') checkMac(e.cfg.macaddress, `${e.path}/macaddress`, report);
  if (typeof setName === 'string') {
    const problem = ifnameProblem(setName);
    if (problem) report(`${e.path}/set-name`, `set-name ${JSON.stringify(setName)} ${problem}`);
  }
  if (setName !== undefined && !isObj(match)) report(`${e.path}/set-name`, 'set-name needs a match (macaddress, driver or name) to say which card to rename');
  if (e.kind !== 'ethernet' || !isObj(match)) {
    if (ifnameProblem(e.id)) report(e.path, `"${e.id}" is not a valid interface name (1-15 bytes, no "/", ":" or spaces, not "." or "..")`);
  }
}

function checkMac(mac: string, path: string, report: Report): void {
  if (!MAC_RE.test(mac)) return report(path, `"${mac}" is not a MAC address (six hex pairs separated by colons, e.g. 52:54:00:12:34:56)`);
  const problem = macProblem(mac);
  if (problem) report(path, `"${mac}" ${problem}`);
}

function checkMtu(e: Entry, all: Map<string, Entry>, report: Report): void {
  const mtu = safeInt(e.cfg.mtu);
  if (mtu === undefined) return;
  const path = `${e.path}/mtu`;
  const v6 = safeBool(e.cfg.dhcp6) || addressesOfEntry(e).some((a) => a.family === 6);
  if (mtu < MTU_MIN || mtu > MTU_MAX) return report(path, `MTU ${mtu} is outside ${MTU_MIN}..${MTU_MAX}`);
  if (v6 && mtu < MTU_MIN_IPV6) report(path, `MTU ${mtu} is below ${MTU_MIN_IPV6}, the minimum for an interface with IPv6`);
  const link = e.kind === 'vlan' && typeof e.cfg.link === 'string' ? all.get(e.cfg.link) : undefined;
  const linkMtu = link ? safeInt(link.cfg.mtu) : undefined;
  if (linkMtu !== undefined && mtu > linkMtu) report(path, `MTU ${mtu} is larger than the MTU ${linkMtu} of its link ${SECTION_OF[link!.kind]}/${link!.id}`);
}

/** bond members must be ethernets; bridge ports ethernets, bonds or vlans; each in one master only. */
function checkMembers(list: Entry[], all: Map<string, Entry>, report: Report): void {
  const owner = new Map<string, string>();
  for (const e of list) {
    if ((e.kind !== 'bond' && e.kind !== 'bridge') || !Array.isArray(e.cfg.interfaces)) continue;
    e.cfg.interfaces.forEach((m, i) => {
      const path = `${e.path}/interfaces/${i}`;
      const member = typeof m === 'string' ? all.get(m) : undefined;
      const allowed: IfaceKind[] = e.kind === 'bond' ? ['ethernet'] : ['ethernet', 'bond', 'vlan'];
      const where = allowed.map((k) => SECTION_OF[k]).join(' or ');
      if (!member) return report(path, `${e.kind} member "${String(m)}" is not defined under ${where}`);
      if (!allowed.includes(member.kind)) return report(path, `${e.kind} member "${String(m)}" is a ${member.kind}; ${e.kind} members must be defined under ${where}`);
      const prev = owner.get(member.id);
      if (prev) return report(path, `"${member.id}" is already a member of ${prev}; an interface can belong to one bond or bridge only`);
      owner.set(member.id, `${SECTION_OF[e.kind]}/${e.id}`);
      checkMemberHasNoIp(member, e, report);
    });
  }
}

function checkMemberHasNoIp(member: Entry, master: Entry, report: Report): void {
  const has = ['addresses', 'routes', 'nameservers'].filter((k) => member.cfg[k] !== undefined);
  if (safeBool(member.cfg.dhcp4)) has.push('dhcp4');
  if (safeBool(member.cfg.dhcp6)) has.push('dhcp6');
  if (has.length) report(member.path, `${has.join(', ')} on a member of ${SECTION_OF[master.kind]}/${master.id} would be ignored; configure them on ${master.id}`);
}

function checkBondPrimary(e: Entry, report: Report): void {
  const params = e.cfg.parameters;
  if (e.kind !== 'bond' || !isObj(params) || typeof params.primary !== 'string') return;
  const members = Array.isArray(e.cfg.interfaces) ? e.cfg.interfaces : [];
  if (!members.includes(params.primary)) report(`${e.path}/parameters/primary`, `primary "${params.primary}" is not one of the bond's interfaces (${members.join(', ')})`);
  if (Array.isArray(params['arp-ip-targets'])) {
    params['arp-ip-targets'].forEach((t, i) => {
      if (typeof t !== 'string' || parseIp(t)?.family !== 4) report(`${e.path}/parameters/arp-ip-targets/${i}`, `${JSON.stringify(t)} is not an IPv4 address`);
    });
  }
}

function checkVlan(e: Entry, all: Map<string, Entry>, report: Report): void {
  if (e.kind !== 'vlan') return;
  const id = safeInt(e.cfg.id);
  if (id !== undefined && (id < 1 || id > 4094)) report(`${e.path}/id`, `VLAN id ${id} is outside 1..4094`);
  if (typeof e.cfg.link !== 'string') return;
  const link = all.get(e.cfg.link);
  if (!link) report(`${e.path}/link`, `vlan link "${e.cfg.link}" is not defined under ethernets, bonds or bridges`);
  else if (link.kind === 'vlan') report(`${e.path}/link`, `vlan link "${e.cfg.link}" is itself a vlan; stacked VLANs are not supported`);
}

/** IDs unique across sections, kernel names unique, MACs matched once. */
function checkUniqueness(list: Entry[], report: Report): void {
  const ids = new Map<string, string>();
  const names = new Map<string, string>();
  const macs = new Map<string, string>();
  for (const e of list) {
    const here = `${SECTION_OF[e.kind]}/${e.id}`;
    const prevId = ids.get(e.id);
    if (prevId) report(e.path, `"${e.id}" is also defined as ${prevId}; interface IDs must be unique across sections`);
    ids.set(e.id, here);
    const match = isObj(e.cfg.match) ? e.cfg.match : undefined;
    const name = typeof e.cfg['set-name'] === 'string' ? e.cfg['set-name'] : match ? undefined : e.id;
    const prevName = name ? names.get(name) : undefined;
    if (name && prevName && !prevId) report(e.path, `interface name "${name}" is also used by ${prevName}`);
    if (name) names.set(name, here);
    const mac = typeof match?.macaddress === 'string' ? match.macaddress.toLowerCase() : undefined;
    const prevMac = mac ? macs.get(mac) : undefined;
    if (mac && prevMac) report(`${e.path}/match/macaddress`, `MAC ${mac} is also matched by ${prevMac}`);
    if (mac) macs.set(mac, here);
  }
}

/** One address on two interfaces of the same machine (fleet-wide duplicates are the caller's, via addressesOf). */
function checkDuplicateAddresses(list: Entry[], report: Report): void {
  const seen = new Map<string, string>();
  for (const e of list) {
    if (!Array.isArray(e.cfg.addresses)) continue;
    e.cfg.addresses.forEach((text, i) => {
      const a = typeof text === 'string' ? parseCidr(text) : null;
      if (!a) return;
      const prev = seen.get(a.ip);
      if (prev) report(`${e.path}/addresses/${i}`, `address ${a.ip} is also assigned at ${prev}`);
      else seen.set(a.ip, `${e.path}/addresses/${i}`);
    });
  }
}

/** All semantic problems of a v2 network config (empty when it is fine). */
export function checkNetwork(config: unknown): NetworkProblem[] {
  const problems: NetworkProblem[] = [];
  const report: Report = (path, message) => problems.push({ path, message });
  if (!isObj(config)) return problems;
  const list = entries(config);
  const all = new Map(list.map((e) => [e.id, e]));
  checkUniqueness(list, report);
  for (const e of list) {
    checkMatch(e, report);
    checkAddresses(e, report);
    checkRoutes(e, report);
    checkNameservers(e, report);
    checkMtu(e, all, report);
    checkVlan(e, all, report);
    checkBondPrimary(e, report);
  }
  checkMembers(list, all, report);
  checkDuplicateAddresses(list, report);
  return problems;
}

/** Static addresses of a config without prefix ("10.0.0.11"), for fleet-wide uniqueness. */
export function addressesOf(config: unknown): string[] {
  if (!isObj(config)) return [];
  return entries(config).flatMap((e) => addressesOfEntry(e).map((a) => a.ip));
}
