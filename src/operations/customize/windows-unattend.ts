import type { CustomizeOperation as Operation } from '../../core/operation.js';
import { write } from '../util.js';
import { detectWindows, underSystemRoot } from '../../windows/detect.js';
import { findPathNoCase } from '../../distro/windows-root.js';
import { readHive } from '../../windows/hive.js';
import { decodeValue } from '../../windows/regf.js';
import { timeZoneUnmapped, windowsProfile, windowsTimeZone } from '../../windows/settings.js';
import { renderUnattendFile } from '../../windows/unattend.js';
import { mergeUnattend } from '../../windows/unattend-merge.js';

/** Answer files Windows Setup reads before %WINDIR%\Panther\unattend.xml (implicit search order), under the system root. */
const BEFORE_PANTHER = [['Panther', 'Unattend', 'Unattend.xml'], ['Panther', 'Unattend', 'Autounattend.xml']];
/** Answer files at places Setup searches after Panther (removable media roots, Sysprep, the system drive): used by a clone that gets none. */
const ROOT_ANSWER_FILES = [['Autounattend.xml'], ['Unattend.xml']];

/**
 * C:\Windows\Panther\unattend.xml, rendered per machine: Windows Setup reads
 * it in the specialize and oobeSystem passes of a generalized image.
 * windows.unattend: auto (default) writes it only when the image is
 * generalized (a specialized system never reads it again), always, never;
 * merge / replace decide what happens to a master's own file there.
 * A file that holds passwords, the domain provisioning blob or the product
 * key is a secret change: the plan shows its size, never its text.
 * Mode 0777: what ntfs-3g reports for every file (NTFS has ACLs, not modes).
 */
export const windowsUnattendOperation: Operation = {
  name: 'windows-unattend',
  kind: 'customize',
  description: 'Windows: write C:\\Windows\\Panther\\unattend.xml (computer name, time zone, owner, network, accounts, domain join, product key, first-logon commands)',
  defaultEnabled: true,
  order: 110,
  guests: ['windows'],
  async plan({ guest, machine, identity, warn, renderOnly }) {
    const info = await detectWindows(guest);
    if (!info) return [];
    const w = windowsProfile(machine.profile);
    const when = w.unattend ?? 'auto';
    if (when === 'never' || (when !== 'always' && !info.generalized)) {
      const why = when === 'never' ? 'windows.unattend: never' : 'the image is not generalized';
      if (w.network || machine.profile.network) warn?.(`the network settings reach Windows only through unattend.xml, which is not written (${why}): the clone keeps the master's network configuration`);
      if (w.timezone || machine.profile.timezone || machine.profile.site?.timezone) warn?.(`the time zone reaches Windows only through unattend.xml, which is not written (${why}): the clone keeps the master's time zone`);
      if (w.oobe?.accounts?.length || w.oobe?.administratorPassword || w.domainJoin) warn?.(`windows.oobe accounts and windows.domainJoin reach Windows only through unattend.xml, which is not written (${why}): the clone gets no new accounts and joins no domain`);
      return [];
    }
    const iana = machine.profile.timezone ?? machine.profile.site?.timezone;
    if (!w.timezone && iana && !windowsTimeZone(iana)) warn?.(timeZoneUnmapped(iana));
    if (w.domainJoin?.credentials && !w.domainJoin.provisioningFile) warn?.('windows.domainJoin.credentials: the join account\'s password sits in the clone\'s unattend.xml in clear until the specialize pass removes it; prefer windows.domainJoin.provisioningFile (djoin /provision: no credentials in the image)');
    if (!renderOnly) for (const m of await answerFilesBeforeOurs(guest, info)) warn?.(m);
    const file = await underSystemRoot(guest, info, 'Panther/unattend.xml');
    const rendered = renderUnattendFile(machine, info.architecture, identity);
    const master = renderOnly ? null : await guest.readFile(file, { maxBytes: 4 * 1024 * 1024 }).catch(() => null);
    let text = rendered.text;
    let reason: string | undefined;
    if (master && when === 'merge') {
      text = mergeUnattend(master.toString('utf8'), rendered.text, file);
      reason = 'merged into the master\'s unattend.xml (its other settings kept)';
    } else if (master) {
      reason = 'replaces the master\'s own unattend.xml (its settings are dropped; windows.unattend: merge keeps them)';
      if (!rendered.secret) warn?.(`${file}: the master has its own unattend.xml; it is replaced (windows.unattend: replace, the default): settings such as CopyProfile or LocalAccounts there are dropped; windows.unattend: merge keeps them`);
      else warn?.(`${file}: the master has its own unattend.xml; it is replaced (windows.unattend: replace, the default); windows.unattend: merge keeps its other settings`);
    }
    const extra = {
      ...(rendered.secret ? { secret: true } : {}),
      ...(rendered.pending ? { pending: true } : {}),
      ...(reason || rendered.secret ? { reason: [reason, rendered.secret ? 'holds passwords, the domain provisioning data or the product key' : undefined].filter(Boolean).join('; ') } : {}),
    };
    return [write('windows-unattend', file, text, 0o777, extra)];
  },
};

/** Warnings for answer files of the master that Setup reads before Panther\unattend.xml, or uses when a clone has none. */
async function answerFilesBeforeOurs(guest: Parameters<typeof detectWindows>[0], info: NonNullable<Awaited<ReturnType<typeof detectWindows>>>): Promise<string[]> {
  const out: string[] = [];
  const system = await readHive(guest, info.systemHive);
  const raw = system?.value('Setup', 'UnattendFile');
  const v = raw ? decodeValue(raw) : undefined;
  if (v && 'value' in v && String(v.value).trim()) {
    out.push(`the master's registry names an answer file (HKLM\\SYSTEM\\Setup UnattendFile = ${JSON.stringify(String(v.value))}): Windows Setup reads it before Panther\\unattend.xml, so this machine's answers may never be used; delete that value on the master`);
  }
  for (const parts of BEFORE_PANTHER) {
    const hit = await findPathNoCase(guest, parts, info.systemRoot);
    if (hit) out.push(`the master has ${hit}: Windows Setup reads %WINDIR%\\Panther\\Unattend before Panther\\unattend.xml, so this machine's answers may never be used; delete it on the master`);
  }
  for (const parts of ROOT_ANSWER_FILES) {
    const hit = await findPathNoCase(guest, parts, '/');
    if (hit) out.push(`the master has an answer file at the volume root (${hit}): Setup searches drive roots (removable media, the system drive) for one; it is read only when Panther has none, but attached as a removable disk it would answer another machine's Setup; delete it on the master`);
  }
  return out;
}
