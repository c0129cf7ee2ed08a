/**
 * The `windows:` section of a profile (schemas/profile.schema.json), after
 * templates are rendered, with ghostprep's defaults filled in.
 */
import type { Profile } from '../profile/types.js';
import type { RenderedMachine } from '../fleet/prepare.js';

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
  /** Windows time zone ID ("W. Europe Standard Time"); default: mapped from the profile's IANA time zone. */
  timezone?: string;
  registeredOwner?: string;
  registeredOrganization?: string;
  /** Primary DNS suffix (default site.domain). */
  dnsDomain?: string;
  network?: { interfaces: WindowsInterface[] };
  firstLogonCommands?: FirstLogonCommand[];
  oobe?: { hideEula?: boolean; skipMachineOOBE?: boolean; skipUserOOBE?: boolean; protectYourPC?: 1 | 2 | 3; networkLocation?: 'Home' | 'Work' | 'Other' };
  locale?: { input?: string; system?: string; ui?: string; user?: string };
  /** Write C:\Windows\Panther\unattend.xml: auto (only when the image is generalized), always, never. */
  unattend?: 'auto' | 'always' | 'never';
  /** Own unattend template (under templates/), instead of windows/unattend.xml.hbs. */
  template?: string;
}

export function windowsProfile(profile: Profile): WindowsProfile {
  return ((profile as { windows?: WindowsProfile }).windows) ?? {};
}

/** The computer name of a machine: windows.computerName, else its host name. */
export function computerNameOf(r: Pick<RenderedMachine, 'profile' | 'hostname'>): string {
  return windowsProfile(r.profile).computerName ?? r.hostname;
}

/** Common IANA zones and their Windows IDs (CLDR windowsZones.xml, "001" territory). */
const WINDOWS_ZONES: Record<string, string> = {
  UTC: 'UTC', 'Etc/UTC': 'UTC', GMT: 'UTC', 'Etc/GMT': 'UTC',
  'Europe/London': 'GMT Standard Time', 'Europe/Dublin': 'GMT Standard Time', 'Europe/Lisbon': 'GMT Standard Time',
  'Europe/Berlin': 'W. Europe Standard Time', 'Europe/Amsterdam': 'W. Europe Standard Time', 'Europe/Vienna': 'W. Europe Standard Time',
  'Europe/Zurich': 'W. Europe Standard Time', 'Europe/Rome': 'W. Europe Standard Time', 'Europe/Stockholm': 'W. Europe Standard Time',
  'Europe/Paris': 'Romance Standard Time', 'Europe/Brussels': 'Romance Standard Time', 'Europe/Madrid': 'Romance Standard Time', 'Europe/Copenhagen': 'Romance Standard Time',
  'Europe/Warsaw': 'Central European Standard Time', 'Europe/Prague': 'Central Europe Standard Time', 'Europe/Budapest': 'Central Europe Standard Time',
  'Europe/Helsinki': 'FLE Standard Time', 'Europe/Kiev': 'FLE Standard Time', 'Europe/Kyiv': 'FLE Standard Time', 'Europe/Athens': 'GTB Standard Time',
  'Europe/Moscow': 'Russian Standard Time', 'Europe/Istanbul': 'Turkey Standard Time',
  'America/New_York': 'Eastern Standard Time', 'America/Chicago': 'Central Standard Time', 'America/Denver': 'Mountain Standard Time',
  'America/Phoenix': 'US Mountain Standard Time', 'America/Los_Angeles': 'Pacific Standard Time', 'America/Anchorage': 'Alaskan Standard Time',
  'Pacific/Honolulu': 'Hawaiian Standard Time', 'America/Toronto': 'Eastern Standard Time', 'America/Sao_Paulo': 'E. South America Standard Time',
  'Asia/Tokyo': 'Tokyo Standard Time', 'Asia/Shanghai': 'China Standard Time', 'Asia/Hong_Kong': 'China Standard Time', 'Asia/Singapore': 'Singapore Standard Time',
  'Asia/Kolkata': 'India Standard Time', 'Asia/Dubai': 'Arabian Standard Time', 'Asia/Seoul': 'Korea Standard Time',
  'Australia/Sydney': 'AUS Eastern Standard Time', 'Australia/Melbourne': 'AUS Eastern Standard Time', 'Australia/Perth': 'W. Australia Standard Time',
  'Pacific/Auckland': 'New Zealand Standard Time', 'Africa/Johannesburg': 'South Africa Standard Time', 'Africa/Cairo': 'Egypt Standard Time',
};

/** The Windows time zone ID for an IANA name, when we know it. */
export function windowsTimeZone(iana: string | undefined): string | undefined {
  return iana ? WINDOWS_ZONES[iana] : undefined;
}
