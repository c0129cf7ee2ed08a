/**
 * The `windows:` section of a profile (schemas/profile.schema.json), after
 * templates are rendered, with ghostprep's defaults filled in.
 */
import type { Profile } from '../core/profile.js';
import type { RenderedMachine } from '../core/machine.js';
import { suggest } from '../util/suggest.js';
import { CLDR_WINDOWS_ZONES_SOURCE, IANA_TO_WINDOWS, WINDOWS_ZONE_IDS } from './zones.js';

export interface WindowsInterface {
  /** MAC address of the adapter (any of 52:54:00:aa:bb:01, 52-54-00-AA-BB-01). */
  mac: string;
  addresses?: string[];
  gateway?: string;
  dns?: string[];
  dhcp?: boolean;
}

export interface FirstLogonCommand {
  run: string;
  description?: string;
}

export interface WindowsProfile {
  computerName?: string;
  /** Windows time zone ID ("W. Europe Standard Time"), one of zones.ts; default: the profile's IANA time zone mapped by CLDR. */
  timezone?: string;
  registeredOwner?: string;
  registeredOrganization?: string;
  /** Primary DNS suffix (default site.domain). */
  dnsDomain?: string;
  /** Overrides the profile's `network:` for Windows guests (network.ts). */
  network?: { interfaces: WindowsInterface[] };
  firstLogonCommands?: FirstLogonCommand[];
  oobe?: WindowsOobe;
  /** Offline domain join (djoin /provision output per machine), or credentials (warned about). */
  domainJoin?: WindowsDomainJoin;
  /** Product key for the specialize pass (secret: never shown in plans or logs). */
  productKey?: string;
  /** A file holding the product key ({{machine.name}} / {name} patterns). */
  productKeyFile?: string;
  /** KMS host the clone activates against (registry SoftwareProtectionPlatform). */
  kms?: { host: string; port?: number };
  locale?: { input?: string; system?: string; ui?: string; user?: string };
  /**
   * Write C:\Windows\Panther\unattend.xml: auto (only when the image is generalized), always, never;
   * merge / replace: as auto, and a master's own unattend.xml is merged into (its settings kept where
   * the profile sets nothing) or replaced (what auto does).
   */
  unattend?: 'auto' | 'always' | 'never' | 'merge' | 'replace';
  /** Own unattend template (under templates/), instead of windows/unattend.xml.hbs. */
  template?: string;
}

/**
 * A secret of a Windows account: read from a host file (a {{machine.name}} or
 * {name} pattern, relative to the profile that names it) or generated into
 * the state dir. Never a literal in the profile (`password:` is refused).
 */
export interface WindowsSecretSource {
  passwordFile?: string;
  generate?: boolean;
}

export interface WindowsAccount extends WindowsSecretSource {
  name: string;
  /** Local groups, joined by ";" (default Administrators). */
  group?: string;
  displayName?: string;
  description?: string;
}

export interface WindowsOobe {
  hideEula?: boolean;
  hideOEMRegistrationScreen?: boolean;
  hideOnlineAccountScreens?: boolean;
  hideLocalAccountScreen?: boolean;
  hideWirelessSetupInOOBE?: boolean;
  /** Refused: deprecated since Windows 8, Setup may stop. */
  skipMachineOOBE?: boolean;
  /** Refused: deprecated since Windows 8, Setup may stop. */
  skipUserOOBE?: boolean;
  protectYourPC?: 1 | 2 | 3;
  networkLocation?: 'Home' | 'Work' | 'Other';
  /** The built-in Administrator's password (UserAccounts/AdministratorPassword). */
  administratorPassword?: WindowsSecretSource;
  /** Local accounts created in oobeSystem (UserAccounts/LocalAccounts). */
  accounts?: WindowsAccount[];
  /** Log on automatically as one of the accounts (or Administrator), `count` times. */
  autoLogon?: { user: string; count?: number };
}

export interface WindowsDomainJoin {
  /** djoin /provision /savefile output, one per machine: a {{machine.name}} or {name} pattern. */
  provisioningFile?: string;
  /** Online join with credentials: they sit in the image until specialize removes them (warned). */
  credentials?: { domain: string; username: string; passwordFile: string };
  /** The domain to join with credentials (default credentials.domain). */
  joinDomain?: string;
  machineObjectOU?: string;
}

export function windowsProfile(profile: Profile): WindowsProfile {
  return ((profile as { windows?: WindowsProfile }).windows) ?? {};
}

/** The computer name of a machine: windows.computerName, else its host name. */
export function computerNameOf(r: Pick<RenderedMachine, 'profile' | 'hostname'>): string {
  return windowsProfile(r.profile).computerName ?? r.hostname;
}

/** The Windows time zone ID for an IANA name (CLDR windowsZones, src/windows/zones.ts), or undefined when CLDR has none. */
export function windowsTimeZone(iana: string | undefined): string | undefined {
  if (!iana) return undefined;
  const direct = IANA_TO_WINDOWS[iana];
  if (direct) return direct;
  // CLDR keeps the old names (Europe/Kiev, Asia/Calcutta); ICU turns the new ones and links into them
  let canonical: string;
  try {
    canonical = new Intl.DateTimeFormat('en', { timeZone: iana }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
  return IANA_TO_WINDOWS[canonical] ?? (canonical === 'UTC' ? IANA_TO_WINDOWS['Etc/UTC'] : undefined);
}

/** Warning for an IANA zone CLDR maps to no Windows zone: unattend.xml gets no TimeZone. */
export function timeZoneUnmapped(iana: string): string {
  return `time zone "${iana}" has no Windows equivalent in ${CLDR_WINDOWS_ZONES_SOURCE}: unattend.xml gets no <TimeZone> and Windows keeps the master's zone; set windows.timezone to a Windows time zone ID`;
}

const WINDOWS_IDS = new Set(WINDOWS_ZONE_IDS);

/** A problem with `id` as windows.timezone (not a Windows time zone ID), or undefined when it is one. */
export function windowsTimeZoneProblem(id: string): string | undefined {
  if (WINDOWS_IDS.has(id)) return undefined;
  const mapped = windowsTimeZone(id);
  if (mapped) return `"${id}" is an IANA time zone; windows.timezone takes the Windows ID: "${mapped}" (or leave windows.timezone out: the profile's timezone is mapped)`;
  const hint = suggest(id, WINDOWS_ZONE_IDS);
  return `"${id}" is not a Windows time zone ID (${CLDR_WINDOWS_ZONES_SOURCE})${hint ? `; did you mean "${hint}"?` : ', e.g. "W. Europe Standard Time", "UTC"'}`;
}
