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
import { type RenderedMachine } from '../core/machine.js';
import { isObj } from '../network/interpret.js';
import { MAC_RE, parseCidr, parseIp } from '../network/ip.js';
import { computerNameProblem } from './computer-name.js';
import { computerNameOf, timeZoneUnmapped, windowsProfile, windowsTimeZone, windowsTimeZoneProblem } from './settings.js';

export function windowsChecks(r: RenderedMachine): Diagnostic[] {
  if (!(r.profile as { windows?: unknown }).windows) return [];
  const w = windowsProfile(r.profile);
  const out: Diagnostic[] = [];
  const at = (pointer: string, message: string, severity: 'error' | 'warning' = 'error') => out.push(locateProblem(r.prepared, pointer, message, severity));

  const problem = computerNameProblem(computerNameOf(r));
  if (problem) at(w.computerName !== undefined ? '/windows/computerName' : '/hostname', problem);

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
