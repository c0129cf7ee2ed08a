/**
 * v2 config -> NetworkModel. The input has passed the schema and
 * checkNetwork(); anything still malformed here is a bug upstream, so it
 * throws with the JSON path instead of guessing.
 */
import { parseCidr, parseIp } from './ip.js';
import type { Address, BondParams, BridgeParams, Iface, IfaceKind, Match, NetworkModel, Route } from '../core/network.js';
import { NetworkRenderError } from './model.js';
import { KIND_ORDER, SECTION_OF } from '../core/network.js';

type Obj = Record<string, unknown>;

const TRUE_WORDS = new Set(['true', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', 'no', 'off']);

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function fail(path: string, message: string): never {
  throw new NetworkRenderError(`network config ${path}: ${message} (run validate first)`);
}

export function toBool(v: unknown, path: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && TRUE_WORDS.has(v.toLowerCase())) return true;
  if (typeof v === 'string' && FALSE_WORDS.has(v.toLowerCase())) return false;
  return fail(path, `${JSON.stringify(v)} is not a boolean`);
}

export function toUint(v: unknown, path: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && /^[0-9]+$/.test(v) && Number.isSafeInteger(Number(v))) return Number(v);
  return fail(path, `${JSON.stringify(v)} is not a non-negative integer`);
}

/** A list, or one string holding a comma/space separated list (a rendered "{{site.dns}}"). */
export function toList(v: unknown): string[] {
  if (v === undefined) return [];
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === 'string') return v.split(/[\s,]+/).filter(Boolean);
  return [String(v)];
}

function parseAddresses(v: unknown, path: string): Address[] {
  return toList(v).map((text, i) => parseCidr(text) ?? fail(`${path}/${i}`, `"${text}" is not an IPv4/IPv6 CIDR address`));
}

export function parseRoute(r: unknown, path: string): Route {
  if (!isObj(r) || typeof r.to !== 'string') return fail(path, 'a route needs "to"');
  const via = typeof r.via === 'string' ? parseIp(r.via) ?? fail(`${path}/via`, `"${r.via}" is not an IP address`) : undefined;
  const metric = toUint(r.metric, `${path}/metric`);
  const onLink = toBool(r['on-link'], `${path}/on-link`) ?? false;
  const base = { ...(via ? { via: via.canonical } : {}), ...(metric !== undefined ? { metric } : {}), onLink };
  if (r.to === 'default') {
    if (!via) return fail(`${path}/to`, 'a default route needs "via" (its address family comes from the gateway)');
    return { family: via.family, to: via.family === 4 ? '0.0.0.0/0' : '::/0', isDefault: true, ...base };
  }
  const to = parseCidr(r.to) ?? fail(`${path}/to`, `"${r.to}" is not an IPv4/IPv6 CIDR destination or "default"`);
  return { family: to.family, to: to.cidr, isDefault: to.prefix === 0, ...base };
}

function parseMatch(v: unknown): Match | undefined {
  if (!isObj(v)) return undefined;
  return {
    ...(typeof v.name === 'string' ? { name: v.name } : {}),
    ...(typeof v.macaddress === 'string' ? { macaddress: v.macaddress.toLowerCase() } : {}),
    ...(typeof v.driver === 'string' ? { driver: v.driver } : {}),
  };
}

