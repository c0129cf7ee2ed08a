/**
 * File-level identities beyond machine-id, host keys and host name: the ones
 * a clone inherits from its master's files (NetworkManager connection UUIDs,
 * the iSCSI initiator name, cloud-init instance ids, DHCP DUIDs and leases).
 * Read through a GuestReader, so the same code serves images (one appliance
 * for many of them) and rootfs trees.
 */
import { createHash } from 'node:crypto';
import path from 'node:path/posix';
import type { GuestReader } from '../core/backend.js';
import { parseDhclientDuids, systemdClientId, systemdDhcpIdentity, type SystemdDhcpIdentity } from './dhcp.js';

export interface DhcpIdentity {
  /** What systemd-networkd sends (derived from the machine-id unless networkd.conf fixes it). */
  readonly systemd: SystemdDhcpIdentity | null;
  /**
   * DHCPv4 client identifiers networkd sends (ff, IAID, DUID) on the interfaces the guest's
   * networkd files name literally ([Match] Name= without wildcards).
   */
  readonly clientIds: ReadonlyArray<{ readonly interface: string; readonly clientId: string }>;
  /** `default-duid` values found in dhclient/NetworkManager lease files, by file. */
  readonly leaseDuids: ReadonlyArray<{ readonly path: string; readonly duid: string }>;
  /** NetworkManager's secret_key (seeds its generated DUIDs and stable-privacy addresses): a fingerprint, never the key. */
  readonly nmSecretKey: string | null;
  /** DHCP lease and DUID files present: none should be on a clone or a sealed master. */
  readonly leaseFiles: readonly string[];
}

export interface FileIdentities {
  readonly nmConnections: ReadonlyArray<{ readonly path: string; readonly uuid: string }>;
  readonly iscsiInitiatorName: string | null;
  readonly cloudInitInstanceIds: ReadonlyArray<{ readonly path: string; readonly id: string }>;
  readonly dhcp: DhcpIdentity;
}

const MAX = 1024 * 1024;
const LEASE_DIRS = ['/var/lib/dhcp', '/var/lib/dhclient', '/var/lib/NetworkManager', '/var/lib/dhcpcd', '/var/lib/wicked', '/var/lib/systemd/network'];
const LEASE_FILE = /(\.lease|\.leases|duid|^dhclient|^dhcpcd|^lease-)/;
const CLOUD_INIT_META = ['/var/lib/cloud/seed/nocloud/meta-data', '/var/lib/cloud/seed/nocloud-net/meta-data'];

async function text(g: GuestReader, p: string): Promise<string | null> {
  try { return (await g.readFile(p, { maxBytes: MAX }))?.toString('utf8') ?? null; } catch { return null; }
}

async function files(g: GuestReader, dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await g.readdir(dir).catch(() => null)) ?? []) {
    const p = path.join(dir, name);
    if ((await g.lstat(p).catch(() => null))?.type === 'file') out.push(p);
  }
  return out;
}

/** `uuid=` of a NetworkManager keyfile's [connection] section, or `UUID=` of an ifcfg file. */
export function connectionUuid(content: string): string | null {
  let section = '';
  for (const line of content.split('\n')) {
    const t = line.trim();
    const s = /^\[(.+)\]$/.exec(t);
    if (s) { section = s[1]!; continue; }
    if (section === 'connection') { const m = /^uuid\s*=\s*(\S+)/.exec(t); if (m) return m[1]!.toLowerCase(); }
    if (!section) { const m = /^UUID=["']?([0-9A-Fa-f-]{36})["']?$/.exec(t); if (m) return m[1]!.toLowerCase(); }
  }
  return null;
}

/** `instance-id:` of a cloud-init meta-data file (YAML or JSON); the whole first line of data/instance-id. */
export function metaDataInstanceId(content: string): string | null {
  const m = /^\s*"?instance-id"?\s*:\s*["']?([^"',\n]+?)["']?\s*,?\s*$/m.exec(content);
  return m ? m[1]!.trim() : null;
}

export async function readFileIdentities(g: GuestReader, machineId: string | null): Promise<FileIdentities> {
  const nmConnections: Array<{ path: string; uuid: string }> = [];
  const ifcfg = (await files(g, '/etc/sysconfig/network-scripts')).filter((p) => path.basename(p).startsWith('ifcfg-'));
  for (const p of [...(await files(g, '/etc/NetworkManager/system-connections')), ...ifcfg]) {
    const uuid = connectionUuid((await text(g, p)) ?? '');
    if (uuid) nmConnections.push({ path: p, uuid });
  }
  const initiator = /^InitiatorName=(\S+)/m.exec((await text(g, '/etc/iscsi/initiatorname.iscsi')) ?? '')?.[1] ?? null;
  const cloudInitInstanceIds: Array<{ path: string; id: string }> = [];
  const dataId = (await text(g, '/var/lib/cloud/data/instance-id'))?.trim().split('\n')[0];
  if (dataId) cloudInitInstanceIds.push({ path: '/var/lib/cloud/data/instance-id', id: dataId });
  for (const p of CLOUD_INIT_META) {
    const id = metaDataInstanceId((await text(g, p)) ?? '');
    if (id) cloudInitInstanceIds.push({ path: p, id });
  }
  const leaseFiles: string[] = [];
  const leaseDuids: Array<{ path: string; duid: string }> = [];
  for (const dir of LEASE_DIRS) {
    for (const p of await files(g, dir)) {
      if (!LEASE_FILE.test(path.basename(p))) continue;
      leaseFiles.push(p);
      for (const duid of parseDhclientDuids((await text(g, p)) ?? '')) leaseDuids.push({ path: p, duid });
    }
  }
  const ifnames = new Set<string>();
  for (const p of (await files(g, '/etc/systemd/network')).filter((x) => x.endsWith('.network'))) {
    for (const m of ((await text(g, p)) ?? '').matchAll(/^\s*Name\s*=\s*(.+)$/gm)) for (const n of m[1]!.trim().split(/\s+/)) if (/^[A-Za-z0-9_.:-]{1,15}$/.test(n)) ifnames.add(n);
  }
  const secret = await g.readFile('/var/lib/NetworkManager/secret_key', { maxBytes: 64 * 1024 }).catch(() => null);
  const confs = [await text(g, '/etc/systemd/networkd.conf')];
  for (const p of (await files(g, '/etc/systemd/networkd.conf.d')).filter((x) => x.endsWith('.conf')).sort()) confs.push(await text(g, p));
  const systemd = systemdDhcpIdentity(machineId, confs.filter((c) => c !== null).join('\n'));
  const duid = systemd?.duid;
  return {
    nmConnections,
    iscsiInitiatorName: initiator,
    cloudInitInstanceIds,
    dhcp: {
      systemd,
      clientIds: duid ? [...ifnames].sort().map((i) => ({ interface: i, clientId: systemdClientId(Buffer.from(duid.replace(/:/g, ''), 'hex'), i) })) : [],
      leaseDuids,
      nmSecretKey: secret?.length ? `sha256:${createHash('sha256').update(secret).digest('hex').slice(0, 32)}` : null,
      leaseFiles: leaseFiles.sort(),
    },
  };
}
