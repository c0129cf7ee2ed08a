/**
 * Read a guest's identity back: what `inspect` prints and `audit` compares.
 */
import path from 'node:path/posix';
import type { GuestReader } from '../core/backend.js';
import { detectDistro } from '../distro/detect.js';
import { parseMachineId } from '../identity/machine-id.js';
import { fingerprint, keyTypeOf } from '../identity/ssh-keys.js';
import { detectWindows } from '../windows/detect.js';
import { readFileIdentities, type FileIdentities } from '../audit/guest-files.js';
import type { DiskIdentity } from '../audit/headers.js';

export { findDuplicates, type Duplicate } from '../audit/duplicates.js';

export interface GuestIdentity {
  distro: { id: string; versionId: string; family: string; name: string };
  hostname: string | null;
  machineId: string | null;
  /** Raw first line of /etc/machine-id ("uninitialized" on a sealed master). */
  machineIdRaw: string | null;
  dbusMachineId: string | null;
  sshHostKeys: Array<{ type: string; sha256: string; comment: string }>;
  networkFiles: string[];
  /** NetworkManager connection UUIDs, iSCSI initiator name, cloud-init instance ids, DHCP identity (Linux). */
  files?: FileIdentities;
  /** Identities in the disk's headers (partition table, filesystems, LVM, LUKS), images only; read host-side. */
  disk?: DiskIdentity;
  /** Windows guests: what the registry says (null for Linux). */
  windows?: { productName: string; version: string; systemRoot: string; computerName: string | null; hostname: string | null; generalized: boolean; imageState: string | null } | null;
}

const NETWORK_DIRS = ['/etc/netplan', '/etc/systemd/network', '/etc/NetworkManager/system-connections', '/etc/sysconfig/network-scripts', '/etc/sysconfig/network', '/etc/network/interfaces.d'];

async function text(g: GuestReader, p: string): Promise<string | null> {
  try { return (await g.readFile(p, { maxBytes: 1024 * 1024 }))?.toString('utf8') ?? null; } catch { return null; }
}

export async function inspectGuest(g: GuestReader): Promise<GuestIdentity> {
  if (!(await g.lstat('/etc/os-release')) && !(await g.lstat('/usr/lib/os-release'))) {
    const w = await detectWindows(g);
    if (w) {
      return {
        distro: { id: 'windows', versionId: w.version, family: 'windows', name: w.productName },
        hostname: w.hostname, machineId: null, machineIdRaw: null, dbusMachineId: null, sshHostKeys: [], networkFiles: [],
        windows: { productName: w.productName, version: w.version, systemRoot: w.systemRoot, computerName: w.computerName, hostname: w.hostname, generalized: w.generalized, imageState: w.imageState },
      };
    }
  }
  const d = detectDistro((await text(g, '/etc/os-release')) ?? (await text(g, '/usr/lib/os-release')) ?? '');
  const mid = await text(g, '/etc/machine-id');
  const keys: GuestIdentity['sshHostKeys'] = [];
  for (const name of (await g.readdir('/etc/ssh').catch(() => null)) ?? []) {
    if (!/^ssh_host_.*_key\.pub$/.test(name)) continue;
    const pub = (await text(g, `/etc/ssh/${name}`))?.trim();
    if (pub) keys.push({ type: keyTypeOf(pub), sha256: fingerprint(pub), comment: pub.split(/\s+/).slice(2).join(' ') });
  }
  const networkFiles: string[] = [];
  for (const dir of NETWORK_DIRS) {
    for (const name of (await g.readdir(dir).catch(() => null)) ?? []) {
      const p = path.join(dir, name);
      if ((await g.lstat(p))?.type === 'file' && (dir !== '/etc/sysconfig/network' || name.startsWith('ifcfg-'))) networkFiles.push(p);
    }
  }
  if (await g.lstat('/etc/network/interfaces')) networkFiles.push('/etc/network/interfaces');
  const machineId = parseMachineId(mid) ?? null;
  return {
    distro: { id: d.id, versionId: d.versionId, family: d.family, name: d.name },
    hostname: (await text(g, '/etc/hostname'))?.trim().split('\n')[0] ?? null,
    machineId,
    machineIdRaw: mid === null ? null : mid.trim(),
    dbusMachineId: parseMachineId(await text(g, '/var/lib/dbus/machine-id')) ?? null,
    sshHostKeys: keys,
    networkFiles: networkFiles.sort(),
    files: await readFileIdentities(g, machineId),
  };
}
