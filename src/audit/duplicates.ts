/**
 * Which identity values two or more clones share. Every identity a clone
 * carries is turned into (kind, value) pairs; a pair seen on two targets is a
 * collision. Kinds are stable strings (they are part of `audit --json`).
 */
import type { DiskIdentity } from './headers.js';
import type { FileIdentities } from './guest-files.js';

export const IDENTITY_KINDS = [
  'machine-id', 'dbus-machine-id', 'ssh-host-key', 'hostname', 'computer-name',
  'filesystem-uuid', 'gpt-disk-guid', 'gpt-partition-guid',
  'lvm-pv-uuid', 'lvm-vg-uuid', 'lvm-vg-name', 'luks-uuid', 'luks-volume-key',
  'nm-connection-uuid', 'iscsi-initiator-name', 'cloud-init-instance-id',
  'dhcp-duid', 'nm-secret-key',
] as const;
export type IdentityKind = typeof IDENTITY_KINDS[number];

export interface Duplicate { kind: IdentityKind; value: string; targets: string[] }

/** The parts of an identity the comparison looks at (fleet/inspect's GuestIdentity has them all). */
export interface ComparableIdentity {
  readonly hostname: string | null;
  readonly machineId: string | null;
  readonly dbusMachineId: string | null;
  readonly sshHostKeys: ReadonlyArray<{ readonly type: string; readonly sha256: string }>;
  readonly windows?: { readonly computerName: string | null } | null;
  readonly files?: FileIdentities;
  readonly disk?: DiskIdentity;
}

/** Every (kind, value) pair of one identity. */
export function identityValues(id: ComparableIdentity): Array<[IdentityKind, string]> {
  const out: Array<[IdentityKind, string | null | undefined]> = [
    ['machine-id', id.machineId],
    ['dbus-machine-id', id.dbusMachineId],
    ['hostname', id.hostname],
    ['computer-name', id.windows?.computerName?.toUpperCase()],
    ...id.sshHostKeys.map((k): [IdentityKind, string] => ['ssh-host-key', `${k.type} ${k.sha256}`]),
  ];
  const f = id.files;
  if (f) {
    for (const c of f.nmConnections) out.push(['nm-connection-uuid', c.uuid]);
    out.push(['iscsi-initiator-name', f.iscsiInitiatorName]);
    for (const c of f.cloudInitInstanceIds) out.push(['cloud-init-instance-id', c.id]);
    out.push(['dhcp-duid', f.dhcp.systemd?.duid]);
    for (const d of f.dhcp.leaseDuids) out.push(['dhcp-duid', d.duid]);
    out.push(['nm-secret-key', f.dhcp.nmSecretKey]);
  }
  const d = id.disk;
  if (d) {
    // the MBR disk identifier and an NTFS volume serial are shown, not compared: Windows
    // clones keep both through sysprep, and nothing resolves them across machines
    out.push(['gpt-disk-guid', d.gptDiskGuid]);
    for (const p of d.gptPartitionGuids) out.push(['gpt-partition-guid', p.guid]);
    for (const v of d.volumes) {
      if (v.kind === 'lvm2-pv') out.push(['lvm-pv-uuid', v.uuid], ['lvm-vg-uuid', v.vgUuid], ['lvm-vg-name', v.vgName]);
      else if (v.kind === 'luks1' || v.kind === 'luks2') out.push(['luks-uuid', v.uuid], ['luks-volume-key', v.volumeKey]);
      else if (v.kind !== 'ntfs') out.push(['filesystem-uuid', `${v.kind} ${v.uuid}`]);
    }
  }
  // one value counts once per target (a DUID in two lease files of one guest is not a collision)
  const seen = new Set<string>();
  return out.filter((e): e is [IdentityKind, string] => {
    if (!e[1]) return false;
    const key = `${e[0]}\0${e[1]}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Every identity value shared by two or more targets, in the order of IDENTITY_KINDS, then value. */
export function findDuplicates(found: ReadonlyArray<{ target: string; identity: ComparableIdentity }>): Duplicate[] {
  const groups = new Map<string, Duplicate>();
  for (const { target, identity } of found) {
    for (const [kind, value] of identityValues(identity)) {
      const key = `${kind}\0${value}`;
      const g = groups.get(key) ?? { kind, value, targets: [] };
      if (!g.targets.includes(target)) g.targets.push(target);
      groups.set(key, g);
    }
  }
  const rank = (k: IdentityKind) => IDENTITY_KINDS.indexOf(k);
  return [...groups.values()].filter((g) => g.targets.length > 1).sort((a, b) => rank(a.kind) - rank(b.kind) || a.value.localeCompare(b.value));
}