const GLOB_RE = /[*?[]/;

/** See Iface.name: the kernel name once configured, when it is known offline. */
export function deviceName(id: string, kind: IfaceKind, match: Match | undefined, setName: string | undefined): string | undefined {
  if (kind !== 'ethernet') return id;
  if (setName) return setName;
  if (!match) return id;
  if (match.name && !GLOB_RE.test(match.name)) return match.name;
  return undefined;
}

function definedEntries(o: Obj): Obj {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

function parseBondParams(v: unknown, path: string): BondParams {
  const p = isObj(v) ? v : {};
  const str = (k: string) => (typeof p[k] === 'string' ? (p[k] as string) : undefined);
  const num = (k: string) => toUint(p[k], `${path}/${k}`);
  return definedEntries({
    mode: str('mode'),
    miiMonitorInterval: num('mii-monitor-interval'),
    lacpRate: str('lacp-rate'),
    transmitHashPolicy: str('transmit-hash-policy'),
    adSelect: str('ad-select'),
    minLinks: num('min-links'),
    upDelay: num('up-delay'),
    downDelay: num('down-delay'),
    arpInterval: num('arp-interval'),
    arpIpTargets: Array.isArray(p['arp-ip-targets']) ? p['arp-ip-targets'].map(String) : undefined,
    primary: str('primary'),
    primaryReselectPolicy: str('primary-reselect-policy'),
    failOverMacPolicy: str('fail-over-mac-policy'),
    gratuitousArp: num('gratuitous-arp'),
  }) as BondParams;
}

function parseBridgeParams(v: unknown, path: string): BridgeParams {
  const p = isObj(v) ? v : {};
  const num = (k: string) => toUint(p[k], `${path}/${k}`);
  return definedEntries({
    stp: toBool(p.stp, `${path}/stp`),
    forwardDelay: num('forward-delay'),
    helloTime: num('hello-time'),
    maxAge: num('max-age'),
    ageingTime: num('ageing-time'),
    priority: num('priority'),
  }) as BridgeParams;
}

function parseIface(id: string, kind: IfaceKind, cfg: Obj, path: string): Omit<Iface, 'master'> {
  const match = kind === 'ethernet' ? parseMatch(cfg.match) : undefined;
  const setName = typeof cfg['set-name'] === 'string' ? cfg['set-name'] : undefined;
  const ns = isObj(cfg.nameservers) ? cfg.nameservers : {};
  const routes = Array.isArray(cfg.routes) ? cfg.routes.map((r, i) => parseRoute(r, `${path}/routes/${i}`)) : [];
  const mtu = toUint(cfg.mtu, `${path}/mtu`);
  return {
    id,
    kind,
    name: deviceName(id, kind, match, setName),
    ...(match ? { match } : {}),
    ...(setName ? { setName } : {}),
    dhcp4: toBool(cfg.dhcp4, `${path}/dhcp4`) ?? false,
    dhcp6: toBool(cfg.dhcp6, `${path}/dhcp6`) ?? false,
    addresses: parseAddresses(cfg.addresses, `${path}/addresses`),
    routes,
    nameservers: toList(ns.addresses).map((a, i) => parseIp(a)?.canonical ?? fail(`${path}/nameservers/addresses/${i}`, `"${a}" is not an IP address`)),
    search: toList(ns.search),
    ...(mtu !== undefined ? { mtu } : {}),
    members: Array.isArray(cfg.interfaces) ? cfg.interfaces.map(String) : [],
    ...(kind === 'bond' ? { bond: parseBondParams(cfg.parameters, `${path}/parameters`) } : {}),
    ...(kind === 'bridge' ? { bridge: parseBridgeParams(cfg.parameters, `${path}/parameters`) } : {}),
    ...(kind === 'vlan' ? { vlan: { id: toUint(cfg.id, `${path}/id`) ?? fail(path, 'a vlan needs "id"'), link: String(cfg.link) } } : {}),
  };
}

/** Interpret a v2 network config into the model (sorted by kind, then ID). */
export function interpret(config: unknown): NetworkModel {
  if (!isObj(config)) return fail('', 'the network configuration must be a mapping');
  const parsed: Omit<Iface, 'master'>[] = [];
  for (const kind of KIND_ORDER) {
    const section = config[SECTION_OF[kind]];
    if (section === undefined) continue;
    if (!isObj(section)) return fail(`/${SECTION_OF[kind]}`, 'must be a mapping of interface IDs');
    for (const id of Object.keys(section).sort()) {
      const cfg = section[id];
      parsed.push(parseIface(id, kind, isObj(cfg) ? cfg : {}, `/${SECTION_OF[kind]}/${id}`));
    }
  }
  const masterOf = new Map<string, string>();
  for (const i of parsed) for (const m of i.members) masterOf.set(m, i.id);
  return { interfaces: parsed.map((i) => (masterOf.has(i.id) ? { ...i, master: masterOf.get(i.id)! } : i)) };
}
