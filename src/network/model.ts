/**
 * The one intermediate network model (cloud-init `network_state` style).
 * interpret.ts turns a validated v2 config into it; every renderer reads only
 * this model, so a feature is parsed once and rendered six ways.
 *
 * Everything here is normalized: booleans are booleans, numbers are numbers,
 * MAC addresses are lowercase, "default" routes are 0.0.0.0/0 or ::/0, and
 * interfaces come in a fixed order (kind, then ID) so output is deterministic.
 */
import { GhostprepError } from '../util/errors.js';

export type IfaceKind = 'ethernet' | 'bond' | 'bridge' | 'vlan';
export type IpFamily = 4 | 6;

/** Kinds in rendering order: links before the devices built on them. */
export const KIND_ORDER: readonly IfaceKind[] = ['ethernet', 'bond', 'bridge', 'vlan'];

/** The v2 section each kind comes from. */
export const SECTION_OF: Readonly<Record<IfaceKind, string>> = {
  ethernet: 'ethernets',
  bond: 'bonds',
  bridge: 'bridges',
  vlan: 'vlans',
};

export interface Address {
  readonly family: IpFamily;
  /** The address without prefix, in canonical form (2001:db8::11). */
  readonly ip: string;
  readonly prefix: number;
  /** ip/prefix. */
  readonly cidr: string;
}

export interface Route {
  readonly family: IpFamily;
  /** Destination CIDR; a default route is 0.0.0.0/0 or ::/0. */
  readonly to: string;
  readonly isDefault: boolean;
  readonly via?: string;
  readonly metric?: number;
  readonly onLink: boolean;
}

export interface Match {
  readonly name?: string;
  /** Lowercase xx:xx:xx:xx:xx:xx. */
  readonly macaddress?: string;
  readonly driver?: string;
}

/** Bond parameters, v2 names in camelCase; times in milliseconds. */
export interface BondParams {
  readonly mode?: string;
  readonly miiMonitorInterval?: number;
  readonly lacpRate?: string;
  readonly transmitHashPolicy?: string;
  readonly adSelect?: string;
  readonly minLinks?: number;
  readonly upDelay?: number;
  readonly downDelay?: number;
  readonly arpInterval?: number;
  readonly arpIpTargets?: readonly string[];
  /** Interface ID of the primary member. */
  readonly primary?: string;
  readonly primaryReselectPolicy?: string;
  readonly failOverMacPolicy?: string;
  readonly gratuitousArp?: number;
}

/** Bridge parameters; times in seconds. */
export interface BridgeParams {
  readonly stp?: boolean;
  readonly forwardDelay?: number;
  readonly helloTime?: number;
  readonly maxAge?: number;
  readonly ageingTime?: number;
  readonly priority?: number;
}

export interface Iface {
  /** The key in the v2 config (netplan "ID"). */
  readonly id: string;
  readonly kind: IfaceKind;
  /**
   * The kernel interface name once configured: set-name, else a literal
   * match.name, else the ID when there is no match at all. Undefined for an
   * ethernet matched only by MAC/driver/glob without set-name: renderers that
   * need a name (ifcfg, ENI) refuse it with a clear message.
   */
  readonly name: string | undefined;
  readonly match?: Match;
  readonly setName?: string;
  readonly dhcp4: boolean;
  readonly dhcp6: boolean;
  readonly addresses: readonly Address[];
  readonly routes: readonly Route[];
  readonly nameservers: readonly string[];
  readonly search: readonly string[];
  readonly mtu?: number;
  /** Member IDs of a bond or bridge, in config order. */
  readonly members: readonly string[];
  /** ID of the bond/bridge this interface belongs to. */
  readonly master?: string;
  readonly bond?: BondParams;
  readonly bridge?: BridgeParams;
  readonly vlan?: { readonly id: number; readonly link: string };
}

export interface NetworkModel {
  readonly interfaces: readonly Iface[];
}

/** A whole file a renderer produces, before it becomes a WriteChange. */
export interface WholeFile {
  readonly kind: 'file';
  readonly path: string;
  readonly mode: number;
  readonly content: string;
}

/**
 * A change to a file the guest already has (the ENI `source` line, SUSE's
 * netconfig DNS keys). `apply` is pure: current text in (null: absent), new
 * text out (null: delete). planNetwork reads the file once and composes all
 * edits to one path in order.
 */
export interface EditedFile {
  readonly kind: 'edit';
  readonly path: string;
  readonly mode: number;
  readonly reason: string;
  /** Leave the file alone when it is a symlink (resolv.conf managed by resolvconf/resolved). */
  readonly skipIfSymlink?: boolean;
  apply(current: string | null): string | null;
}

export type RenderedFile = WholeFile | EditedFile;

export function byId(model: NetworkModel, id: string): Iface | undefined {
  return model.interfaces.find((i) => i.id === id);
}

/** The name a renderer must know; throws NetworkRenderError naming the renderer and the fix. */
export function requireName(iface: Iface, renderer: string): string {
  if (iface.name !== undefined) return iface.name;
  throw new NetworkRenderError(
    `${SECTION_OF[iface.kind]}/${iface.id}: renderer ${renderer} needs a kernel interface name, ` +
      `but this interface is matched by ${describeMatch(iface.match)} without set-name; add set-name (for example set-name: ${iface.id})`,
  );
}

export function describeMatch(match: Match | undefined): string {
  if (!match) return 'nothing';
  const parts: string[] = [];
  if (match.macaddress) parts.push(`macaddress ${match.macaddress}`);
  if (match.driver) parts.push(`driver ${match.driver}`);
  if (match.name) parts.push(`name ${match.name}`);
  return parts.join(' and ');
}


/** The configuration cannot be expressed in the chosen renderer's format. */
export class NetworkRenderError extends GhostprepError {}
