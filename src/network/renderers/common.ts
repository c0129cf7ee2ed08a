/**
 * Helpers shared by the renderers (their record type is in src/core/network.ts): file headers,
 * deterministic UUIDs, and interface renames for renderers that cannot
 * rename by themselves (NetworkManager, ifcfg, ENI).
 */
import { createHash } from 'node:crypto';
import type { Distro } from '../../core/distro.js';
import type { Iface, NetworkModel, WholeFile } from '../../core/network.js';
import { SECTION_OF } from '../../core/network.js';
import { byId, NetworkRenderError } from '../model.js';

/** The UUID of a NetworkManager connection profile named `name` on the clone with `machineId`. */
export function cloneConnectionUuid(machineId: string, name: string): string {
  return stableUuid(`nm:${machineId}:${name}`);
}

export const HEADER = 'Written by ghostprep from the profile\'s network configuration; local changes are overwritten on the next apply.';

export function file(path: string, mode: number, content: string): WholeFile {
  return { kind: 'file', path, mode, content };
}

/** Name-based (v5-style) UUID: stable across runs, so re-applying changes nothing. */
export function stableUuid(seed: string): string {
  const h = createHash('sha1').update('ghostprep-network:' + seed).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** The interface a member/vlan refers to; interpret+check guarantee it exists. */
export function ref(model: NetworkModel, id: string, from: Iface): Iface {
  const found = byId(model, id);
  if (!found) throw new NetworkRenderError(`${SECTION_OF[from.kind]}/${from.id} refers to "${id}", which is not defined`);
  return found;
}

/** File-name stem for an interface: its kernel name, else its ID. */
export function stem(iface: Iface): string {
  return iface.name ?? iface.id;
}

export function vlansOn(model: NetworkModel, iface: Iface): Iface[] {
  return model.interfaces.filter((i) => i.vlan?.link === iface.id);
}

/** Ethernets that must be renamed (set-name) by udev before the network service starts. */
export function renames(model: NetworkModel): Iface[] {
  return model.interfaces.filter((i) => i.kind === 'ethernet' && i.setName !== undefined);
}

/**
 * systemd .link file: renames a card (set-name) and/or sets its MTU when udev
 * first sees it (as netplan does); udev applies it whatever network service runs.
 * A MAC is matched as the permanent (burned-in) address: a VLAN, a bond or a
 * bridge takes the MAC of a physical card as its current address, and a
 * `MACAddress=` match would rename it too.
 */
export function linkFile(iface: Iface, withMtu: boolean): WholeFile {
  const m = iface.match;
  const lines = [`# ${HEADER}`, '[Match]'];
  if (m?.macaddress) lines.push(`PermanentMACAddress=${m.macaddress}`);
  if (m?.driver) lines.push(`Driver=${m.driver}`);
  if (m?.name) lines.push(`OriginalName=${m.name}`);
  if (!m) lines.push(`OriginalName=${iface.id}`);
  lines.push('', '[Link]');
  if (iface.setName) lines.push(`Name=${iface.setName}`);
  if (withMtu && iface.mtu !== undefined) lines.push(`MTUBytes=${iface.mtu}`);
  return file(`/etc/systemd/network/10-ghostprep-${stem(iface)}.link`, 0o644, lines.join('\n') + '\n');
}

export const UDEV_DIR = '/etc/udev/rules.d';
export const UDEV_RULES_PATH = `${UDEV_DIR}/70-ghostprep-net.rules`;

/**
 * Alpine has no systemd-udevd .link support (eudev/mdev): plain udev rules instead.
 * `ATTR{address}` is the current address, which a VLAN, bond or bridge copies
 * from a physical card: each rule also needs a parent device bound to a
 * driver (`DRIVERS=="?*"`, which no virtual device has) and an Ethernet-type
 * link (`ATTR{type}=="1"`), as udev's own persistent-net rules did.
 */
function udevRules(list: Iface[]): WholeFile {
  const lines = [`# ${HEADER}`];
  for (const i of list) {
    const m = i.match ?? {};
    if (m.name) throw new NetworkRenderError(`ethernets/${i.id}: renaming by match.name needs systemd-udevd (.link files); match by macaddress instead`);
    const conds = ['SUBSYSTEM=="net"', 'ACTION=="add"', `DRIVERS=="${m.driver ?? '?*'}"`, 'ATTR{type}=="1"'];
    if (m.macaddress) conds.push(`ATTR{address}=="${m.macaddress}"`);
    lines.push(`${conds.join(', ')}, NAME="${i.setName}"`);
  }
  return file(UDEV_RULES_PATH, 0o644, lines.join('\n') + '\n');
}

/** Rename files for renderers without their own rename support. */
export function renameFiles(model: NetworkModel, distro: Distro): WholeFile[] {
  const list = renames(model);
  if (!list.length) return [];
  if (distro.family === 'alpine') return [udevRules(list)];
  return list.map((i) => linkFile(i, false));
}

/** Shell-style double quoting for ifcfg values (sourced by bash). */
export function shq(value: string): string {
  if (/^[A-Za-z0-9_.:/@+-]+$/.test(value)) return value;
  return `"${value.replace(/(["\\$`])/g, '\\$1')}"`;
}

/** Defaults first, then the rest, each family's in config order. */
export function splitDefault<T extends { isDefault: boolean }>(routes: readonly T[]): { defaults: T[]; others: T[] } {
  return { defaults: routes.filter((r) => r.isDefault), others: routes.filter((r) => !r.isDefault) };
}
