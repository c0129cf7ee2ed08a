/**
 * NetworkManager keyfiles: /etc/NetworkManager/system-connections/ghostprep-NAME.nmconnection
 * (0600, root: NetworkManager ignores keyfiles readable by others). One
 * connection per interface; members point at their bond/bridge with
 * master=/slave-type= (still read by every NM >= 1.0; controller=/port-type=
 * only exist from 1.46). UUIDs are derived from the clone's machine-id and
 * the connection name (from the interface ID without a machine-id), so
 * re-applying rewrites identical bytes. NM cannot rename a card, so set-name
 * becomes a systemd .link file (udev applies it before NM starts).
 */
import type { GuestReader } from '../../core/backend.js';
import type { Distro } from '../../core/distro.js';
import type { FileChange } from '../../core/file-change.js';
import type { Claims, Iface, IpFamily, NetworkModel, Renderer, RenderOptions, Route, WholeFile } from '../../core/network.js';
import { HEADER, cloneConnectionUuid, file, ref, renameFiles, stableUuid, stem } from './common.js';
import { Probe, del, iniGet, listFiles, nameConflict, parseIni, write } from './guest.js';

export const NM_DIR = '/etc/NetworkManager/system-connections';

/** Name, keys; `true` third: written even without keys (libnm's verify requires the setting). */
type Section = [string, (string | undefined)[], true?];

function keyfile(sections: Section[]): string {
  const parts = sections
    .map(([name, lines, keep]) => [name, lines.filter((l): l is string => l !== undefined), keep] as const)
    .filter(([, lines, keep]) => lines.length > 0 || keep)
    .map(([name, lines]) => `[${name}]\n${lines.map((l) => l + '\n').join('')}`);
  return `# ${HEADER}\n${parts.join('\n')}`;
}

const opt = (key: string, v: string | number | boolean | undefined): string | undefined => (v === undefined ? undefined : `${key}=${v}`);

export function connectionId(i: Iface): string {
  return `ghostprep-${stem(i)}`;
}

/** From the clone's machine-id and the connection's name when known (each clone its own), else from the interface. */
export function connectionUuid(i: Iface, machineId?: string): string {
  return machineId !== undefined ? cloneConnectionUuid(machineId, connectionId(i)) : stableUuid(`nm:${i.kind}:${i.id}`);
}

/** NM accepts an interface name or a connection UUID for master=/parent=. */
function refName(target: Iface, machineId: string | undefined): string {
  return target.name ?? connectionUuid(target, machineId);
}

const NM_TYPE = { ethernet: 'ethernet', bond: 'bond', bridge: 'bridge', vlan: 'vlan' } as const;

function connectionSection(model: NetworkModel, i: Iface, machineId: string | undefined): Section {
  const master = i.master ? ref(model, i.master, i) : undefined;
  return ['connection', [
    `id=${connectionId(i)}`,
    `uuid=${connectionUuid(i, machineId)}`,
    `type=${NM_TYPE[i.kind]}`,
    opt('interface-name', i.name),
    'autoconnect=true',
    master ? `master=${refName(master, machineId)}` : undefined,
    master ? `slave-type=${master.kind}` : undefined,
  ]];
}

function matchSection(i: Iface): Section {
  // Only what [ethernet]/interface-name cannot express: driver and glob names (NM >= 1.26).
  const m = i.name === undefined ? i.match ?? {} : { driver: i.match?.driver };
  return ['match', [opt('driver', m.driver), 'name' in m ? opt('interface-name', m.name) : undefined]];
}

function routeLines(routes: readonly Route[]): string[] {
  const out: string[] = [];
  routes.forEach((r, n) => {
    const parts = [r.to, r.via ?? (r.metric !== undefined ? (r.to.includes(':') ? '::' : '0.0.0.0') : undefined), r.metric].filter((p) => p !== undefined);
    out.push(`route${n + 1}=${parts.join(',')}`);
    if (r.onLink) out.push(`route${n + 1}_options=onlink=true`);
  });
  return out;
}

function method(i: Iface, family: IpFamily, hasStatic: boolean): string {
  if (family === 4) return i.dhcp4 ? 'auto' : hasStatic ? 'manual' : 'disabled';
  // "ignore" leaves IPv6 to the kernel (router advertisements), as netplan does.
  return i.dhcp6 ? 'auto' : hasStatic ? 'manual' : 'ignore';
}

/**
 * The default route to write as gateway=, if any: the first plain default
 * route. With a metric, only when every route of the family has that same
 * metric: route-metric= is the metric of every route of the connection
 * without its own (and of DHCP routes), so a default route's metric would
 * spill onto the others; it is then written as routeN=0.0.0.0/0,GW,METRIC.
 */
