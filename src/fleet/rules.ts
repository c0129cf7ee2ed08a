/**
 * Checks beyond the schema, one function each: per machine on rendered
 * values, then across the fleet (uniqueness in O(n) with maps).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { checkFqdn, checkHostname } from '../identity/hostname.js';
import { deriveMachineId } from '../identity/machine-id.js';
import { siteSecret } from '../identity/resolve.js';
import { checkNetwork } from '../network/check.js';
import { contains, MAC_RE, macProblem, networkOf, parseCidr, parseIp, reservedInSubnet } from '../network/ip.js';
import type { LoadedConfig } from '../profile/config.js';
import { originOf } from '../profile/profile-merge.js';
import { placeIn } from '../profile/source.js';
import type { Diagnostic } from '../core/diagnostic.js';
import { locateProblem } from '../template/locate.js';
import { type PreparedMachine, type RenderedMachine } from '../core/machine.js';
import { templateDirs } from '../template/render.js';
import { validateAgainst } from '../schema/validate-schema.js';
import { suggest } from '../util/suggest.js';
import { windowsChecks } from '../windows/check.js';
import { authorizedKeysRule, checkProfileKeys } from './rules-keys.js';
import { checkProfileUsers, fileOwnersRule, usersRule } from './rules-users.js';
import { computerNameOf, windowsProfile } from '../windows/settings.js';
import { specialModeProblem } from '../util/modes.js';
import { reservedGuestPath } from '../util/guest-paths.js';
import { storageProblems } from '../storage/lvm-rules.js';

type MachineRule = (r: RenderedMachine) => Diagnostic[];

const inInventory = (m: PreparedMachine, key: string, message: string, severity: 'error' | 'warning' = 'error'): Diagnostic =>
  placeIn(m.inventory, { severity, path: `/machines/${m.index}${key ? '/' + key : ''}`, message });

const hostnameRule: MachineRule = (r) => {
  const e = checkHostname(r.hostname) ?? (r.fqdn !== r.hostname ? checkFqdn(r.fqdn) : undefined);
  return e ? [locateProblem(r.prepared, '/hostname', e)] : [];
};

const macRule: MachineRule = (r) => {
  const mac = r.prepared.entry.mac;
  if (mac === undefined) return [];
  if (!MAC_RE.test(mac)) return [inInventory(r.prepared, 'mac', `"${mac}" is not a MAC address (six hex pairs separated by ":")`)];
  const problem = macProblem(mac);
  return problem ? [inInventory(r.prepared, 'mac', `"${mac}" ${problem}`)] : [];
};

const ipRule: MachineRule = (r) => {
  const ip = r.prepared.entry.ip;
  if (ip === undefined) return [];
  const cidr = parseCidr(ip);
  if (!cidr) return [inInventory(r.prepared, 'ip', `"${ip}" is not an IPv4/IPv6 CIDR address (e.g. 10.0.0.11/24)`)];
  const reserved = reservedInSubnet(cidr);
  if (reserved) return [inInventory(r.prepared, 'ip', `"${ip}" is the ${reserved} address of its subnet ${networkOf(cidr)}, not a host address`)];
  const gw = r.profile.site?.gateway;
  const gateway = typeof gw === 'string' ? parseIp(gw) : null;
  if (!gateway || gateway.family !== cidr.family) return [];
  if (gateway.canonical === cidr.ip) return [inInventory(r.prepared, 'ip', `"${ip}" is the gateway ${gw} (site.gateway): a machine cannot route through itself`)];
  if (!contains(cidr, gw!)) return [inInventory(r.prepared, 'ip', `gateway ${gw} (site.gateway) is not inside ${cidr.cidr}: the machine could not reach it`)];
  const gwReserved = gateway.family === 4 ? reservedInSubnet(cidr, gateway.canonical) : undefined;
  if (gwReserved) return [locateProblem(r.prepared, '/site/gateway', `gateway ${gw} is the ${gwReserved} address of ${networkOf(cidr)} (the subnet of machine ${r.prepared.name}), not a host that can route`)];
  return [];
};

const gatewayRule: MachineRule = (r) => {
  const gw = r.profile.site?.gateway;
  return typeof gw === 'string' && !parseIp(gw) ? [locateProblem(r.prepared, '/site/gateway', `"${gw}" is not an IP address`)] : [];
};

const timezoneRule: MachineRule = (r) => {
  const out: Diagnostic[] = [];
  const site = r.profile.site?.timezone;
  const check = (tz: unknown, pointer: string) => {
    if (typeof tz !== 'string') return;
    const problem = timeZoneProblem(tz);
    if (problem) out.push(locateProblem(r.prepared, pointer, problem));
  };
  check(site, '/site/timezone');
  if (r.profile.timezone !== site) check(r.profile.timezone, '/timezone');
  return out;
};

let knownZones: Set<string> | undefined;
/** Zone names from ICU plus the host's tz database; the guest's own tzdata is checked at plan time. */
export function timeZoneProblem(tz: string): string | undefined {
  if (!/^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/.test(tz)) return `"${tz}" is not a time zone name (e.g. Europe/Berlin, UTC)`;
  knownZones ??= new Set([...Intl.supportedValuesOf('timeZone'), 'UTC', 'GMT', 'Etc/UTC', 'Etc/GMT', 'Universal', 'Zulu']);
  if (knownZones.has(tz) || /^Etc\/GMT[+-]\d{1,2}$/.test(tz) || existsSync(path.join('/usr/share/zoneinfo', tz))) return undefined;
  const hint = suggest(tz, [...knownZones]);
  return `"${tz}" is not a time zone of the tz database${hint ? ` (did you mean "${hint}"?)` : ''}`;
}

