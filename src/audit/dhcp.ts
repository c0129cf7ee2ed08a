/**
 * DHCP client identities as a guest's network stack will send them.
 *
 * systemd-networkd (and systemd's DHCP code inside NetworkManager's internal
 * client) derives its DUID from /etc/machine-id: DUID-EN with systemd's
 * enterprise number 43793 and the first 8 bytes (little-endian) of
 * SipHash-2-4 of the machine-id bytes under a fixed key. Two clones with one
 * machine-id therefore send one DUID, and a DHCP server gives them one lease.
 * The DHCPv4 client identifier is 0xff, the IAID, then that DUID (RFC 4361);
 * the IAID is SipHash-2-4 of the interface name, both halves XORed.
 *
 * dhclient and NetworkManager keep their DUIDs in files instead
 * (`default-duid` in lease files; NetworkManager's secret_key seeds its
 * generated ones): on a clone those files are the master's, so they are read
 * and reported as they are.
 */
import { createHmac } from 'node:crypto';

const MASK = (1n << 64n) - 1n;
const rotl = (x: bigint, b: bigint) => ((x << b) | (x >> (64n - b))) & MASK;

/** SipHash-2-4 of `data` under a 16-byte key, as an unsigned 64-bit integer. */
export function siphash24(data: Uint8Array, key: Uint8Array): bigint {
  if (key.length !== 16) throw new Error('siphash24: the key is 16 bytes');
  const k = Buffer.from(key);
  const k0 = k.readBigUInt64LE(0);
  const k1 = k.readBigUInt64LE(8);
  let v0 = k0 ^ 0x736f6d6570736575n;
  let v1 = k1 ^ 0x646f72616e646f6dn;
  let v2 = k0 ^ 0x6c7967656e657261n;
  let v3 = k1 ^ 0x7465646279746573n;
  const round = () => {
    v0 = (v0 + v1) & MASK; v1 = rotl(v1, 13n); v1 ^= v0; v0 = rotl(v0, 32n);
    v2 = (v2 + v3) & MASK; v3 = rotl(v3, 16n); v3 ^= v2;
    v0 = (v0 + v3) & MASK; v3 = rotl(v3, 21n); v3 ^= v0;
    v2 = (v2 + v1) & MASK; v1 = rotl(v1, 17n); v1 ^= v2; v2 = rotl(v2, 32n);
  };
  const d = Buffer.from(data);
  const full = d.length - (d.length % 8);
  for (let i = 0; i < full; i += 8) {
    const m = d.readBigUInt64LE(i);
    v3 ^= m; round(); round(); v0 ^= m;
  }
  let last = BigInt(d.length & 0xff) << 56n;
  for (let i = 0; i < d.length - full; i++) last |= BigInt(d[full + i]!) << BigInt(8 * i);
  v3 ^= last; round(); round(); v0 ^= last;
  v2 ^= 0xffn;
  round(); round(); round(); round();
  return (v0 ^ v1 ^ v2 ^ v3) & MASK;
}

/** systemd's HASH_KEY of its DHCP identifier code. */
const HASH_KEY = Buffer.from('80118cc2fe4a03ee3ed60c6f36391409', 'hex');
/** systemd's APPLICATION_ID for DUID-UUID. */
const APPLICATION_ID = Buffer.from('a50ad112bf604577a2fb741ab1955b03', 'hex');
export const SYSTEMD_PEN = 43793;

const hex = (b: Buffer) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
const machineIdBytes = (machineId: string): Buffer => {
  if (!/^[0-9a-f]{32}$/.test(machineId)) throw new Error('a machine-id is 32 lowercase hex digits');
  return Buffer.from(machineId, 'hex');
};

/** DUID-EN (type 2) systemd derives from a machine-id: 00:02, PEN 43793, 8 bytes of SipHash. */
export function systemdDuidEn(machineId: string): Buffer {
  const out = Buffer.alloc(14);
  out.writeUInt16BE(2, 0);
  out.writeUInt32BE(SYSTEMD_PEN, 2);
  out.writeBigUInt64LE(siphash24(machineIdBytes(machineId), HASH_KEY), 6);
  return out;
}

