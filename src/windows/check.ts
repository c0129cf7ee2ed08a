/**
 * validate's checks of a profile's `windows:` section on a rendered machine,
 * each a located diagnostic: the computer name against Windows' rules, the
 * windows.network values, windows.timezone against CLDR's Windows zone IDs
 * (an IANA name gets the Windows ID suggested), a profile time zone that
 * has no Windows equivalent (warning), and a `network:` that unattend.xml
 * cannot express (warning: the guest may still be Linux).
 * src/fleet/rules.ts runs it as the "windows" machine rule.
 */
import type { Diagnostic } from '../core/diagnostic.js';
import { locateProblem } from '../template/locate.js';
import { type PreparedMachine, type RenderedMachine } from '../core/machine.js';
import type { Profile } from '../core/profile.js';
import { isObj } from '../network/interpret.js';
import { MAC_RE, parseCidr, parseIp } from '../network/ip.js';
import { computerNameProblem } from './computer-name.js';
import { placeIn } from '../profile/source.js';
import { GhostprepError } from '../util/errors.js';
import { provisioningBlob, PROVISIONING_FILE_MAX_BYTES, readSecretFile, secretPath } from './secrets.js';
import { computerNameOf, timeZoneUnmapped, windowsProfile, windowsTimeZone, windowsTimeZoneProblem } from './settings.js';
import { refusedWindowsKeys } from './unattend.js';

/**
 * Literal passwords and deprecated OOBE settings, refused by key whatever
 * their values: read from the profile as written, so that they are reported
 * even where a value's template fails to render (validate then skips the
 * rules that read rendered values).
 */
export function windowsRefusals(m: PreparedMachine): Diagnostic[] {
  const w = windowsProfile(m.traced.value as unknown as Profile);
  return refusedWindowsKeys(w).map(({ pointer, message }) => locateProblem(m, pointer, message, 'error', true));
}