const siteDnsRule: MachineRule = (r) => {
  const dns = r.profile.site?.dns;
  return Array.isArray(dns) ? dns.flatMap((a, i) => (typeof a === 'string' && !parseIp(a) ? [locateProblem(r.prepared, `/site/dns/${i}`, `"${a}" is not an IPv4/IPv6 address (name servers are given by address)`)] : [])) : [];
};

/** Rendered values go back through the schema: a template can carry a newline into a field. */
const renderedSchemaRule: MachineRule = (r) => {
  const withoutNetwork = (v: object) => { const { network: _n, ...rest } = v as Record<string, unknown>; return rest; };
  const rendered = validateAgainst('profile', withoutNetwork(r.profile));
  if (!rendered.length) return [];
  // problems already in the raw file are reported by the load stage; only new ones came from templates
  const raw = new Set(validateAgainst('profile', withoutNetwork(r.prepared.traced.value)).map((d) => `${d.path}\0${d.message}`));
  return rendered.filter((d) => !raw.has(`${d.path}\0${d.message}`)).map((d) => locateProblem(r.prepared, d.path, `after templates: ${d.message}`, 'error', d.key));
};

const guestPathRule: MachineRule = (r) => {
  const out: Diagnostic[] = [];
  const check = (p: unknown, pointer: string, what: 'write' | 'delete') => {
    if (typeof p !== 'string') return;
    if (!p.startsWith('/') || p.split('/').includes('..') || /[\0\n\r]/.test(p)) out.push(locateProblem(r.prepared, pointer, `${JSON.stringify(p)} must be an absolute guest path without ".." or control characters`));
    else {
      const reserved = reservedGuestPath(p, what);
      if (reserved) out.push(locateProblem(r.prepared, pointer, reserved));
    }
  };
  r.profile.files?.forEach((f, i) => check(f?.path, `/files/${i}/path`, 'write'));
  r.profile.delete?.forEach((p, i) => check(p, `/delete/${i}`, 'delete'));
  return out;
};

/** A `files:` mode that is setuid, setgid or world-writable needs `allowSpecialModes: true`. */
const fileModesRule: MachineRule = (r) => {
  const allow = (r.profile as { allowSpecialModes?: boolean }).allowSpecialModes === true;
  const out: Diagnostic[] = [];
  r.profile.files?.forEach((f, i) => {
    if (typeof f?.mode !== 'string' || !/^[0-7]{3,4}$/.test(f.mode)) return;
    const problem = specialModeProblem(parseInt(f.mode, 8), false, allow);
    if (problem) out.push(locateProblem(r.prepared, `/files/${i}/mode`, problem));
  });
  return out;
};

const networkRule: MachineRule = (r) => {
  const net = r.profile.network;
  if (net === undefined) return [];
  const schema = validateAgainst('network-v2', net, '/network').map((d) => locateProblem(r.prepared, d.path, d.message, 'error', d.key));
  if (schema.length) return schema;
  const out = checkNetwork(net).map((p) => locateProblem(r.prepared, '/network' + p.path, p.message));
  // ENI and ifcfg name interfaces by kernel name: found at plan time on such a guest, after an appliance launch
  const renderer = r.profile.networkRenderer ?? 'auto';
  if (['auto', 'eni', 'ifcfg'].includes(renderer)) {
    const ethernets = (net as { ethernets?: Record<string, { match?: object; 'set-name'?: string }> }).ethernets ?? {};
    for (const [id, e] of Object.entries(ethernets)) {
      if (e?.match && !e['set-name'] && !(e.match as { name?: string }).name) {
        out.push(locateProblem(r.prepared, `/network/ethernets/${id}/match`, `matched without a name and no set-name: guests rendered with ENI or ifcfg (Debian ifupdown, Alpine, RHEL 7, SUSE) cannot use it; add set-name: ${id}`, renderer === 'auto' ? 'warning' : 'error'));
      }
    }
  }
  return out;
};

