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
import type { GuestReader } from '../../core/backend.js';
import type { Distro } from '../../core/distro.js';
import type { FileChange } from '../../core/file-change.js';
import type { Claims, EditedFile, Iface, IpFamily, NetworkModel, RenderedFile, Renderer, Route } from '../../core/network.js';
import { globMatcher } from '../../util/glob.js';
import { NetworkRenderError, requireName } from '../model.js';
import { HEADER, file, ref, renameFiles } from './common.js';
import { Probe, del, isOurs, listFiles, namesTaken, readText, write } from './guest.js';

export const ENI_MAIN = '/etc/network/interfaces';
export const ENI_DIR = '/etc/network/interfaces.d';
export const ENI_PATH = `${ENI_DIR}/50-ghostprep`;
const IFUP_BINARIES = ['/sbin/ifup', '/usr/sbin/ifup'];
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

// ------------------------------------------------------------ the master's files

const ENI_KEYWORDS = /^(iface|mapping|auto|allow-[A-Za-z0-9_-]+|source|source-directory|rename|no-auto-down|no-scripts|template)(\s|$)/;

/** Base interface of an ENI name ("eth0:1" alias, "eth0=home" logical) for comparison. */
const eniBase = (n: string): string => n.split(/[:=]/)[0]!;

/**
 * Remove `iface` stanzas (with their options) and `auto`/`allow-*` entries
 * for the claimed names; everything else, lo included, stays byte for byte.
 */
export function pruneEni(text: string, names: ReadonlySet<string>, macs: ReadonlySet<string> = new Set()): { text: string; removed: string[] } {
  const claimable = new Set([...names].filter((n) => n !== 'lo'));
  const claimed = (n: string) => n !== 'lo' && names.has(eniBase(n));
  // a pattern in auto/allow- lines is expanded to every matching card at ifup time: one that takes ours races our stanza
  const takes = (a: string) => claimed(a) || eniPatternTakes(a, claimable, macs).length > 0;
  const out: string[] = [];
  const removed = new Set<string>();
  let skipping = false;
  let pending: string[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!ENI_KEYWORDS.test(t)) {
      if (!skipping) out.push(line);
      else if (t === '' || t.startsWith('#')) pending.push(line);
      else pending = [];
      continue;
    }
    out.push(...pending);
    pending = [];
    skipping = false;
    const [word, ...args] = t.split(/\s+/);
    if (word === 'iface' && args[0] && claimed(args[0])) { skipping = true; removed.add(eniBase(args[0])); continue; }
    // a mapping stanza whose glob covers one of ours would run its script for that card
    const mapped = word === 'mapping' ? args.find((a) => namesTaken(a, { names: claimable }).length) : undefined;
    if (mapped !== undefined) { skipping = true; removed.add(`mapping ${mapped}`); continue; }
    if (word === 'auto' || word!.startsWith('allow-')) {
      const kept = args.filter((a) => !takes(a));
      args.filter(takes).forEach((a) => removed.add(claimed(a) ? eniBase(a) : `pattern ${a}`));
      if (kept.length === args.length) out.push(line);
      else if (kept.length) out.push(`${word} ${kept.join(' ')}`);
      continue;
    }
    out.push(line);
  }
  if (!skipping) out.push(...pending);
  const result = out.join('\n');
  // the file's last newline belongs to the lines kept, not to a removed stanza
  return { text: text.endsWith('\n') && !result.endsWith('\n') ? result + '\n' : result, removed: [...removed].sort() };
}

/**
 * The claimed names (or MACs) an ifupdown pattern of an auto/allow- line
 * would take: `[VARIABLE]/VALUE[/[OPTIONS]][=LOGICAL]`, VALUE an fnmatch
 * glob on the name, or with VARIABLE `mac` on the MAC address. Other
 * variables (sysfs attributes) cannot be judged offline: none. GNU/Hurd's
 * `/dev/…` names are names, not patterns.
 */
export function eniPatternTakes(arg: string, names: ReadonlySet<string>, macs: ReadonlySet<string>): string[] {
  const m = /^([A-Za-z0-9_]*)\/([^/=]*)(?:\/\d*)?(?:=.*)?$/.exec(arg);
  if (!m || arg.startsWith('/dev/')) return [];
  const [, variable, value] = m as unknown as [string, string, string];
  if (variable === '') return namesTaken(value, { names });
  if (variable !== 'mac') return [];
  const matches = globMatcher(value.toLowerCase(), 'fnmatch');
  return [...macs].filter((mac) => matches(mac.toLowerCase())).sort();
}

/** Kernel-style NIC names (eth0, ens3, enp1s0, eno1, enx…) the master configures. */
const KERNEL_NIC = /^(eth\d+|ens\d+|enp\d+s\d+(f\d+)?|eno\d+|enx[0-9a-f]{12}|em\d+)$/;

/**
 * A master stanza for its kernel-named NIC (allow-hotplug ens3 / dhcp) is the
 * same card that our config now matches by MAC and renames: left in place it
 * would take over whenever the rename cannot happen (a NIC already up from the
 * initramfs). When we rename at least as many MAC-matched NICs as the master
 * configures kernel-named ones, those stanzas go too.
 */
