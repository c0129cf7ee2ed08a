/**
 * ENI (/etc/network/interfaces, ifupdown): one file
 * /etc/network/interfaces.d/50-ghostprep (0644), plus an edit that makes
 * /etc/network/interfaces include interfaces.d (Alpine's and old Debian's
 * do not). Two dialects:
 *  - debian (ifupdown + ifenslave/bridge-utils/vlan): bond members carry
 *    `bond-master`, the bond `bond-slaves none`;
 *  - alpine (ifupdown-ng): the bond lists `bond-members`.
 * Bridge options use the dashed spellings (`bridge-ports`), which ifupdown,
 * ifupdown2 and ifupdown-ng all read. Renames are .link files (udev rules on
 * Alpine). Without resolvconf, ifupdown ignores dns-* options, so a plain
 * /etc/resolv.conf (not a symlink) is rewritten too.
 */
import type { Distro } from '../../distro/detect.js';
import type { EditedFile, Iface, IpFamily, NetworkModel, RenderedFile, Route } from '../model.js';
import { NetworkRenderError, requireName } from '../model.js';
import type { Renderer } from './common.js';
import { HEADER, file, ref, renameFiles } from './common.js';

export const ENI_PATH = '/etc/network/interfaces.d/50-ghostprep';
export const ENI_MAIN = '/etc/network/interfaces';
export const RESOLV_CONF = '/etc/resolv.conf';

type Dialect = 'debian' | 'alpine';

interface Ctx { readonly model: NetworkModel; readonly dialect: Dialect }

const name = (i: Iface): string => requireName(i, 'eni');

function ipRoute(verb: 'add' | 'del', r: Route, dev: string): string {
  const dest = r.isDefault ? 'default' : r.to;
  return [`ip -${r.family} route ${verb} ${dest}`, r.via && `via ${r.via}`, `dev ${dev}`, r.metric !== undefined && `metric ${r.metric}`, r.onLink && 'onlink'].filter(Boolean).join(' ');
}

/** `gateway` (+ v4 `metric`) for the first plain default route; everything else as post-up/pre-down. */
function routeOptions(i: Iface, family: IpFamily, dev: string): string[] {
  const routes = i.routes.filter((r) => r.family === family);
  const gw = routes.find((r) => r.isDefault && r.via && !r.onLink && (family === 4 || r.metric === undefined));
  const out: string[] = [];
  if (gw) out.push(`gateway ${gw.via}`);
  if (gw?.metric !== undefined) out.push(`metric ${gw.metric}`);
  for (const r of routes.filter((x) => x !== gw)) out.push(`post-up ${ipRoute('add', r, dev)}`, `pre-down ${ipRoute('del', r, dev)}`);
  return out;
}

function bondOptions(ctx: Ctx, i: Iface): string[] {
  const p = i.bond ?? {};
  const primary = p.primary ? name(ref(ctx.model, p.primary, i)) : undefined;
  const members = i.members.map((m) => name(ref(ctx.model, m, i)));
  const opts: [string, string | number | undefined][] = [
    ctx.dialect === 'alpine' ? ['bond-members', members.join(' ')] : ['bond-slaves', 'none'],
    ['bond-mode', p.mode ?? 'balance-rr'], ['bond-miimon', p.miiMonitorInterval], ['bond-lacp-rate', p.lacpRate],
    ['bond-xmit-hash-policy', p.transmitHashPolicy], ['bond-ad-select', p.adSelect], ['bond-min-links', p.minLinks],
    ['bond-updelay', p.upDelay], ['bond-downdelay', p.downDelay], ['bond-arp-interval', p.arpInterval],
    ['bond-arp-ip-target', p.arpIpTargets?.join(' ')], ['bond-primary', primary], ['bond-primary-reselect', p.primaryReselectPolicy],
    ['bond-fail-over-mac', p.failOverMacPolicy], ['bond-num-grat-arp', p.gratuitousArp],
  ];
  return opts.filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${v}`);
}

function bridgeOptions(ctx: Ctx, i: Iface): string[] {
  const p = i.bridge ?? {};
  const ports = i.members.map((m) => name(ref(ctx.model, m, i)));
  const opts: [string, string | number | undefined][] = [
    ['bridge-ports', ports.length ? ports.join(' ') : 'none'], ['bridge-stp', p.stp === undefined ? undefined : p.stp ? 'on' : 'off'],
    ['bridge-fd', p.forwardDelay], ['bridge-hello', p.helloTime], ['bridge-maxage', p.maxAge], ['bridge-ageing', p.ageingTime], ['bridge-bridgeprio', p.priority],
  ];
  return opts.filter(([, v]) => v !== undefined).map(([k, v]) => `${k} ${v}`);
}

/**
 * The classic `vlan` package derives the VLAN id from the name (vlan100,
 * bond0.100) and ignores vlan-id; ifupdown-ng reads vlan-id. Refuse names
 * the Debian tools would misread.
 */
function vlanOptions(ctx: Ctx, i: Iface): string[] {
  const dev = name(i);
  const link = name(ref(ctx.model, i.vlan!.link, i));
  const id = i.vlan!.id;
  if (ctx.dialect === 'debian' && dev !== `vlan${id}` && dev !== `${link}.${id}`) {
    throw new NetworkRenderError(`vlans/${i.id}: ifupdown's vlan package takes the VLAN id from the interface name; name it vlan${id} or ${link}.${id}`);
  }
  return [`vlan-raw-device ${link}`, `vlan-id ${id}`];
}

