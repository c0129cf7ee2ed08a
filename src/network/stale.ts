/**
 * The master's network files that would fight the new ones on a clone:
 * bound to the master's MAC (which the clone does not have, or worse, which
 * the profile gives to another card), or configuring the same interface.
 * Whole files are deleted; files that also hold unrelated configuration
 * (netplan YAML, ENI) are rewritten without the conflicting definitions.
 * Files an earlier ghostprep run wrote (recognized by their header) that the
 * current configuration no longer produces are deleted too, so switching
 * renderer or dropping an interface converges.
 */
import path from 'node:path/posix';
import { parseDocument, isMap } from 'yaml';
import type { GuestReader } from '../backends/backend.js';
import type { DeleteChange, FileChange, WriteChange } from '../plan/types.js';
import { GuestError } from '../util/errors.js';
import { globMatch } from '../util/glob.js';
import type { NetworkModel } from './model.js';
import { HEADER } from './renderers/common.js';

export const SOURCE = 'network';
export const NM_DIR = '/etc/NetworkManager/system-connections';
export const IFCFG_DIRS = ['/etc/sysconfig/network-scripts', '/etc/sysconfig/network'];
export const NETPLAN_DIR = '/etc/netplan';
export const NETWORKD_DIR = '/etc/systemd/network';
export const ENI_MAIN = '/etc/network/interfaces';
export const ENI_DIR = '/etc/network/interfaces.d';
export const PERSISTENT_NET = '/etc/udev/rules.d/70-persistent-net.rules';
export const UDEV_DIR = '/etc/udev/rules.d';
export const CLOUD_CFG = '/etc/cloud/cloud.cfg';
export const CLOUD_GUARD = '/etc/cloud/cloud.cfg.d/99-ghostprep-network.cfg';

/** What the new configuration claims: kernel names and MAC addresses. */
export interface Claims {
  readonly names: ReadonlySet<string>;
  readonly macs: ReadonlySet<string>;
  /** Paths the renderer writes: never deleted, they are replaced. */
  readonly ours: ReadonlySet<string>;
  /** Ethernets matched by MAC and renamed (set-name): the master's kernel names for them are gone. */
  readonly renamedByMac?: number;
}

export function claimsOf(model: NetworkModel, ours: Iterable<string>): Claims {
  return {
    names: new Set(model.interfaces.map((i) => i.name).filter((n): n is string => n !== undefined)),
    macs: new Set(model.interfaces.map((i) => i.match?.macaddress).filter((m): m is string => m !== undefined)),
    ours: new Set(ours),
    renamedByMac: model.interfaces.filter((i) => i.kind === 'ethernet' && i.match?.macaddress && i.setName).length,
  };
}

const del = (p: string, reason: string): DeleteChange => ({ op: 'delete', path: p, source: SOURCE, reason });
const write = (p: string, content: string, mode: number, reason: string): WriteChange => ({ op: 'write', path: p, content: Buffer.from(content), mode, uid: 0, gid: 0, source: SOURCE, reason });

const MARK = `# ${HEADER}`;
const isOurs = (text: string): boolean => text.startsWith(MARK);

async function readText(reader: GuestReader, p: string): Promise<string | null> {
  const st = await reader.lstat(p);
  if (!st || st.type !== 'file') return null;
  return (await reader.readFile(p))?.toString('utf8') ?? null;
}

async function listFiles(reader: GuestReader, dir: string, filter: (name: string) => boolean): Promise<{ path: string; text: string }[]> {
  const out: { path: string; text: string }[] = [];
  for (const name of (await reader.readdir(dir)) ?? []) {
    if (!filter(name)) continue;
    const p = path.join(dir, name);
    const text = await readText(reader, p);
    if (text !== null) out.push({ path: p, text });
  }
  return out;
}

/** Minimal INI reader (NetworkManager keyfiles, systemd units): section -> key -> values. */
export function parseIni(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) { section = sec[1]!; continue; }
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const keys = out.get(section) ?? new Map<string, string[]>();
    out.set(section, keys);
    const key = line.slice(0, eq).trim();
    keys.set(key, [...(keys.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return out;
}

const iniGet = (ini: Map<string, Map<string, string[]>>, section: string, key: string): string | undefined => ini.get(section)?.get(key)?.at(-1) || undefined;

/** Shell-like KEY=value (ifcfg), quotes removed. */
export function parseKv(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(raw);
    if (!m) continue;
    let v = m[2]!.trim();
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0]!)) v = v.slice(1, -1);
    out.set(m[1]!, v);
  }
  return out;
}