const deriveSecretRule: MachineRule = (r) =>
  r.profile.machineId === 'derive' && !siteSecret(r)
    ? [locateProblem(r.prepared, '/machineId', 'machineId: derive needs a site secret: set site.secretFile (a file next to the profile) or $GHOSTPREP_SITE_SECRET')]
    : [];

/** Profiles with a windows section: computer name, time zone and unattend network values (src/windows/check.ts). */
const windowsRule: MachineRule = (r) => windowsChecks(r);

export const MACHINE_RULES: ReadonlyArray<{ name: string; check: MachineRule }> = [
  { name: 'hostname', check: hostnameRule },
  { name: 'mac', check: macRule },
  { name: 'ip', check: ipRule },
  { name: 'gateway', check: gatewayRule },
  { name: 'site-dns', check: siteDnsRule },
  { name: 'timezone', check: timezoneRule },
  { name: 'rendered-schema', check: renderedSchemaRule },
  { name: 'guest-paths', check: guestPathRule },
  { name: 'file-modes', check: fileModesRule },
  { name: 'authorized-keys', check: authorizedKeysRule },
  { name: 'users', check: usersRule },
  { name: 'file-owners', check: fileOwnersRule },
  { name: 'network', check: networkRule },
  { name: 'derive-secret', check: deriveSecretRule },
  { name: 'windows', check: windowsRule },
  { name: 'storage', check: (r) => storageProblems(r.profile.storage).map((p) => locateProblem(r.prepared, p.pointer, p.message)) },
];

export function checkMachine(r: RenderedMachine): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const rule of MACHINE_RULES) {
    // a bad inventory mac/ip or site.dns flows into the network templates: say it once, where it was written
    if (rule.name === 'network' && out.length) continue;
    out.push(...rule.check(r));
  }
  return out;
}

/**
 * What the fleet-wide uniqueness check needs of one rendered machine: a few
 * strings, small and cloneable, so that worker threads (fleet/parallel.ts)
 * can render and check their machines and hand only these to the main thread.
 */
export interface UniquenessFacts {
  /** Position of the machine in prepareFleet's list (the same list in every thread). */
  readonly machine: number;
  readonly hostname: string;
  readonly fqdn: string;
  /** Which inventory key a duplicate hostname is reported at. */
  readonly hostnameKey: 'hostname' | 'name';
  /** Windows profiles: the computer name and the profile pointer it comes from. */
  readonly computerName?: { readonly value: string; readonly pointer: string };
  /** The inventory ip's address (without the prefix length). */
  readonly ip?: string;
  readonly staticAddresses: ReadonlyArray<{ readonly ip: string; readonly pointer: string }>;
  readonly derivedMachineId?: string;
}

export function uniquenessFacts(r: RenderedMachine, machine: number, siteSecret: (m: RenderedMachine) => Buffer | undefined): UniquenessFacts {
  let computerName: UniquenessFacts['computerName'];
  if ((r.profile as { windows?: unknown }).windows) {
    const w = windowsProfile(r.profile);
    computerName = { value: computerNameOf(r), pointer: w.computerName !== undefined ? '/windows/computerName' : '/hostname' };
  }
  let derivedMachineId: string | undefined;
  if (r.profile.machineId === 'derive') {
    const secret = siteSecret(r);
    if (secret) derivedMachineId = deriveMachineId(secret, r.prepared.name);
  }
  const ip = r.prepared.entry.ip ? parseCidr(r.prepared.entry.ip)?.ip : undefined;
  return {
    machine, hostname: r.hostname, fqdn: r.fqdn, hostnameKey: r.prepared.entry.hostname !== undefined ? 'hostname' : 'name',
    ...(computerName && { computerName }), ...(ip && { ip }),
    staticAddresses: staticAddresses(r.profile.network), ...(derivedMachineId && { derivedMachineId }),
  };
}

/** Names, hostnames, FQDNs, MACs, IPs and derived machine-ids unique across the inventory. */
export function checkFleetUniqueness(rendered: readonly RenderedMachine[], siteSecret: (m: RenderedMachine) => Buffer | undefined): Diagnostic[] {
  return checkUniqueness(rendered.map((r) => r.prepared), rendered.map((r, i) => uniquenessFacts(r, i, siteSecret)));
}

/**
 * The uniqueness check over facts in inventory order; `machines` are what the
 * facts' `machine` numbers index (to place each duplicate in its file).
 */