function kindOptions(ctx: Ctx, i: Iface): string[] {
  const master = i.master ? ref(ctx.model, i.master, i) : undefined;
  const out: string[] = [];
  if (master?.kind === 'bond' && ctx.dialect === 'debian') out.push(`bond-master ${name(master)}`);
  if (i.kind === 'bond') out.push(...bondOptions(ctx, i));
  if (i.kind === 'bridge') out.push(...bridgeOptions(ctx, i));
  if (i.kind === 'vlan') out.push(...vlanOptions(ctx, i));
  return out;
}

function stanza(head: string, options: string[]): string {
  return [head, ...options.map((o) => `    ${o}`)].join('\n');
}

/** All stanzas of one interface: link options go to the first, routes to the last of each family. */
function ifaceStanzas(ctx: Ctx, i: Iface): string {
  const dev = name(i);
  const stanzas: { head: string; options: string[]; family: IpFamily }[] = [];
  if (i.dhcp4) stanzas.push({ head: `iface ${dev} inet dhcp`, options: [], family: 4 });
  for (const a of i.addresses.filter((x) => x.family === 4)) stanzas.push({ head: `iface ${dev} inet static`, options: [`address ${a.cidr}`], family: 4 });
  if (i.dhcp6) stanzas.push({ head: `iface ${dev} inet6 dhcp`, options: [], family: 6 });
  for (const a of i.addresses.filter((x) => x.family === 6)) stanzas.push({ head: `iface ${dev} inet6 static`, options: [`address ${a.cidr}`], family: 6 });
  if (!stanzas.length) stanzas.push({ head: `iface ${dev} inet manual`, options: [], family: 4 });
  stanzas[0]!.options.push(...kindOptions(ctx, i), ...(i.mtu !== undefined ? [`mtu ${i.mtu}`] : []));
  for (const family of [4, 6] as const) {
    const last = stanzas.filter((s) => s.family === family).at(-1);
    const routes = routeOptions(i, family, dev);
    if (routes.length && !last) throw new NetworkRenderError(`${i.id}: IPv${family} routes without an IPv${family} address or dhcp${family}`);
    last?.options.push(...routes);
  }
  if (i.nameservers.length) stanzas[0]!.options.push(`dns-nameservers ${i.nameservers.join(' ')}`);
  if (i.search.length) stanzas[0]!.options.push(`dns-search ${i.search.join(' ')}`);
  // Bridge ports are brought up by the bridge; everything else starts at boot.
  const bridgePort = i.master !== undefined && ref(ctx.model, i.master, i).kind === 'bridge';
  const auto = bridgePort ? '' : `auto ${dev}\n`;
  return auto + stanzas.map((s) => stanza(s.head, s.options)).join('\n');
}

/** Whether /etc/network/interfaces already includes our file. */
export function includesInterfacesD(text: string): boolean {
  return text.split('\n').some((raw) => {
    const line = raw.trim();
    return /^source\s+(\/etc\/network\/)?interfaces\.d\/(\*|50-ghostprep)\s*$/.test(line) || /^source-directory\s+(\/etc\/network\/)?interfaces\.d\/?\s*$/.test(line);
  });
}

const DEFAULT_MAIN = '# interfaces(5) file used by ifup(8) and ifdown(8)\nauto lo\niface lo inet loopback\n';

function sourceEdit(): EditedFile {
  return {
    kind: 'edit',
    path: ENI_MAIN,
    mode: 0o644,
    reason: `${ENI_MAIN} must include ${ENI_PATH}`,
    apply: (current) => {
      const text = current ?? DEFAULT_MAIN;
      if (includesInterfacesD(text)) return text;
      return `${text}${text.endsWith('\n') || text === '' ? '' : '\n'}\nsource /etc/network/interfaces.d/*\n`;
    },
  };
}

function resolvEdit(model: NetworkModel): EditedFile[] {
  const servers = [...new Set(model.interfaces.flatMap((i) => i.nameservers))];
  const search = [...new Set(model.interfaces.flatMap((i) => i.search))];
  if (!servers.length && !search.length) return [];
  const text = [`# ${HEADER}`, ...(search.length ? [`search ${search.join(' ')}`] : []), ...servers.slice(0, 3).map((s) => `nameserver ${s}`)].join('\n') + '\n';
  return [{ kind: 'edit', path: RESOLV_CONF, mode: 0o644, skipIfSymlink: true, reason: 'ifupdown applies dns-* options only through resolvconf; this resolv.conf is a plain file', apply: () => text }];
}

export function renderEni(model: NetworkModel, distro: Distro): RenderedFile[] {
  const ctx: Ctx = { model, dialect: distro.family === 'alpine' ? 'alpine' : 'debian' };
  const body = model.interfaces.map((i) => ifaceStanzas(ctx, i)).join('\n\n');
  return [file(ENI_PATH, 0o644, `# ${HEADER}\n\n${body}\n`), sourceEdit(), ...resolvEdit(model), ...renameFiles(model, distro)];
}

export const eni: Renderer = {
  name: 'eni',
  description: 'ifupdown /etc/network/interfaces.d (Debian without netplan, Alpine with ifupdown-ng)',
  render: renderEni,
};
