/**
 * ifcfg files, two flavours chosen by distro family (0644):
 *  - RHEL (initscripts, NetworkManager's ifcfg-rh plugin):
 *    /etc/sysconfig/network-scripts/ifcfg-NAME, route-NAME, route6-NAME
 *    (route files in `ip route` syntax).
 *  - SUSE (wicked, sysconfig): /etc/sysconfig/network/ifcfg-NAME and
 *    ifroute-NAME ("DEST GATEWAY NETMASK DEVICE [metric N]"); DNS is global
 *    on SUSE, so nameservers/search go to NETCONFIG_DNS_STATIC_* in
 *    /etc/sysconfig/network/config (netconfig writes resolv.conf from them).
 * Renames (set-name) become systemd .link files: neither flavour renames by
 * itself on current releases.
 */
import path from 'node:path/posix';
import type { GuestReader } from '../../core/backend.js';
import type { Distro } from '../../core/distro.js';
import type { FileChange } from '../../core/file-change.js';
import type { Claims, EditedFile, Iface, NetworkModel, RenderedFile, Renderer, RenderOptions, Route } from '../../core/network.js';
import { NetworkRenderError, requireName } from '../model.js';
import { SECTION_OF } from '../../core/network.js';
import { HEADER, cloneConnectionUuid, file, ref, renameFiles, shq } from './common.js';
import { Probe, del, listFiles, nameConflict, parseKv, write } from './guest.js';

export const RHEL_DIR = '/etc/sysconfig/network-scripts';
export const SUSE_DIR = '/etc/sysconfig/network';
export const SUSE_NETCONFIG = '/etc/sysconfig/network/config';
export const IFCFG_DIRS = [RHEL_DIR, SUSE_DIR];

type Kv = [string, string | number | undefined];

function kvText(pairs: Kv[]): string {
  const lines = pairs.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${shq(String(v))}`);
  return `# ${HEADER}\n${lines.join('\n')}\n`;
}

const yesNo = (b: boolean | undefined): string | undefined => (b === undefined ? undefined : b ? 'yes' : 'no');

function where(i: Iface): string {
  return `${SECTION_OF[i.kind]}/${i.id}`;
}

