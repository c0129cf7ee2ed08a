/**
 * netplan: one YAML file, /etc/netplan/50-ghostprep.yaml (0600: netplan
 * warns about world-readable files). Re-emits the normalized model as v2,
 * so what netplan reads is exactly what was validated. Every string is
 * double-quoted: netplan uses a YAML 1.1 parser, where an unquoted MAC such
 * as 52:54:00:12:34:56 could be read as a base-60 number.
 */
import { isMap as isYamlMap, parseDocument, stringify } from 'yaml';
import type { GuestReader } from '../../core/backend.js';
import type { FileChange } from '../../core/file-change.js';
import { GuestError } from '../../util/errors.js';
import type { BondParams, BridgeParams, Claims, Iface, NetworkModel, Renderer, Route } from '../../core/network.js';
import { SECTION_OF } from '../../core/network.js';
import { HEADER, file } from './common.js';
import { Probe, del, isOurs, listFiles, nameConflict, write } from './guest.js';

export const NETPLAN_DIR = '/etc/netplan';
export const NETPLAN_PATH = `${NETPLAN_DIR}/50-ghostprep.yaml`;
/** netplan itself, or its systemd generator: /etc/netplan/ without them is read by nothing. */
const NETPLAN_BINARIES = ['/usr/sbin/netplan', '/sbin/netplan', '/usr/bin/netplan', '/usr/lib/systemd/system-generators/netplan', '/lib/systemd/system-generators/netplan'];

type Obj = Record<string, unknown>;

