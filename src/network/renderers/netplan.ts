/**
 * netplan: one YAML file, /etc/netplan/50-ghostprep.yaml (0600: netplan
 * warns about world-readable files). Re-emits the normalized model as v2,
 * so what netplan reads is exactly what was validated. Every string is
 * double-quoted: netplan uses a YAML 1.1 parser, where an unquoted MAC such
 * as 52:54:00:12:34:56 could be read as a base-60 number.
 */
import { stringify } from 'yaml';
import type { BondParams, BridgeParams, Iface, NetworkModel, Route } from '../model.js';
import { SECTION_OF } from '../model.js';
import type { Renderer } from './common.js';
import { HEADER, file } from './common.js';

export const NETPLAN_PATH = '/etc/netplan/50-ghostprep.yaml';

type Obj = Record<string, unknown>;

function compact(o: Obj): Obj {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0)));
}

function route(r: Route): Obj {
  return compact({ to: r.to, via: r.via, metric: r.metric, 'on-link': r.onLink ? true : undefined });
}

function bondParams(p: BondParams): Obj {
  return compact({
    mode: p.mode,
    'mii-monitor-interval': p.miiMonitorInterval,
    'lacp-rate': p.lacpRate,
    'transmit-hash-policy': p.transmitHashPolicy,
    'ad-select': p.adSelect,
    'min-links': p.minLinks,
    'up-delay': p.upDelay,
    'down-delay': p.downDelay,
    'arp-interval': p.arpInterval,
    'arp-ip-targets': p.arpIpTargets,
    primary: p.primary,
    'primary-reselect-policy': p.primaryReselectPolicy,
    'fail-over-mac-policy': p.failOverMacPolicy,
    'gratuitous-arp': p.gratuitousArp,
  });
}

function bridgeParams(p: BridgeParams): Obj {
  return compact({
    stp: p.stp,
    'forward-delay': p.forwardDelay,
    'hello-time': p.helloTime,
    'max-age': p.maxAge,
    'ageing-time': p.ageingTime,
    priority: p.priority,
  });
}

function definition(i: Iface): Obj {
  const ns = compact({ addresses: i.nameservers, search: i.search });
  const params = i.bond ? bondParams(i.bond) : i.bridge ? bridgeParams(i.bridge) : {};
  return compact({
    match: i.match ? compact({ ...i.match }) : undefined,
    'set-name': i.setName,
    id: i.vlan?.id,
    link: i.vlan?.link,
    interfaces: i.kind === 'bond' || i.kind === 'bridge' ? [...i.members] : undefined,
    parameters: Object.keys(params).length ? params : undefined,
    mtu: i.mtu,
    dhcp4: i.dhcp4 || undefined,
    dhcp6: i.dhcp6 || undefined,
    addresses: i.addresses.map((a) => a.cidr),
    routes: i.routes.map(route),
    nameservers: Object.keys(ns).length ? ns : undefined,
  });
}

export function renderNetplanYaml(model: NetworkModel): string {
  const network: Obj = { version: 2 };
  for (const i of model.interfaces) {
    const section = SECTION_OF[i.kind];
    const defs = (network[section] ??= {}) as Obj;
    defs[i.id] = definition(i);
  }
  const body = stringify({ network }, { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN', lineWidth: 0 });
  return `# ${HEADER}\n${body}`;
}

export const netplan: Renderer = {
  name: 'netplan',
  description: 'netplan YAML (Ubuntu, Debian cloud images); netplan generates networkd or NetworkManager files at boot',
  render: (model) => [file(NETPLAN_PATH, 0o600, renderNetplanYaml(model))],
};