function replacedKernelNames(texts: readonly string[], c: Claims): string[] {
  const names = new Set<string>();
  let ownStanzas = 0; // master stanzas already under our names account for some of the renamed NICs
  for (const t of texts) {
    for (const m of t.matchAll(/^\s*iface\s+(\S+)\s+inet6?\s/gm)) {
      if (c.names.has(m[1]!)) ownStanzas++;
      else if (KERNEL_NIC.test(m[1]!)) names.add(m[1]!);
    }
  }
  return names.size && names.size <= (c.renamedByMac ?? 0) - ownStanzas ? [...names].sort() : [];
}

/** Stanzas for our names (and for the kernel names our renames replace): pruned, the rest kept. */
async function staleEni(reader: GuestReader, c: Claims): Promise<FileChange[]> {
  const out: FileChange[] = [];
  const main = await readText(reader, ENI_MAIN);
  const files = [...(main !== null ? [{ path: ENI_MAIN, text: main }] : []), ...(await listFiles(reader, ENI_DIR, () => true))];
  const mine = files.filter((f) => !c.ours.has(f.path) && !isOurs(f.text));
  const replaced = replacedKernelNames(mine.map((f) => f.text), c);
  const names = new Set([...c.names, ...replaced]);
  for (const f of mine) {
    const pruned = pruneEni(f.text, names, c.macs);
    if (!pruned.removed.length) continue;
    const reason = `master ifupdown stanzas for ${pruned.removed.join(', ')}`;
    const onlyComments = pruned.text.split('\n').every((l) => l.trim() === '' || l.trim().startsWith('#'));
    const st = await reader.lstat(f.path);
    out.push(onlyComments && f.path !== ENI_MAIN ? del(f.path, reason) : write(f.path, pruned.text, st?.mode ?? 0o644, `${reason} removed, the rest kept`));
  }
  return out;
}

export const DPKG_STATUS = '/var/lib/dpkg/status';
const PRE_UP = '/etc/network/if-pre-up.d';

/**
 * Debian's ifupdown reads bond-*, bridge-* and vlan-raw-device options only
 * through the hook scripts of ifenslave, bridge-utils and vlan (ifupdown2
 * handles all three itself; ifupdown-ng on Alpine too).
 */
const NEEDS: readonly { kind: 'bond' | 'bridge' | 'vlan'; pkg: string; hook: string; what: string }[] = [
  { kind: 'bond', pkg: 'ifenslave', hook: `${PRE_UP}/ifenslave`, what: 'bond-* options' },
  { kind: 'bridge', pkg: 'bridge-utils', hook: `${PRE_UP}/bridge`, what: 'bridge-* options' },
  { kind: 'vlan', pkg: 'vlan', hook: `${PRE_UP}/vlan`, what: 'vlan-raw-device' },
];

/** Installed packages in a dpkg status file ("Status: install ok installed"). */
export function installedPackages(status: string): Set<string> {
  const out = new Set<string>();
  for (const para of status.split(/\n\s*\n/)) {
    const pkg = /^Package:\s*(\S+)/m.exec(para)?.[1];
    if (pkg && /^Status:.*\binstalled\s*$/m.test(para) && !/^Status:.*\bnot-installed\b/m.test(para)) out.add(pkg);
  }
  return out;
}

async function missingEni(guest: GuestReader, model: NetworkModel, distro: Distro): Promise<string | undefined> {
  if (distro.family === 'alpine') return undefined;
  const needed = NEEDS.filter((n) => model.interfaces.some((i) => i.kind === n.kind));
  if (!needed.length) return undefined;
  const pkgs = installedPackages((await readText(guest, DPKG_STATUS)) ?? '');
  if (pkgs.has('ifupdown2')) return undefined;
  const lacking: string[] = [];
  for (const n of needed) {
    if (pkgs.has(n.pkg) || (await guest.lstat(n.hook))) continue;
    const ids = model.interfaces.filter((i) => i.kind === n.kind).map((i) => i.id).join(', ');
    lacking.push(`${ids} need${ids.includes(',') ? '' : 's'} the ${n.pkg} package (ifupdown applies ${n.what} through ${n.hook})`);
  }
  if (!lacking.length) return undefined;
  const pkgList = NEEDS.filter((n) => lacking.some((l) => l.includes(`the ${n.pkg} package`))).map((n) => n.pkg).join(' ');
  return `${lacking.join('; ')}, but the guest does not have it (${DPKG_STATUS}); install ${pkgList} (or ifupdown2) in the master, or choose another networkRenderer`;
}

export const eni: Renderer = {
  name: 'eni',
  description: 'ifupdown /etc/network/interfaces.d (Debian without netplan, Alpine with ifupdown-ng)',
  priority: 50,
  dirs: [ENI_DIR],
  files: [ENI_MAIN],
  docs: [{ files: [ENI_PATH], mode: 0o644, notes: `adds \`source ${ENI_DIR}/*\` to \`${ENI_MAIN}\` when missing; rewrites a plain (non-symlink) \`${RESOLV_CONF}\`` }],
  async detect(guest) {
    // both: the file alone is read by nothing, ifup alone has nothing to read
    const probe = new Probe(guest);
    const ifup = (await probe.exists(ENI_MAIN)) ? await probe.firstExisting(IFUP_BINARIES) : undefined;
    return probe.found(ifup && `ifupdown present (${ENI_MAIN} and ${ifup})`);
  },
  render: renderEni,
  stale: staleEni,
  missing: missingEni,
};