export function gatewayRoute(routes: readonly Route[]): Route | undefined {
  const gw = routes.find((r) => r.isDefault && r.via && !r.onLink);
  if (gw?.metric === undefined) return gw;
  return routes.every((r) => r.metric === gw.metric) ? gw : undefined;
}

/** gateway= (+ route-metric=, see gatewayRoute); every other route an explicit routeN entry. */
function ipSection(i: Iface, family: IpFamily): Section {
  const addrs = i.addresses.filter((a) => a.family === family);
  const routes = i.routes.filter((r) => r.family === family);
  const gw = gatewayRoute(routes);
  const rest = routes.filter((r) => r !== gw);
  const dns = i.nameservers.filter((n) => n.includes(':') === (family === 6));
  const searchHere = family === 4 ? i.search : i.addresses.some((a) => a.family === 4) || i.dhcp4 ? [] : i.search;
  const m = method(i, family, addrs.length > 0 || rest.length > 0 || gw !== undefined);
  return [`ipv${family}`, [
    `method=${m}`,
    ...addrs.map((a, n) => `address${n + 1}=${a.cidr}`),
    opt('gateway', gw?.via),
    opt('route-metric', gw?.metric),
    ...routeLines(rest),
    dns.length ? `dns=${dns.join(';')};` : undefined,
    searchHere.length && m !== 'disabled' && m !== 'ignore' ? `dns-search=${searchHere.join(';')};` : undefined,
  ]];
}

function typeSection(model: NetworkModel, i: Iface, machineId: string | undefined): Section {
  if (i.kind === 'ethernet') return ['ethernet', [opt('mac-address', i.match?.macaddress?.toUpperCase()), opt('mtu', i.mtu)], true];
  if (i.kind === 'vlan') return ['vlan', [`id=${i.vlan!.id}`, `parent=${refName(ref(model, i.vlan!.link, i), machineId)}`]];
  if (i.kind === 'bridge') {
    const p = i.bridge ?? {};
    return ['bridge', [opt('ageing-time', p.ageingTime), opt('forward-delay', p.forwardDelay), opt('hello-time', p.helloTime), opt('max-age', p.maxAge), opt('priority', p.priority), opt('stp', p.stp)], true];
  }
  return ['bond', bondOptions(model, i)];
}

/** [bond] keys are the kernel's bonding option names (sorted, as nmcli writes them). */
function bondOptions(model: NetworkModel, i: Iface): string[] {
  const p = i.bond ?? {};
  const primary = p.primary ? ref(model, p.primary, i) : undefined;
  const opts: Record<string, string | number | undefined> = {
    ad_select: p.adSelect,
    arp_interval: p.arpInterval,
    arp_ip_target: p.arpIpTargets?.join(','),
    downdelay: p.downDelay,
    fail_over_mac: p.failOverMacPolicy,
    lacp_rate: p.lacpRate,
    miimon: p.miiMonitorInterval,
    min_links: p.minLinks,
    mode: p.mode ?? 'balance-rr',
    num_grat_arp: p.gratuitousArp,
    primary: primary ? stem(primary) : undefined,
    primary_reselect: p.primaryReselectPolicy,
    updelay: p.upDelay,
    xmit_hash_policy: p.transmitHashPolicy,
  };
  return Object.entries(opts).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
}

function connectionFile(model: NetworkModel, i: Iface, machineId: string | undefined): WholeFile {
  const sections: Section[] = [connectionSection(model, i, machineId), typeSection(model, i, machineId), matchSection(i)];
  if (i.kind !== 'ethernet') {
    // A bond, bridge or vlan takes its MTU from the wired ([ethernet]) setting.
    sections.push(['ethernet', [opt('mtu', i.mtu)]]);
  }
  // A bridge port's settings (defaults: nm_connection_verify wants the section, NM would add it).
  if (i.master && ref(model, i.master, i).kind === 'bridge') sections.push(['bridge-port', [], true]);
  // Ports of a bond or bridge have no IP configuration of their own.
  if (!i.master) sections.push(ipSection(i, 4), ipSection(i, 6));
  return file(`${NM_DIR}/${connectionId(i)}.nmconnection`, 0o600, keyfile(sections));
}

export function renderNetworkManager(model: NetworkModel, distro: Distro, opts: RenderOptions = {}): WholeFile[] {
  return [...model.interfaces.map((i) => connectionFile(model, i, opts.machineId)), ...renameFiles(model, distro)];
}

// ------------------------------------------------------------ the master's files

