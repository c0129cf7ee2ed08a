/**
 * systemd-networkd: per interface /etc/systemd/network/10-ghostprep-NAME.network,
 * .netdev for bonds/bridges/vlans and .link for set-name renames (0644).
 * Keys and their order follow what `netplan generate` writes for the same
 * input, so a guest switched between netplan and plain networkd behaves the
 * same; the test suite compares both through the real netplan.
 */
import path from 'node:path/posix';
import type { GuestReader } from '../../core/backend.js';
import type { FileChange } from '../../core/file-change.js';
import type { BondParams, BridgeParams, Claims, Iface, NetworkModel, Renderer, Route, WholeFile } from '../../core/network.js';
import { HEADER, file, linkFile, ref, stem, vlansOn } from './common.js';
import { Probe, del, iniGet, isOurs, listFiles, namesTaken, parseIni } from './guest.js';

export const NETWORKD_DIR = '/etc/systemd/network';

type Section = [string, (string | undefined)[]];

function ini(sections: Section[]): string {
  const parts = sections
    .map(([name, lines]) => [name, lines.filter((l): l is string => l !== undefined)] as const)
    .filter(([, lines]) => lines.length > 0)
    .map(([name, lines]) => `[${name}]\n${lines.join('\n')}\n`);
  return `# ${HEADER}\n${parts.join('\n')}`;
}

const opt = (key: string, v: string | number | boolean | undefined, suffix = ''): string | undefined => (v === undefined ? undefined : `${key}=${v}${suffix}`);

function matchLines(i: Iface): string[] {
  if (i.name !== undefined) return [`Name=${i.name}`];
  const m = i.match ?? {};
  // Permanent MAC: a bond member's current MAC changes to the bond's when enslaved.
  return [m.macaddress && `PermanentMACAddress=${m.macaddress}`, m.driver && `Driver=${m.driver}`, m.name && `Name=${m.name}`].filter((l): l is string => !!l);
}

function dhcp(i: Iface): string | undefined {
  if (i.dhcp4 && i.dhcp6) return 'DHCP=yes';
  if (i.dhcp4) return 'DHCP=ipv4';
  if (i.dhcp6) return 'DHCP=ipv6';
  return undefined;
}

function networkLines(model: NetworkModel, i: Iface): (string | undefined)[] {
  const master = i.master ? ref(model, i.master, i) : undefined;
  const primary = master?.bond?.primary === i.id;
  return [
    dhcp(i),
    // Members carry no addresses of their own, not even link-local ones.
    `LinkLocalAddressing=${master ? 'no' : 'ipv6'}`,
    ...i.addresses.map((a) => `Address=${a.cidr}`),
    ...i.nameservers.map((n) => `DNS=${n}`),
    i.search.length ? `Domains=${i.search.join(' ')}` : undefined,
    // Virtual devices have no carrier until a member or the VLAN link is up.
    i.kind !== 'ethernet' ? 'ConfigureWithoutCarrier=yes' : undefined,
    master ? `${master.kind === 'bond' ? 'Bond' : 'Bridge'}=${stem(master)}` : undefined,
    primary ? 'PrimarySlave=true' : undefined,
    ...vlansOn(model, i).map((v) => `VLAN=${stem(v)}`),
  ];
}

/**
 * DHCP as v2 means it (netplan's defaults), not as networkd defaults it:
 * routes from the lease at metric 100 (networkd's own default is 1024, which
 * loses to any other stack's default route) and the lease's MTU applied
 * (netplan's use-mtu: true).
 */
export const DHCP_ROUTE_METRIC = 100;

function dhcp4Lines(i: Iface): (string | undefined)[] {
  if (!i.dhcp4) return [];
  return [`RouteMetric=${DHCP_ROUTE_METRIC}`, 'UseMTU=true'];
}

function routeSection(r: Route): Section {
  return ['Route', [`Destination=${r.to}`, opt('Gateway', r.via), opt('Metric', r.metric), r.onLink ? 'GatewayOnLink=true' : undefined]];
}

function networkFile(model: NetworkModel, i: Iface): WholeFile {
  const sections: Section[] = [
    ['Match', matchLines(i)],
    ['Link', [opt('MTUBytes', i.mtu)]],
    ['Network', networkLines(model, i)],
    ['DHCPv4', dhcp4Lines(i)],
    ...i.routes.map(routeSection),
  ];
  return file(`${NETWORKD_DIR}/10-ghostprep-${stem(i)}.network`, 0o644, ini(sections));
}