/** Kernel bonding options (BONDING_OPTS / BONDING_MODULE_OPTS). */
export function bondingOpts(model: NetworkModel, i: Iface): string {
  const p = i.bond ?? {};
  const primary = p.primary ? requireName(ref(model, p.primary, i), 'ifcfg') : undefined;
  const opts: [string, string | number | undefined][] = [
    ['mode', p.mode ?? 'balance-rr'], ['miimon', p.miiMonitorInterval], ['lacp_rate', p.lacpRate],
    ['xmit_hash_policy', p.transmitHashPolicy], ['ad_select', p.adSelect], ['min_links', p.minLinks],
    ['updelay', p.upDelay], ['downdelay', p.downDelay], ['arp_interval', p.arpInterval],
    ['arp_ip_target', p.arpIpTargets?.join(',')], ['primary', primary], ['primary_reselect', p.primaryReselectPolicy],
    ['fail_over_mac', p.failOverMacPolicy], ['num_grat_arp', p.gratuitousArp],
  ];
  return opts.filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`).join(' ');
}

// ---------------------------------------------------------------- RHEL

/**
 * The first non-on-link default route per family goes to GATEWAY=/IPV6_DEFAULTGW=;
 * the rest to route files. A default route with a metric only when every
 * route of the family has that metric: IPV4_ROUTE_METRIC/IPV6_ROUTE_METRIC is
 * the metric of all the interface's routes, so otherwise the default route
 * goes to the route file with its own metric.
 */
function rhelGateway(i: Iface, family: 4 | 6): Route | undefined {
  const routes = i.routes.filter((r) => r.family === family);
  const gw = routes.find((r) => r.isDefault && r.via && !r.onLink);
  if (gw?.metric === undefined) return gw;
  return routes.every((r) => r.metric === gw.metric) ? gw : undefined;
}

function rhelIp(i: Iface): Kv[] {
  const v4 = i.addresses.filter((a) => a.family === 4);
  const v6 = i.addresses.filter((a) => a.family === 6);
  const gw4 = rhelGateway(i, 4);
  const gw6 = rhelGateway(i, 6);
  const pairs: Kv[] = [['BOOTPROTO', i.dhcp4 ? 'dhcp' : 'none']];
  v4.forEach((a, n) => pairs.push([`IPADDR${n || ''}`, a.ip], [`PREFIX${n || ''}`, a.prefix]));
  if (gw4) pairs.push(['GATEWAY', gw4.via], ['DEFROUTE', 'yes'], ['METRIC', gw4.metric], ['IPV4_ROUTE_METRIC', gw4.metric]);
  const v6on = i.dhcp6 || v6.length > 0;
  pairs.push(['IPV6INIT', yesNo(v6on)]);
  if (v6on) pairs.push(['IPV6_AUTOCONF', yesNo(i.dhcp6)], ['DHCPV6C', yesNo(i.dhcp6)]);
  if (v6.length) pairs.push(['IPV6ADDR', v6[0]!.cidr], ['IPV6ADDR_SECONDARIES', v6.slice(1).map((a) => a.cidr).join(' ') || undefined]);
  if (gw6) pairs.push(['IPV6_DEFAULTGW', gw6.via], ['IPV6_ROUTE_METRIC', gw6.metric]);
  i.nameservers.forEach((n, k) => pairs.push([`DNS${k + 1}`, n]));
  if (i.search.length) pairs.push(['DOMAIN', i.search.join(' ')]);
  return pairs;
}

const RHEL_TYPE = { ethernet: 'Ethernet', bond: 'Bond', bridge: 'Bridge', vlan: 'Vlan' } as const;

/** initscripts reads BRIDGING_OPTS times in centiseconds, NetworkManager in seconds: refuse rather than guess. */
function rhelBridge(i: Iface): Kv[] {
  const p = i.bridge ?? {};
  const ambiguous = (['helloTime', 'maxAge', 'ageingTime'] as const).filter((k) => p[k] !== undefined);
  if (ambiguous.length) {
    throw new NetworkRenderError(`${where(i)}: hello-time, max-age and ageing-time cannot be written to RHEL ifcfg files unambiguously (initscripts reads them in centiseconds, NetworkManager in seconds); use the network-manager or networkd renderer, or drop them`);
  }
  // The forward delay only matters to STP; with STP off, initscripts and NetworkManager differ on whether they accept it.
  return [['STP', yesNo(p.stp)], ['DELAY', p.stp === false ? undefined : p.forwardDelay], ['BRIDGING_OPTS', p.priority !== undefined ? `priority=${p.priority}` : undefined]];
}

function rhelKind(model: NetworkModel, i: Iface): Kv[] {
  if (i.kind === 'bond') return [['BONDING_MASTER', 'yes'], ['BONDING_OPTS', bondingOpts(model, i)]];
  if (i.kind === 'bridge') return rhelBridge(i);
  if (i.kind === 'vlan') return [['VLAN', 'yes'], ['PHYSDEV', requireName(ref(model, i.vlan!.link, i), 'ifcfg')], ['VLAN_ID', i.vlan!.id]];
  return [['HWADDR', i.match?.macaddress]];
}

function rhelIfcfg(model: NetworkModel, i: Iface, name: string, machineId: string | undefined): string {
  const master = i.master ? ref(model, i.master, i) : undefined;
  // NetworkManager's ifcfg-rh plugin takes UUID=; without it, it derives one from the file name, the same on every clone
  const uuid = machineId !== undefined ? cloneConnectionUuid(machineId, `ghostprep-${name}`) : undefined;
  const pairs: Kv[] = [['DEVICE', name], ['NAME', `ghostprep-${name}`], ['UUID', uuid], ['TYPE', RHEL_TYPE[i.kind]], ['ONBOOT', 'yes'], ...rhelKind(model, i)];
  if (master?.kind === 'bond') pairs.push(['MASTER', requireName(master, 'ifcfg')], ['SLAVE', 'yes'], ['BOOTPROTO', 'none']);
  else if (master?.kind === 'bridge') pairs.push(['BRIDGE', requireName(master, 'ifcfg')], ['BOOTPROTO', 'none']);
  else pairs.push(...rhelIp(i));
  pairs.push(['MTU', i.mtu], ['USERCTL', 'no']);
  return kvText(pairs);
}

function rhelRouteLine(r: Route, name: string): string {
  const dest = r.isDefault ? 'default' : r.to;
  return [dest, r.via && `via ${r.via}`, `dev ${name}`, r.metric !== undefined && `metric ${r.metric}`, r.onLink && 'onlink'].filter(Boolean).join(' ');
}

function rhelRouteFiles(i: Iface, name: string): RenderedFile[] {
  const out: RenderedFile[] = [];
  for (const family of [4, 6] as const) {
    const gw = rhelGateway(i, family);
    const routes = i.routes.filter((r) => r.family === family && r !== gw);
    if (!routes.length) continue;
    const path = `${RHEL_DIR}/${family === 4 ? 'route' : 'route6'}-${name}`;
    out.push(file(path, 0o644, `# ${HEADER}\n${routes.map((r) => rhelRouteLine(r, name)).join('\n')}\n`));
  }
  return out;
}

