/**
 * Per-installation IDs a clone must not share with its master or its
 * siblings, and what can be done about them offline.
 *
 * - MachineGuid (HKLM\SOFTWARE\Microsoft\Cryptography): read by many
 *   products as "this computer" (licensing, inventory, backup agents).
 *   sysprep /generalize keeps it, so every clone gets its own here, derived
 *   from the clone's machine identity (src/identity: random and kept in the
 *   state dir, or derived from the site secret with `machineId: derive`).
 * - WSUS client IDs (HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\
 *   WindowsUpdate: SusClientId, SusClientIdValidation, PingID,
 *   AccountDomainSid): removed; the Windows Update agent makes new ones at
 *   its next start. Two clones with one SusClientId show as one computer in
 *   WSUS, flapping between their names.
 * - The Configuration Manager (SCCM) client's identity file
 *   %WINDIR%\SMSCFG.INI: removed; the client registers anew.
 *
 * Not changeable offline: the machine SID (only sysprep /generalize makes a
 * new one), the KMS client machine ID (slmgr /rearm, online) and the MSDTC
 * CID (msdtc -uninstall / -install, online).
 */
import { createHmac } from 'node:crypto';

/** One value set or (null) deleted: the shape of the plan's registry edits. */
export interface IdEdit {
  readonly key: string;
  readonly name: string;
  readonly value: { readonly type: 'sz'; readonly value: string } | null;
}

export const CRYPTOGRAPHY_KEY = 'Microsoft\\Cryptography';
export const WINDOWS_UPDATE_KEY = 'Microsoft\\Windows\\CurrentVersion\\WindowsUpdate';
/** WSUS client identity values (the ones Microsoft's reset procedure deletes). */
export const WSUS_CLIENT_ID_VALUES = ['SusClientId', 'SusClientIdValidation', 'PingID', 'AccountDomainSid'] as const;
/** The Configuration Manager client's identity file, under the system root. */
export const SCCM_IDENTITY_FILE = 'SMSCFG.INI';
export const SOFTWARE_PROTECTION_KEY = 'Microsoft\\Windows NT\\CurrentVersion\\SoftwareProtectionPlatform';
export const KMS_DEFAULT_PORT = 1688;

/** A clone's MachineGuid (lower-case 8-4-4-4-12, the form Windows writes), from its machine identity: one identity, one GUID. */
export function machineGuidFor(machineId: string): string {
  const b = createHmac('sha256', 'ghostprep windows MachineGuid').update(machineId).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The SOFTWARE hive edits that give a clone its own IDs (MachineGuid set when given, WSUS client IDs deleted). */
export function cloneIdEdits(machineGuid: string | undefined): IdEdit[] {
  return [
    ...(machineGuid ? [{ key: CRYPTOGRAPHY_KEY, name: 'MachineGuid', value: { type: 'sz' as const, value: machineGuid } }] : []),
    ...WSUS_CLIENT_ID_VALUES.map((name) => ({ key: WINDOWS_UPDATE_KEY, name, value: null })),
  ];
}

/** The SOFTWARE hive edits naming a KMS host (what slmgr /skms host:port writes). */
export function kmsEdits(host: string, port: number | undefined): IdEdit[] {
  return [
    { key: SOFTWARE_PROTECTION_KEY, name: 'KeyManagementServiceName', value: { type: 'sz', value: host } },
    { key: SOFTWARE_PROTECTION_KEY, name: 'KeyManagementServicePort', value: { type: 'sz', value: String(port ?? KMS_DEFAULT_PORT) } },
  ];
}