function bondLines(p: BondParams): (string | undefined)[] {
  return [
    opt('Mode', p.mode),
    opt('LACPTransmitRate', p.lacpRate),
    opt('MIIMonitorSec', p.miiMonitorInterval, 'ms'),
    opt('MinLinks', p.minLinks),
    opt('TransmitHashPolicy', p.transmitHashPolicy),
    opt('AdSelect', p.adSelect),
    opt('FailOverMACPolicy', p.failOverMacPolicy),
    opt('ARPIntervalSec', p.arpInterval, 'ms'),
    p.arpIpTargets ? `ARPIPTargets=${p.arpIpTargets.join(' ')}` : undefined,
    opt('UpDelaySec', p.upDelay, 'ms'),
    opt('DownDelaySec', p.downDelay, 'ms'),
    opt('GratuitousARP', p.gratuitousArp),
    opt('PrimaryReselectPolicy', p.primaryReselectPolicy),
  ];
}

function bridgeLines(p: BridgeParams): (string | undefined)[] {
  return [
    opt('AgeingTimeSec', p.ageingTime),
    opt('Priority', p.priority),
    opt('ForwardDelaySec', p.forwardDelay),
    opt('HelloTimeSec', p.helloTime),
    opt('MaxAgeSec', p.maxAge),
    opt('STP', p.stp),
  ];
}

function netdevFile(i: Iface): WholeFile {
  const kind = i.kind === 'bond' ? 'bond' : i.kind === 'bridge' ? 'bridge' : 'vlan';
  const specific: Section =
    i.kind === 'bond' ? ['Bond', bondLines(i.bond ?? {})] : i.kind === 'bridge' ? ['Bridge', bridgeLines(i.bridge ?? {})] : ['VLAN', [`Id=${i.vlan!.id}`]];
  const sections: Section[] = [['NetDev', [`Name=${stem(i)}`, `Kind=${kind}`, opt('MTUBytes', i.mtu)]], specific];
  return file(`${NETWORKD_DIR}/10-ghostprep-${stem(i)}.netdev`, 0o644, ini(sections));
}

export function renderNetworkd(model: NetworkModel): WholeFile[] {
  const out: WholeFile[] = [];
  for (const i of model.interfaces) {
    if (i.setName || (i.kind === 'ethernet' && i.mtu !== undefined)) out.push(linkFile(i, true));
    if (i.kind !== 'ethernet') out.push(netdevFile(i));
    out.push(networkFile(model, i));
  }
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

// ------------------------------------------------------------ the master's files

function networkdConflict(filePath: string, text: string, c: Claims): string | undefined {
  const ini = parseIni(text);
  const ext = path.extname(filePath);
  const mac = iniGet(ini, 'Match', 'MACAddress') ?? iniGet(ini, 'Match', 'PermanentMACAddress');
  if (mac && ext !== '.netdev') return `master ${ext.slice(1)} file bound to MAC ${mac.toLowerCase()}`;
  const names = (ini.get('Match')?.get('Name') ?? []).flatMap((v) => v.split(/\s+/)).filter(Boolean);
  for (const n of names) {
    if (c.names.has(n)) return `master ${ext.slice(1)} file for interface ${n}`;
    // networkd applies the first matching .network in lexical order; a glob only fights when it sorts before ours.
    const hit = namesTaken(n, c).find((ours) => path.basename(filePath) < `10-ghostprep-${ours}.network`);
    if (hit && ext === '.network') return `master network file matching ${n} takes precedence over ours for ${hit}`;
  }
  const own = ext === '.netdev' ? iniGet(ini, 'NetDev', 'Name') : ext === '.link' ? iniGet(ini, 'Link', 'Name') : undefined;
  if (own && c.names.has(own)) return `master ${ext.slice(1)} file also creates or names ${own}`;
  return undefined;
}

/** .network/.netdev/.link files bound to a MAC or naming our interfaces, and globs that sort before ours. */
async function staleNetworkd(reader: GuestReader, c: Claims): Promise<FileChange[]> {
  const files = await listFiles(reader, NETWORKD_DIR, (n) => /\.(network|netdev|link)$/.test(n));
  return files.flatMap((f) => {
    if (c.ours.has(f.path) || isOurs(f.text)) return [];
    const why = networkdConflict(f.path, f.text, c);
    return why ? [del(f.path, why)] : [];
  });
}

export const networkd: Renderer = {
  name: 'networkd',
  description: 'systemd-networkd .network/.netdev/.link files (Arch, minimal systemd guests)',
  priority: 30,
  dirs: [NETWORKD_DIR],
  docs: [{ files: ['network', 'netdev', 'link'].map((ext) => `${NETWORKD_DIR}/10-ghostprep-NAME.${ext}`), mode: 0o644, notes: 'keys as `netplan generate` writes them' }],
  async detect(guest) {
    const probe = new Probe(guest);
    const nd = await probe.enabled(['systemd-networkd.service']);
    return probe.found(nd && `systemd-networkd enabled (${nd})`);
  },
  render: (model) => renderNetworkd(model),
  stale: staleNetworkd,
};