function nmConflict(text: string, c: Claims): string | undefined {
  const ini = parseIni(text);
  const mac = iniGet(ini, 'ethernet', 'mac-address') ?? iniGet(ini, '802-3-ethernet', 'mac-address');
  if (mac) return `master connection bound to MAC ${mac.toLowerCase()}`;
  const ifname = iniGet(ini, 'connection', 'interface-name');
  const ifnameWhy = ifname && nameConflict(ifname, c);
  if (ifnameWhy) return `master connection ${ifnameWhy}`;
  // [match] interface-name: a ';' list of globs, "~" optional, "!" excluding
  const patterns = (iniGet(ini, 'match', 'interface-name') ?? '').split(';').map((p) => p.trim().replace(/^[~|&]/, '')).filter(Boolean);
  for (const p of patterns) {
    const why = nameConflict(p, c);
    if (why) return `master connection ${why}`;
  }
  const type = iniGet(ini, 'connection', 'type');
  if (!ifname && (type === 'ethernet' || type === '802-3-ethernet')) return 'master Ethernet connection not bound to any interface (it would compete for every card)';
  return undefined;
}

/** Keys whose value may name another connection by UUID. */
const NM_REF_KEYS = /^(\s*(?:master|controller|parent|port\.controller)\s*=\s*)(\S+?)(\s*)$/;

/**
 * A kept master connection's new text: its own uuid= re-derived from the
 * clone's machine-id and its id= (file name without extension when id= is
 * missing), and references to renamed UUIDs rewritten; the rest byte for byte.
 */
export function reUuid(text: string, renamed: ReadonlyMap<string, string>): string {
  return text.split('\n').map((line) => {
    const own = /^(\s*uuid\s*=\s*)(\S+?)(\s*)$/.exec(line);
    if (own && renamed.has(own[2]!.toLowerCase())) return `${own[1]}${renamed.get(own[2]!.toLowerCase())}${own[3]}`;
    const r = NM_REF_KEYS.exec(line);
    if (r && renamed.has(r[2]!.toLowerCase())) return `${r[1]}${renamed.get(r[2]!.toLowerCase())}${r[3]}`;
    return line;
  }).join('\n');
}

/**
 * Connections bound to a MAC, for one of our names, or for any Ethernet card
 * go. The ones kept get UUIDs of the clone's own (a UUID names a connection
 * across machines: two clones with the master's would be one connection to
 * any tool that compares them), with references between them rewritten.
 */
async function staleNm(reader: GuestReader, c: Claims): Promise<FileChange[]> {
  const files = (await listFiles(reader, NM_DIR, () => true)).filter((f) => !c.ours.has(f.path));
  const out: FileChange[] = [];
  const kept: typeof files = [];
  for (const f of files) {
    const why = nmConflict(f.text, c);
    if (why) out.push(del(f.path, why));
    else kept.push(f);
  }
  if (c.machineId === undefined) return out;
  const named = kept.map((f) => {
    const ini = parseIni(f.text);
    return { uuid: iniGet(ini, 'connection', 'uuid'), id: iniGet(ini, 'connection', 'id') ?? f.path.slice(NM_DIR.length + 1).replace(/\.nmconnection$/, ''), file: f.path };
  });
  const renamed = new Map<string, string>();
  for (const { uuid, id, file: p } of named) {
    // two connections may share a name: then the file tells them apart
    const unique = named.filter((n) => n.id === id).length === 1;
    if (uuid) renamed.set(uuid.toLowerCase(), cloneConnectionUuid(c.machineId, unique ? id : `${id}@${p}`));
  }
  for (const f of kept) {
    const next = reUuid(f.text, renamed);
    if (next === f.text) continue;
    const st = await reader.lstat(f.path);
    out.push(write(f.path, next, st?.mode ?? 0o600, 'master connection kept: UUID of the clone\'s own (from its machine-id and the connection name), references rewritten'));
  }
  return out;
}

export const networkManager: Renderer = {
  name: 'network-manager',
  description: 'NetworkManager keyfiles (RHEL/Fedora >= 8, desktops, SUSE with NetworkManager)',
  priority: 20,
  dirs: [NM_DIR],
  docs: [{ files: [`${NM_DIR}/ghostprep-NAME.nmconnection`], mode: 0o600, notes: 'UUIDs from the machine-id; members use `master=`/`slave-type=`' }],
  async detect(guest) {
    const probe = new Probe(guest);
    const nm = await probe.enabled(['NetworkManager.service'], 'networkmanager');
    return probe.found(nm && `NetworkManager enabled (${nm})`);
  },
  render: renderNetworkManager,
  stale: staleNm,
};