// ------------------------------------------------------------ NetworkManager

function nmConflict(text: string, c: Claims): string | undefined {
  const ini = parseIni(text);
  const mac = iniGet(ini, 'ethernet', 'mac-address') ?? iniGet(ini, '802-3-ethernet', 'mac-address');
  if (mac) return `master connection bound to MAC ${mac.toLowerCase()}`;
  const ifname = iniGet(ini, 'connection', 'interface-name');
  if (ifname && c.names.has(ifname)) return `master connection for interface ${ifname}`;
  const type = iniGet(ini, 'connection', 'type');
  if (!ifname && (type === 'ethernet' || type === '802-3-ethernet')) return 'master Ethernet connection not bound to any interface (it would compete for every card)';
  return undefined;
}

async function staleNm(reader: GuestReader, c: Claims): Promise<FileChange[]> {
  const files = await listFiles(reader, NM_DIR, () => true);
  return files.flatMap(({ path: p, text }) => {
    if (c.ours.has(p)) return [];
    const why = nmConflict(text, c);
    return why ? [del(p, why)] : [];
  });
}

// ------------------------------------------------------------ ifcfg

function ifcfgConflict(name: string, text: string, c: Claims): string | undefined {
  const kv = parseKv(text);
  const mac = kv.get('HWADDR');
  if (mac) return `master ifcfg bound to MAC ${mac.toLowerCase()}`;
  // SUSE's LLADDR (and rhel's MACADDR) *set* the address: a clone would take the master's MAC
  const forced = kv.get('LLADDR') || kv.get('MACADDR');
  if (forced) return `master ifcfg forcing the master's MAC ${forced.toLowerCase()}`;
  const dev = kv.get('DEVICE') || name;
  if (c.names.has(dev)) return `master ifcfg for interface ${dev}`;
  return undefined;
}

async function staleIfcfg(reader: GuestReader, c: Claims): Promise<FileChange[]> {
  const out: FileChange[] = [];
  for (const dir of IFCFG_DIRS) {
    const names = (await reader.readdir(dir)) ?? [];
    // Master route files for an interface we configure would add the master's routes to it.
    for (const n of names) {
      const m = /^(?:route6?|ifroute)-(.+)$/.exec(n);
      const p = path.join(dir, n);
      if (m && c.names.has(m[1]!) && !c.ours.has(p)) out.push(del(p, `master routes for interface ${m[1]}`));
    }
    for (const file of await listFiles(reader, dir, (n) => n.startsWith('ifcfg-') && n !== 'ifcfg-lo' && !n.includes('~') && !n.endsWith('.bak'))) {
      if (c.ours.has(file.path)) continue;
      const suffix = path.basename(file.path).slice('ifcfg-'.length);
      const why = ifcfgConflict(suffix, file.text, c);
      if (!why) continue;
      out.push(del(file.path, why));
      // Its route files would otherwise outlive it.
      for (const r of [`route-${suffix}`, `route6-${suffix}`, `ifroute-${suffix}`]) {
        const rp = path.join(dir, r);
        if (names.includes(r) && !c.ours.has(rp) && !c.names.has(suffix)) out.push(del(rp, `routes of ${file.path}, which is removed (${why})`));
      }
    }
  }
  return out;
}

// ------------------------------------------------------------ netplan

const NETPLAN_SECTIONS = ['ethernets', 'bonds', 'bridges', 'vlans', 'wifis', 'tunnels', 'vrfs', 'modems', 'dummy-devices', 'virtual-ethernets', 'nm-devices'];

function netplanDefConflict(id: string, def: Record<string, unknown>, c: Claims): string | undefined {
  const match = (def.match ?? {}) as Record<string, unknown>;
  if (typeof match.macaddress === 'string') return `bound to MAC ${match.macaddress.toLowerCase()}`;
  if (c.names.has(id)) return `same ID as interface ${id} (netplan merges definitions with one ID)`;
  const name = typeof def['set-name'] === 'string' ? def['set-name'] : typeof match.name === 'string' ? match.name : undefined;
  if (name && c.names.has(name)) return `for interface ${name}`;
  return undefined;
}