export function checkUniqueness(machines: readonly PreparedMachine[], facts: Iterable<UniquenessFacts>): Diagnostic[] {
  const out: Diagnostic[] = [];
  const seen = new Map<string, PreparedMachine>();
  const claim = (kind: string, value: string | undefined, m: PreparedMachine, where: string | (() => Diagnostic)): boolean => {
    if (!value) return true;
    const id = `${kind}\0${value.toLowerCase()}`;
    const first = seen.get(id);
    if (!first) { seen.set(id, m); return true; }
    if (first === m) return true;
    const at = `${first.inventory.file}:${placeIn(first.inventory, { severity: 'error', path: `/machines/${first.index}`, message: '' }).line}`;
    const text = `duplicate ${kind} "${value}": also used by machine "${first.name}" (${at})`;
    out.push(typeof where === 'string' ? inInventory(m, where, text) : { ...where(), message: text });
    return false;
  };
  for (const f of facts) {
    const m = machines[f.machine]!;
    // a repeated entry would repeat every other duplicate too: report the name only
    if (!claim('machine name', m.name, m, 'name')) continue;
    const hostnameOk = claim('hostname', f.hostname, m, f.hostnameKey);
    if (hostnameOk && f.fqdn !== f.hostname) claim('FQDN', f.fqdn, m, 'name');
    // NetBIOS names compare case-insensitively (claim lowercases)
    if (hostnameOk && f.computerName) claim('Windows computer name', f.computerName.value, m, () => locateProblem(m, f.computerName!.pointer, ''));
    claim('MAC address', m.entry.mac, m, 'mac');
    const claimed = new Set<string>();
    if (f.ip) { claimed.add(f.ip); claim('IP address', f.ip, m, 'ip'); }
    for (const { ip, pointer } of f.staticAddresses) {
      if (claimed.has(ip)) continue; // the machine's own ip rendered into its network config
      claimed.add(ip);
      claim('IP address', ip, m, () => locateProblem(m, pointer, ''));
    }
    if (f.derivedMachineId) claim('derived machine-id', f.derivedMachineId, m, 'name');
  }
  return out;
}

/** Static addresses of a rendered network config, with the pointer where each is written. */
function staticAddresses(net: unknown): Array<{ ip: string; pointer: string }> {
  const out: Array<{ ip: string; pointer: string }> = [];
  if (!net || typeof net !== 'object') return out;
  for (const section of ['ethernets', 'bonds', 'bridges', 'vlans']) {
    const ifaces = (net as Record<string, unknown>)[section];
    if (!ifaces || typeof ifaces !== 'object') continue;
    for (const [id, iface] of Object.entries(ifaces as Record<string, { addresses?: unknown }>)) {
      const list = iface?.addresses;
      if (Array.isArray(list)) list.forEach((a, i) => {
        const ip = typeof a === 'string' ? parseCidr(a)?.ip : undefined;
        if (ip) out.push({ ip, pointer: `/network/${section}/${id.replace(/~/g, '~0').replace(/\//g, '~1')}/addresses/${i}` });
      });
    }
  }
  return out;
}


/** Every template, source file, secret file and key file a profile names exists. */
export function checkReferencedFiles(config: LoadedConfig): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const p of config.profiles.values()) {
    const base = path.dirname(p.source.file);
    const missing = (pointer: string, what: string, file: string, searched: string[]) => out.push(placeIn(p.source, { severity: 'error', path: pointer, message: `${what} "${file}" not found (searched ${searched.join(', ')})` }));
    p.data.files?.forEach((f, i) => {
      if (typeof f?.template === 'string' && !f.template.includes('{{')) {
        const dirs = templateDirs(p.source.file);
        if (!dirs.some((d) => existsSync(path.resolve(d, f.template!)))) missing(`/files/${i}/template`, 'template', f.template, dirs);
      }
      if (typeof f?.source === 'string' && !f.source.includes('{{') && !existsSync(path.resolve(base, f.source))) missing(`/files/${i}/source`, 'source file', f.source, [path.resolve(base, f.source)]);
    });
    const secret = p.data.site?.secretFile;
    if (typeof secret === 'string' && !existsSync(path.resolve(base, secret))) missing('/site/secretFile', 'secret file', secret, [path.resolve(base, secret)]);
    const keyRefs: Array<[string, unknown]> = [];
    for (const [user, keys] of Object.entries(p.data.ssh?.authorizedKeys ?? {})) (keys ?? []).forEach((k, i) => keyRefs.push([`/ssh/authorizedKeys/${user}/${i}`, k]));
    p.data.users?.forEach((u, ui) => u?.authorizedKeys?.forEach((k, i) => keyRefs.push([`/users/${ui}/authorizedKeys/${i}`, k])));
    for (const [pointer, k] of keyRefs) {
      if (typeof k === 'string' && k.startsWith('file:') && !existsSync(path.resolve(base, k.slice(5)))) missing(pointer, 'key file', k.slice(5), [path.resolve(base, k.slice(5))]);
    }
  }
  out.push(...checkProfileKeys(config), ...checkProfileUsers(config));
  return out;
}

export { originOf };