/** DUID-UUID (type 4, networkd DUIDType=uuid): the machine-id made application-specific (HMAC-SHA256), as a v4 UUID. */
export function systemdDuidUuid(machineId: string): Buffer {
  const id = createHmac('sha256', machineIdBytes(machineId)).update(APPLICATION_ID).digest().subarray(0, 16);
  id[6] = (id[6]! & 0x0f) | 0x40;
  id[8] = (id[8]! & 0x3f) | 0x80;
  return Buffer.concat([Buffer.from([0, 4]), id]);
}

/** The IAID systemd gives an interface with a predictable name (4 bytes, as sent). */
export function systemdIaid(ifname: string): Buffer {
  const id = siphash24(Buffer.from(ifname, 'utf8'), HASH_KEY);
  const id32 = Number((id & 0xffffffffn) ^ (id >> 32n));
  const out = Buffer.alloc(4);
  out.writeUInt32BE(id32 >>> 0, 0);
  return out;
}

/** DHCPv4 client identifier networkd sends by default (ClientIdentifier=duid): ff, IAID, DUID. */
export function systemdClientId(duid: Buffer, ifname: string): string {
  return hex(Buffer.concat([Buffer.from([0xff]), systemdIaid(ifname), duid]));
}

export const formatDuid = hex;

/** `DUIDType=` / `DUIDRawData=` of networkd.conf ([DHCPv4], [DHCPv6] or the older [DHCP] section). */
export function parseNetworkdDuidConfig(conf: string): { type?: string; raw?: string } {
  const out: { type?: string; raw?: string } = {};
  let section = '';
  for (const line of conf.split('\n')) {
    const t = line.trim();
    const s = /^\[(.+)\]$/.exec(t);
    if (s) { section = s[1]!; continue; }
    if (!/^DHCP(v4|v6)?$/.test(section)) continue;
    const kv = /^(DUIDType|DUIDRawData)\s*=\s*(.*)$/.exec(t);
    if (!kv) continue;
    if (kv[1] === 'DUIDType') out.type = kv[2]!.trim();
    else out.raw = kv[2]!.trim().toLowerCase();
  }
  return out;
}

export interface SystemdDhcpIdentity {
  /** DUID as hex octets ("00:02:00:00:ab:11:…"); null when derived from the MAC (per NIC, never shared). */
  readonly duid: string | null;
  /** Where it comes from: "machine-id (DUID-EN)", "machine-id (DUID-UUID)", "networkd.conf DUIDRawData", "MAC address". */
  readonly source: string;
}

/** The DUID networkd will send, from the machine-id and networkd.conf; null without a machine-id to derive from. */
export function systemdDhcpIdentity(machineId: string | null, networkdConf: string | null): SystemdDhcpIdentity | null {
  const conf = parseNetworkdDuidConfig(networkdConf ?? '');
  const type = conf.type ?? 'vendor';
  if (conf.raw) {
    const code = { 'link-layer-time': 1, vendor: 2, 'link-layer': 3, uuid: 4 }[type] ?? 2;
    return { duid: `00:${code.toString(16).padStart(2, '0')}:${conf.raw}`, source: 'networkd.conf DUIDRawData' };
  }
  if (type.startsWith('link-layer')) return { duid: null, source: 'MAC address' };
  if (!machineId) return null;
  if (type === 'uuid') return { duid: hex(systemdDuidUuid(machineId)), source: 'machine-id (DUID-UUID)' };
  return { duid: hex(systemdDuidEn(machineId)), source: 'machine-id (DUID-EN)' };
}

/**
 * `default-duid` values of dhclient lease files (`default-duid "\000\001…";`),
 * as hex octets. dhclient writes octal escapes for non-printable bytes.
 */
export function parseDhclientDuids(leases: string): string[] {
  const out: string[] = [];
  for (const m of leases.matchAll(/^\s*default-duid\s+"((?:[^"\\]|\\.)*)"\s*;/gm)) {
    const bytes: number[] = [];
    const s = m[1]!;
    for (let i = 0; i < s.length; i++) {
      if (s[i] === '\\') {
        const oct = /^[0-7]{3}/.exec(s.slice(i + 1));
        if (oct) { bytes.push(parseInt(oct[0], 8)); i += 3; } else { bytes.push(s.charCodeAt(i + 1)); i += 1; }
      } else bytes.push(s.charCodeAt(i) & 0xff);
    }
    out.push(hex(Buffer.from(bytes)));
  }
  return [...new Set(out)];
}