/** Remove conflicting definitions; null when nothing conflicts, '' when nothing is left. */
export function pruneNetplan(text: string, file: string, c: Claims): { text: string; reasons: string[] } | null {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new GuestError(`cannot parse ${file}: ${doc.errors[0]!.message}; netplan would reject it too — fix or remove it`, file);
  const network = doc.toJS()?.network as Record<string, Record<string, Record<string, unknown>>> | undefined;
  if (!network || typeof network !== 'object') return null;
  const reasons: string[] = [];
  for (const section of NETPLAN_SECTIONS) {
    for (const [id, def] of Object.entries(network[section] ?? {})) {
      const why = netplanDefConflict(id, def ?? {}, c);
      if (!why) continue;
      reasons.push(`netplan ${section}/${id} ${why}`);
      doc.deleteIn(['network', section, id]);
      const left = doc.getIn(['network', section]);
      if (isMap(left) && left.items.length === 0) doc.deleteIn(['network', section]);
    }
  }
  if (!reasons.length) return null;
  const rest = doc.toJS()?.network ?? {};
  const empty = !NETPLAN_SECTIONS.some((s) => rest[s] && Object.keys(rest[s]).length);
  return { text: empty ? '' : doc.toString(), reasons };
}

async function staleNetplan(reader: GuestReader, c: Claims): Promise<FileChange[]> {
  const out: FileChange[] = [];
  for (const f of await listFiles(reader, NETPLAN_DIR, (n) => n.endsWith('.yaml') || n.endsWith('.yml'))) {
    if (c.ours.has(f.path) || isOurs(f.text)) continue;
    const pruned = pruneNetplan(f.text, f.path, c);
    if (!pruned) continue;
    const reason = `master ${pruned.reasons.join('; ')}`;
    const st = await reader.lstat(f.path);
    out.push(pruned.text === '' ? del(f.path, reason) : write(f.path, pruned.text, st?.mode ?? 0o600, `${reason} (other definitions kept)`));
  }
  return out;
}

// ------------------------------------------------------------ systemd-networkd

function networkdConflict(file: string, text: string, c: Claims): string | undefined {
  const ini = parseIni(text);
  const ext = path.extname(file);
  const mac = iniGet(ini, 'Match', 'MACAddress') ?? iniGet(ini, 'Match', 'PermanentMACAddress');
  if (mac && ext !== '.netdev') return `master ${ext.slice(1)} file bound to MAC ${mac.toLowerCase()}`;
  const names = (ini.get('Match')?.get('Name') ?? []).flatMap((v) => v.split(/\s+/)).filter(Boolean);
  for (const n of names) {
    if (c.names.has(n)) return `master ${ext.slice(1)} file for interface ${n}`;
    // networkd applies the first matching .network in lexical order; a glob only fights when it sorts before ours.
    const hit = [...c.names].find((ours) => globMatch(n, ours, 'fnmatch'));
    if (hit && ext === '.network' && path.basename(file) < `10-ghostprep-${hit}.network`) return `master network file matching ${n} takes precedence over ours for ${hit}`;
  }
  const own = ext === '.netdev' ? iniGet(ini, 'NetDev', 'Name') : ext === '.link' ? iniGet(ini, 'Link', 'Name') : undefined;
  if (own && c.names.has(own)) return `master ${ext.slice(1)} file also creates or names ${own}`;
  return undefined;
}

async function staleNetworkd(reader: GuestReader, c: Claims): Promise<FileChange[]> {
  const files = await listFiles(reader, NETWORKD_DIR, (n) => /\.(network|netdev|link)$/.test(n));
  return files.flatMap((f) => {
    if (c.ours.has(f.path) || isOurs(f.text)) return [];
    const why = networkdConflict(f.path, f.text, c);
    return why ? [del(f.path, why)] : [];
  });
}

// ------------------------------------------------------------ ENI

const ENI_KEYWORDS = /^(iface|mapping|auto|allow-[A-Za-z0-9_-]+|source|source-directory|rename|no-auto-down|no-scripts|template)(\s|$)/;