// ---------------------------------------------------------------- SUSE

function suseBootproto(i: Iface): string {
  if (i.dhcp4 && i.dhcp6) return 'dhcp';
  if (i.dhcp4) return 'dhcp4';
  if (i.dhcp6) return 'dhcp6';
  return i.addresses.length ? 'static' : 'none';
}

function suseKind(model: NetworkModel, i: Iface): Kv[] {
  if (i.kind === 'bond') {
    return [['BONDING_MASTER', 'yes'], ['BONDING_MODULE_OPTS', bondingOpts(model, i)],
      ...i.members.map((m, n): Kv => [`BONDING_SLAVE_${n}`, requireName(ref(model, m, i), 'ifcfg')])];
  }
  if (i.kind === 'bridge') {
    const p = i.bridge ?? {};
    return [['BRIDGE', 'yes'], ['BRIDGE_PORTS', i.members.map((m) => requireName(ref(model, m, i), 'ifcfg')).join(' ')],
      ['BRIDGE_STP', p.stp === undefined ? undefined : p.stp ? 'on' : 'off'], ['BRIDGE_FORWARDDELAY', p.forwardDelay],
      ['BRIDGE_HELLOTIME', p.helloTime], ['BRIDGE_MAXAGE', p.maxAge], ['BRIDGE_AGEINGTIME', p.ageingTime], ['BRIDGE_PRIORITY', p.priority]];
  }
  if (i.kind === 'vlan') return [['ETHERDEVICE', requireName(ref(model, i.vlan!.link, i), 'ifcfg')], ['VLAN_ID', i.vlan!.id]];
  return [];
}

function suseIfcfg(model: NetworkModel, i: Iface, name: string): string {
  if ((i.dhcp4 || i.dhcp6) && i.addresses.length) {
    throw new NetworkRenderError(`${where(i)}: SUSE ifcfg files cannot combine DHCP with static addresses on one interface; use one or the other, or the network-manager renderer`);
  }
  // Bond and bridge ports are started by their master (hotplug), with no IP of their own.
  const port = i.master !== undefined;
  const pairs: Kv[] = [['NAME', `ghostprep-${name}`], ['STARTMODE', port ? 'hotplug' : 'auto'], ['BOOTPROTO', port ? 'none' : suseBootproto(i)]];
  if (!port) i.addresses.forEach((a, n) => pairs.push([n ? `IPADDR_${n}` : 'IPADDR', a.cidr]));
  pairs.push(...suseKind(model, i), ['MTU', i.mtu]);
  return kvText(pairs);
}

/**
 * ifroute lines. wicked has no portable on-link flag, so an on-link gateway
 * gets an explicit device route to it first (the classic idiom).
 */
function suseRouteFile(i: Iface, name: string): RenderedFile[] {
  if (!i.routes.length) return [];
  const lines: string[] = [];
  for (const r of i.routes) {
    if (r.onLink && r.via) lines.push(`${r.via}/${r.family === 4 ? 32 : 128} - - ${name}`);
    const dest = r.isDefault ? 'default' : r.to;
    lines.push([dest, r.via ?? '-', '-', name, r.metric !== undefined ? `metric ${r.metric}` : ''].join(' ').trimEnd());
  }
  return [file(`${SUSE_DIR}/ifroute-${name}`, 0o644, `# ${HEADER}\n${lines.join('\n')}\n`)];
}