/** `o` without its undefined values and empty lists (a loop: entries/fromEntries was a tenth of this renderer). */
function compact(o: Obj): Obj {
  const out: Obj = {};
  for (const k of Object.keys(o)) {
    const v = o[k];
    if (v !== undefined && !(Array.isArray(v) && v.length === 0)) out[k] = v;
  }
  return out;
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

/** The model as a network-config version 2 mapping (`version`, `ethernets`, …), normalized. */
export function networkV2(model: NetworkModel): Obj {
  const network: Obj = { version: 2 };
  for (const i of model.interfaces) {
    const section = SECTION_OF[i.kind];
    const defs = (network[section] ??= {}) as Obj;
    defs[i.id] = definition(i);
  }
  return network;
}

export function renderNetplanYaml(model: NetworkModel): string {
  return `# ${HEADER}\n${netplanBody({ network: networkV2(model) })}`;
}

const STRINGIFY_OPTIONS = { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN', lineWidth: 0 } as const;

/**
 * The YAML text of `doc` as the yaml library writes it with STRINGIFY_OPTIONS. What a
 * network config holds (maps, lists, plain-ASCII strings, integers, booleans) is written
 * directly, line by line: through the library's Document this was the biggest part of a
 * 10,000-machine `plan`. Anything else (an empty map, a quote or a control character in a
 * string, a key the library would quote) goes through the library: the output is the same
 * either way (test/network/netplan-emit.test.ts compares the two).
 */
export function netplanBody(doc: Obj): string {
  const lines: string[] = [];
  return emitMap(doc, '', lines) ? lines.join('\n') + '\n' : stringify(doc, STRINGIFY_OPTIONS);
}

// A key the library writes plain: a name that no YAML 1.2 core-schema tag would read as something else.
const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;
const CORE_WORDS = /^(?:null|Null|NULL|true|True|TRUE|false|False|FALSE)$/;
// A string written as "text" without escapes: printable ASCII, no quote or backslash.
const PLAIN_DQ = /^[\x20!\x23-\x5b\x5d-\x7e]*$/;

function scalar(v: unknown): string | undefined {
  if (typeof v === 'string') return PLAIN_DQ.test(v) ? `"${v}"` : undefined;
  if (typeof v === 'number') return Number.isSafeInteger(v) && !Object.is(v, -0) ? String(v) : undefined;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return undefined;
}

const isMap = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

/** Lines of a non-empty block map at `indent`; false when the library must write it. */
function emitMap(o: Obj, indent: string, lines: string[]): boolean {
  const keys = Object.keys(o);
  if (!keys.length) return false;
  for (const k of keys) {
    if (!PLAIN_KEY.test(k) || CORE_WORDS.test(k)) return false;
    const v = o[k];
    const s = scalar(v);
    if (s !== undefined) lines.push(`${indent}${k}: ${s}`);
    else if (Array.isArray(v)) {
      lines.push(`${indent}${k}:`);
      if (!emitSeq(v, indent + '  ', lines)) return false;
    } else if (isMap(v)) {
      lines.push(`${indent}${k}:`);
      if (!emitMap(v, indent + '  ', lines)) return false;
    } else return false;
  }
  return true;
}

/** Lines of a non-empty block sequence at `indent` ("- " items; a map item starts on the dash line). */
function emitSeq(a: readonly unknown[], indent: string, lines: string[]): boolean {
  if (!a.length) return false;
  for (const v of a) {
    const s = scalar(v);
    if (s !== undefined) lines.push(`${indent}- ${s}`);
    else if (isMap(v)) {
      const first = lines.length;
      if (!emitMap(v, indent + '  ', lines)) return false;
      lines[first] = `${indent}- ${lines[first]!.slice(indent.length + 2)}`;
    } else return false;
  }
  return true;
}

// ------------------------------------------------------------ the master's files

const NETPLAN_SECTIONS = ['ethernets', 'bonds', 'bridges', 'vlans', 'wifis', 'tunnels', 'vrfs', 'modems', 'dummy-devices', 'virtual-ethernets', 'nm-devices'];

function netplanDefConflict(id: string, def: Record<string, unknown>, c: Claims): string | undefined {
  const match = (def.match ?? {}) as Record<string, unknown>;
  if (typeof match.macaddress === 'string') return `bound to MAC ${match.macaddress.toLowerCase()}`;
  if (c.names.has(id)) return `same ID as interface ${id} (netplan merges definitions with one ID)`;
  const setName = typeof def['set-name'] === 'string' ? def['set-name'] : undefined;
  if (setName && c.names.has(setName)) return `for interface ${setName}`;
  // netplan names its generated files by ID and networkd takes the first match: a glob can win over ours.
  return typeof match.name === 'string' ? nameConflict(match.name, c) : undefined;
}

/** Remove conflicting definitions; null when nothing conflicts, '' when nothing is left. */
export function pruneNetplan(text: string, filePath: string, c: Claims): { text: string; reasons: string[] } | null {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new GuestError(`cannot parse ${filePath}: ${doc.errors[0]!.message}; netplan would reject it too — fix or remove it`, filePath);
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
      if (isYamlMap(left) && left.items.length === 0) doc.deleteIn(['network', section]);
    }
  }
  if (!reasons.length) return null;
  const rest = doc.toJS()?.network ?? {};
  const empty = !NETPLAN_SECTIONS.some((s) => rest[s] && Object.keys(rest[s]).length);
  return { text: empty ? '' : doc.toString(), reasons };
}

/** Definitions bound to a MAC, with one of our IDs or for one of our names: pruned, the rest of the file kept. */
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

export const netplan: Renderer = {
  name: 'netplan',
  description: 'netplan YAML (Ubuntu, Debian cloud images); netplan generates networkd or NetworkManager files at boot',
  // first: netplan drives NetworkManager or networkd itself, so those being enabled says nothing against it
  priority: 10,
  dirs: [NETPLAN_DIR],
  docs: [{ files: [NETPLAN_PATH], mode: 0o600, notes: 'netplan drives networkd or NetworkManager itself' }],
  async detect(guest) {
    const probe = new Probe(guest);
    const np = await probe.firstExisting(NETPLAN_BINARIES);
    return probe.found(np && `${np} present`);
  },
  render: (model) => [file(NETPLAN_PATH, 0o600, renderNetplanYaml(model))],
  stale: staleNetplan,
};