/** Base interface of an ENI name ("eth0:1" alias, "eth0=home" logical) for comparison. */
const eniBase = (n: string): string => n.split(/[:=]/)[0]!;

/**
 * Remove `iface` stanzas (with their options) and `auto`/`allow-*` entries
 * for the claimed names; everything else, lo included, stays byte for byte.
 */
export function pruneEni(text: string, names: ReadonlySet<string>): { text: string; removed: string[] } {
  const claimed = (n: string) => n !== 'lo' && names.has(eniBase(n));
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
    if (word === 'auto' || word!.startsWith('allow-')) {
      const kept = args.filter((a) => !claimed(a));
      args.filter(claimed).forEach((a) => removed.add(eniBase(a)));
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

async function staleEni(reader: GuestReader, c: Claims): Promise<FileChange[]> {
  const out: FileChange[] = [];
  const main = await readText(reader, ENI_MAIN);
  const files = [...(main !== null ? [{ path: ENI_MAIN, text: main }] : []), ...(await listFiles(reader, ENI_DIR, () => true))];
  const mine = files.filter((f) => !c.ours.has(f.path) && !isOurs(f.text));
  const replaced = replacedKernelNames(mine.map((f) => f.text), c);
  const names = new Set([...c.names, ...replaced]);
  for (const f of mine) {
    const pruned = pruneEni(f.text, names);
    if (!pruned.removed.length) continue;
    const reason = `master ifupdown stanzas for ${pruned.removed.join(', ')}`;
    const onlyComments = pruned.text.split('\n').every((l) => l.trim() === '' || l.trim().startsWith('#'));
    const st = await reader.lstat(f.path);
    out.push(onlyComments && f.path !== ENI_MAIN ? del(f.path, reason) : write(f.path, pruned.text, st?.mode ?? 0o644, `${reason} removed, the rest kept`));
  }
  return out;
}

// ------------------------------------------------------------ udev, leftovers, cloud-init

async function staleUdev(reader: GuestReader): Promise<FileChange[]> {
  if (!(await reader.lstat(PERSISTENT_NET))) return [];
  return [del(PERSISTENT_NET, 'udev persistent-net rules bind interface names to the master\'s MAC addresses')];
}

/** Files an earlier ghostprep run wrote that the current configuration does not produce. */
async function leftovers(reader: GuestReader, c: Claims): Promise<FileChange[]> {
  const dirs = [NM_DIR, ...IFCFG_DIRS, NETPLAN_DIR, NETWORKD_DIR, ENI_DIR, UDEV_DIR];
  const out: FileChange[] = [];
  for (const dir of dirs) {
    for (const f of await listFiles(reader, dir, (n) => n.includes('ghostprep') || dir.startsWith('/etc/sysconfig'))) {
      if (!c.ours.has(f.path) && isOurs(f.text)) out.push(del(f.path, 'written by an earlier ghostprep run; the current network configuration no longer produces it'));
    }
  }
  return out;
}

/** cloud-init re-renders the network on a clone's first boot (new instance): tell it not to. */
async function cloudInitGuard(reader: GuestReader): Promise<FileChange[]> {
  if (!(await reader.lstat(CLOUD_CFG))) return [];
  const text = `# ${HEADER}\n# ghostprep configures the network offline; keep cloud-init from replacing it on first boot.\nnetwork: {config: disabled}\n`;
  return [write(CLOUD_GUARD, text, 0o644, 'cloud-init is installed and would regenerate the network configuration on the clone\'s first boot')];
}

/** Every change needed so the master's configuration does not fight ours. Sorted by path. */
export async function findStale(reader: GuestReader, model: NetworkModel, ours: Iterable<string>): Promise<FileChange[]> {
  const c = claimsOf(model, ours);
  const groups = await Promise.all([staleNm(reader, c), staleIfcfg(reader, c), staleNetplan(reader, c), staleNetworkd(reader, c), staleEni(reader, c), staleUdev(reader), leftovers(reader, c), cloudInitGuard(reader)]);
  const byPath = new Map<string, FileChange>();
  for (const change of groups.flat()) if (!byPath.has(change.path)) byPath.set(change.path, change);
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