/** Set KEY="value" in a sysconfig file, replacing an existing assignment or appending. */
export function setSysconfigKey(text: string, key: string, value: string): string {
  const line = `${key}="${value.replace(/(["\\$`])/g, '\\$1')}"`;
  const re = new RegExp(`^\\s*${key}=.*$`, 'm');
  if (re.test(text)) return text.replace(re, line);
  return `${text}${text === '' || text.endsWith('\n') ? '' : '\n'}${line}\n`;
}

function suseDns(model: NetworkModel): EditedFile[] {
  const servers = [...new Set(model.interfaces.flatMap((i) => i.nameservers))];
  const search = [...new Set(model.interfaces.flatMap((i) => i.search))];
  if (!servers.length && !search.length) return [];
  return [{
    kind: 'edit',
    path: SUSE_NETCONFIG,
    mode: 0o644,
    reason: 'SUSE keeps DNS servers in netconfig, not per interface',
    apply: (current) => {
      let text = current ?? '';
      if (servers.length) text = setSysconfigKey(text, 'NETCONFIG_DNS_STATIC_SERVERS', servers.join(' '));
      if (search.length) text = setSysconfigKey(text, 'NETCONFIG_DNS_STATIC_SEARCHLIST', search.join(' '));
      return text;
    },
  }];
}

// ---------------------------------------------------------------- both

export function isSuse(distro: Distro): boolean {
  return distro.family === 'suse';
}

export function renderIfcfg(model: NetworkModel, distro: Distro, opts: RenderOptions = {}): RenderedFile[] {
  const suse = isSuse(distro);
  const out: RenderedFile[] = [];
  for (const i of model.interfaces) {
    const name = requireName(i, 'ifcfg');
    if (suse) out.push(file(`${SUSE_DIR}/ifcfg-${name}`, 0o644, suseIfcfg(model, i, name)), ...suseRouteFile(i, name));
    else out.push(file(`${RHEL_DIR}/ifcfg-${name}`, 0o644, rhelIfcfg(model, i, name, opts.machineId)), ...rhelRouteFiles(i, name));
  }
  out.push(...renameFiles(model, distro));
  if (suse) out.push(...suseDns(model));
  return out;
}

// ---------------------------------------------------------------- the master's files

function ifcfgConflict(name: string, text: string, c: Claims): string | undefined {
  const kv = parseKv(text);
  const mac = kv.get('HWADDR');
  if (mac) return `master ifcfg bound to MAC ${mac.toLowerCase()}`;
  // SUSE's LLADDR (and rhel's MACADDR) *set* the address: a clone would take the master's MAC
  const forced = kv.get('LLADDR') || kv.get('MACADDR');
  if (forced) return `master ifcfg forcing the master's MAC ${forced.toLowerCase()}`;
  const dev = kv.get('DEVICE') || name;
  const why = nameConflict(dev, c);
  if (why) return `master ifcfg ${why}`;
  return undefined;
}