export function windowsChecks(r: RenderedMachine): Diagnostic[] {
  if (!(r.profile as { windows?: unknown }).windows) return [];
  const w = windowsProfile(r.profile);
  const out: Diagnostic[] = [];
  const at = (pointer: string, message: string, severity: 'error' | 'warning' = 'error') => out.push(locateProblem(r.prepared, pointer, message, severity));

  const problem = computerNameProblem(computerNameOf(r));
  if (problem) {
    const pointer = w.computerName !== undefined ? '/windows/computerName' : '/hostname';
    const before = out.length;
    at(pointer, problem);
    // a name made from the machine's own name or host name: the inventory entry is where it is fixed
    const placed = out[before]!;
    const entry = r.prepared.entry as unknown as Record<string, unknown>;
    const template = (r.prepared.traced.value.windows as { computerName?: unknown } | undefined)?.computerName;
    const fromMachine = w.computerName === undefined || (typeof template === 'string' && /\bmachine\.(name|hostname)\b/.test(template));
    if (fromMachine && placed.file !== r.prepared.inventory.file) {
      const key = Object.hasOwn(entry, 'hostname') && !(typeof template === 'string' && /\bmachine\.name\b/.test(template)) ? 'hostname' : 'name';
      out.push(placeIn(r.prepared.inventory, { severity: 'error', path: `/machines/${r.prepared.index}/${key}`, message: `machine ${r.prepared.name}: ${problem} (the computer name comes from this entry's ${key} through ${placed.file ?? 'the profile'}:${placed.line ?? '?'}, ${pointer})` }));
    }
  }

  out.push(...windowsRefusals(r.prepared));
  secretFileChecks(r, at);
  const o = w.oobe;
  if (o?.autoLogon && typeof o.autoLogon.user === 'string') {
    const user = o.autoLogon.user;
    const known = (o.accounts ?? []).some((a) => a?.name === user) || (user.toLowerCase() === 'administrator' && !!o.administratorPassword);
    if (!known) at('/windows/oobe/autoLogon/user', `AutoLogon user "${user}" is not one of windows.oobe.accounts${o.administratorPassword ? ' nor Administrator' : ' (nor Administrator with windows.oobe.administratorPassword)'}: its password would be unknown`);
  }
  const names = new Set<string>();
  (o?.accounts ?? []).forEach((a, i) => {
    if (!a || typeof a.name !== 'string') return;
    if (names.has(a.name.toLowerCase())) at(`/windows/oobe/accounts/${i}/name`, `account "${a.name}" is listed twice (Windows account names are case-insensitive)`);
    names.add(a.name.toLowerCase());
    if (a.passwordFile === undefined && a.generate === undefined && !Object.hasOwn(a, 'password')) at(`/windows/oobe/accounts/${i}`, `account "${a.name}" has no password: give passwordFile: or generate: true (Windows Setup refuses to create an account without one)`);
    if (a.passwordFile !== undefined && a.generate) at(`/windows/oobe/accounts/${i}/generate`, 'give passwordFile or generate, not both');
  });
  const dj = w.domainJoin;
  if (dj?.provisioningFile && dj.credentials) at('/windows/domainJoin/credentials', 'with provisioningFile, Windows Setup ignores credentials (Provisioning wins); leave credentials out so no password lands in the image', 'warning');
  else if (dj?.credentials) at('/windows/domainJoin/credentials', 'the join account\'s password sits in the clone\'s unattend.xml in clear until the specialize pass removes it; prefer provisioningFile (djoin /provision: no credentials in the image)', 'warning');
  if (w.productKey !== undefined && w.productKeyFile !== undefined) at('/windows/productKeyFile', 'give productKey or productKeyFile, not both');

  w.network?.interfaces?.forEach((i, n) => {
    const p = `/windows/network/interfaces/${n}`;
    if (typeof i?.mac === 'string' && !MAC_RE.test(i.mac.replace(/-/g, ':'))) at(`${p}/mac`, `"${i.mac}" is not a MAC address (six hex pairs separated by ":" or "-")`);
    if (Array.isArray(i?.addresses)) i.addresses.forEach((a, k) => { if (typeof a === 'string' && !parseCidr(a)) at(`${p}/addresses/${k}`, `"${a}" is not an IPv4/IPv6 CIDR address (e.g. 10.0.0.11/24)`); });
    if (typeof i?.gateway === 'string' && !parseIp(i.gateway)) at(`${p}/gateway`, `"${i.gateway}" is not an IP address`);
    if (Array.isArray(i?.dns)) i.dns.forEach((a, k) => { if (typeof a === 'string' && !parseIp(a)) at(`${p}/dns/${k}`, `"${a}" is not an IPv4/IPv6 address`); });
  });

  if (typeof w.timezone === 'string') {
    const tz = windowsTimeZoneProblem(w.timezone);
    if (tz) at('/windows/timezone', tz);
  } else {
    const site = r.profile.site?.timezone;
    const own = r.profile.timezone;
    const iana = own ?? site;
    if (typeof iana === 'string' && !windowsTimeZone(iana)) at(own !== undefined ? '/timezone' : '/site/timezone', timeZoneUnmapped(iana), 'warning');
  }

  // windows.network overrides network: for Windows guests; without it, network: must be expressible in unattend.xml
  const net = r.profile.network;
  if (!w.network && isObj(net)) {
    for (const section of ['bonds', 'bridges', 'vlans']) {
      if (isObj(net[section])) for (const id of Object.keys(net[section] as object)) at(`/network/${section}/${id}`, `Windows guests: unattend.xml has no settings for ${section}; this interface is refused when the guest is Windows (or give the profile windows.network)`, 'warning');
    }
    const ethernets = isObj(net.ethernets) ? net.ethernets : {};
    for (const [id, e] of Object.entries(ethernets)) {
      const mac = isObj(e) && isObj(e.match) ? e.match.macaddress : undefined;
      if (typeof mac !== 'string') at(`/network/ethernets/${id}`, 'Windows guests: unattend.xml identifies adapters by MAC address; add match: {macaddress: ...} or the plan for a Windows guest fails', 'warning');
    }
  }
  return out;
}

/** The secret files a machine names must be readable (their contents are never echoed). */
function secretFileChecks(r: RenderedMachine, at: (pointer: string, message: string) => void): void {
  const w = windowsProfile(r.profile);
  const check = (pointer: string, pattern: unknown, what: string, blob = false): void => {
    if (typeof pattern !== 'string' || !pattern) return;
    try {
      const text = readSecretFile(r, pointer, pattern, what, blob ? PROVISIONING_FILE_MAX_BYTES : undefined);
      if (blob) provisioningBlob(text, secretPath(r, pointer, pattern));
    } catch (err) {
      if (!(err instanceof GhostprepError)) throw err;
      at(pointer, err.message.replace(/^machine [^:]+: /, ''));
    }
  };
  const o = w.oobe;
  check('/windows/oobe/administratorPassword/passwordFile', o?.administratorPassword?.passwordFile, 'password file of Administrator');
  (o?.accounts ?? []).forEach((a, i) => check(`/windows/oobe/accounts/${i}/passwordFile`, a?.passwordFile, `password file of ${a?.name}`));
  check('/windows/domainJoin/provisioningFile', w.domainJoin?.provisioningFile, 'djoin provisioning file', true);
  check('/windows/domainJoin/credentials/passwordFile', w.domainJoin?.credentials?.passwordFile, 'domain join password file');
  check('/windows/productKeyFile', w.productKeyFile, 'product key file');
}
