/**
 * References to a LUKS volume's UUID in guest files (crypttab `UUID=…`,
 * `/dev/disk/by-uuid/…`, Fedora's `luks-UUID` mapper names, the kernel
 * command line's `rd.luks.uuid=`) and to PV UUIDs in LVM's devices file
 * (`PVID=`), rewritten when a clone gets new ones (pure functions).
 */

function hexBounded(uuid: string): RegExp {
  return new RegExp(`(?<![0-9A-Fa-f])${uuid.replace(/[^0-9A-Za-z-]/g, '')}(?![0-9A-Fa-f])`, 'gi');
}

/** `text` with every old UUID of `renames` (old -> new, any case) replaced by the new one. */
export function rewriteLuksUuids(text: string, renames: ReadonlyMap<string, string>): string {
  let out = text;
  for (const [from, to] of renames) out = out.replace(hexBounded(from), to);
  return out;
}

/** A PV UUID as LVM prints it (6-4-4-4-4-4-6 with dashes) or stores it (32 characters): the stored form. */
export function pvid(uuid: string): string {
  return uuid.replace(/-/g, '');
}

/** /etc/lvm/devices/system.devices with each `PVID=old` pointing at the new PV UUID. */
export function rewritePvids(text: string, renames: ReadonlyMap<string, string>): string {
  const map = new Map([...renames].map(([a, b]) => [pvid(a), pvid(b)]));
  return text.replace(/(?<![A-Za-z0-9_])PVID=([A-Za-z0-9]{32})(?![A-Za-z0-9])/g, (all, id: string) => (map.has(id) ? `PVID=${map.get(id)}` : all));
}

export const LVM_DEVICES_FILE = '/etc/lvm/devices/system.devices';