/** Keys of RHEL ifcfg files that hold a connection UUID (their own, or the one they refer to). */
const UUID_KEYS = /^(\s*(?:UUID|MASTER_UUID|BRIDGE_UUID|MASTER|BRIDGE|PHYSDEV)=)(["']?)([0-9A-Fa-f-]{36})\2(\s*)$/;

/** A kept ifcfg file's text with UUID= and references to renamed UUIDs rewritten; the rest byte for byte. */
export function reUuidIfcfg(text: string, renamed: ReadonlyMap<string, string>): string {
  return text.split('\n').map((line) => {
    const m = UUID_KEYS.exec(line);
    const next = m && renamed.get(m[3]!.toLowerCase());
    return next ? `${m[1]}${m[2]}${next}${m[2]}${m[4]}` : line;
  }).join('\n');
}

/** Kept RHEL ifcfg files with UUID=: UUIDs of the clone's own (NAME=, else the file's suffix), references rewritten. */
async function reUuidKept(reader: GuestReader, c: Claims, kept: { path: string; text: string }[]): Promise<FileChange[]> {
  if (c.machineId === undefined) return [];
  const named = kept.map((f) => {
    const kv = parseKv(f.text);
    return { uuid: kv.get('UUID'), id: kv.get('NAME') || path.basename(f.path).slice('ifcfg-'.length), file: f.path };
  });
  const renamed = new Map<string, string>();
  for (const { uuid, id, file: p } of named) {
    // two connections may share a name: then the file tells them apart
    const unique = named.filter((n) => n.id === id).length === 1;
    if (uuid) renamed.set(uuid.toLowerCase(), cloneConnectionUuid(c.machineId, unique ? id : `${id}@${p}`));
  }
  const out: FileChange[] = [];
  for (const f of kept) {
    const next = reUuidIfcfg(f.text, renamed);
    if (next === f.text) continue;
    const st = await reader.lstat(f.path);
    out.push(write(f.path, next, st?.mode ?? 0o644, 'master ifcfg kept: UUID of the clone\'s own (from its machine-id and the connection name), references rewritten'));
  }
  return out;
}

/** ifcfg files bound to a MAC or for one of our names, with their route files; route files for our names. */
async function staleIfcfg(reader: GuestReader, c: Claims): Promise<FileChange[]> {
  const out: FileChange[] = [];
  for (const dir of IFCFG_DIRS) {
    const kept: { path: string; text: string }[] = [];
    const names = (await reader.readdir(dir)) ?? [];
    // Master route files for an interface we configure would add the master's routes to it.
    for (const n of names) {
      const m = /^(?:route6?|ifroute)-(.+)$/.exec(n);
      const p = path.join(dir, n);
      if (m && c.names.has(m[1]!) && !c.ours.has(p)) out.push(del(p, `master routes for interface ${m[1]}`));
    }
    for (const f of await listFiles(reader, dir, (n) => n.startsWith('ifcfg-') && n !== 'ifcfg-lo' && !n.includes('~') && !n.endsWith('.bak'))) {
      if (c.ours.has(f.path)) continue;
      const suffix = path.basename(f.path).slice('ifcfg-'.length);
      const why = ifcfgConflict(suffix, f.text, c);
      if (!why) { if (dir === RHEL_DIR) kept.push(f); continue; }
      out.push(del(f.path, why));
      // Its route files would otherwise outlive it.
      for (const r of [`route-${suffix}`, `route6-${suffix}`, `ifroute-${suffix}`]) {
        const rp = path.join(dir, r);
        if (names.includes(r) && !c.ours.has(rp) && !c.names.has(suffix)) out.push(del(rp, `routes of ${f.path}, which is removed (${why})`));
      }
    }
    out.push(...(await reUuidKept(reader, c, kept)));
  }
  return out;
}

export const ifcfg: Renderer = {
  name: 'ifcfg',
  description: 'sysconfig ifcfg files: RHEL flavour (/etc/sysconfig/network-scripts) or SUSE flavour (/etc/sysconfig/network, wicked)',
  priority: 40,
  dirs: IFCFG_DIRS,
  // ifcfg files are named after the interface, not after ghostprep: any file there may be ours
  ownNames: () => true,
  docs: [
    { flavour: 'RHEL', files: [`${RHEL_DIR}/ifcfg-NAME`, `${RHEL_DIR}/route-NAME`, `${RHEL_DIR}/route6-NAME`], mode: 0o644, notes: 'default route as `GATEWAY=`/`IPV6_DEFAULTGW=`' },
    { flavour: 'SUSE', files: [`${SUSE_DIR}/ifcfg-NAME`, `${SUSE_DIR}/ifroute-NAME`], mode: 0o644, notes: `DNS into \`NETCONFIG_DNS_STATIC_*\` of \`${SUSE_NETCONFIG}\`` },
  ],
  async detect(guest) {
    // wicked reads ifcfg on SUSE; RHEL's initscripts are not told apart from NetworkManager here: the family default picks ifcfg for rhel < 8
    const probe = new Probe(guest);
    const wk = await probe.enabled(['wicked.service']);
    return probe.found(wk && `wicked enabled (${wk})`);
  },
  render: renderIfcfg,
  stale: staleIfcfg,
};
